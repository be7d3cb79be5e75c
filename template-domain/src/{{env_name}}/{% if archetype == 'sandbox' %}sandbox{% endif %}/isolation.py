"""How a kernel is contained: bubblewrap where it works, otherwise rlimits and a process group.

``bwrap`` mode gives each kernel a minimal read-only root (``/usr``, the kernel's interpreter
and its venv), only the session folder writable, no network (unless enabled), its own pid
namespace (everything dies with the server) and, when the server runs as root, its own uid,
so that ``RLIMIT_NPROC`` really caps processes. ``rlimits`` mode keeps the rlimits and the
session folder, and kills the kernel's process group on close.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

Mode = Literal["bwrap", "rlimits"]

UID_BASE = 200_000
"""Per-session uids are UID_BASE + n; nothing else on the machine should use them."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    cpu_seconds: int = 600
    file_bytes: int = 256 << 20
    open_files: int = 256
    processes: int = 96  # counts threads too: an idle ipykernel already runs about 13


def kernel_limits(memory_mb: int) -> Limits:
    # RLIMIT_AS counts address space, not memory: an idle kernel already maps ~1 GiB.
    return Limits(memory_bytes=(memory_mb + 1024) << 20)


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


def bwrap_prefix(python: Path, workdir: Path, uid: int | None, network: bool) -> list[str]:
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
    args += ["--ro-bind", str(prefix), str(prefix)]
    if not venv.is_relative_to(prefix):
        args += ["--ro-bind", str(venv), str(venv)]
    args += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--die-with-parent", "--new-session"]
    if not network:
        args.append("--unshare-net")
    args.append("--")
    if uid is not None:
        args += [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    return args


CLAIMS = Path("/tmp/rl-envs-uid-claims")  # machine-wide, whatever a process's TMPDIR says
"""One file per uid in use on this machine, holding the pid of the server that uses it."""


def claim_uid() -> int | None:
    """A uid no other live session on this machine uses, or None when not running as root."""
    if os.geteuid() != 0:
        return None
    CLAIMS.mkdir(mode=0o755, exist_ok=True)
    for slot in range(1, 1 << 16):
        claim = CLAIMS / str(UID_BASE + slot)
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                os.kill(int(claim.read_text() or "0"), 0)  # is the claiming server alive?
            except (ProcessLookupError, ValueError, FileNotFoundError):
                claim.unlink(missing_ok=True)  # its server is gone: free it for the next caller
            except PermissionError:
                pass
            continue
        with os.fdopen(fd, "w") as file:
            file.write(str(os.getpid()))
        return UID_BASE + slot
    raise RuntimeError("no free sandbox uid")


def release_uid(uid: int) -> None:
    (CLAIMS / str(uid)).unlink(missing_ok=True)
