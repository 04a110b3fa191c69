"""The CLI when the server is away, slow or failing, and when it sends hostile text
(issue 10): one line naming the URL and the cause, a non-zero exit, nothing interpreted."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from workers.cli import app


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def stub_api() -> Iterator[tuple[str, dict[str, tuple[int, Any]]]]:
    """A loopback HTTP server answering canned JSON: ``answers[path] = (status, body)``;
    a path without an answer hangs until the server stops (a server that does not answer)."""
    answers: dict[str, tuple[int, Any]] = {}
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path not in answers:
                stop.wait(10)
                return
            status, body = answers[path]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env={"L0SWEEP_TOKEN": "t", **(env or {})})


def _one_error_line(output: str, *expected: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ") and "Traceback" not in output
    for text in expected:
        assert text in lines[0], (text, lines[0])


def test_no_server_is_one_line_not_a_traceback() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    for command in (["status", "1"], ["pareto", "1"], ["cancel", "1"]):
        result = _run(*command, "--url", url)
        assert result.exit_code == 1
        _one_error_line(result.output, f"cannot reach the l0sweep API at {url}", "refused")


def test_a_server_that_does_not_answer_times_out(
    stub_api: tuple[str, dict[str, tuple[int, Any]]],
) -> None:
    url, _ = stub_api
    result = _run("status", "1", "--url", url, env={"L0SWEEP_CLIENT_TIMEOUT_S": "0.5"})
    assert result.exit_code == 1
    _one_error_line(result.output, f"the l0sweep API at {url} did not answer within 0.5 s")


def test_a_5xx_names_the_url_and_the_detail(
    stub_api: tuple[str, dict[str, tuple[int, Any]]],
) -> None:
    url, answers = stub_api
    answers["/api/v1/sweeps/1"] = (503, {"detail": "database unavailable"})
    result = _run("status", "1", "--url", url)
    assert result.exit_code == 1
    _one_error_line(result.output, url, "HTTP 503: database unavailable")


HOSTILE = "x[/]y \x1b[31mred\x1b]0;title\x07 \u202eevil"


def test_user_text_is_shown_not_interpreted(
    stub_api: tuple[str, dict[str, tuple[int, Any]]],
) -> None:
    url, answers = stub_api
    counts = {"pending": 0, "running": 1, "completed": 0, "failed": 0, "cancelled": 0}
    sweep = {
        "id": 1,
        "name": HOSTILE,
        "status": "running",
        "spec": {"training": {"epochs": 2}},
        "n_trials": 1,
        "counts": counts,
    }
    trial = {
        "id": 7,
        "status": "running",
        "lambda": 0.1,
        "beta": 0.5,
        "seed": 0,
        "epochs_done": 1,
        "node": "[bold]node\x1b[2J",
        "metrics": None,
    }
    answers["/api/v1/sweeps/1"] = (200, sweep)
    answers["/api/v1/sweeps/1/trials"] = (200, {"items": [trial], "total": 1})
    result = _run("status", "1", "--url", url)
    assert result.exit_code == 0, result.output
    assert "x[/]y" in result.output and "[bold]node" in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\u202e" not in result.output
    assert "\\x1b[31mred" in result.output  # shown, escaped
    # An error that quotes hostile text is inert too.
    answers["/api/v1/sweeps/2"] = (404, {"detail": f"sweep {HOSTILE} not found"})
    result = _run("status", "2", "--url", url)
    assert result.exit_code == 1 and "\x1b" not in result.output
    _one_error_line(result.output, "HTTP 404", "x[/]y")
