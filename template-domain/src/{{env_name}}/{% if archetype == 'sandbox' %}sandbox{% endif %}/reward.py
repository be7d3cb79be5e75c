"""Grading: the submitted answer against the answer the task computed from its own inputs."""

from __future__ import annotations

import math

from ..core import Task


def grade(task: Task, submitted: str) -> float:
    """1.0 for the right answer (numbers compared numerically, to the stated precision)."""
    expected = str(task.secret["answer"])
    given = submitted.strip().strip("`'\"").strip()
    if given == expected:
        return 1.0
    try:
        return float(math.isclose(float(given), float(expected), abs_tol=0.005))
    except ValueError:
        return float(given.lower() == expected.lower())
