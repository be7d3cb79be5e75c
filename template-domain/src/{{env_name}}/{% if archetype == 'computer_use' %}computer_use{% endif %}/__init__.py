"""Computer use: a real X display per session running a seeded task app, Anthropic's action set."""

from ..core import EnvSpec
from .episode import DesktopEpisode
from .oracle import next_action
from .tasks import load_tasks

SPEC = EnvSpec(
    episode=DesktopEpisode,
    load_tasks=load_tasks,
    oracle=next_action,
    # Well-formed calls the desktop refuses (they must cost nothing and change nothing).
    illegal_calls=[
        ("computer", {"action": "left_click", "coordinate": [100000, 5]}),
        ("computer", {"action": "key", "text": "hyperdrive"}),
        ("computer", {"action": "scroll", "coordinate": [10, 10]}),
        ("computer", {"action": "wait", "duration": 3600}),
    ],
    # Malformed calls: wrong types, extra or missing fields, an unknown tool.
    bad_calls=[
        ("computer", {"action": "fly"}),
        ("computer", {"action": "left_click", "coordinate": "the OK button"}),
        ("computer", {"action": "screenshot", "zoom": 2}),
        ("computer", {}),
        ("launch_rocket", {}),
    ],
)

__all__ = ["SPEC"]
