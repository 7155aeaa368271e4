"""moto_server, made safe for concurrent tests.

Serves moto's DynamoDB and SQS emulation (and whatever else moto serves) on one
port, with six changes to stock ``moto_server`` that this project depends on.
Each was measured on stock moto; see infra/EMULATOR.md.

1. Atomicity. Stock moto_server handles each request on its own thread with no
   locking around the DynamoDB backend, so a conditional decrement could
   succeed 101 times on 100 units, two ``attribute_not_exists`` puts of one key
   could both win, and concurrent TransactWriteItems returned HTTP 500s and lost
   unrelated writes. Every DynamoDB request (``X-Amz-Target:
   DynamoDB_20120810.*``) is therefore served under one process-wide lock.

   SQS gets a lock of its own (moto's SQS receive loop mutates shared lists
   without locking either), but a long poll must never hold a lock for its
   whole wait: ReceiveMessage is re-implemented as short polls taken under the
   SQS lock, waiting between them with no lock held. DynamoDB and SQS never
   share a lock, so a long poll cannot stall a DynamoDB call.

2. Transaction cost. Stock ``transact_write_items`` deep-copies every table it
   touches so it can roll back (46 tx/s on a small table, ~5 s per transaction
   at 50,000 items). The replacement checks every condition first, applies only
   when all hold, and snapshots just the touched items in case applying fails.
   Errors keep stock moto's shape: ``TransactionCanceledException`` with one
   ``CancellationReasons`` entry per item (``ConditionalCheckFailed`` or
   ``None``), validation errors re-raised as they are.

3. Memory. ``BaseModel.__new__`` appends every model object moto ever creates
   to a class-level list (for moto's dashboard); one long run grew to 8.6 GiB.
   The tracking is switched off.

4. Fairness. One lock serialises every DynamoDB request of every client, and
   a plain lock serves waiters in no particular order: while one test fires a
   burst of 200 requests (each ~100 ms on a loaded machine), another test's
   single request waited 10-20 s and its HTTP client timed out. The lock is
   therefore taken in turns by *tenant* (the table, or the queue, a request
   names; every test creates its own under a unique prefix): a tenant with a
   burst queued waits behind its own requests, never in front of others'.

5. Query cost. Stock ``Table.query`` lists and sorts every item of the table
   before it keeps the partition (or index entries) asked for: one Query took
   ~0.5 s at 50,000 items, so reading an order's executions slowed with the
   size of the whole table. Queries now look only at the partition asked for
   (an index query still looks at every item, unsorted).

6. SQS cost per message. Stock SQS reads the clock (a datetime) twice per
   message on every pass over a queue, and every SendMessage and every
   delivered message costs three more such passes (the queue's attribute
   dict, for one attribute). With a few hundred messages waiting in a FIFO
   queue whose groups are in flight, the emulator spent most of a core there.
   The passes now read the clock once, and the retention check reads its one
   attribute.

It also answers ``GET /_local_stack/health`` so the launcher can tell this
wrapper (and which version of it) from anything else on the port.

Usage: python server.py [--host 127.0.0.1] [--port 4566] [--fingerprint X]
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable

# --------------------------------------------------------------------------
# 3. Memory: must be patched before any moto model object is created.
# --------------------------------------------------------------------------
from moto.core import common_models


def _untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    # Same as moto's BaseModel.__new__ minus ``cls.instances_tracked.append``.
    return object.__new__(cls)


common_models.BaseModel.__new__ = _untracked_new  # type: ignore[method-assign,assignment]

from moto.dynamodb.exceptions import (  # noqa: E402
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.comparisons import get_filter_expression  # noqa: E402
from moto.dynamodb.models import DynamoDBBackend  # noqa: E402
from moto.dynamodb.models.table import Table  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.core.utils import unix_time, unix_time_millis  # noqa: E402
from moto.sqs.models import Queue, SQSBackend  # noqa: E402
from werkzeug.serving import BaseWSGIServer, run_simple  # noqa: E402

LOG = logging.getLogger("local-stack-moto")



class FairLock:
    """A mutex handed over in turns by tenant (round robin), FIFO within one.

    ``acquire(tenant)`` blocks until the caller owns the lock; ``release()``
    hands it to the first waiter of the next tenant in turn. A tenant with
    many requests queued therefore delays each other tenant by at most one
    of its requests.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._busy = False
        # tenant -> its waiters in arrival order; dict order is the turn order.
        self._waiting: dict[str, list[threading.Event]] = {}

    def acquire(self, tenant: str) -> None:
        with self._mutex:
            if not self._busy:
                self._busy = True
                return
            turn = threading.Event()
            self._waiting.setdefault(tenant, []).append(turn)
        turn.wait()  # ownership is handed over by release(); _busy stays True

    def release(self) -> None:
        with self._mutex:
            if not self._waiting:
                self._busy = False
                return
            tenant = next(iter(self._waiting))
            waiters = self._waiting.pop(tenant)
            turn = waiters.pop(0)
            if waiters:
                self._waiting[tenant] = waiters  # back of the line
            turn.set()

    # ``with FAIR_LOCK.turn(tenant): ...``
    class _Turn:
        def __init__(self, lock: "FairLock", tenant: str) -> None:
            self.lock, self.tenant = lock, tenant

        def __enter__(self) -> None:
            self.lock.acquire(self.tenant)

        def __exit__(self, *exc: Any) -> None:
            self.lock.release()

    def turn(self, tenant: str) -> "FairLock._Turn":
        return FairLock._Turn(self, tenant)


