"""Computer use: a real X display per session running a seeded task app, Anthropic's action set."""

from .episode import TOOLS, DesktopEpisode
from .oracle import next_action
from .tasks import load_tasks

EnvEpisode = DesktopEpisode

ILLEGAL_CALLS = [
    ("computer", {"action": "left_click", "coordinate": [100000, 5]}),
    ("computer", {"action": "key", "text": "hyperdrive"}),
    ("computer", {"action": "scroll", "coordinate": [10, 10]}),
    ("computer", {"action": "wait", "duration": 3600}),
]
"""Well-formed calls the desktop refuses (they must cost nothing and change nothing)."""
BAD_CALLS = [
    ("computer", {"action": "fly"}),
    ("computer", {"action": "left_click", "coordinate": "the OK button"}),
    ("computer", {"action": "screenshot", "zoom": 2}),
    ("computer", {}),
    ("launch_rocket", {}),
]
"""Malformed calls: wrong types, extra or missing fields, an unknown tool."""

__all__ = ["BAD_CALLS", "ILLEGAL_CALLS", "TOOLS", "EnvEpisode", "load_tasks", "next_action"]
