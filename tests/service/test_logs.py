"""service.logs: one JSON object per line carrying the ids, or the human-readable default."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from service.logs import active_log_format, configure_logging, log_context, resolve_log_format
from service.settings import Settings


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    out = io.StringIO()
    yield out
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_ids_of_their_context(stream: io.StringIO) -> None:
    assert configure_logging("json", level=logging.INFO, stream=stream) == "json"
    log = logging.getLogger("workers.tune.runner")
    log.info("outside any sweep")
    with log_context(sweep_id=3):
        log.info("claimed sweep %s", 3)
        with log_context(trial_id=12, pack="a1b2c_00000"):
            log.warning("epoch %d done", 2, extra={"loss": 0.25})
        try:
            raise ValueError("multi\nline")
        except ValueError:
            log.exception("sweep failed")
    lines = _lines(stream)
    assert [line["message"] for line in lines] == [
        "outside any sweep",
        "claimed sweep 3",
        "epoch 2 done",
        "sweep failed",
    ]
    for line in lines:  # every line has the three keys
        assert {"ts", "level", "logger", "sweep_id", "trial_id", "pack"} <= set(line)
        assert line["logger"] == "workers.tune.runner"
    assert (lines[0]["sweep_id"], lines[0]["trial_id"], lines[0]["pack"]) == (None, None, None)
    assert (lines[1]["sweep_id"], lines[1]["trial_id"]) == (3, None)
    assert lines[2] | {"ts": None} == {
        "ts": None,
        "level": "WARNING",
        "logger": "workers.tune.runner",
        "message": "epoch 2 done",
        "sweep_id": 3,
        "trial_id": 12,
        "pack": "a1b2c_00000",
        "loss": 0.25,
    }
    assert str(lines[0]["ts"]).endswith("Z")
    assert "ValueError: multi\nline" in str(lines[3]["exc_info"])
    assert lines[3]["trial_id"] is None  # the inner context ended


def test_the_context_is_per_thread(stream: io.StringIO) -> None:
    configure_logging("json", level=logging.INFO, stream=stream)
    log = logging.getLogger("workers")
    with log_context(sweep_id=1):
        thread = threading.Thread(target=lambda: log.info("other thread"))
        thread.start()
        thread.join()
        log.info("this thread")
    by_message = {line["message"]: line["sweep_id"] for line in _lines(stream)}
    assert by_message == {"other thread": None, "this thread": 1}


def test_text_stays_human_readable_with_the_ids_appended(stream: io.StringIO) -> None:
    configure_logging(level=logging.INFO, stream=stream)  # the default
    log = logging.getLogger("api")
    log.info("plain")
    with log_context(sweep_id=5, trial_id=9):
        log.info("with ids")
    first, second = stream.getvalue().splitlines()
    assert first.endswith(" INFO api: plain")
    assert second.endswith(" INFO api: with ids [sweep=5 trial=9]")


def test_configuring_again_replaces_the_handler(stream: io.StringIO) -> None:
    configure_logging("text", stream=io.StringIO())
    configure_logging("json", level=logging.INFO, stream=stream)
    logging.getLogger("x").info("once")
    assert len(_lines(stream)) == 1
    uvicorn = logging.getLogger("uvicorn.access")
    assert uvicorn.propagate and not uvicorn.handlers  # the API's access lines go to JSON too


def test_the_format_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("L0SWEEP_LOG_FORMAT", raising=False)
    assert resolve_log_format() == "text"
    monkeypatch.setenv("L0SWEEP_LOG_FORMAT", "JSON")
    assert resolve_log_format() == "json"
    assert resolve_log_format("text") == "text"
    monkeypatch.setenv("L0SWEEP_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="L0SWEEP_LOG_FORMAT"):
        resolve_log_format()


def test_settings_read_the_same_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("L0SWEEP_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("L0SWEEP_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


def test_other_libraries_private_record_attributes_stay_out(stream: io.StringIO) -> None:
    configure_logging("json", level=logging.INFO, stream=stream)
    assert active_log_format() == "json"
    # (Ray stamps every record with _ray_timestamp_ns once imported; any private name.)
    logging.getLogger("x").info("m", extra={"_library_stamp": 1, "visible": 2})
    [line] = _lines(stream)
    assert "_library_stamp" not in line and line["visible"] == 2
