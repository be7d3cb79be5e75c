"""The small interface every desktop backend implements, the factory, and the warm pool."""

from __future__ import annotations

from typing import Any, Protocol

from ..sessions import WarmPool, hold
from . import settings
from .actions import ComputerArgs
from .browser import BrowserDesktop
from .display import LIMIT, X11Desktop
from .e2b import E2BDesktop


class Desktop(Protocol):
    layout: dict[str, Any] | None

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


def session_of(desktop: Desktop) -> str:
    """The id its session is held under (``sessions.hold``)."""
    return f"desktop-{id(desktop):x}"


async def _warm() -> Desktop:
    desktop: X11Desktop | BrowserDesktop = (
        BrowserDesktop() if settings.BACKEND == "browser" else X11Desktop()
    )
    hold(session_of(desktop), desktop.teardown)  # a pool member's until an episode takes it
    await desktop.warm_up()
    return desktop


WARM = WarmPool(
    settings.POOL_SIZE if settings.BACKEND in ("x11", "browser") else 0,  # e2b: started remotely
    _warm,
    lambda: LIMIT.limit - LIMIT.live,
)
"""Desktops started ahead of demand (``<PACKAGE>_POOL_SIZE``), each waiting for a task."""


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
