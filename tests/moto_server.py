"""A moto S3 server on loopback that counts the requests it serves.

Tests use the count to prove that a cache hit sends nothing to storage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class CountingMotoServer(ThreadedMotoServer):
    """`ThreadedMotoServer` plus `requests`: S3 requests served since `reset_count`."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self.requests = 0
        self._count_lock = threading.Lock()

    def reset_count(self) -> None:
        with self._count_lock:
            self.requests = 0

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)

        def counting(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            if not environ.get("PATH_INFO", "").startswith("/moto-api"):
                with self._count_lock:
                    self.requests += 1
            return app(environ, start_response)  # type: ignore[no-any-return]

        self._server = make_server(
            self._ip_address, self._port, counting, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()
