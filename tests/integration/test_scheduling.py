"""Timed posts: EventBridge Scheduler schedules in moto, the release function, edits, cancellation, and
the local clock that fires what moto only stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from crieur import aws
from infra.local.clock import SchedulerClock
from tests.integration.conftest import Gateway, Stack
from tests.integration.test_pipeline import PUBLICATION, commune

__all__ = ["commune"]


def in_minutes(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(microsecond=0).isoformat()


def schedule_of(stack: Stack, publication_id: str) -> dict[str, Any] | None:
    group = stack.deployment.resources["ScheduleGroup"].ref
    client = aws.scheduler()
    try:
        return dict(client.get_schedule(Name=f"pub-{publication_id}", GroupName=group))
    except client.exceptions.ResourceNotFoundException:
        return None


def release(gateway: Gateway, stack: Stack, schedule: dict[str, Any]) -> Any:
    """What EventBridge Scheduler does at the schedule's time: invoke its target with its input."""
    function = next(f for f in stack.deployment.functions.values() if f.arn == schedule["Target"]["Arn"])
    return gateway.functions.invoke(function.name, json.loads(schedule["Target"]["Input"]))


def test_a_timed_post_waits_for_its_schedule(gateway: Gateway, stack: Stack, commune: str) -> None:
    answer = gateway.call("POST", "/v1/publications", commune, {**PUBLICATION, "publish_at": in_minutes(90)})
    assert answer.status == 201
    created = answer.json
    assert created["status"] == "scheduled"
    assert stack.drain("webhook") == []  # nothing goes out before its time

    schedule = schedule_of(stack, created["id"])
    assert schedule is not None
    at = datetime.fromisoformat(created["publish_at"]).astimezone(UTC)
    assert schedule["ScheduleExpression"] == f"at({at:%Y-%m-%dT%H:%M:%S})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"]["DeadLetterConfig"]["Arn"].endswith(
        stack.deployment.resources["ScheduleDeadLetterQueue"].ref.rsplit("/", 1)[-1]
    )
    assert json.loads(schedule["Target"]["Input"]) == {
        "commune": commune,
        "publication_id": created["id"],
        "version": 1,
        "channels": ["mastodon", "webhook"],  # its release reads nothing to know where to send it
    }

    agenda = gateway.call("GET", "/v1/publications?status=scheduled", commune).json["items"]
    assert [item["id"] for item in agenda] == [created["id"]]

    assert release(gateway, stack, schedule) == {"released": True, "publication_id": created["id"]}
    assert release(gateway, stack, schedule) == {"released": False, "publication_id": created["id"]}  # fired twice
    assert len(stack.drain("webhook")) == 1
    assert len(stack.drain("mastodon")) == 1
    shown = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    assert shown["status"] == "publishing"


def test_an_edit_moves_the_schedule_and_the_old_version_never_publishes(
    gateway: Gateway, stack: Stack, commune: str
) -> None:
    created = gateway.call("POST", "/v1/publications", commune, {**PUBLICATION, "publish_at": in_minutes(60)}).json
    first = schedule_of(stack, created["id"])
    assert first is not None
    later = in_minutes(120)
    edited = gateway.call(
        "PATCH", f"/v1/publications/{created['id']}", commune, {"title": "Coupure d'eau reportée", "publish_at": later}
    )
    assert edited.status == 200, edited.body
    assert edited.json["title"] == "Coupure d'eau reportée"
    moved = schedule_of(stack, created["id"])
    assert moved is not None
    assert moved["ScheduleExpression"] != first["ScheduleExpression"]
    assert json.loads(moved["Target"]["Input"])["version"] == 2

    assert release(gateway, stack, first)["released"] is False  # the edited-away version
    assert stack.drain("webhook") == []
    assert release(gateway, stack, moved)["released"] is True
    assert len(stack.drain("webhook")) == 1


