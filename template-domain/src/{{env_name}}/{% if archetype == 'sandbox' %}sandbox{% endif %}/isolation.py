"""How a kernel is contained: bubblewrap where it works, otherwise rlimits and a process group.

``bwrap`` mode gives each kernel a minimal read-only root (``/usr``, the kernel's interpreter
and its venv), only the session folder writable, no network (unless enabled) and its own pid
namespace (everything dies with the server). ``rlimits`` mode keeps the rlimits and the
session folder, and kills the kernel's process group on close. In both modes a server running
as root runs each kernel under a uid of its own, so that ``RLIMIT_NPROC`` really caps
processes, root-only files stay out of reach, and every process of the session can be found
and killed, on close or, by a guard process, once the server is gone.

This file only uses the standard library: the guard runs it as a script.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

Mode = Literal["bwrap", "rlimits"]

UID_BASE = 200_000
"""Per-session uids are UID_BASE + n; nothing else on the machine should use them."""

NOT_CONTAINED = {
    "bwrap": [],
    "rlimits": [
        "network access",
        "reads of host files that any user may read (system files, and project or data files"
        " that are world-readable)",
        "the host's process list (other users' command lines)",
    ],
}
"""What a kernel can still reach, by mode (reported in the session info and the README)."""
NO_UID = [
    "the server's own files and processes (the kernel runs as the server's user)",
    "a fork bomb, and processes that leave the kernel's process group",
]
"""What rlimits mode cannot contain either when the server does not run as root."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    cpu_seconds: int = 600
    file_bytes: int = 256 << 20
    open_files: int = 256
    processes: int | None = 96  # counts threads too: an idle ipykernel already runs about 13


def kernel_limits(memory_mb: int, *, shares_server_uid: bool) -> Limits:
    # RLIMIT_AS counts address space, not memory: an idle kernel already maps ~1 GiB.
    # RLIMIT_NPROC counts every process of the uid: with the server's uid and no namespace of
    # its own, it would cap the server's whole user (a busy server's kernels could not start).
    processes = None if shares_server_uid else 96
    return Limits(memory_bytes=(memory_mb + 1024) << 20, processes=processes)


def apply_limits(limits: Limits) -> Callable[[], None]:
    """A ``preexec_fn`` that sets the rlimits in the child before it starts the kernel."""

    def preexec() -> None:
        for which, value in (
            (resource.RLIMIT_AS, limits.memory_bytes),
            (resource.RLIMIT_CPU, limits.cpu_seconds),
            (resource.RLIMIT_FSIZE, limits.file_bytes),
            (resource.RLIMIT_NOFILE, limits.open_files),
            (resource.RLIMIT_NPROC, limits.processes),
        ):
            if value is not None:
                resource.setrlimit(which, (value, value))

    return preexec


@cache
def bwrap_works() -> bool:
    """Whether bubblewrap can build the namespaces we need (it cannot on some CI hosts)."""
    if not shutil.which("bwrap") or not shutil.which("setpriv"):
        return False
    probe = ["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose(requested: str) -> Mode:
    """``auto`` picks bwrap when it works; asking for bwrap where it cannot work is an error."""
    if requested == "rlimits":
        return "rlimits"
    if bwrap_works():
        return "bwrap"
    if requested == "bwrap":
        raise RuntimeError("isolation 'bwrap' was requested but bubblewrap does not work here")
    return "rlimits"


def bwrap_prefix(python: Path, workdir: Path, network: bool) -> list[str]:
    """The argv prefix that runs ``python`` inside a minimal sandbox."""
    venv = python.parent.parent
    prefix = Path(os.path.realpath(python)).parent.parent  # the base interpreter's install
    args = [
        "bwrap",
        *("--ro-bind", "/usr", "/usr"),
        *("--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"),
        *("--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin"),
        *("--perms", "0755", "--dir", "/etc"),
    ]
    for etc in ("ld.so.cache", "ssl", "fonts", "passwd", "group", "localtime"):
        if Path("/etc", etc).exists():
            args += ["--ro-bind", f"/etc/{etc}", f"/etc/{etc}"]
    if network and Path("/etc/resolv.conf").exists():
        args += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    # Bind targets get 0700 parents by default, which another uid cannot traverse.
    home = Path.home()
    if any(p.is_relative_to(home) for p in (prefix, venv, workdir)):
        args += ["--perms", "0755", "--tmpfs", str(home)]
    made: set[Path] = set()
    for target in (prefix, venv, workdir):
        for parent in reversed(target.parents[:-1]):  # outermost first, without "/"
            if parent not in made and not parent.is_relative_to("/usr"):
                made.add(parent)
                args += ["--perms", "0755", "--dir", str(parent)]
    if not prefix.is_relative_to("/usr"):
        args += ["--ro-bind", str(prefix), str(prefix)]
    if not venv.is_relative_to(prefix):
        args += ["--ro-bind", str(venv), str(venv)]
    args += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--die-with-parent", "--new-session"]
    if not network:
        args.append("--unshare-net")
    return [*args, "--"]


def drop_to(uid: int) -> list[str]:
    """The argv prefix that runs a command as ``uid``, without groups or capabilities."""
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def others_can_run(path: Path) -> bool:
    """Whether a user without any rights here (a session uid) can reach and open ``path``:
    every folder above it searchable by others, the file itself readable by others."""
    real = Path(os.path.realpath(path))
    try:
        if not all(os.stat(p).st_mode & stat.S_IXOTH for p in real.parents):
            return False
        return bool(os.stat(real).st_mode & stat.S_IROTH)
    except OSError:
        return False


CLAIMS = Path("/tmp/rl-envs-uid-claims")  # machine-wide, whatever a process's TMPDIR says
"""One file per uid in use on this machine, locked (flock) by the server that uses it. A lock,
not a pid, says the claim is alive: pids differ between PID namespaces, locks do not, and a
lock ends with its holder however it dies."""
_claims: dict[int, int] = {}  # uid -> the locked claim file's descriptor, in this process


def _lock_claim(uid: int) -> int | None:
    """The claim file of ``uid``, created if needed and locked, or None if someone holds it."""
    path = CLAIMS / str(uid)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path).st_ino and not _pid_claim(path):
            return fd
    except OSError:  # held by a live server, or unlinked since we opened it
        pass
    os.close(fd)
    return None