DYNAMODB_LOCK = FairLock()
SQS_LOCK = FairLock()

HEALTH_PATH = "/_local_stack/health"
# A request that waits for its turn or holds a lock this long is logged.
SLOW_REQUEST_MS = float(os.environ.get("LOCAL_STACK_SLOW_MS", "2000"))

# --------------------------------------------------------------------------
# 2. TransactWriteItems without deep-copying tables.
# --------------------------------------------------------------------------

_MISSING = object()


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """Drop-in for ``DynamoDBBackend.transact_write_items`` (moto 5.2.5).

    Same checks in the same order as stock moto, but in two phases:
    phase 1 evaluates every item's key and condition without writing anything;
    phase 2 applies the items, remembering each touched item's previous value,
    and restores those values if an apply step raises. Cost is proportional to
    the number of items in the transaction, not to the size of the tables.

    Callers hold DYNAMODB_LOCK (the whole request runs under it), so nobody
    observes the state between phases.
    """
    if len(transact_items) > 100:
        raise TooManyTransactionsException()

    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    # Phase 1: conditions. errors[i] is (code, message, item) or (None, None, None),
    # exactly the tuples stock moto hands to TransactionCanceledException.
    errors: list[tuple[Any, Any, Any]] = []
    plan: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = []
    for item in transact_items:
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        original_item: dict[str, Any] | None = None
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            check_unicity(table_name, key)
            plan.append((op_type, op, table_name, key))

            condition_expression = op.get("ConditionExpression")
            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(
                    condition_expression,
                    op.get("ExpressionAttributeNames"),
                    op.get("ExpressionAttributeValues"),
                )
                if not condition_op.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise  # nothing written yet: no rollback needed
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # noqa: BLE001 - stock moto reports any error per item
            errors.append((type(e).__name__, str(e), original_item))

    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    # Phase 2: apply, keeping a copy of each touched item for rollback.
    undo: list[tuple[Any, Any, Any, Any]] = []  # (table, hash, range, previous Item or _MISSING)

    def rollback() -> None:
        for table, hash_key, range_key, previous in reversed(undo):
            if range_key is not None:
                bucket = table.items[hash_key]
                if previous is _MISSING:
                    bucket.pop(range_key, None)
                    if not bucket:
                        table.items.pop(hash_key, None)
                else:
                    bucket[range_key] = previous
            elif previous is _MISSING:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = previous

    applied: list[tuple[Any, Any, Any]] = []
    for index, (op_type, op, table_name, key) in enumerate(plan):
        try:
            table = self.get_table(table_name)
            hash_key, range_key = self.get_keys_value(table, key)
            previous = table.get_item(hash_key, range_key)
            # update_item mutates the stored Item in place, so keep a copy.
            undo.append(
                (table, hash_key, range_key, _MISSING if previous is None else copy.deepcopy(previous))
            )
            cond = op.get("ConditionExpression")
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(
                    table_name,
                    op["Item"],
                    condition_expression=cond,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=cond,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    condition_expression=cond,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            applied.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            rollback()
            raise
        except Exception as e:  # noqa: BLE001 - same per-item reporting as stock
            rollback()
            reasons: list[tuple[Any, Any, Any]] = [(None, None, None)] * len(plan)
            reasons[index] = (type(e).__name__, str(e), None)
            raise TransactionCanceledException(reasons) from e


DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]

