"""The PostgreSQL fixtures skip locally but fail in CI when the server is unreachable."""

from __future__ import annotations

import pytest

from tests.service import fixtures


def test_unreachable_postgres_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fixtures, "_postgres_unreachable", lambda: "no server")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no server"):
        fixtures.require_postgres()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no server"):
        fixtures.require_postgres()


def test_reachable_postgres_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixtures, "_postgres_unreachable", lambda: None)
    monkeypatch.setenv("CI", "true")
    fixtures.require_postgres()
