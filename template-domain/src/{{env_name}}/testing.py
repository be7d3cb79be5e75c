"""Pytest fixtures every adapter folder's tests share (import them in a conftest.py):

    from <package>.testing import model_url, server_url

``server_url`` serves the folder's own ``serve.py``; a conftest may override it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import ENV_NAME, SPEC, load_tasks
from .conformance import oracle_transcript
from .harness import REPLICA_HEADER, free_port, local_server, server_processes
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
        if i == 0:  # what the first session starts for the server's lifetime is no leak
            baseline = await steady(lambda: descendants(server_pid)) | baseline
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


async def steady(probe: Callable[[], set[int]], within: float = 10.0) -> set[int]:
    """``probe()`` once it gave the same answer for a second (or after ``within`` seconds):
    the processes left once a closed session's have exited (a server-wide helper such as the
    sandbox's guard, started with the first session)."""
    deadline, last, since = time.monotonic() + within, probe(), time.monotonic()
    while time.monotonic() - since < 1.0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if (now := probe()) != last:
            last, since = now, time.monotonic()
    return last


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


@dataclass
class Routed:
    """Replicas of a folder's server behind the real HAProxy."""

    url: str
    """The router's."""
    replicas: dict[str, subprocess.Popen[bytes]]
    """Each replica's process, by its ``REPLICA_ID``."""


def local_router_config(text: str, bind: str, servers: Mapping[str, str]) -> str:
    """A deploy/haproxy.cfg with its ``bind`` address and its DNS-discovered replicas (the
    ``server-template`` line) replaced by ``bind`` and one ``server`` line per replica."""
    lines, found = [], set()
    for line in text.splitlines():
        indent, words = line[: len(line) - len(line.lstrip())], line.split()
        if words and words[0] == "bind":
            lines.append(f"{indent}bind {bind}")
        elif words and words[0] == "server-template":
            lines += [f"{indent}server {name} {address}" for name, address in servers.items()]
        else:
            lines.append(line)
        found.update(words[:1])
    missing = {"bind", "server-template"} - found
    assert not missing, f"the router config has no {' or '.join(sorted(missing))} line"
    return "\n".join(lines) + "\n"


@contextmanager
def routed(
    folder: Path, health: str = "/health", replicas: int = 2, env: dict[str, str] | None = None
) -> Iterator[Routed]:
    """``replicas`` of ``folder``'s serve.py (``REPLICA_ID`` replica1, ..., and ``env``) on free
    127.0.0.1 ports behind ``haproxy`` running ``folder``/deploy/haproxy.cfg with those
    addresses; yield once the router has reached each replica. Skips without haproxy unless
    REQUIRE_HAPROXY=1."""
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        reason = "haproxy is not installed (sudo apt-get install -y haproxy)"
        if os.environ.get("REQUIRE_HAPROXY") == "1":
            pytest.fail(f"{reason}; REQUIRE_HAPROXY=1")
        pytest.skip(reason)
    names = [f"replica{n}" for n in range(1, replicas + 1)]
    envs = [{**(env or {}), "REPLICA_ID": name} for name in names]
    with (
        server_processes(folder / "serve.py", envs, health) as started,
        tempfile.TemporaryDirectory() as tmp,
    ):
        at = dict(zip(names, started, strict=True))
        processes = {name: server for name, (_, server) in at.items()}
        addresses = {name: url.removeprefix("http://") for name, (url, _) in at.items()}
        bind = f"127.0.0.1:{free_port()}"
        config = Path(tmp) / "haproxy.cfg"
        text = (folder / "deploy" / "haproxy.cfg").read_text()
        config.write_text(local_router_config(text, bind, addresses))
        router = subprocess.Popen([haproxy, "-W", "-db", "-q", "-f", str(config)])
        try:
            wait_for_replicas(f"http://{bind}", health, set(processes), router)
            yield Routed(f"http://{bind}", processes)
        finally:
            router.terminate()
            router.wait(timeout=10)


