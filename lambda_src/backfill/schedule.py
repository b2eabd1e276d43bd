"""Disabling the function's own EventBridge Scheduler schedule once every job is finished.

UpdateSchedule replaces the whole definition, so the current one is read and sent back with only
the state changed. The function's role may call GetSchedule and UpdateSchedule on this one
schedule and pass its invoke role to Scheduler, nothing more (modules/backfill). Terraform still
declares the schedule enabled: the next apply enables it again, and the first run after that finds
every job finished and disables it again.
"""

from __future__ import annotations

from typing import Any

# What GetSchedule returns that UpdateSchedule takes back unchanged.
_KEPT = (
    "ActionAfterCompletion",
    "Description",
    "EndDate",
    "FlexibleTimeWindow",
    "KmsKeyArn",
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "StartDate",
    "Target",
)


def disable_schedule(scheduler: Any, name: str, group: str = "default") -> bool:
    """Disable the schedule; False when it was disabled already."""
    current = scheduler.get_schedule(Name=name, GroupName=group)
    if current.get("State") == "DISABLED":
        return False
    kept = {key: current[key] for key in _KEPT if current.get(key) is not None}
    scheduler.update_schedule(Name=name, GroupName=group, State="DISABLED", **kept)
    return True