def _pid_claim(path: Path) -> bool:
    """Whether ``path`` is a claim by a live server of an earlier version, which named its
    pid in the file instead of locking it."""
    try:
        pid = int(path.read_text() or "0")
        if pid <= 0 or pid == os.getpid():
            return False
        status = Path(f"/proc/{pid}/status").read_text()
    except (ValueError, OSError):  # not a pid, or no such process
        return False
    return "\nState:\tZ" not in status  # a zombie is gone


def claim_uid() -> int | None:
    """A uid no other live session on this machine uses, or None when not running as root.
    A uid that any process still has, even a zombie, is not free: its tasks would count
    against the next session's RLIMIT_NPROC."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    CLAIMS.mkdir(mode=0o755, exist_ok=True)
    busy = {uid for _, uid, _ in _tasks()}
    for uid in range(UID_BASE + 1, UID_BASE + (1 << 16)):
        if uid in busy or uid in _claims or (fd := _lock_claim(uid)) is None:
            continue
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())  # for people reading the folder
        _claims[uid] = fd
        _guard().watch(uid)
        return uid
    raise RuntimeError("no free sandbox uid")


def release_uid(uid: int) -> None:
    """Kill whatever still runs as ``uid`` (``setsid`` or ``nohup`` children), then free it."""
    kill_uid(uid)
    _guard().unwatch(uid)
    if (fd := _claims.pop(uid, None)) is not None:
        (CLAIMS / str(uid)).unlink(missing_ok=True)  # while still locked: nobody holds it
        os.close(fd)


def _tasks() -> Iterator[tuple[int, int, str]]:
    """(pid, real uid, state) of every process on the machine."""
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, StopIteration, IndexError, ValueError):
            lines = status.read_text().splitlines()
            state = next(line for line in lines if line.startswith("State:")).split()[1]
            uid = int(next(line for line in lines if line.startswith("Uid:")).split()[1])
            yield int(status.parent.name), uid, state


def processes_of(uid: int) -> list[int]:
    """Pids of the live (not zombie) processes whose real uid is ``uid``."""
    return [pid for pid, owner, state in _tasks() if owner == uid and state != "Z"]


def kill_uid(uid: int, within: float = 10.0) -> None:
    """SIGKILL every process of ``uid``, again until none is left (a fork can race a pass)."""
    deadline = time.monotonic() + within
    while (pids := processes_of(uid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


class Guard:
    """A process that outlives the server to kill the processes of the uids its sessions
    still hold once the server is gone, however it ended (even ``kill -9``): it reads the
    uids from a pipe, and the pipe reaches end of file when the server dies. In bwrap mode the
    pid namespace does this too; in rlimits mode only the guard does."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def _send(self, line: str) -> None:
        with self._lock:
            for _ in range(2):  # a guard that was killed is replaced
                if self._process is None or self._process.poll() is not None:
                    self._process = subprocess.Popen(
                        [sys.executable, "-I", "-S", __file__],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,  # not in the server's process group
                        text=True,
                    )
                assert self._process.stdin is not None
                with contextlib.suppress(BrokenPipeError):
                    self._process.stdin.write(line + "\n")
                    self._process.stdin.flush()
                    return

    def watch(self, uid: int) -> None:
        self._send(f"+{uid}")

    def unwatch(self, uid: int) -> None:
        self._send(f"-{uid}")


_guard = cache(Guard)


def _wait_for_claim(uid: int, within: float = 10.0) -> int | None:
    """``_lock_claim``, retried while the dead server's exit lets go of its lock: the pipe
    can reach end of file before the kernel has released the claim file's lock."""
    deadline = time.monotonic() + within
    while (fd := _lock_claim(uid)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return fd


def _guard_main() -> None:
    uids: set[int] = set()
    for line in sys.stdin:
        (uids.add if line[0] == "+" else uids.discard)(int(line[1:]))
    for uid in uids:  # the server's locks end with it: take each claim, clean, free it
        if (fd := _wait_for_claim(uid)) is not None:
            kill_uid(uid)
            (CLAIMS / str(uid)).unlink(missing_ok=True)
            os.close(fd)


if __name__ == "__main__":
    _guard_main()
