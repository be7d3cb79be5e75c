"""The action set of Anthropic's computer-use tool, as one validated argument model.

The JSON schema only fixes the shapes; ``check()`` does the rest (which fields each action
needs, screen bounds, key names, ranges), once, for every backend and every framework, with
messages the model can read. ``terminate`` only ends the episode.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..core import ToolError
from .settings import HEIGHT, WIDTH

Action = Literal[
    "screenshot",
    "left_click",
    "right_click",
    "double_click",
    "mouse_move",
    "left_click_drag",
    "scroll",
    "type",
    "key",
    "wait",
    "terminate",
]
POINTING = {"left_click", "right_click", "double_click", "mouse_move"}
NEEDS = {
    **{a: {"coordinate"} for a in POINTING},
    "left_click_drag": {"start_coordinate", "coordinate"},
    "scroll": {"coordinate", "scroll_direction", "scroll_amount"},
    "type": {"text"},
    "key": {"text"},
    "wait": {"duration"},
    "terminate": {"status"},
}
MODIFIERS = {"ctrl": "ctrl", "control": "ctrl", "alt": "alt", "shift": "shift", "super": "super"}
MODIFIERS |= {"cmd": "super", "meta": "super", "win": "super"}
KEYS = [
    "Return",
    "Tab",
    "Escape",
    "BackSpace",
    "Delete",
    "Insert",
    "Home",
    "End",
    "Page_Up",
    "Page_Down",
    "Up",
    "Down",
    "Left",
    "Right",
    "space",
    "minus",
    "plus",
    "equal",
    "comma",
    "period",
    "slash",
    "backslash",
    "semicolon",
    "apostrophe",
    "grave",
    "bracketleft",
    "bracketright",
]
KEYS += [f"F{n}" for n in range(1, 13)]
ALIASES = {k.lower(): k for k in KEYS} | {
    "enter": "Return",
    "esc": "Escape",
    "backspace": "BackSpace",
    "del": "Delete",
    "pageup": "Page_Up",
    "pagedown": "Page_Down",
    "pgup": "Page_Up",
    "pgdn": "Page_Down",
    "arrowup": "Up",
    "arrowdown": "Down",
    "arrowleft": "Left",
    "arrowright": "Right",
}
TYPE_CHUNK = 50  # characters per xdotool type call, as Anthropic's reference tool
WHEEL = {"up": "4", "down": "5", "left": "6", "right": "7"}
KEY_TEXT = re.compile(r"^[\w+ ]{1,100}$")


def xdotool_keys(text: str) -> list[str]:
    """Normalise 'ctrl+a Return' to xdotool key names, or raise ToolError."""
    if not KEY_TEXT.match(text):
        raise ToolError(f"key text {text!r} must be key names such as 'Return' or 'ctrl+a'")
    combos = []
    for combo in text.split():
        parts = combo.split("+")
        names = [MODIFIERS.get(p.lower()) for p in parts[:-1]]
        last = parts[-1]
        key = last if len(last) == 1 and last.isalnum() else ALIASES.get(last.lower())
        if key is None or None in names:
            raise ToolError(
                f"unknown key {combo!r}; use X key names such as Return, Tab, Escape, "
                "BackSpace, Page_Down, F5, a letter or digit, with ctrl+/alt+/shift+/super+"
            )
        combos.append("+".join([*names, key]))  # type: ignore[list-item]
    if len(combos) > 10:
        raise ToolError("at most 10 key combinations per call")
    return combos


def xdotool_commands(a: ComputerArgs) -> list[list[str]]:
    """The xdotool argument lists that perform a validated pointer or keyboard action."""

    def move(point: list[int] | None) -> list[str]:
        assert point is not None
        # no --sync: it waits for a pointer motion that never comes when the pointer is
        # already there; the X server applies the move before the events that follow
        return ["mousemove", str(point[0]), str(point[1])]

    match a.action:
        case "left_click":
            return [[*move(a.coordinate), "click", "--delay", "0", "1"]]
        case "right_click":
            return [[*move(a.coordinate), "click", "--delay", "0", "3"]]
        case "double_click":
            return [[*move(a.coordinate), "click", "--repeat", "2", "--delay", "80", "1"]]
        case "mouse_move":
            return [move(a.coordinate)]
        case "left_click_drag":
            path = [*move(a.start_coordinate), "mousedown", "1", *move(a.coordinate)]
            return [[*path, "mouseup", "1"]]
        case "scroll":
            wheel = WHEEL[a.scroll_direction or "down"]
            return [
                [
                    *move(a.coordinate),
                    "click",
                    "--repeat",
                    str(a.scroll_amount),
                    "--delay",
                    "0",
                    wheel,
                ]
            ]
        case "type":
            text = a.text or ""
            chunks = [text[i : i + TYPE_CHUNK] for i in range(0, len(text), TYPE_CHUNK)]
            return [["type", "--delay", "12", "--", chunk] for chunk in chunks]
        case "key":
            return [["key", "--", *xdotool_keys(a.text or "")]]
    return []


def on_screen(point: list[int], name: str) -> None:
    x, y = point
    if not (0 <= x < WIDTH and 0 <= y < HEIGHT):
        raise ToolError(f"{name} [{x}, {y}] is off the {WIDTH}x{HEIGHT} screen")


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """Optional fields are the ones not ``required``; a ``"default": null`` adds nothing (and
    OpenAPI generators drop it, so leaving it out makes every framework advertise the same)."""
    for field in schema.get("properties", {}).values():
        if "default" in field and field["default"] is None:
            del field["default"]


class ComputerArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)

    action: Action = Field(description="What to do.")
    coordinate: list[int] | None = Field(
        None, min_length=2, max_length=2, description="[x, y] in pixels: where to act."
    )
    start_coordinate: list[int] | None = Field(
        None, min_length=2, max_length=2, description="[x, y] where a left_click_drag starts."
    )
    text: str | None = Field(
        None, max_length=2000, description="Text to type, or keys to press (e.g. 'ctrl+a')."
    )
    scroll_direction: Literal["up", "down", "left", "right"] | None = Field(
        None, description="Which way to scroll (default down)."
    )
    scroll_amount: int | None = Field(None, description="Wheel clicks to scroll (1-20).")
    duration: float | None = Field(None, description="Seconds to wait (at most 10).")
    status: Literal["success", "failure"] | None = Field(
        None, description="terminate: whether you think the task is done."
    )

    def check(self) -> None:
        """Raise ToolError unless this is a complete, in-range action."""
        given = {name for name, value in self if name != "action" and value is not None}
        needed = NEEDS.get(self.action, set())
        if missing := sorted(needed - given):
            raise ToolError(f"{self.action} needs {', '.join(missing)}")
        if extra := sorted(given - needed):
            raise ToolError(f"{self.action} does not take {', '.join(extra)}")
        for name in ("coordinate", "start_coordinate"):
            if (point := getattr(self, name)) is not None:
                on_screen(point, name)
        if self.action == "key":
            xdotool_keys(self.text or "")
        if self.action == "type" and not self.text:
            raise ToolError("type needs non-empty text")
        if self.scroll_amount is not None and not 1 <= self.scroll_amount <= 20:
            raise ToolError("scroll_amount must be 1-20")
        if self.duration is not None and not 0 < self.duration <= 10:
            raise ToolError("duration must be more than 0 and at most 10 seconds")

    def describe(self) -> str:
        """A one-line account of the action, for the observation text."""
        where = f" at {self.coordinate}" if self.coordinate else ""
        if self.action == "left_click_drag":
            return f"Dragged from {self.start_coordinate} to {self.coordinate}."
        if self.action == "scroll":
            return f"Scrolled {self.scroll_direction} {self.scroll_amount}{where}."
        if self.action == "type":
            return f"Typed {len(self.text or '')} characters."
        if self.action == "key":
            return f"Pressed {self.text}."
        if self.action == "wait":
            return f"Waited {self.duration} s."
        if self.action == "screenshot":
            return "Took a screenshot."
        return f"{self.action.replace('_', ' ').capitalize()}{where}."