# --------------------------------------------------------------------------
# 5. Queries that cost what they read, not the size of the table.
# --------------------------------------------------------------------------

_stock_query = Table.query


def _unsorted_items(table: Table, hash_key: Any) -> list[Any]:
    """The items stock ``query`` would look at, without sorting the table.

    With a hash key (a query on the table itself), only that partition; else
    (a query on an index) every item, in no particular order: stock ``query``
    filters them and sorts the matches by the index's keys itself.
    """
    if hash_key is None:
        partitions = list(table.items.values())
    elif hash_key in table.items:
        partitions = [table.items[hash_key]]
    else:
        return []
    if table.range_key_attr:
        return [item for partition in partitions for item in partition.values()]
    return partitions


def _query(self: Table, *args: Any, **kwargs: Any) -> Any:
    """Stock ``query``, shown only the items it can return.

    Stock moto starts every Query with ``all_items()``, which lists and sorts
    every item of the table (keys compared in Python), then keeps the
    partition asked for: at 50,000 items one Query took ~0.5 s. The result is
    the same: stock sorts what it keeps by the keys anyway. Runs under
    DYNAMODB_LOCK, so shadowing ``all_items`` on the instance is safe.
    """
    index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
    hash_key = None if index_name else args[0]
    self.all_items = lambda: _unsorted_items(self, hash_key)  # type: ignore[method-assign]
    try:
        return _stock_query(self, *args, **kwargs)
    finally:
        del self.all_items


Table.query = _query  # type: ignore[method-assign]

# --------------------------------------------------------------------------
# 6. SQS calls that read the clock once, not once per message.
# --------------------------------------------------------------------------


def _visible_undelayed(queue: Queue) -> list[Any]:
    # Stock ``Queue.messages``, with the time read once for the whole queue.
    now = unix_time_millis()
    return [m for m in queue._messages if now > m.visible_at and not now < m.delayed_until]


