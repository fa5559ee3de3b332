"""The HTTP API served by uvicorn in a thread: inside `calstream run`, or alone (`calstream api`).

The listening socket is bound here, before uvicorn starts, so a taken port is an ``OSError``
the caller handles (uvicorn itself would exit the process). uvicorn installs no signal handler
from a thread: the process that starts the server keeps its own, and stops it with
:meth:`ApiServer.stop`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from calstream.api.app import OPENAPI_URL

log = logging.getLogger(__name__)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: a free one); ``OSError`` if it cannot.

    Made with the protocol number getaddrinfo gives (``IPPROTO_TCP``), not 0: asyncio sets
    ``TCP_NODELAY`` only on connections of such a socket, and without it every answer waits
    ~40 ms for the client's delayed ACK (Nagle).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class ApiServer:
    """uvicorn serving ``app`` on ``host:port`` in a daemon thread.

    The socket is bound on construction (``OSError`` when the port is taken); ``port`` is then
    the one bound (a free one when 0 was asked).
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8080) -> None:
        self._socket = listening_socket(host, port)
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            app,
            log_config=None,  # the process's logging stays as it is
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="calstream-api",
            daemon=True,
        )  # fmt: skip

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start serving; returns once uvicorn accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self._socket.close()
                raise OSError(f"the API could not start on {self.url} (see the log)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the API did not start on {self.url} within {timeout} s")
            time.sleep(0.01)
        log.info("API on %s (OpenAPI document at %s%s)", self.url, self.url, OPENAPI_URL)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the requests in flight (at most 5 s) and stop listening."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
