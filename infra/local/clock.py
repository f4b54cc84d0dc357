"""The local scheduler clock: fires what EventBridge Scheduler would, since moto stores schedules but
never fires them (reference/aws-local.md).

Every tick it reads the schedules stored in moto: a due one-time `at()` schedule invokes its target
function with the schedule's input, then is deleted when its ActionAfterCompletion says DELETE; a
`rate()` schedule fires every period. A target that keeps failing goes to the schedule's dead-letter
queue after a few tries, as the service does after its retry policy. `cron()` expressions are not run
locally (none is declared yet): they are logged once.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from infra.local.provision import Deployment
from infra.local.runtime import LambdaError

log = logging.getLogger(__name__)

Invoke = Callable[[str, dict[str, Any]], Any]
AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
LOCAL_ATTEMPTS = 3


def due_at(expression: str, timezone: str | None) -> datetime | None:
    """The instant of an `at()` expression (wall time in the schedule's timezone, UTC by default)."""
    found = AT.match(expression)
    if not found:
        return None
    wall = datetime.fromisoformat(found.group(1))
    return wall.replace(tzinfo=ZoneInfo(timezone or "UTC")).astimezone(UTC)


def rate_period(expression: str) -> timedelta | None:
    found = RATE.match(expression)
    if not found:
        return None
    amount, unit = int(found.group(1)), found.group(2).rstrip("s")
    return timedelta(**{f"{unit}s": amount})


class SchedulerClock:
    def __init__(
        self,
        deployment: Deployment,
        invoke: Invoke,
        scheduler: Any,
        sqs: Any,
        *,
        tick_seconds: float = 1.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rate_overrides: dict[str, timedelta] | None = None,
    ) -> None:
        """`rate_overrides`: target function ARN → period, replacing its schedules' rate() locally
        (CRIEUR_LOCAL_WEATHER_INTERVAL_S for the weather poller)."""
        self.functions_by_arn = {function.arn: name for name, function in deployment.functions.items()}
        self.invoke = invoke
        self.scheduler = scheduler
        self.sqs = sqs
        self.tick_seconds = tick_seconds
        self.now = now
        self.rate_overrides = rate_overrides or {}
        self._last_rate_fire: dict[str, datetime] = {}
        self._failures: dict[str, int] = {}
        self._reported: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler clock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler clock tick failed")
            self._stop.wait(self.tick_seconds)

    def tick(self) -> int:
        """Fires every due schedule once; returns how many fired."""
        fired = 0
        for group in self.scheduler.list_schedule_groups().get("ScheduleGroups", []):
            for summary in self.scheduler.list_schedules(GroupName=group["Name"]).get("Schedules", []):
                schedule = self.scheduler.get_schedule(Name=summary["Name"], GroupName=group["Name"])
                if schedule.get("State", "ENABLED") == "ENABLED" and self._due(schedule):
                    fired += self._fire(schedule)
        return fired

    def _due(self, schedule: dict[str, Any]) -> bool:
        expression = str(schedule.get("ScheduleExpression", ""))
        now = self.now()
        at = due_at(expression, schedule.get("ScheduleExpressionTimezone"))
        if at is not None:
            return at <= now
        period = rate_period(expression)
        if period is not None:
            period = self.rate_overrides.get(str(schedule["Target"]["Arn"]), period)
            key = f"{schedule['GroupName']}/{schedule['Name']}"
            last = self._last_rate_fire.setdefault(key, now)
            if now - last >= period:
                self._last_rate_fire[key] = now
                return True
            return False
        if expression not in self._reported:
            self._reported.add(expression)
            log.warning("schedule %s: %s is not run locally", schedule["Name"], expression)
        return False

    def _fire(self, schedule: dict[str, Any]) -> int:
        target = schedule["Target"]
        key = f"{schedule['GroupName']}/{schedule['Name']}"
        function = self.functions_by_arn.get(str(target["Arn"]))
        event = json.loads(target.get("Input") or "{}")
        try:
            if function is None:
                raise LambdaError({"errorMessage": f"no local function {target['Arn']}", "errorType": "NotFound"})
            self.invoke(function, event)
        except LambdaError as failure:
            self._failures[key] = self._failures.get(key, 0) + 1
            log.warning("schedule %s: target failed (%s)", schedule["Name"], failure)
            if self._failures[key] < LOCAL_ATTEMPTS:
                return 0
            self._dead_letter(schedule, str(failure))
        self._failures.pop(key, None)
        if AT.match(str(schedule.get("ScheduleExpression", ""))) and schedule.get("ActionAfterCompletion") == "DELETE":
            self.scheduler.delete_schedule(Name=schedule["Name"], GroupName=schedule["GroupName"])
        return 1

    def _dead_letter(self, schedule: dict[str, Any], reason: str) -> None:
        arn = (schedule["Target"].get("DeadLetterConfig") or {}).get("Arn")
        if not arn:
            return
        *_, account, name = str(arn).split(":")
        url = self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        body = {"schedule": schedule["Name"], "input": schedule["Target"].get("Input"), "error": reason}
        self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
