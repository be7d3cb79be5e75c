"""The browser desktop: per session a headless Chromium (its own process group and profile)
showing the task app as a web page (``page.html``: app.py's widgets, boxes and state), driven
over the Chrome DevTools Protocol on a pipe. ``close()`` leaves no process or folder.

Select it with ``<PACKAGE>_DESKTOP_BACKEND=browser``; it needs Chromium
(Debian/Ubuntu: ``sudo apt-get install chromium``) and nothing from PyPI.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import fcntl
import itertools
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

from ..sessions import new_session_folder, spawn
from . import settings
from .actions import ComputerArgs, xdotool_keys
from .display import DesktopError, die_with_parent, log_tail, stop

BINARIES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = [
    "--headless=new",
    "--remote-debugging-pipe",  # the protocol on fds 3 (commands) and 4 (replies)
    "--no-startup-window",  # the one tab is opened over the pipe
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-renderer-backgrounding",
    "--hide-scrollbars",
    "--mute-audio",
    "--force-color-profile=srgb",
]
CDP_TIMEOUT = 30.0  # seconds for one protocol call
NOTCH = 120  # wheel delta per notch; the page scrolls its list one row per notch, as Tk does
PAGE = Path(__file__).with_name("page.html")
HOMES = ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")  # Chromium writes there: the session folder


@dataclasses.dataclass(frozen=True)
class Key:
    """A key as the DevTools protocol names it: DOM key, DOM code, Windows key code."""

    key: str
    code: str = ""
    key_code: int = 0

    @property
    def text(self) -> str:
        """What pressing it types."""
        return "\r" if self.key == "Enter" else self.key if len(self.key) == 1 else ""


KEYS = {  # the X key names actions.xdotool_keys accepts, besides letters and digits
    "Return": Key("Enter", "Enter", 13),
    "Tab": Key("Tab", "Tab", 9),
    "Escape": Key("Escape", "Escape", 27),
    "BackSpace": Key("Backspace", "Backspace", 8),
    "Delete": Key("Delete", "Delete", 46),
    "Insert": Key("Insert", "Insert", 45),
    "Home": Key("Home", "Home", 36),
    "End": Key("End", "End", 35),
    "Page_Up": Key("PageUp", "PageUp", 33),
    "Page_Down": Key("PageDown", "PageDown", 34),
    "Up": Key("ArrowUp", "ArrowUp", 38),
    "Down": Key("ArrowDown", "ArrowDown", 40),
    "Left": Key("ArrowLeft", "ArrowLeft", 37),
    "Right": Key("ArrowRight", "ArrowRight", 39),
    "space": Key(" ", "Space", 32),
    "minus": Key("-", "Minus", 189),
    "plus": Key("+", "Equal", 187),
    "equal": Key("=", "Equal", 187),
    "comma": Key(",", "Comma", 188),
    "period": Key(".", "Period", 190),
    "slash": Key("/", "Slash", 191),
    "backslash": Key("\\", "Backslash", 220),
    "semicolon": Key(";", "Semicolon", 186),
    "apostrophe": Key("'", "Quote", 222),
    "grave": Key("`", "Backquote", 192),
    "bracketleft": Key("[", "BracketLeft", 219),
    "bracketright": Key("]", "BracketRight", 221),
    **{f"F{n}": Key(f"F{n}", f"F{n}", 111 + n) for n in range(1, 13)},
}
MODIFIERS = {  # name in actions.MODIFIERS: the key, its protocol bit and its X key name
    "alt": (Key("Alt", "AltLeft", 18), 1, "Alt_L"),
    "ctrl": (Key("Control", "ControlLeft", 17), 2, "Control_L"),
    "super": (Key("Meta", "MetaLeft", 91), 4, "Super_L"),
    "shift": (Key("Shift", "ShiftLeft", 16), 8, "Shift_L"),
}
SHIFT = 8
SHIFTED = {  # characters a US keyboard types with shift (xdotool holds it for them too)
    "~": "asciitilde",
    "!": "exclam",
    "@": "at",
    "#": "numbersign",
    "$": "dollar",
    "%": "percent",
    "^": "asciicircum",
    "&": "ampersand",
    "*": "asterisk",
    "(": "parenleft",
    ")": "parenright",
    "_": "underscore",
    "+": "plus",
    "{": "braceleft",
    "}": "braceright",
    "|": "bar",
    ":": "colon",
    '"': "quotedbl",
    "<": "less",
    ">": "greater",
    "?": "question",
}
TYPED = {key.key: key for key in KEYS.values() if len(key.key) == 1}
TYPED |= {"\n": KEYS["Return"], "\r": KEYS["Return"], "\t": KEYS["Tab"]}
KEYSYMS = {key.key: name for name, key in KEYS.items()} | SHIFTED
KEYSYMS |= {key.key: name for key, _, name in MODIFIERS.values()}
"""DOM key -> X key name, so the page records the key names app.py records."""
BUTTONS = {"left": 1, "right": 2}  # the protocol's bitmask of held buttons
WHEEL = {"up": (0, -NOTCH), "down": (0, NOTCH), "left": (-NOTCH, 0), "right": (NOTCH, 0)}


def key_for(name: str) -> Key:
    """The key for an X key name from ``xdotool_keys``, or for one character to type."""
    if key := KEYS.get(name) or TYPED.get(name):
        return key
    if name.isascii() and name.isalnum():
        code = f"Digit{name}" if name.isdigit() else f"Key{name.upper()}"
        return Key(name, code, ord(name.upper()))
    return Key(name)  # any other character: typed as text


def find_chromium() -> str:
    for name in BINARIES:
        if path := shutil.which(name):
            return path
    raise DesktopError(
        "Chromium not found: install it (Debian/Ubuntu: sudo apt-get install chromium) "
        f"so that one of {', '.join(BINARIES)} is on PATH"
    )


def render_page(layout: dict[str, Any]) -> str:
    """The task page with its layout and the key names built in."""
    setup = json.dumps({"layout": layout, "keysyms": KEYSYMS, "notch": NOTCH})
    return PAGE.read_text().replace("__SETUP__", setup.replace("</", "<\\/"))


class Pipe:
    """The DevTools protocol on Chromium's ``--remote-debugging-pipe``: NUL-terminated JSON
    commands to the browser's fd 3, replies from its fd 4. A reader thread hands out the
    replies, so any event loop or thread may call (servers may start a session on one loop
    and drive it from another)."""

    def __init__(self, commands: int, replies: int) -> None:
        os.set_blocking(commands, False)  # a browser that stops reading fails the call
        self._commands = commands
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[str, Future[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(target=self._read, args=(replies,), daemon=True)
        self._reader.start()

    async def call(self, method: str, session: str = "", **params: Any) -> dict[str, Any]:
        """Send one command and wait for its result; ``DesktopError`` on error or timeout."""
        reply: Future[dict[str, Any]] = Future()
        message: dict[str, Any] = {"method": method, "params": params}
        if session:
            message["sessionId"] = session
        with self._lock:  # the reader hands out a reply only once it is registered
            if self._closed:
                raise DesktopError("the browser is not running")
            message["id"] = number = next(self._ids)
            self._write(json.dumps(message).encode() + b"\0")
            self._waiting[number] = method, reply
        try:
            return await asyncio.wait_for(asyncio.wrap_future(reply), CDP_TIMEOUT)
        except TimeoutError:
            raise DesktopError(
                f"the browser did not answer {method} in {CDP_TIMEOUT:g} s"
            ) from None
        finally:
            self._waiting.pop(number, None)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._commands, view) :]
        except BlockingIOError:
            raise DesktopError("the browser stopped reading commands") from None
        except BrokenPipeError:
            raise DesktopError("the browser has exited") from None

    def _read(self, replies: int) -> None:
        buffer = bytearray()
        try:
            with open(replies, "rb", buffering=0) as pipe:
                while chunk := pipe.read(1 << 16):
                    buffer += chunk
                    while (end := buffer.find(b"\0")) >= 0:
                        self._deliver(json.loads(buffer[:end]))
                        del buffer[: end + 1]
        finally:
            self.close()  # end of file: the browser has exited

    def _deliver(self, message: dict[str, Any]) -> None:
        with self._lock:
            method, reply = self._waiting.pop(message.get("id", -1), ("", None))
        if reply is None or not reply.set_running_or_notify_cancel():
            return  # an event, or a call that gave up waiting
        if error := message.get("error"):
            reply.set_exception(DesktopError(f"{method} failed: {error.get('message')}"))
        else:
            reply.set_result(message.get("result", {}))

    def close(self) -> None:
        """Stop sending (the browser takes that as a request to quit); fail waiting calls."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._commands)
            waiting, self._waiting = list(self._waiting.values()), {}
        for _, reply in waiting:
            if reply.set_running_or_notify_cancel():
                reply.set_exception(DesktopError("the browser has exited"))

    def join(self, timeout: float) -> None:
        self._reader.join(timeout)


