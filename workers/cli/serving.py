"""How the API is served: uvicorn with the timeouts and limits of a public server.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) and the connections
served at once (``limit_concurrency``; beyond it: 503), but not the time a client may take
to send a request: 350 connections holding partial headers stayed open for good (issue 10).
:class:`GuardedHttpToolsProtocol` adds that bound at the protocol level, before any ASGI
code runs: a request's headers and body must arrive within ``read_timeout_s`` of its first
byte (or of the connection's opening), and its headers may not exceed ``max_head_bytes``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.settings import Settings

__all__ = ["MAX_HEAD_BYTES", "GuardedHttpToolsProtocol", "api_config", "guarded_protocol"]

log = logging.getLogger(__name__)

#: Request line and headers together; browsers and proxies cap them at 8-64 KiB.
MAX_HEAD_BYTES = 64 * 1024


def _plain_response(status: str, text: str) -> bytes:
    body = text.encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_TIMEOUT = _plain_response("408 Request Timeout", "request not received in time")
_TOO_LARGE = _plain_response("431 Request Header Fields Too Large", "headers too large")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on reading each request.

    The clock starts when the connection opens, and on a kept-alive connection at the first
    byte of the next request (uvicorn's keep-alive timeout covers the wait before it); it
    stops when the request's body is complete. When it runs out the connection is closed,
    after a 408 if the headers were not complete (once they are, the app owns the answer
    and sees a disconnect).
    """

    read_timeout_s: float = 10.0
    max_head_bytes: int = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None
        self._head_complete = False
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._head_complete:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(_TOO_LARGE)
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        # The head counter is not reset here: httptools calls this while parsing the chunk
        # that data_received has just counted, and a reset would drop that chunk's bytes (a
        # first read of 38 KiB let 100 KiB of headers through a 64 KiB limit). It is reset
        # when a message completes.
        super().on_message_begin()
        self._head_complete = False
        if self._read_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._head_complete = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._head_complete = False
        self._head_bytes = 0
        super().on_message_complete()

    def _arm(self) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.transport.is_closing():
            return
        log.info("closing %s: request not received within %ss", self.client, self.read_timeout_s)
        if self._head_complete:
            self.transport.close()  # the app sees http.disconnect
        else:
            self._refuse(_TIMEOUT)

    def _refuse(self, response: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()


def guarded_protocol(
    read_timeout_s: float, max_head_bytes: int = MAX_HEAD_BYTES
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, with these bounds."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"read_timeout_s": read_timeout_s, "max_head_bytes": max_head_bytes},
    )


def api_config(
    app: Any, settings: Settings, *, host: str, port: int, factory: bool = False
) -> uvicorn.Config:
    """uvicorn's configuration of the API: keep-alive, request read timeout, a connection
    cap (``L0SWEEP_SERVER_*``), no WebSocket upgrades (the API has none)."""
    return uvicorn.Config(
        app,
        factory=factory,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        http=guarded_protocol(settings.server_read_timeout_s),
        ws="none",
        timeout_keep_alive=max(1, round(settings.server_keep_alive_s)),
        limit_concurrency=settings.server_max_connections,
    )