def wait_for_replicas(
    url: str, health: str, names: set[str], router: subprocess.Popen[bytes], within: float = 30
) -> None:
    """Ask ``url`` + ``health`` until each of ``names`` has answered (the router balances
    requests without a session key)."""
    seen: set[str] = set()
    deadline = time.monotonic() + within
    while seen != names:
        if router.poll() is not None:
            raise RuntimeError(f"haproxy exited with code {router.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the router at {url} reached only {sorted(seen)} of {names}")
        try:
            with urllib.request.urlopen(url + health, timeout=2) as reply:
                seen.add(reply.headers.get(REPLICA_HEADER, ""))
        except OSError:
            time.sleep(0.2)


def routed_episodes_count() -> int:
    """Concurrent episodes a router test plays: fewer when each holds processes."""
    return 16 if SPEC.episode.holds_resources else 200


@dataclass
class Played:
    """One episode through a router: the replica of each call, and the score once it ended."""

    index: int
    replicas: list[str] = field(default_factory=list)
    score: float | None = None


PLAYED: ContextVar[Played] = ContextVar("PLAYED")
"""The episode the current task plays (a client's hook can record replicas into it)."""


Play = Callable[[Played, Callable[[], Awaitable[None]]], Awaitable[None]]
"""Play the oracle on test task ``played.index`` through the router, recording each call's
replica into ``played`` and the score at the end; await the second argument after the first
tool call."""


async def play_routed(
    play: Play, count: int, kill: Callable[[], None] | None = None, within: float = 120
) -> list[tuple[Played, Exception | None]]:
    """``count`` concurrent episodes on the test tasks (wrapping), each bounded by ``within``
    seconds; with ``kill``, call it once every episode has made its first tool call."""
    tasks = len(load_tasks("test"))
    waiting, arrived, go = count, asyncio.Event(), asyncio.Event()

    def arrive() -> None:
        nonlocal waiting
        waiting -= 1
        if not waiting:
            arrived.set()

    async def one(index: int) -> tuple[Played, Exception | None]:
        played, reached = Played(index % tasks), False
        PLAYED.set(played)

        async def checkpoint() -> None:
            nonlocal reached
            reached = True
            arrive()
            await go.wait()

        error = None
        try:
            await asyncio.wait_for(play(played, checkpoint), within)
        except Exception as exc:  # the caller checks which failed and why
            error = exc
        if not reached:
            arrive()
        return played, error

    async def release() -> None:
        await asyncio.wait_for(arrived.wait(), within)
        if kill is not None:
            kill()
        go.set()

    releaser = asyncio.create_task(release())
    results = await asyncio.gather(*(one(i) for i in range(count)))
    await releaser
    return results


async def check_routed(
    results: list[tuple[Played, Exception | None]], replicas: set[str], killed: str | None = None
) -> str:
    """Every episode whose replica lived finished with the bare domain's score, each of its calls
    answered by that replica; every episode on ``killed`` failed. Returns a one-line account."""
    indices = {played.index for played, _ in results}
    expected = {i: (await oracle_transcript("test", i)).score for i in indices}
    unrouted = [e for p, e in results if not p.replicas]
    assert not unrouted, f"{len(unrouted)} episodes reached no replica, e.g. {unrouted[0]!r}"
    owners = {p.replicas[0] for p, _ in results}
    assert owners == replicas, f"the episodes reached {sorted(owners)}, not each of {replicas}"
    failed = [(p, e) for p, e in results if p.replicas[0] == killed]
    for played, error in results:
        owner = played.replicas[0]
        if owner == killed:
            assert error is not None, f"episode {played.index} on the killed {owner} finished"
            continue
        assert error is None, f"episode {played.index} on {owner} failed: {error!r}"
        stray = [replica for replica in played.replicas if replica != owner]
        assert not stray, f"episode {played.index} began on {owner}, then reached {stray}"
        assert played.score == expected[played.index], (
            f"episode {played.index} scored {played.score}, the domain {expected[played.index]}"
        )
    line = (
        f"{len(results)} episodes over {sorted(replicas)}: "
        f"{len(results) - len(failed)} finished with the domain's score, 0 misrouted"
    )
    if killed:
        error = failed[0][1]
        message = str(getattr(error, "message", "") or error).splitlines()[0][:160]
        line += f"; {len(failed)} on the killed {killed} failed, e.g. "
        line += f"{type(error).__name__}: {message}"
    return line
