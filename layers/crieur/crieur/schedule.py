"""EventBridge Scheduler adapter: one one-time schedule per scheduled publication, targeting `release`.

The schedule fires `at()` the UTC instant (so no daylight-saving change can move it), with no flexible
window, a retry policy and a dead-letter queue on the target, and deletes itself after running.
Its input carries the publication's version: an edit makes the previous version's firing a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from crieur import aws
from crieur.models import ReleaseRequest


class Scheduling(Protocol):
    def schedule(self, release: ReleaseRequest, at: datetime) -> None: ...

    def unschedule(self, publication_id: str) -> None: ...


def schedule_name(publication_id: str) -> str:
    return f"pub-{publication_id}"


def at_expression(at: datetime) -> str:
    return f"at({at.astimezone(UTC):%Y-%m-%dT%H:%M:%S})"


@dataclass(frozen=True)
class EventBridgeScheduling:
    group: str
    release_function_arn: str
    role_arn: str
    dead_letter_arn: str

    def schedule(self, release: ReleaseRequest, at: datetime) -> None:
        """Creates the publication's schedule, or moves it (a new time or a new version)."""
        definition = {
            "Name": schedule_name(release.publication_id),
            "GroupName": self.group,
            "ScheduleExpression": at_expression(at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Target": {
                "Arn": self.release_function_arn,
                "RoleArn": self.role_arn,
                "Input": release.model_dump_json(),
                "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 10},
                "DeadLetterConfig": {"Arn": self.dead_letter_arn},
            },
        }
        client = aws.scheduler()
        try:
            client.create_schedule(**definition)  # type: ignore[arg-type]
        except client.exceptions.ConflictException:
            client.update_schedule(**definition)  # type: ignore[arg-type]

    def unschedule(self, publication_id: str) -> None:
        client = aws.scheduler()
        try:
            client.delete_schedule(Name=schedule_name(publication_id), GroupName=self.group)
        except client.exceptions.ResourceNotFoundException:
            return  # already fired (and deleted itself) or never created
