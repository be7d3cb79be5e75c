"""The remote desktop: an E2B Desktop sandbox (a cloud microVM with Xvfb and xdotool) running
the same task app, driven with the same xdotool commands as the local display.

Optional: ``pip install '<package>[e2b]'`` and ``E2B_API_KEY``; select it with
``<PACKAGE>_DESKTOP_BACKEND=e2b``. The sandbox's own desktop session is stopped so the task app
owns the screen, as on the local display; Tk is installed in the sandbox when its image lacks it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
from pathlib import Path
from typing import Any

from . import settings
from .actions import ComputerArgs, xdotool_commands
from .display import DesktopError

REMOTE = "/home/user/task"
COMMAND_TIMEOUT = 30  # seconds for one command in the sandbox
SETUP_TIMEOUT = 300  # installing Tk from the sandbox's package mirror
SETUP = (
    "pkill -f xfce4 || true; "
    "python3 -c 'import tkinter' 2>/dev/null || "
    "(sudo apt-get update -qq && sudo apt-get install -y -qq python3-tk)"
)


class E2BDesktop:
    """One E2B Desktop sandbox per session; every call runs in a worker thread (the SDK is
    synchronous)."""

    def __init__(self, layout: dict[str, Any] | None = None) -> None:
        self.layout = layout
        self.width, self.height = settings.WIDTH, settings.HEIGHT
        self._sandbox: Any = None

    @property
    def info(self) -> dict[str, Any]:
        sandbox_id = getattr(self._sandbox, "sandbox_id", None)
        return {"backend": "e2b", "sandbox": sandbox_id, "screen": [self.width, self.height]}

    async def start(self) -> None:
        if not os.environ.get("E2B_API_KEY"):
            raise DesktopError("the e2b desktop backend needs E2B_API_KEY (https://e2b.dev)")
        try:
            from e2b_desktop import Sandbox  # the optional extra, imported on use
        except ImportError:
            package = __package__.split(".")[0]
            raise DesktopError(
                f"the e2b desktop backend needs its extra: pip install '{package}[e2b]'"
            ) from None
        self._sandbox = await asyncio.to_thread(
            Sandbox.create, resolution=(self.width, self.height), timeout=3600
        )
        try:
            await self._start_app()
        except BaseException:
            await self.close()
            raise

    async def _start_app(self) -> None:
        files = self._sandbox.files
        source = Path(__file__).with_name("app.py").read_text()  # stdlib + Tk only
        await asyncio.to_thread(files.write, f"{REMOTE}/app.py", source)
        await asyncio.to_thread(files.write, f"{REMOTE}/layout.json", json.dumps(self.layout))
        await self._run(SETUP, SETUP_TIMEOUT)
        command = f"cd {REMOTE} && python3 app.py layout.json state.json > app.log 2>&1"
        await asyncio.to_thread(self._sandbox.commands.run, command, background=True, timeout=0)
        for _ in range(int(settings.START_TIMEOUT / 0.2)):
            if (await self.state()).get("ready"):
                return
            await asyncio.sleep(0.2)
        log = await asyncio.to_thread(self._sandbox.files.read, f"{REMOTE}/app.log")
        tail = "\n".join(log.strip().splitlines()[-5:])
        raise DesktopError(f"the task app did not come up in the sandbox:\n{tail}")

    async def _run(self, command: str, seconds: float = COMMAND_TIMEOUT) -> None:
        from e2b import CommandExitException

        try:
            await asyncio.to_thread(self._sandbox.commands.run, command, timeout=seconds)
        except CommandExitException as exc:
            raise DesktopError(f"{command.split()[0]} failed in the sandbox: {exc}") from None

    async def state(self) -> dict[str, Any]:
        from e2b import NotFoundException

        try:
            text = await asyncio.to_thread(self._sandbox.files.read, f"{REMOTE}/state.json")
        except NotFoundException:
            return {}
        return json.loads(text)

    async def screenshot(self) -> bytes:
        if self._sandbox is None:
            raise DesktopError("the desktop is not running")
        return bytes(await asyncio.to_thread(self._sandbox.screenshot))

    async def act(self, action: ComputerArgs) -> None:
        if action.action == "wait":
            await asyncio.sleep(action.duration or 0)
            return
        for command in xdotool_commands(action):
            await self._run(shlex.join(["xdotool", *command]))
        await asyncio.sleep(settings.SETTLE)

    async def close(self) -> None:
        """Kill the sandbox (idempotent); E2B also ends it at its own timeout."""
        await asyncio.to_thread(self.teardown)

    def teardown(self) -> None:
        """``close()`` without an event loop (for sessions abandoned unclosed)."""
        if self._sandbox is not None:
            sandbox, self._sandbox = self._sandbox, None
            sandbox.kill()
