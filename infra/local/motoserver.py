"""moto in server mode, with DynamoDB requests served one at a time and cheap transaction backups.

moto backs up every table a transaction touches with a deep copy (for its rollback):
- a write to that table from another request thread meanwhile makes the copy fail ("dictionary changed size
  during iteration"), an HTTP 500 that botocore retries and, under load (`make soak`), gives up on. Real
  DynamoDB serializes conflicting writes itself; here one lock around DynamoDB's requests does it (other
  services, SQS long polls above all, stay concurrent);
- the copy costs time in proportion to the table: 265 ms a transaction at 15,000 items, so a local stack
  slowed down as it filled (every delivery meters in a transaction). The backup is now a copy of the table's
  index (which item under which key) plus deep copies of the items the transaction updates in place: what a
  rollback needs, whatever the table's size.
"""

from __future__ import annotations

import contextvars
import copy
import threading
import types
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import table as moto_table
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


_transaction: contextvars.ContextVar[tuple[Any, list[dict[str, Any]]] | None] = contextvars.ContextVar(
    "moto_transaction", default=None
)


def table_backup(backend: Any, table: Any, transact_items: list[dict[str, Any]]) -> Any:
    """What rolling `table` back after `transact_items` needs: its key index copied, and the items that an
    Update changes in place deep-copied (Put and Delete replace or remove entries of the index)."""
    backup = copy.copy(table)
    if table.range_key_attr:
        backup.items = defaultdict(dict, {hash_key: dict(ranged) for hash_key, ranged in table.items.items()})
    else:
        backup.items = dict(table.items)
    for item in transact_items:
        kind, operation = next(iter(item.items()))
        if kind != "Update" or operation.get("TableName") != table.name:
            continue
        hash_key, range_key = backend.get_keys_value(table, operation["Key"])
        found = table.get_item(hash_key, range_key)
        if found is None:
            continue
        if table.range_key_attr:
            backup.items[hash_key][range_key] = copy.deepcopy(found)
        else:
            backup.items[hash_key] = copy.deepcopy(found)
    return backup


def _deepcopy(value: Any, memo: Any = None) -> Any:
    pending = _transaction.get()
    if pending is not None and isinstance(value, moto_table.Table):
        return table_backup(pending[0], value, pending[1])
    return copy.deepcopy(value, memo)


def install_cheap_transaction_backups() -> None:
    """moto's transact_write_items backs tables up with table_backup instead of a deep copy (idempotent)."""
    from moto.dynamodb import models

    if getattr(DynamoDBBackend.transact_write_items, "cheap_backups", False):
        return
    original = DynamoDBBackend.transact_write_items
    shim = types.SimpleNamespace(
        **{name: getattr(copy, name) for name in ("copy", "error", "replace") if hasattr(copy, name)}
    )
    shim.deepcopy = _deepcopy
    models.copy = shim  # type: ignore[assignment,attr-defined]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        token = _transaction.set((self, transact_items))
        try:
            original(self, transact_items)
        finally:
            _transaction.reset(token)

    transact_write_items.cheap_backups = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer with SerialDynamoDB in front of moto's application, and cheap transaction backups."""

    def _server_entry(self) -> None:
        install_cheap_transaction_backups()
        app = SerialDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
