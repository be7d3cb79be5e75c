"""A stateful Python sandbox: one real Jupyter kernel per session, data and coding tasks."""

from .episode import TOOLS, SandboxEpisode
from .oracle import next_action
from .tasks import load_tasks

EnvEpisode = SandboxEpisode

ILLEGAL_CALLS = [
    ("read_file", {"path": "../../../etc/passwd"}),
    ("write_file", {"path": "/etc/evil.txt", "content": "x"}),
    ("read_file", {"path": "no-such-file.txt"}),
]
"""Well-formed calls the sandbox refuses (they must cost nothing and change nothing)."""
BAD_CALLS = [
    ("run_code", {"code": 42}),
    ("run_code", {"code": "print(1)", "timeout": 999}),
    ("read_file", {}),
    ("submit", {"answer": ""}),
    ("launch_rocket", {}),
]
"""Malformed calls: wrong types, extra or missing fields, an unknown tool."""

__all__ = ["BAD_CALLS", "ILLEGAL_CALLS", "TOOLS", "EnvEpisode", "load_tasks", "next_action"]