class BrowserDesktop:
    """One headless Chromium showing the task page drawn from ``layout``."""

    def __init__(self, layout: dict[str, Any] | None = None) -> None:
        self.layout = layout  # a warm pool's desktop gets its task's layout when taken
        self.width, self.height = settings.WIDTH, settings.HEIGHT
        self.folder: Path | None = None
        self.browser: subprocess.Popen[bytes] | None = None
        self._pipe: Pipe | None = None
        self._page = ""  # the protocol session of the page
        self._buttons = 0  # mouse buttons held down

    @property
    def info(self) -> dict[str, Any]:
        pid = self.browser.pid if self.browser else None
        return {"backend": "browser", "pid": pid, "screen": [self.width, self.height]}

    async def warm_up(self) -> None:
        """Start Chromium on a blank page of the screen's size: what a warm pool keeps, so
        that ``start()`` only loads its task's page."""
        binary = find_chromium()
        self.folder = new_session_folder(settings.SESSION_ROOT, "desk-")
        await self._bounded(self._open(binary))

    async def start(self) -> None:
        assert self.layout is not None, "a desktop starts with its task's layout"
        if self.folder is None:
            await self.warm_up()
        await self._bounded(self._show(self.layout))

    async def _bounded(self, step: Coroutine[Any, Any, None]) -> None:
        """``step`` within START_TIMEOUT; on any failure close everything, saying why."""
        try:
            await asyncio.wait_for(step, settings.START_TIMEOUT)
        except BaseException as exc:
            log = self._log_tail()
            await self.close()
            if isinstance(exc, TimeoutError):
                raise DesktopError(f"the browser did not come up in time{log}") from None
            if isinstance(exc, DesktopError):
                raise DesktopError(f"{exc}{log}") from None
            raise

    async def _open(self, binary: str) -> None:
        self._pipe = pipe = await spawn(partial(self._spawn_browser, binary))
        target = (await pipe.call("Target.createTarget", url="about:blank"))["targetId"]
        attached = await pipe.call("Target.attachToTarget", targetId=target, flatten=True)
        self._page = attached["sessionId"]
        await self._call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        await self._call("Emulation.setFocusEmulationEnabled", enabled=True)

    async def _show(self, layout: dict[str, Any]) -> None:
        assert self.folder is not None
        page = self.folder / "task.html"
        page.write_text(render_page(layout))
        if error := (await self._call("Page.navigate", url=page.as_uri())).get("errorText"):
            raise DesktopError(f"the task page did not load: {error}")
        while not (await self.state()).get("ready"):  # noqa: ASYNC110 - polls the page
            await asyncio.sleep(0.02)

    def _spawn_browser(self, binary: str) -> Pipe:
        """Start Chromium with the protocol pipe on its fds 3 and 4; return our ends."""
        assert self.folder is not None
        to_browser, commands = os.pipe()
        replies, from_browser = os.pipe()

        def child() -> None:
            die_with_parent()
            # copy above 10 first, so that placing one end cannot overwrite the other
            ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
            for number, fd in zip((3, 4), ends, strict=True):
                os.dup2(fd, number)  # the copy is inheritable

        profile = self.folder / "profile"
        args = [binary, *FLAGS, f"--user-data-dir={profile}"]
        args.append(f"--window-size={self.width},{self.height}")
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root
        try:
            with open(self.folder / "browser.log", "wb") as log:
                self.browser = subprocess.Popen(
                    args,
                    cwd=self.folder,
                    env={**os.environ, **dict.fromkeys(HOMES, str(self.folder))},
                    close_fds=False,  # Popen would close fds 3 and 4; ours are all close-on-exec
                    start_new_session=True,
                    preexec_fn=child,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        except BaseException:
            os.close(commands)
            os.close(replies)
            raise
        finally:
            os.close(to_browser)
            os.close(from_browser)
        return Pipe(commands, replies)

    def _log_tail(self) -> str:
        return log_tail(self.folder, "browser.log")

    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
        if self._pipe is None:
            raise DesktopError("the desktop is not running")
        return await self._pipe.call(method, self._page, **params)

    async def state(self) -> dict[str, Any]:
        """The page's own record of what happened (empty until it is up)."""
        reply = await self._call(
            "Runtime.evaluate", expression="window.taskState", returnByValue=True
        )
        return reply["result"].get("value") or {}

    async def screenshot(self) -> bytes:
        """The whole screen as PNG."""
        shot = await self._call("Page.captureScreenshot", format="png", optimizeForSpeed=True)
        return base64.b64decode(shot["data"])

    async def act(self, action: ComputerArgs) -> None:
        """Perform one validated action (not screenshot or terminate)."""
        a = action
        match a.action:
            case "wait":
                await asyncio.sleep(a.duration or 0)
                return
            case "mouse_move":
                await self._mouse("mouseMoved", a.coordinate)
            case "left_click" | "right_click":
                await self._mouse("mouseMoved", a.coordinate)
                await self._click(a.coordinate, a.action.split("_")[0])
            case "double_click":
                await self._mouse("mouseMoved", a.coordinate)
                await self._click(a.coordinate, "left")
                await self._click(a.coordinate, "left", count=2)
            case "left_click_drag":
                await self._mouse("mouseMoved", a.start_coordinate)
                await self._mouse("mousePressed", a.start_coordinate, "left", 1)
                await self._mouse("mouseMoved", a.coordinate, "left")
                await self._mouse("mouseReleased", a.coordinate, "left", 1)
            case "scroll":
                dx, dy = WHEEL[a.scroll_direction or "down"]
                await self._mouse("mouseMoved", a.coordinate)
                for _ in range(a.scroll_amount or 1):  # one event per notch, as X sends them
                    await self._mouse("mouseWheel", a.coordinate, deltaX=dx, deltaY=dy)
            case "type":
                for char in a.text or "":
                    await self._press(key_for(char))
            case "key":
                for combo in xdotool_keys(a.text or ""):
                    await self._combo(combo)
        await asyncio.sleep(settings.SETTLE)

    async def _mouse(
        self, kind: str, point: list[int] | None, button: str = "none", count: int = 0, **wheel: int
    ) -> None:
        assert point is not None
        if kind == "mousePressed":
            self._buttons |= BUTTONS[button]
        elif kind == "mouseReleased":
            self._buttons &= ~BUTTONS[button]
        x, y = point
        await self._call(
            "Input.dispatchMouseEvent",
            type=kind,
            x=x,
            y=y,
            button=button,
            buttons=self._buttons,
            clickCount=count,
            **wheel,
        )

    async def _click(self, point: list[int] | None, button: str, count: int = 1) -> None:
        await self._mouse("mousePressed", point, button, count)
        await self._mouse("mouseReleased", point, button, count)

    async def _key(self, kind: str, key: Key, modifiers: int = 0, text: str = "") -> None:
        params: dict[str, Any] = {"key": key.key, "code": key.code, "modifiers": modifiers}
        params["windowsVirtualKeyCode"] = key.key_code
        if text:
            params |= {"text": text, "unmodifiedText": text}
        elif kind == "keyDown":
            kind = "rawKeyDown"  # a key that types nothing
        await self._call("Input.dispatchKeyEvent", type=kind, **params)

    async def _press(self, key: Key, modifiers: int = 0) -> None:
        shift, _, _ = MODIFIERS["shift"]
        if not modifiers & SHIFT and (key.key in SHIFTED or key.text.isupper()):
            await self._key("keyDown", shift, modifiers | SHIFT)
            await self._press(key, modifiers | SHIFT)
            await self._key("keyUp", shift, modifiers)
            return
        typing = not modifiers & ~SHIFT  # with ctrl, alt or super a key is a shortcut
        await self._key("keyDown", key, modifiers, key.text if typing else "")
        await self._key("keyUp", key, modifiers)

    async def _combo(self, combo: str) -> None:
        """Press one 'ctrl+shift+a'-style combination from ``xdotool_keys``."""
        *names, last = combo.split("+")
        held = 0
        for name in names:
            key, bit, _ = MODIFIERS[name]
            held |= bit
            await self._key("keyDown", key, held)
        key = key_for(last)
        if held & SHIFT and key.key.isalpha() and len(key.key) == 1:
            key = dataclasses.replace(key, key=key.key.upper())
        await self._press(key, held)
        for name in reversed(names):
            key, bit, _ = MODIFIERS[name]
            held &= ~bit
            await self._key("keyUp", key, held)

    async def close(self) -> None:
        """Stop the browser and its helpers; remove the session folder. Idempotent."""
        await asyncio.to_thread(self.teardown)

    def teardown(self) -> None:
        """``close()`` without an event loop (for sessions abandoned unclosed)."""
        pipe, self._pipe = self._pipe, None
        browser, self.browser = self.browser, None
        if pipe is not None:
            pipe.close()
        stop(browser)
        if pipe is not None:
            pipe.join(5)
        if self.folder is not None:
            folder, self.folder = self.folder, None
            shutil.rmtree(folder, ignore_errors=True)
