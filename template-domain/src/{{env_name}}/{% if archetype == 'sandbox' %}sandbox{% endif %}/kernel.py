"""One real Jupyter kernel per session, run from its own kernel virtual environment.

The kernel only sees its interpreter, its venv and its session folder, so the agent can read
neither the server's code nor the answers. A cell that runs past its timeout is interrupted
(state kept); if it does not stop, the kernel is restarted (state lost); a kernel that died
(memory or CPU limit) is restarted with a message saying so.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import os
import shutil
import signal
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec

from ..sessions import hold, new_session_folder, release, spawn
from . import isolation, settings

INTERRUPT_GRACE = 5.0
"""Seconds a cell gets to stop after an interrupt before the kernel is restarted."""
POLL = 0.5
"""Seconds between checks that the kernel is still alive while a cell runs."""


@dataclass
class CellResult:
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    error_name: str | None = None
    text_results: list[str] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    execution_count: int = 0
    timed_out: bool = False
    notice: str | None = None  # e.g. "the kernel was restarted; state was lost"

    @property
    def success(self) -> bool:
        return self.error is None and not self.timed_out


class _KernelManager(AsyncKernelManager):
    """Runs the kernel spec it is given and hands the connection file to the kernel's uid."""

    def __init__(self, spec: KernelSpec, uid: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kernel_spec = spec
        self._uid = uid

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        launch = super()._async_launch_kernel  # forks the kernel, which dies with its thread
        await spawn(lambda: asyncio.run(launch(kernel_cmd, **kw)))

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        if self._uid is not None:
            os.chown(self.connection_file, self._uid, self._uid)


class LocalKernelSandbox:
    """A Jupyter kernel in a session folder, contained by ``isolation.choose(isolation)``."""

    def __init__(
        self,
        python: Path,
        *,
        root: Path,
        isolation_mode: str = "auto",
        memory_mb: int = 1024,
        network: bool = False,
    ) -> None:
        self.python = python
        self.root = root
        self.requested = isolation_mode
        self.memory_mb = memory_mb
        self.network = network
        self.mode: isolation.Mode | None = None
        self.session_id: str | None = None
        self.workdir: Path | None = None
        self.uid: int | None = None
        self._folder: int | None = None  # the session folder, opened before the kernel runs
        self._km: _KernelManager | None = None
        self._kc: Any = None
        self._log: Any = None

    @property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": "local", "session": self.session_id}
        if self.mode is not None:
            gaps = isolation.NOT_CONTAINED[self.mode]
            if self.mode == "rlimits" and self.uid is None:
                gaps = gaps + isolation.NO_UID
            info |= {
                "isolation": self.mode,
                "uid": self.uid,
                "network": self.network or self.mode == "rlimits",
                "not_contained": gaps,
            }
        return info

    async def start(self) -> None:
        if self.session_id is not None:
            return  # started already (a warm pool's member)
        self.mode = isolation.choose(self.requested)
        self.workdir = new_session_folder(self.root, "session-")
        self.session_id = self.workdir.name
        hold(self.session_id, self._teardown)  # close() releases it, whatever start() reached
        self._folder = os.open(self.workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.uid = isolation.claim_uid()
        argv = [str(self.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)
            venv = self.python.parent.parent
            if self.mode == "rlimits" and not all(
                isolation.others_can_run(p) for p in (self.python, venv / "pyvenv.cfg")
            ):
                raise RuntimeError(
                    f"the session's uid cannot run the kernel's interpreter {self.python} (a "
                    f"folder above it is private): rebuild the kernel venv where other users "
                    f"can read it (setting {settings.PREFIX}_KERNEL_VENV)"
                )
            argv = isolation.drop_to(self.uid) + argv
        if self.mode == "bwrap":
            argv = isolation.bwrap_prefix(self.python, self.workdir, self.network) + argv
        spec = KernelSpec(
            argv=argv,
            display_name="sandbox",
            language="python",
            # bwrap does not forward SIGINT into its pid namespace: interrupt by message.
            interrupt_mode="message" if self.mode == "bwrap" else "signal",
        )
        self._km = _KernelManager(spec, self.uid, transport="ipc")
        self._km.connection_file = str(self.workdir / ".kernel.json")
        self._km.ip = str(self.workdir / ".ipc")  # socket paths must stay under 107 characters
        self._log = open(self.workdir / ".kernel.log", "ab")  # noqa: ASYNC230, SIM115 - kept open
        shared = self.uid is None and self.mode == "rlimits"
        limits = isolation.kernel_limits(self.memory_mb, shares_server_uid=shared)
        await self._km.start_kernel(
            cwd=str(self.workdir),
            env=self._kernel_env(),
            preexec_fn=isolation.apply_limits(limits),
            independent=self.mode == "bwrap",  # the pid namespace ends it with the server
            stdout=self._log,
            stderr=self._log,
        )
        await self._connect()

    def _kernel_env(self) -> dict[str, str]:
        assert self.workdir is not None
        return {
            "PATH": f"{self.python.parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.workdir),
            "TMPDIR": str(self.workdir),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        }

    async def _connect(self) -> None:
        assert self._km is not None
        self._kc = self._km.client()
        self._kc.start_channels()
        await self._kc.wait_for_ready(timeout=60)

    async def _restart(self) -> None:
        assert self._km is not None
        self._kc.stop_channels()
        if self.uid is not None:
            isolation.kill_uid(self.uid)  # nothing of the old kernel outlives it
        await self._km.restart_kernel(now=True)
        await self._connect()

    async def execute(self, code: str, time_limit: float) -> CellResult:
        """Run one cell; never raises for what the code does."""
        assert self._km is not None, "start() first"
        if not await self._km.is_alive():
            await self._restart()
            return CellResult(notice="The kernel had died and was restarted; its state was lost.")
        result = CellResult()
        msg_id = self._kc.execute(code, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + time_limit
        interrupted = False
        while True:
            try:
                wait = min(POLL, max(0.05, deadline - time.monotonic()))
                msg = await self._kc.get_iopub_msg(timeout=wait)
            except Exception:  # queue.Empty: nothing before the deadline
                if not await self._km.is_alive():
                    await self._restart()
                    result.error_name = "KernelDied"
                    result.error = "The kernel died (killed, or over a memory or CPU limit)."
                    result.notice = "The kernel was restarted; its state was lost."
                    return result
                if time.monotonic() < deadline:
                    continue
                if not interrupted:
                    result.timed_out, interrupted = True, True
                    await self._km.interrupt_kernel()
                    deadline = time.monotonic() + INTERRUPT_GRACE
                    continue
                await self._restart()
                result.notice = "The cell ignored the interrupt; the kernel was restarted."
                return result
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                setattr(result, content["name"], getattr(result, content["name"]) + content["text"])
            elif kind in ("execute_result", "display_data"):
                data = content.get("data", {})
                if "image/png" in data:
                    result.images.append(base64.b64decode(data["image/png"]))
                elif "text/plain" in data:
                    result.text_results.append(data["text/plain"])
                result.execution_count = content.get("execution_count") or result.execution_count
            elif kind == "error":
                result.error_name, result.error = content["ename"], content["evalue"]
            elif kind == "status" and content["execution_state"] == "idle":
                if interrupted:
                    result.notice = f"Interrupted after {time_limit:g}s; the kernel kept its state."
                return result

    def _open(self, relative: str, flags: int, *, make_folders: bool = False) -> int:
        """``relative`` opened inside the session folder without following a symlink at any
        component: the kernel may swap a folder for a link to a host folder at any moment, so
        the path is walked once, folder by folder, never checked first and opened again."""
        assert self._folder is not None, "start() first"
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError(f"{relative!r} is outside the session folder")
        *folders, name = path.parts
        at = os.dup(self._folder)
        try:
            for folder in folders:
                if make_folders:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(folder, 0o755, dir_fd=at)
                inner = _open_at(at, folder, os.O_RDONLY | os.O_DIRECTORY)
                os.close(at)
                at = inner
                if make_folders and self.uid is not None:
                    os.fchown(at, self.uid, self.uid)
            fd = _open_at(at, name, flags)
        finally:
            os.close(at)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ValueError(f"{relative!r} is not a regular file")
        return fd

    async def write_file(self, relative: str, data: bytes) -> None:
        fd = self._open(relative, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, make_folders=True)
        with os.fdopen(fd, "wb") as file:
            if self.uid is not None:
                os.fchown(fd, self.uid, self.uid)
            file.write(data)

    async def read_file(self, relative: str) -> bytes:
        with os.fdopen(self._open(relative, os.O_RDONLY), "rb") as file:
            return file.read()

    async def close(self) -> None:
        """Stop the kernel and everything it started, delete the folder. Idempotent."""
        self._teardown()  # synchronous: a cancelled close() must not leave a live kernel

    def _teardown(self) -> None:
        """Kill the kernel's process group (and, with a session uid, every process of that
        uid), close its ZMQ sockets and context, delete the folder. Needs no event loop: it
        also runs for sessions abandoned unclosed, at the end of a test run or at exit."""
        if self.session_id is not None:
            release(self.session_id)
        kc, self._kc = self._kc, None
        km, self._km = self._km, None
        if kc is not None:
            with contextlib.suppress(Exception):
                kc.stop_channels()
        if km is not None:
            process = getattr(km.provisioner, "process", None)
            if process is not None:
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGKILL)  # its own group: start_new_session
                with contextlib.suppress(Exception):
                    process.wait(timeout=5)
            with contextlib.suppress(Exception):
                km.context.destroy(linger=0)
        if self.uid is not None:
            isolation.release_uid(self.uid)
            self.uid = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._folder is not None:
            os.close(self._folder)
            self._folder = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def _open_at(folder: int, name: str, flags: int) -> int:
    """``os.open`` of ``name`` in ``folder`` that refuses a symlink with a readable error."""
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO must not block the server
    try:
        return os.open(name, flags, 0o644, dir_fd=folder)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.lstat(name, dir_fd=folder).st_mode):
                    raise ValueError(
                        f"{name!r} is a symbolic link, and the file tools follow no links"
                    ) from None
        raise


def describe(result: CellResult, limit: int) -> str:
    """The cell's outcome as text for the model, each part cut to ``limit`` characters."""

    def cut(text: str) -> str:
        return (
            text
            if len(text) <= limit
            else f"{text[:limit]}\n... [{len(text) - limit} more characters cut]"
        )

    parts = []
    if result.stdout:
        parts.append(f"[stdout]\n{cut(result.stdout)}")
    if result.stderr:
        parts.append(f"[stderr]\n{cut(result.stderr)}")
    for text in result.text_results:
        parts.append(f"[result]\n{cut(text)}")
    if result.images:
        parts.append(f"[images] {len(result.images)} PNG image(s) attached")
    if result.error is not None:
        parts.append(f"[error] {result.error_name}: {cut(result.error)}")
    if result.timed_out:
        parts.append("[timeout] the cell ran past its time limit")
    if result.notice:
        parts.append(f"[notice] {result.notice}")
    return "\n".join(parts) or "[no output]"
