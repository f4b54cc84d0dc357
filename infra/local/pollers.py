"""SQS event source mappings: what Lambda's pollers do between a queue and its function.

One thread per mapping: long-poll the queue (batch size, all attributes), gather for the mapping's batching
window, build the SQS event Lambda builds, invoke the function, then delete every message that is not listed
in the answer's `batchItemFailures` (ReportBatchItemFailures). A function error, or an answer naming a
message that is not in the batch, deletes nothing: the messages come back after their visibility timeout,
and the queue's redrive policy moves them to the DLQ after maxReceiveCount receives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from infra.local.provision import EventSourceMapping
from infra.local.runtime import LambdaError

log = logging.getLogger("crieur.local.pollers")

WAIT_TIME_SECONDS = 1
MAX_MESSAGES_PER_RECEIVE = 10


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS message as a record of Lambda's SQS event."""
    attributes = {str(name): str(value) for name, value in (message.get("Attributes") or {}).items()}
    message_attributes: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        converted: dict[str, Any] = {
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [_b64(item) for item in value.get("BinaryListValues") or []],
            "dataType": value.get("DataType", "String"),
        }
        if "StringValue" in value:
            converted["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            converted["binaryValue"] = _b64(value["BinaryValue"])
        message_attributes[name] = converted
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _b64(value: Any) -> str:
    import base64

    return base64.b64encode(value if isinstance(value, bytes) else str(value).encode()).decode()


def settled_receipts(batch: list[dict[str, Any]], answer: Any) -> list[str]:
    """Receipt handles to delete after an invocation that returned `answer` (ReportBatchItemFailures rules)."""
    by_id = {record["messageId"]: record["receiptHandle"] for record in batch}
    if answer is None or answer == {} or not isinstance(answer, dict):
        return list(by_id.values())
    failures = answer.get("batchItemFailures")
    if failures is None or failures == []:
        return list(by_id.values())
    if not isinstance(failures, list):
        return []
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in by_id:
            return []  # Lambda treats an invalid answer as a failure of the whole batch
        failed.add(identifier)
    return [receipt for message_id, receipt in by_id.items() if message_id not in failed]


class QueuePoller:
    def __init__(
        self,
        mapping: EventSourceMapping,
        invoke: Callable[[str, dict[str, Any]], Any],
        sqs: Any,
        region: str,
        *,
        label: str | None = None,
    ) -> None:
        self.mapping = mapping
        self.invoke = invoke
        self.sqs = sqs
        self.region = region
        self.label = label or mapping.logical_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poller {self.label}", daemon=True)
        self.batches = 0

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Asks the thread to stop after its current receive (at most WaitTimeSeconds) or batch."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=max(1, min(count, MAX_MESSAGES_PER_RECEIVE)),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(answer.get("Messages") or [])

    def _gather(self) -> list[dict[str, Any]]:
        """Up to the batch size, waiting at most the batching window once the first message is in."""
        messages = self._receive(self.mapping.batch_size, WAIT_TIME_SECONDS)
        if not messages:
            return []
        deadline = time.monotonic() + self.mapping.batching_window_seconds
        while len(messages) < self.mapping.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(self.mapping.batch_size - len(messages), 0)
            if more:
                messages += more
            else:
                self._stop.wait(min(remaining, 0.2))
        return messages

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._gather()
            except Exception as failure:
                if self._stop.is_set():
                    return
                log.warning("%s: receive failed (%s); retrying", self.label, failure)
                self._stop.wait(1.0)
                continue
            if messages:
                self._process(messages)

    def _process(self, messages: list[dict[str, Any]]) -> None:
        batch = [lambda_record(message, self.mapping.queue_arn, self.region) for message in messages]
        self.batches += 1
        try:
            answer = self.invoke(self.mapping.function, {"Records": batch})
        except LambdaError as failure:
            log.warning("%s: function failed, %d message(s) stay on the queue: %s", self.label, len(batch), failure)
            return
        except Exception:
            log.exception("%s: invocation failed", self.label)
            return
        receipts = (
            settled_receipts(batch, answer)
            if self.mapping.report_batch_item_failures
            else [record["receiptHandle"] for record in batch]
        )
        for start in range(0, len(receipts), MAX_MESSAGES_PER_RECEIVE):
            chunk = receipts[start : start + MAX_MESSAGES_PER_RECEIVE]
            try:
                self.sqs.delete_message_batch(
                    QueueUrl=self.mapping.queue_url,
                    Entries=[{"Id": str(index), "ReceiptHandle": receipt} for index, receipt in enumerate(chunk)],
                )
            except Exception as failure:
                log.warning("%s: delete failed (%s)", self.label, failure)


class Pollers:
    """Every enabled SQS mapping of a deployment, started and stopped together."""

    def __init__(self, pollers: list[QueuePoller]) -> None:
        self.pollers = pollers

    def start(self) -> None:
        for poller in self.pollers:
            if poller.mapping.enabled:
                poller.start()

    def stop(self) -> None:
        for poller in self.pollers:
            poller.request_stop()  # all at once: each then finishes its current receive (≤ 1 s)
        for poller in self.pollers:
            poller.stop()
