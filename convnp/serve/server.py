"""Run the playground: bind the socket first (a busy or bad port is one clear error), then print the banner,
then serve with uvicorn under time limits for slow clients.

Time limits (slowloris): a connection must deliver a request's complete headers within ``header_timeout``
seconds of connecting (or of its first byte after a finished request); idle keep-alive connections close
after 5 s; the body timeout lives in :mod:`convnp.serve.guard`.
"""
from __future__ import annotations

import socket
import sys


def _timed_protocol(header_timeout: float):
    """uvicorn's h11 protocol with a deadline for each request's headers."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            self._header_timer = None
            self._arm()

        def _arm(self):
            self._waiting_after = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._headers_late)

        def _disarm(self):
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self):
            self._header_timer = None
            if self.cycle is self._waiting_after and not self.transport.is_closing():
                self.transport.close()  # no complete request headers in time

        def data_received(self, data):
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()
            super().data_received(data)
            if self.cycle is not self._waiting_after:
                self._disarm()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

    return TimedH11Protocol


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port); OSError names the address."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OSError(f"cannot listen on {host}:{port}: unknown host ({e.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        why = "the port is already in use" if e.errno == 98 else "permission denied (ports below 1024 need root)" \
            if e.errno == 13 else e.strerror or str(e)
        raise OSError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


def serve(app, host: str = "127.0.0.1", port: int = 8000, header_timeout: float = 10.0,
          limit_concurrency: int = 200, out=sys.stdout) -> None:
    """Bind, print ``convnp playground on http://HOST:PORT/`` (the real port when ``port`` is 0), and serve."""
    import uvicorn
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"convnp playground on http://{shown}:{bound}/  (Ctrl-C to stop)", file=out, flush=True)
    config = uvicorn.Config(app, log_level="warning", http=_timed_protocol(header_timeout), timeout_keep_alive=5,
                            limit_concurrency=limit_concurrency, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
