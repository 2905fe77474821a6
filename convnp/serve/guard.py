"""Request guard for the playground: a plain ASGI middleware (no framework needed to read it).

For every HTTP request, before the app sees it:

* **Host check** (DNS rebinding): when the server listens on a loopback address, the ``Host`` header must
  name a loopback host (``localhost``, ``127.0.0.1``, ``[::1]``, any port); anything else gets 400.
* **Size limit as bytes arrive**: the body is read here, counting bytes, and the request is refused with 413
  the moment the count passes ``max_body`` (whether or not a ``Content-Length`` was sent; a chunked upload
  cannot slip past). At most ``max_body`` bytes are held, in memory; nothing is spooled to disk before the
  limit is checked.
* **Body timeout**: each piece of the body must arrive within ``body_timeout`` seconds and the whole body
  within ``4 * body_timeout``; a slow client gets 408.

The buffered body is then replayed to the app unchanged.
"""
from __future__ import annotations

import asyncio
import json
import time

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _host_name(value: str) -> str:
    """``'[::1]:8000'`` -> ``'::1'``, ``'localhost:80'`` -> ``'localhost'``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


async def _reply(send, status: int, detail: str, close: bool = True) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: ``RequestGuard(app, max_body=5 << 20, loopback_only=True, body_timeout=10.0)``."""

    def __init__(self, app, max_body: int, loopback_only: bool = False, body_timeout: float = 10.0):
        self.app, self.max_body, self.loopback_only, self.body_timeout = app, int(max_body), loopback_only, body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.loopback_only:
            host = _host_name(headers.get("host", ""))
            if host not in LOOPBACK_HOSTS:
                return await _reply(send, 400, f"Host header {headers.get('host', '')!r} is not allowed: this server "
                                               "listens on localhost only (start it with --host to serve others)")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _reply(send, 413, f"request too large ({int(length):,} bytes; at most {self.max_body:,})")
        if scope.get("method") in ("GET", "HEAD", "OPTIONS") and length is None \
                and "transfer-encoding" not in headers:
            return await self.app(scope, receive, send)
        chunks, total, start = [], 0, time.monotonic()
        while True:
            left = 4 * self.body_timeout - (time.monotonic() - start)
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, min(self.body_timeout, left)))
            except asyncio.TimeoutError:
                return await _reply(send, 408, f"the request body did not arrive in time ({total:,} bytes after "
                                               f"{time.monotonic() - start:.0f} s)")
            if message["type"] == "http.disconnect":
                return None
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_body:
                return await _reply(send, 413, f"request too large (more than {self.max_body:,} bytes received; "
                                               f"at most {self.max_body:,})")
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()
        return await self.app(scope, replayed, send)
