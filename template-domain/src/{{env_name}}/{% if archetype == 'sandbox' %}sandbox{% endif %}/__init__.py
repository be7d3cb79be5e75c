"""A stateful Python sandbox: one real Jupyter kernel per session, data and coding tasks."""

from ..core import EnvSpec
from .episode import SandboxEpisode
from .oracle import next_action
from .tasks import load_tasks

SPEC = EnvSpec(
    episode=SandboxEpisode,
    load_tasks=load_tasks,
    oracle=next_action,
    # Well-formed calls the sandbox refuses (they must cost nothing and change nothing).
    illegal_calls=[
        ("read_file", {"path": "../../../etc/passwd"}),
        ("write_file", {"path": "/etc/evil.txt", "content": "x"}),
        ("read_file", {"path": "no-such-file.txt"}),
    ],
    # Malformed calls: wrong types, extra or missing fields, an unknown tool.
    bad_calls=[
        ("run_code", {"code": 42}),
        ("run_code", {"code": "print(1)", "timeout": 999}),
        ("read_file", {}),
        ("submit", {"answer": ""}),
        ("launch_rocket", {}),
    ],
)

__all__ = ["SPEC"]
