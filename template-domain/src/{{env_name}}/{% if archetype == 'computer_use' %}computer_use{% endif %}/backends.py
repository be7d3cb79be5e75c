"""The small interface every desktop backend implements, and the factory."""

from __future__ import annotations

from typing import Any, Protocol

from . import settings
from .actions import ComputerArgs
from .browser import BrowserDesktop
from .display import X11Desktop
from .e2b import E2BDesktop


class Desktop(Protocol):
    @property
    def info(self) -> dict[str, Any]: ...
    async def start(self) -> None: ...
    async def screenshot(self) -> bytes: ...
    async def act(self, action: ComputerArgs) -> None: ...
    async def state(self) -> dict[str, Any]: ...
    async def close(self) -> None: ...
    def teardown(self) -> None:
        """``close()`` without an event loop: stop everything, block until done."""
        ...


def make_desktop(layout: dict[str, Any], backend: str | None = None) -> Desktop:
    """The configured backend (``<PACKAGE>_DESKTOP_BACKEND``), not started."""
    name = backend or settings.BACKEND
    if name == "x11":
        return X11Desktop(layout)
    if name == "browser":
        return BrowserDesktop(layout)
    if name == "e2b":
        return E2BDesktop(layout)
    raise ValueError(
        f"unknown desktop backend {name!r}; this environment offers 'x11', 'browser' and 'e2b'"
    )
