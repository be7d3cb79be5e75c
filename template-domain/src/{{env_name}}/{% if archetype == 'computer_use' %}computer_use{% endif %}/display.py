"""The local desktop: per session a real X display (Xvfb), the task app on it, input through
xdotool and PNG screenshots through mss. ``close()`` leaves no process, lock or socket."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import mss
import mss.tools

from ..sessions import new_session_folder, spawn
from . import settings
from .actions import ComputerArgs, xdotool_commands

XDOTOOL_TIMEOUT = 30.0  # seconds for one xdotool call (a 50-character chunk types in under 1)


class DesktopError(RuntimeError):
    """The display or the task app failed (not the agent's fault)."""


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Run in the child before exec: SIGKILL it when the server that started it dies, so a
    crashed or killed server leaves no display behind (Linux; the app dies with its display)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def log_tail(folder: Path | None, *names: str) -> str:
    """The last lines of a session's logs, ready to append to an error message."""
    lines: list[str] = []
    for name in names:
        path = folder / name if folder else None
        if path and path.exists():
            lines += path.read_text(errors="replace").strip().splitlines()[-5:]
    return (":\n" + "\n".join(lines)) if lines else ""


def missing_tools() -> list[str]:
    return [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]


def remove_x_leftovers(number: str, pid: int) -> None:
    """Xvfb removes its lock and socket on SIGTERM, not when it had to be killed. Remove them
    only if the lock still names our server: the display number may already be another's."""
    lock = Path(f"/tmp/.X{number}-lock")
    try:
        owner = int(lock.read_text().strip())
    except FileNotFoundError:
        owner = pid
    except (OSError, ValueError):
        return
    if owner == pid:
        Path(f"/tmp/.X11-unix/X{number}").unlink(missing_ok=True)
        lock.unlink(missing_ok=True)


def stop(process: subprocess.Popen[bytes] | None, grace: float = 3.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds, reap the leader."""
    if process is None or process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class X11Desktop:
    """One Xvfb display running the task app drawn from ``layout``."""

    def __init__(self, layout: dict[str, Any] | None = None) -> None:
        self.layout = layout  # a warm pool's desktop gets its task's layout when taken
        self.width, self.height = settings.WIDTH, settings.HEIGHT
        self.folder: Path | None = None
        self.display = ""
        self.xvfb: subprocess.Popen[bytes] | None = None
        self.app: subprocess.Popen[bytes] | None = None
        self._grabber: Any = None

    @property
    def info(self) -> dict[str, Any]:
        return {"backend": "x11", "display": self.display, "screen": [self.width, self.height]}

    @property
    def state_path(self) -> Path:
        assert self.folder is not None
        return self.folder / "state.json"

    async def warm_up(self) -> None:
        """Start the display and the task app, which waits for a layout: what a warm pool
        keeps, so that ``start()`` only hands it its task."""
        self._prepare()
        await self._bounded(self._start_display())
        await self._bounded(self._until("waiting"))

    async def start(self) -> None:
        assert self.layout is not None, "a desktop starts with its task's layout"
        if self.folder is None:  # cold: the app finds its layout when it starts
            self._prepare()
            self._write_layout()
            await self._bounded(self._start_display())
        else:
            self._write_layout()
        await self._bounded(self._until("ready"))
        self._grabber = mss.MSS(display=self.display)

    def _prepare(self) -> None:
        if missing := missing_tools():
            raise DesktopError(
                f"{' and '.join(missing)} not found: install them "
                "(Debian/Ubuntu: sudo apt-get install xvfb xdotool)"
            )
        self.folder = new_session_folder(settings.SESSION_ROOT, "desk-")

    def _write_layout(self) -> None:
        assert self.folder is not None
        (self.folder / "layout.tmp").write_text(json.dumps(self.layout))
        os.replace(self.folder / "layout.tmp", self.folder / "layout.json")  # read whole

    async def _bounded(self, step: Coroutine[Any, Any, None]) -> None:
        """``step`` within START_TIMEOUT; on any failure close everything, saying why."""
        try:
            await asyncio.wait_for(step, settings.START_TIMEOUT)
        except BaseException as exc:
            log = self._log_tail()
            await self.close()
            if isinstance(exc, TimeoutError):
                raise DesktopError(f"the desktop did not come up in time{log}") from None
            raise

    async def _start_display(self) -> None:
        read = await spawn(self._spawn_xvfb)
        with os.fdopen(read) as pipe:  # Xvfb writes its display number once it accepts clients
            number = (await asyncio.to_thread(pipe.readline)).strip()
        if not number.isdigit():
            raise DesktopError(f"Xvfb did not start{self._log_tail()}")
        self.display = f":{number}"
        self.app = await spawn(self._spawn_app)

    async def _until(self, flag: str) -> None:
        """Until the app's state has ``flag`` (``waiting`` for a task, or ``ready``)."""
        assert self.app is not None
        while not (await self.state()).get(flag):
            if self.app.poll() is not None:
                raise DesktopError(f"the task app exited{self._log_tail()}")
            await asyncio.sleep(0.02)

    def _spawn_xvfb(self) -> int:
        """Start Xvfb; return the pipe it reports its display number on."""
        assert self.folder is not None
        read, write = os.pipe()
        screen = f"{self.width}x{self.height}x24"
        with open(self.folder / "xvfb.log", "wb") as log:
            self.xvfb = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write), "-screen", "0", screen, "-nolisten", "tcp"],
                pass_fds=(write,),
                start_new_session=True,
                preexec_fn=die_with_parent,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        os.close(write)
        return read

    def _spawn_app(self) -> subprocess.Popen[bytes]:
        assert self.folder is not None
        with open(self.folder / "app.log", "wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", f"{__package__}.app", "layout.json", "state.json"],
                cwd=self.folder,
                env={**os.environ, "DISPLAY": self.display},
                start_new_session=True,
                preexec_fn=die_with_parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _log_tail(self) -> str:
        return log_tail(self.folder, "xvfb.log", "app.log")

    async def state(self) -> dict[str, Any]:
        """The app's own record of what happened (empty until it is up)."""
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}

    async def screenshot(self) -> bytes:
        """The whole screen as PNG (zlib level 1: fast, about 30 KB at 1024x768)."""
        if self._grabber is None:
            raise DesktopError("the desktop is not running")
        shot = self._grabber.grab(self._grabber.monitors[0])
        return mss.tools.to_png(shot.rgb, shot.size, level=1)

    async def act(self, action: ComputerArgs) -> None:
        """Perform one validated action (not screenshot or terminate)."""
        if action.action == "wait":
            await asyncio.sleep(action.duration or 0)
            return
        for command in xdotool_commands(action):
            await self._xdotool(*command)
        await asyncio.sleep(settings.SETTLE)

    async def _xdotool(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "xdotool",
            *args,
            env={**os.environ, "DISPLAY": self.display},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(process.communicate(), XDOTOOL_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise DesktopError(f"xdotool {args[0]} did not finish in {XDOTOOL_TIMEOUT} s") from None
        if process.returncode:
            raise DesktopError(f"xdotool {args[0]} failed: {err.decode(errors='replace').strip()}")

    async def close(self) -> None:
        """Stop the app and the display; remove the session folder. Idempotent."""
        if self._grabber is not None:  # on the thread that opened it
            grabber, self._grabber = self._grabber, None
            grabber.close()
        await asyncio.to_thread(self.teardown)

    def teardown(self) -> None:
        """``close()`` without an event loop (for sessions abandoned unclosed)."""
        if self._grabber is not None:
            grabber, self._grabber = self._grabber, None
            grabber.close()
        app, self.app = self.app, None
        xvfb, self.xvfb = self.xvfb, None
        stop(app)
        stop(xvfb)
        if self.display and xvfb is not None:
            number, self.display = self.display[1:], ""
            remove_x_leftovers(number, xvfb.pid)
        if self.folder is not None:
            folder, self.folder = self.folder, None
            shutil.rmtree(folder, ignore_errors=True)


class Limit:
    """Bounds live desktops per process."""

    def __init__(self, limit: int) -> None:
        self.limit, self.live = limit, 0

    def admit(self) -> None:
        if self.live >= self.limit:
            raise DesktopError(
                f"the server already runs {self.limit} desktops; close one or retry later"
            )
        self.live += 1

    def release(self) -> None:
        self.live = max(0, self.live - 1)


LIMIT = Limit(settings.MAX_SESSIONS)
