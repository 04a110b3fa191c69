from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings, ensure_api_tokens


def test_env_prefix_and_comma_separated_tokens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("L0SWEEP_API_TOKENS", "a, b,,c")
    monkeypatch.setenv("L0SWEEP_MAX_TRIALS_PER_SWEEP", "12")
    monkeypatch.setenv("L0SWEEP_DATA_DIR", str(tmp_path))
    s = Settings()
    assert s.api_tokens == ["a", "b", "c"]
    assert s.max_trials_per_sweep == 12
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'l0sweep.db'}"
    monkeypatch.setenv("L0SWEEP_DATABASE_URL", "postgresql://x@y/z")
    assert Settings().resolved_database_url == "postgresql://x@y/z"


def test_prod_refuses_unsafe_defaults() -> None:
    with pytest.raises(ValidationError, match="API_TOKENS"):
        Settings(environment="prod", database_url="sqlite:///x.db")
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(environment="prod", api_tokens=["t"])


def test_generated_dev_token_is_persistent_and_private(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, api_tokens=[])
    (token,) = ensure_api_tokens(s)
    assert len(token) >= 32
    assert ensure_api_tokens(s) == [token]
    assert stat.S_IMODE((tmp_path / "api_token").stat().st_mode) == 0o600
    assert ensure_api_tokens(Settings(data_dir=tmp_path, api_tokens=["x"])) == ["x"]
