"""A small HTTP client of the REST API (DESIGN §5), used by the CLI and the demo."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from service.settings import Settings
from service.vocabulary import FINISHED_SWEEP_STATUSES

__all__ = ["DEFAULT_URL", "ApiClient", "ApiError", "local_token"]

DEFAULT_URL = "http://127.0.0.1:8000"
FINISHED = FINISHED_SWEEP_STATUSES


class ApiError(RuntimeError):
    """A non-2xx answer; the message carries the API's ``detail``."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


def local_token(settings: Settings | None = None) -> str | None:
    """The token a local (dev) server accepts: configured, or the generated token file."""
    settings = settings or Settings()
    if settings.api_tokens:
        return settings.api_tokens[0]
    path = settings.data_dir / "api_token"
    if path.exists():
        return path.read_text(encoding="utf-8").strip() or None
    return None


class ApiClient:
    """Talks to ``{url}/api/v1``.

    Args:
        url: Server root, default ``$L0SWEEP_URL`` or ``http://127.0.0.1:8000``.
        token: Bearer token for writes, default ``$L0SWEEP_TOKEN`` or the local token file.
        timeout: Seconds per request.
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0
    ) -> None:
        self.url = (url or os.environ.get("L0SWEEP_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self.token = token or os.environ.get("L0SWEEP_TOKEN") or local_token()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(
            base_url=f"{self.url}/api/v1", headers=headers, timeout=timeout, trust_env=False
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        return response.json()

    # ------------------------------------------------------------------ endpoints

    def health(self) -> dict[str, Any]:
        return dict(self._json(self._http.get("/healthz")))

    def submit(
        self, spec: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """POST a sweep spec; the same ``idempotency_key`` never creates a second sweep."""
        key = idempotency_key or uuid.uuid4().hex
        return dict(
            self._json(
                self._http.post("/sweeps", json=dict(spec), headers={"Idempotency-Key": key})
            )
        )

    def sweep(self, sweep_id: int | str) -> dict[str, Any]:
        return dict(self._json(self._http.get(f"/sweeps/{sweep_id}")))

    def trials(self, sweep_id: int | str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self._json(
                self._http.get(
                    f"/sweeps/{sweep_id}/trials", params={"limit": 1000, "offset": len(items)}
                )
            )
            items.extend(page["items"])
            if not page["items"] or len(items) >= page["total"]:
                return items

    def pareto(
        self, sweep_id: int | str, objectives: str = "accuracy,sparsity,flops"
    ) -> dict[str, Any]:
        return dict(
            self._json(
                self._http.get(f"/sweeps/{sweep_id}/pareto", params={"objectives": objectives})
            )
        )

    def cancel(self, sweep_id: int | str) -> dict[str, Any]:
        return dict(self._json(self._http.post(f"/sweeps/{sweep_id}/cancel")))

    def download_model(
        self, trial_id: int | str, path: str | os.PathLike[str], fmt: str = "torchscript"
    ) -> Path:
        """Write the trial's model in ``fmt`` (torchscript, onnx, pt2) to ``path``."""
        response = self._http.get(f"/trials/{trial_id}/model", params={"format": fmt})
        if response.status_code >= 400:
            self._json(response)
        target = Path(path)
        target.write_bytes(response.content)
        return target

    def wait(
        self,
        sweep_id: int | str,
        *,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        on_update: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the sweep is completed, failed or cancelled; returns the sweep."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            sweep = self.sweep(sweep_id)
            if on_update is not None:
                on_update(sweep, self.trials(sweep_id))
            if sweep["status"] in FINISHED:
                return sweep
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep_id} still {sweep['status']} after {timeout_s}s")
            time.sleep(poll_s)
