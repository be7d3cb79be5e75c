"""Wordle: the game archetype's reference domain."""

from ..core import EnvSpec
from .episode import WordleEpisode
from .oracle import next_action
from .tasks import load_tasks

SPEC = EnvSpec(
    episode=WordleEpisode,
    load_tasks=load_tasks,
    oracle=next_action,
    # Well-formed calls the rules reject (they must cost nothing and change nothing).
    illegal_calls=[("guess", {"word": "zzzzz"}), ("guess", {"word": "cr4ne"})],
    # Malformed calls: wrong types, extra or missing fields, an unknown tool.
    bad_calls=[
        ("guess", {"word": 12345}),
        ("guess", {"word": "crane", "hint": True}),
        ("guess", {"word": "toolongword"}),
        ("guess", {}),
        ("shout", {"word": "crane"}),
    ],
    oracle_floor=0.95,  # the oracle solves at least 95% of the test split
)

__all__ = ["SPEC"]
