"""Grading from the task app's own record, never from the agent's claim."""

from __future__ import annotations

from typing import Any

from ..core import Task


def solved(task: Task, state: dict[str, Any]) -> bool:
    """Whether the app's state shows the task's goal (every goal key matches exactly)."""
    goal = task.secret["layout"]["goal"]
    return all(state.get(key) == value for key, value in goal.items())


def grade(task: Task, state: dict[str, Any]) -> float:
    return 1.0 if solved(task, state) else 0.0
