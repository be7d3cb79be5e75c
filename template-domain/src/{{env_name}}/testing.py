"""Pytest fixtures every adapter folder's tests share (import them in a conftest.py):

    from <package>.testing import model_url, server_url

``server_url`` serves the folder's own ``serve.py``; a conftest may override it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import ENV_NAME, SPEC, load_tasks
from .conformance import oracle_transcript
from .harness import local_server
from .scripted_model import serve


@pytest.fixture(scope="session")
def server_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """A real `python serve.py` of the folder under test, on a free 127.0.0.1 port."""
    with local_server(pytestconfig.rootpath / "serve.py") as url:
        yield url


@pytest.fixture(scope="session")
def model_url() -> Iterator[str]:
    """The scripted OpenAI-compatible model (the oracle) on a free 127.0.0.1 port."""
    with serve() as url:
        yield url


def run_rollout(folder: Path, model_url: str, *extra: str, timeout: float = 600) -> str:
    """Run ``folder``'s rollout.py on test task 0 with the scripted model; return its output
    after checking that it exited cleanly and printed the domain's episode score."""
    cmd = [sys.executable, "rollout.py", "--base-url", model_url, "--model", "scripted-oracle"]
    cmd += ["--split", "test", "--index", "0", *extra]
    run = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(run.stdout)
    expected = asyncio.run(oracle_transcript("test", 0))
    assert f"episode score: {expected.score:.3f} (" in run.stdout, run.stdout[-3000:]
    return run.stdout


SESSION_ROOT_VARIABLE = f"{ENV_NAME.upper()}_SESSION_ROOT"
"""Where the backends of episodes that hold processes put their session folders."""
RSS_GROWTH_LIMIT = 10 * 1024
"""KiB a server's resident memory may grow by over the sessions after the warm-up."""


def rss_kib(pid: int) -> int:
    """The resident memory of a live process (``VmRSS`` in /proc/<pid>/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for process {pid}")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, theirs, ...), from a scan of /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it exited during the scan
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z":  # a zombie is gone, only not yet reaped
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        todo += (new := [c for c in children.get(todo.pop(), []) if c not in found])
        found.update(new)
    return found


@contextmanager
def scratch_session_root(name: str) -> Iterator[Path]:
    """A fresh session root for the servers of a test module, removed after: short (kernel
    sockets live in it) and, like the default root, open to the sessions' own uids."""
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def session_folders(root: Path) -> list[Path]:
    return sorted(root.iterdir()) if root.exists() else []


@dataclass
class Churn:
    """Sessions opened and closed one after another on a live server, and what it held."""

    sessions: int
    rss_before: int
    """KiB after the warm-up."""
    rss_after: int
    processes_seen: int
    """Most processes below the server while a session was open."""
    processes_left: set[int]
    folders_seen: int
    folders_left: list[Path]

    def check(self, label: str, root: Path) -> str:
        """Fail on what was left behind; return a one-line account."""
        heavy = SPEC.episode.holds_resources
        growth = self.rss_after - self.rss_before
        line = (
            f"sessions {label}: {self.sessions} opened and closed, server RSS "
            f"{self.rss_before // 1024} -> {self.rss_after // 1024} MiB ({growth:+d} KiB); "
            f"processes {self.processes_seen} per session, {len(self.processes_left)} left; "
            f"session folders {self.folders_seen} per session, {len(self.folders_left)} left"
        )
        assert not self.processes_left, f"{line}: {sorted(self.processes_left)} still run"
        assert not self.folders_left, f"{line}: {self.folders_left} still exist under {root}"
        if heavy:  # the counts would prove nothing if a session showed no process or folder
            assert self.processes_seen and self.folders_seen, f"{line}: nothing was observed"
        else:
            assert growth < RSS_GROWTH_LIMIT, f"{line}: more than {RSS_GROWTH_LIMIT} KiB growth"
        return line


def session_count() -> tuple[int, int]:
    """How many sessions a leak test opens, and how many of those are warm-up."""
    return (30, 5) if SPEC.episode.holds_resources else (1000, 100)


async def churn(
    server_pid: int,
    root: Path,
    open_session: Callable[[int], Awaitable[Any]],
    close_session: Callable[[Any], Awaitable[None]],
) -> Churn:
    """Open and close ``session_count()`` sessions, one after another, on task ``i`` of the test
    split (wrapping), watching the server's memory, processes and the session folders."""
    total, warmup = session_count()
    tasks = len(load_tasks("test"))
    baseline = descendants(server_pid)
    rss_before = seen_processes = seen_folders = 0
    for i in range(total):
        if i == warmup:
            rss_before = rss_kib(server_pid)
        session = await open_session(i % tasks)
        if SPEC.episode.holds_resources:
            seen_processes = max(seen_processes, len(descendants(server_pid) - baseline))
            seen_folders = max(seen_folders, len(session_folders(root)))
        await close_session(session)
    left = await settle(lambda: descendants(server_pid) - baseline)
    return Churn(
        total,
        rss_before,
        rss_kib(server_pid),
        seen_processes,
        left,
        seen_folders,
        session_folders(root),
    )


async def settle(probe: Callable[[], set[int]], within: float = 10.0) -> set[int]:
    """``probe()`` until it is empty or ``within`` seconds pass: processes take a moment to
    exit after a close or a kill."""
    deadline = time.monotonic() + within
    while (left := probe()) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls /proc
        await asyncio.sleep(0.1)
    return left


def alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] != "Z"


Served = Callable[[], AbstractContextManager[tuple[str, "subprocess.Popen[bytes]"]]]
"""Start a server (a context manager yielding its URL and process)."""


async def killed_server_leaves_nothing(
    start: Served,
    open_session: Callable[[str, int], Awaitable[Any]],
    close_session: Callable[[Any], Awaitable[None]],
    root: Path,
) -> str:
    """Open two sessions, SIGKILL the server: their processes die with it; the next server's
    first session sweeps their folders. Returns a one-line account."""
    with start() as (url, server):
        baseline = descendants(server.pid)
        for index in range(2):
            await open_session(url, index)
        held = descendants(server.pid) - baseline
        folders = session_folders(root)
        assert held and len(folders) >= 2, f"two open sessions showed {held} and {folders}"
        server.kill()
        server.wait()
        left = await settle(lambda: {pid for pid in held if alive(pid)})
    assert not left, f"processes {sorted(left)} outlived the SIGKILLed server"
    with start() as (url, _):
        await close_session(await open_session(url, 0))
    stale = [folder for folder in folders if folder.exists()]
    assert not stale, f"the next server did not sweep {stale}"
    return (
        f"SIGKILL with 2 sessions open: {len(held)} processes died with the server, "
        f"{len(folders)} folders swept by the next one"
    )
