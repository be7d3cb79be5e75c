"""Wordle: the game archetype's reference domain."""

from .episode import TOOLS, WordleEpisode
from .oracle import next_action
from .tasks import load_tasks

EnvEpisode = WordleEpisode

ILLEGAL_CALLS = [("guess", {"word": "zzzzz"}), ("guess", {"word": "cr4ne"})]
"""Well-formed calls the rules reject (they must cost nothing and change nothing)."""
BAD_CALLS = [
    ("guess", {"word": 12345}),
    ("guess", {"word": "crane", "hint": True}),
    ("guess", {"word": "toolongword"}),
    ("guess", {}),
    ("shout", {"word": "crane"}),
]
"""Malformed calls: wrong types, extra or missing fields, an unknown tool."""

__all__ = ["BAD_CALLS", "ILLEGAL_CALLS", "TOOLS", "EnvEpisode", "load_tasks", "next_action"]
