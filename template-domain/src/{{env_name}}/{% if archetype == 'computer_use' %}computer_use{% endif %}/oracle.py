"""A scripted solver that knows each task's layout (looked up from the prompt) and acts on
it: the reference that tests and smoke rollouts use. It never reads the app's state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core import Task
from .tasks import center, task_for_prompt

Call = tuple[str, dict[str, Any]]


def computer(action: str, **args: Any) -> Call:
    return "computer", {"action": action, **args}


def plan(task: Task) -> list[Call]:
    """Every action that solves ``task``, ending with terminate."""
    layout = task.secret["layout"]
    kind = task.public["kind"]
    calls: list[Call] = []
    if kind == "click_button":
        button = next(b for b in layout["buttons"] if b["label"] == layout["target"])
        calls.append(computer("left_click", coordinate=center(button)))
    elif kind == "fill_form":
        for field in layout["fields"]:
            calls.append(computer("left_click", coordinate=center(field)))
            calls.append(computer("type", text=layout["goal"]["submitted"][field["name"]]))
        calls.append(computer("left_click", coordinate=center(layout["submit"])))
    elif kind == "pick_item":
        box, row = layout["list"], layout["row"]
        visible = box["h"] // row
        index = layout["items"].index(layout["target"])
        offset = max(0, index - visible + 1)
        if offset:
            calls.append(
                computer(
                    "scroll",
                    coordinate=center(box),
                    scroll_direction="down",
                    scroll_amount=offset,
                )
            )
        y = box["y"] + (index - offset) * row + row // 2
        calls.append(computer("double_click", coordinate=[box["x"] + 40, y]))
    elif kind == "set_slider":
        box = layout["slider"]
        track = box["x"] + 20
        calls.append(
            computer(
                "left_click_drag",
                start_coordinate=[track + 4 * layout["start"], box["y"] + 30],
                coordinate=[track + 4 * layout["goal"]["slider"], box["y"] + 30],
            )
        )
    elif kind == "type_text":
        calls.append(computer("left_click", coordinate=center(layout["entry"])))
        calls.append(computer("type", text=layout["goal"]["entered"]))
        calls.append(computer("key", text="Return"))
    return [*calls, computer("terminate", status="success")]


def next_action(observations: Sequence[str]) -> Call | None:
    """The next action of the plan; ``None`` once the episode is over."""
    if not observations or "The episode is over" in observations[-1]:
        return None
    for start, text in enumerate(observations):
        if (task := task_for_prompt(text)) is not None:
            steps = plan(task)
            done = len(observations) - start - 1  # one observation per action that went through
            return steps[done] if done < len(steps) else None
    return None
