"""Model files per format (migration 0005, service.repository.model_files), on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from service import repository as repo
from service.db import create_engine_for, downgrade_database, session_scope, upgrade_database
from service.errors import ConflictError, ModelFormatUnavailableError, NotFoundError
from service.vocabulary import ModelFormat
from tests.service.test_repository import make_spec, metrics


def _completed_trial(engine: Engine, files: repo.ModelFiles | bytes | None) -> int:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
        trial_id = repo.list_trials(s, sweep_id).items[0].id
        repo.record_trial_result(s, trial_id, metrics(0.9, 0.5, 100.0), files)
    return int(trial_id)


def test_every_format_is_stored_and_read_back(engine: Engine) -> None:
    files = {"torchscript": b"ts", "onnx": b"onnx-bytes", "pt2": b"pt2-bytes"}
    trial_id = _completed_trial(engine, files)
    with session_scope(engine, readonly=True) as s:
        assert repo.get_trial_model_file(s, trial_id) == (f"trial-{trial_id}.pt", b"ts")
        assert repo.get_trial_model_file(s, trial_id, ModelFormat.ONNX) == (
            f"trial-{trial_id}.onnx",
            b"onnx-bytes",
        )
        assert repo.get_trial_model(s, trial_id, "pt2") == b"pt2-bytes"


def test_a_format_that_failed_to_export_is_a_conflict_with_its_reason(engine: Engine) -> None:
    files = {"torchscript": b"ts", "onnx": repo.ModelUnavailable("onnx export failed: Boom")}
    trial_id = _completed_trial(engine, files)
    with session_scope(engine, readonly=True) as s:
        with pytest.raises(ModelFormatUnavailableError, match="onnx export failed: Boom"):
            repo.get_trial_model_file(s, trial_id, "onnx")
        # A format never exported (a trial from before it existed) names what there is.
        with pytest.raises(ConflictError, match=r"no pt2 model.*it has: torchscript"):
            repo.get_trial_model_file(s, trial_id, "pt2")
        assert repo.get_trial_model(s, trial_id) == b"ts"


def test_no_model_is_none_and_no_trial_is_not_found(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
        trial_id = repo.list_trials(s, sweep_id).items[0].id
    with session_scope(engine, readonly=True) as s:
        for fmt in ModelFormat:
            assert repo.get_trial_model_file(s, trial_id, fmt) is None
        with pytest.raises(NotFoundError):
            repo.get_trial_model_file(s, 10**9, "onnx")


def test_recording_again_replaces_every_format(engine: Engine) -> None:
    trial_id = _completed_trial(engine, {"torchscript": b"a", "onnx": b"b", "pt2": b"c"})
    with session_scope(engine) as s:
        # Plain bytes mean a TorchScript file only (the callers before formats existed).
        repo.record_trial_result(s, trial_id, metrics(0.9, 0.5, 100.0), b"again")
    with session_scope(engine, readonly=True) as s:
        assert repo.get_trial_model(s, trial_id) == b"again"
        with pytest.raises(ModelFormatUnavailableError):
            repo.get_trial_model(s, trial_id, "onnx")
    with session_scope(engine) as s:
        repo.record_trial_result(s, trial_id, metrics(0.9, 0.5, 100.0))  # no files: kept
    with session_scope(engine, readonly=True) as s:
        assert repo.get_trial_model(s, trial_id) == b"again"


def test_the_database_refuses_unknown_formats_and_rows_without_data_or_error(
    engine: Engine,
) -> None:
    trial_id = _completed_trial(engine, b"ts")
    insert = text(
        "INSERT INTO trial_models (trial_id, format, data, filename, error, created_at)"
        " VALUES (:t, :f, :d, 'x', :e, CURRENT_TIMESTAMP)"
    )
    bad = [
        {"t": trial_id, "f": "tflite", "d": b"x", "e": None},  # unknown format
        {"t": trial_id, "f": "onnx", "d": None, "e": None},  # neither file nor reason
        {"t": trial_id, "f": "onnx", "d": b"x", "e": "why"},  # both
    ]
    for values in bad:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, values)


def _pk(engine: Engine) -> list[str]:
    return list(inspect(engine).get_pk_constraint("trial_models")["constrained_columns"])


def _models(engine: Engine) -> list[tuple[int, bytes]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT trial_id, data FROM trial_models ORDER BY trial_id"))
        return [(int(r[0]), bytes(r[1])) for r in rows]


def test_migration_0005_keeps_torchscript_files_both_ways(db_url: str) -> None:
    engine = create_engine_for(db_url)
    try:
        # Trials written at head by today's ORM (it maps columns added after 0004, e.g.
        # trials.weight_decay of 0006), then taken down to 0004 for the old-style files.
        upgrade_database(engine)
        with session_scope(engine) as s:
            sweep_id = repo.create_sweep(s, make_spec()).id
            ids = [t.id for t in repo.list_trials(s, sweep_id).items[:2]]
            for trial_id in ids:
                repo.record_trial_result(s, trial_id, metrics(0.9, 0.5, 100.0))
        downgrade_database(engine, "0004")
        with session_scope(engine) as s:
            for trial_id in ids:
                s.execute(
                    text(
                        "INSERT INTO trial_models"
                        " (trial_id, data, filename, size, sha256, created_at)"
                        " VALUES (:t, :d, :n, 2, 'x', CURRENT_TIMESTAMP)"
                    ),
                    {"t": trial_id, "d": b"m%d" % trial_id, "n": f"trial-{trial_id}.pt"},
                )
        before = _models(engine)
        assert _pk(engine) == ["trial_id"]

        upgrade_database(engine, "0005")
        assert _pk(engine) == ["trial_id", "format"]
        assert _models(engine) == before
        upgrade_database(engine)  # 0006 leaves trial_models alone; the ORM needs head
        assert _models(engine) == before
        with session_scope(engine) as s:
            for trial_id in ids:  # old rows are TorchScript files; other formats conflict
                assert repo.get_trial_model(s, trial_id) == b"m%d" % trial_id
                with pytest.raises(ModelFormatUnavailableError, match="completed before"):
                    repo.get_trial_model(s, trial_id, "onnx")
            repo.record_trial_result(
                s,
                ids[0],
                metrics(0.9, 0.5, 100.0),
                {"torchscript": b"new", "onnx": b"o", "pt2": repo.ModelUnavailable("no")},
            )

        downgrade_database(engine, "0004")
        assert _pk(engine) == ["trial_id"]
        # One file per trial again: the TorchScript one.
        assert _models(engine) == [(ids[0], b"new"), before[1]]
        upgrade_database(engine)
        with session_scope(engine, readonly=True) as s:
            assert repo.get_trial_model(s, ids[0]) == b"new"
    finally:
        engine.dispose()