def test_cancelling_deletes_the_schedule_and_nothing_is_ever_sent(gateway: Gateway, stack: Stack, commune: str) -> None:
    created = gateway.call("POST", "/v1/publications", commune, {**PUBLICATION, "publish_at": in_minutes(30)}).json
    schedule = schedule_of(stack, created["id"])
    assert schedule is not None
    cancelled = gateway.call("DELETE", f"/v1/publications/{created['id']}", commune)
    assert cancelled.status == 200
    assert cancelled.json["status"] == "cancelled"
    assert {d["status"] for d in cancelled.json["deliveries"].values()} == {"cancelled"}
    assert schedule_of(stack, created["id"]) is None
    assert release(gateway, stack, schedule)["released"] is False
    assert stack.drain("webhook") == []
    edit = gateway.call("PATCH", f"/v1/publications/{created['id']}", commune, {"title": "Trop tard"})
    assert edit.status == 409


def test_only_a_scheduled_publication_can_be_edited(gateway: Gateway, commune: str) -> None:
    created = gateway.call("POST", "/v1/publications", commune, PUBLICATION).json
    answer = gateway.call("PATCH", f"/v1/publications/{created['id']}", commune, {"title": "Autre"})
    assert answer.status == 409
    assert "programmée" in answer.json["detail"]


def test_bad_times_are_refused_with_the_field_named(gateway: Gateway, commune: str) -> None:
    past = gateway.call("POST", "/v1/publications", commune, {**PUBLICATION, "publish_at": "2020-01-01T08:00:00"})
    assert past.status == 422
    assert past.json["errors"][0]["field"] == "publish_at"
    gap = gateway.call("POST", "/v1/publications", commune, {**PUBLICATION, "publish_at": "2027-03-28T02:30:00"})
    assert gap.status == 422
    assert "n'existe pas à Paris" in gap.json["errors"][0]["message"]
    created = gateway.call("POST", "/v1/publications", commune, {**PUBLICATION, "publish_at": in_minutes(10)}).json
    cleared = gateway.call("PATCH", f"/v1/publications/{created['id']}", commune, {"publish_at": None})
    assert cleared.status == 422
    assert cleared.json["errors"][0]["field"] == "publish_at"


def test_the_local_clock_fires_due_schedules_and_deletes_them(gateway: Gateway, stack: Stack, commune: str) -> None:
    created = gateway.call("POST", "/v1/publications", commune, {**PUBLICATION, "publish_at": in_minutes(5)}).json
    fired: list[tuple[str, dict[str, Any]]] = []

    def invoke(name: str, event: dict[str, Any]) -> Any:
        fired.append((name, event))
        return gateway.functions.invoke(name, event)

    clock = SchedulerClock(stack.deployment, invoke, aws.scheduler(), aws.sqs(), now=lambda: datetime.now(UTC))
    assert clock.tick() == 0  # not yet
    clock.now = lambda: datetime.now(UTC) + timedelta(minutes=6)
    assert clock.tick() == 1
    assert fired[0][1]["publication_id"] == created["id"]
    assert schedule_of(stack, created["id"]) is None  # ActionAfterCompletion DELETE
    assert clock.tick() == 0
    assert len(stack.drain("webhook")) == 1


def test_the_local_clock_runs_the_weather_poller_at_its_rate(stack: Stack) -> None:
    weather = next(f for f in stack.deployment.functions.values() if f.logical_id == "WeatherFunction")
    calls: list[str] = []
    moment = [datetime.now(UTC)]
    clock = SchedulerClock(
        stack.deployment,
        lambda name, event: calls.append(name),
        aws.scheduler(),
        aws.sqs(),
        now=lambda: moment[0],
        rate_overrides={weather.arn: timedelta(seconds=30)},  # CRIEUR_LOCAL_WEATHER_INTERVAL_S=30
    )
    clock.tick()  # the clock starts counting
    moment[0] += timedelta(seconds=10)
    clock.tick()
    assert calls == []
    moment[0] += timedelta(seconds=25)
    clock.tick()
    assert calls == [weather.name]
    group = stack.deployment.resources["ScheduleGroup"].ref
    assert clock.scheduler.list_schedules(GroupName=group)["Schedules"]  # a rate() schedule stays
