"""moto in server mode, with DynamoDB requests served one at a time.

moto backs up every table a transaction touches with a deep copy (for its rollback); a write to that table
from another request thread meanwhile makes the copy fail ("dictionary changed size during iteration"), an
HTTP 500 that botocore retries and, under load (`make soak`), gives up on. Real DynamoDB serializes
conflicting writes itself; here one lock around DynamoDB's requests does it. Other services (SQS long polls
above all) stay concurrent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


class SerialDynamoDB:
    """WSGI middleware: requests whose X-Amz-Target is DynamoDB's take a lock; the others pass."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            with self.lock:
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


class MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer with SerialDynamoDB in front of moto's application."""

    def _server_entry(self) -> None:
        app = SerialDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