def _count_delayed(queue: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _count_not_visible(queue: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in queue._messages if not now > m.visible_at)


def _retained(self: SQSBackend, queue_name: str, message: Any) -> bool:
    # Stock reads the retention period through every attribute of the queue
    # (three more passes over its messages) for each message it delivers.
    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return retention_period + message.sent_timestamp / 1000 > unix_time()


Queue.messages = property(_visible_undelayed)  # type: ignore[assignment]
Queue.approximate_number_of_messages_delayed = property(_count_delayed)  # type: ignore[assignment]
Queue.approximate_number_of_messages_not_visible = property(_count_not_visible)  # type: ignore[assignment]
SQSBackend.is_message_valid_based_on_retention_period = _retained  # type: ignore[method-assign]

# --------------------------------------------------------------------------
# 1b. SQS long polls that hold no lock while they wait.
# --------------------------------------------------------------------------

_stock_receive_message = SQSBackend.receive_message


def _receive_message(
    self: SQSBackend,
    queue_name: str,
    count: int,
    wait_seconds_timeout: int,
    visibility_timeout: int,
    message_attribute_names: list[str] | None = None,
) -> Any:
    """Long poll as a series of short polls under SQS_LOCK.

    Stock moto loops inside ``receive_message`` for the whole wait time. Here
    each attempt is a zero-wait stock call under the lock, and the wait between
    attempts happens with no lock held (on the queue's condition variable, so a
    send wakes it, capped so visibility expiries are noticed too).
    """
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    while True:
        with SQS_LOCK.turn(queue_name):
            result = _stock_receive_message(
                self, queue_name, count, 0, visibility_timeout, message_attribute_names
            )
        remaining = deadline - time.monotonic()
        if result or remaining <= 0:
            return result
        queue = self.get_queue(queue_name)
        started = time.monotonic()
        queue.wait_for_messages(min(remaining, 0.5))
        if time.monotonic() - started < 0.02:
            # A visible message exists but could not be delivered (e.g. FIFO
            # group in flight): avoid spinning.
            time.sleep(min(0.05, max(remaining, 0)))


SQSBackend.receive_message = _receive_message  # type: ignore[method-assign]

# --------------------------------------------------------------------------
# 1a. The WSGI wrapper: one lock per service, health endpoint.
# --------------------------------------------------------------------------


class LockingApp:
    """Serialises DynamoDB requests (and SQS requests other than ReceiveMessage)."""

    def __init__(self, inner: Callable[..., Iterable[bytes]], fingerprint: str):
        self.inner = inner
        self.health = json.dumps(
            {"emulator": "local-stack-moto", "fingerprint": fingerprint, "pid": os.getpid()}
        ).encode()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == HEALTH_PATH:
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(self.health)))],
            )
            return [self.health]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_20120810."):
            return self._locked(DYNAMODB_LOCK, environ, start_response)
        if target.startswith("AmazonSQS."):
            if target == "AmazonSQS.ReceiveMessage":
                return self.inner(environ, start_response)  # locks per poll itself
            return self._locked(SQS_LOCK, environ, start_response)
        # Anything else (query-protocol SQS from old SDKs, moto's own API, other
        # services) runs as stock moto does. The Rust SDK and boto3 use JSON.
        return self.inner(environ, start_response)

    def _locked(
        self, lock: FairLock, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        # The body is read before queueing (it names the tenant); producing
        # the response happens under the lock; only sending it does not.
        body_in = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body_in)
        environ["CONTENT_LENGTH"] = str(len(body_in))
        tenant = _tenant(body_in)
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
            captured[:] = [status, headers, exc_info]
            return lambda _data: None

        queued = time.monotonic()
        with lock.turn(tenant):
            started = time.monotonic()
            result = self.inner(environ, capture)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            held_ms = (time.monotonic() - started) * 1000
        waited_ms = (started - queued) * 1000
        if max(waited_ms, held_ms) >= SLOW_REQUEST_MS:
            LOG.warning(
                "slow request %s on %s: waited %.0f ms for its turn, held the lock %.0f ms",
                environ.get("HTTP_X_AMZ_TARGET", "?"),
                tenant,
                waited_ms,
                held_ms,
            )
        status, headers, exc_info = captured
        start_response(status, headers, exc_info)
        return [body]


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    return stream.read(length) if length > 0 else stream.read()


def _tenant(body: bytes) -> str:
    """The first table or queue the request names ("" if none): the unit of
    fairness. Tests create their own tables and queues, so this is per test."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return ""
    if not isinstance(request, dict):
        return ""
    for field in ("TableName", "QueueUrl", "QueueName"):
        if isinstance(request.get(field), str):
            return request[field]
    for item in request.get("TransactItems") or []:
        for operation in item.values() if isinstance(item, dict) else []:
            if isinstance(operation, dict) and isinstance(operation.get("TableName"), str):
                return operation["TableName"]
    for field in ("RequestItems", "TransactItems"):
        items = request.get(field)
        if isinstance(items, dict) and items:
            return str(next(iter(items)))
    return ""


class QuietRequestHandler(MotoRequestHandler):
    """moto's handler without one log line per request."""

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4566, help="port to bind (default 4566)")
    parser.add_argument(
        "--fingerprint",
        default="",
        help="opaque string echoed by GET /_local_stack/health (the launcher passes a hash of this file and the requirements)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("MOTO_PORT", str(args.port))

    def stop(_signum: int, _frame: Any) -> None:
        LOG.info("stopping (signal %s)", _signum)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    # A burst of test clients must queue, not be refused: the default listen
    # backlog (128) is smaller than the bursts the conformance tests send.
    BaseWSGIServer.request_queue_size = 1024
    app = LockingApp(DomainDispatcherApplication(create_backend_app), args.fingerprint)
    LOG.info("serving on http://%s:%d (pid %d)", args.host, args.port, os.getpid())
    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        use_reloader=False,
        request_handler=QuietRequestHandler,
    )


if __name__ == "__main__":
    main()
