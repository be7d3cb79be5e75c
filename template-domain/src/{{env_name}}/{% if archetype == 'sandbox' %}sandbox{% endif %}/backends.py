"""The small interface every code-execution backend implements, and the factory."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import Any, Protocol

from ..sessions import WarmPool
from . import settings
from .kernel import CellResult, LocalKernelSandbox
from .kernel_env import kernel_python


class CodeSandbox(Protocol):
    @property
    def info(self) -> dict[str, Any]: ...
    async def start(self) -> None: ...
    async def execute(self, code: str, time_limit: float) -> CellResult: ...
    async def write_file(self, relative: str, data: bytes) -> None: ...
    async def read_file(self, relative: str) -> bytes: ...
    async def close(self) -> None: ...


class E2BSandbox:
    """A remote E2B Code Interpreter sandbox (``pip install '<package>[e2b]'``, E2B_API_KEY)."""

    def __init__(self) -> None:
        self._sandbox: Any = None

    @property
    def info(self) -> dict[str, Any]:
        return {"backend": "e2b", "isolation": "e2b-microvm"}

    async def start(self) -> None:
        if not os.environ.get("E2B_API_KEY"):
            raise RuntimeError("the e2b backend needs E2B_API_KEY")
        from e2b_code_interpreter import AsyncSandbox  # optional extra, imported on use

        self._sandbox = await AsyncSandbox.create()

    async def execute(self, code: str, time_limit: float) -> CellResult:
        execution = await self._sandbox.run_code(code, timeout=time_limit)
        result = CellResult(
            stdout="".join(execution.logs.stdout),
            stderr="".join(execution.logs.stderr),
            text_results=[r.text for r in execution.results if r.text and not r.png],
            images=[base64.b64decode(r.png) for r in execution.results if r.png],
        )
        if execution.error is not None:
            result.error_name, result.error = execution.error.name, execution.error.value
        return result

    async def write_file(self, relative: str, data: bytes) -> None:
        await self._sandbox.files.write(relative, data)

    async def read_file(self, relative: str) -> bytes:
        return bytes(await self._sandbox.files.read(relative, format="bytes"))

    async def close(self) -> None:
        if self._sandbox is not None:
            sandbox, self._sandbox = self._sandbox, None
            await sandbox.kill()


class Pool:
    """Bounds live sandboxes per process (warm ones included), closes the ones left idle too
    long, and keeps ``warm`` local kernels started ahead of demand."""

    def __init__(self, limit: int, idle_ttl: float, warm: int = 0) -> None:
        self.limit, self.idle_ttl = limit, idle_ttl
        self.live: dict[int, tuple[CodeSandbox, float]] = {}
        self.warm = WarmPool(warm, _started_local, lambda: self.limit - len(self.live))
        # A timer, not a long-lived task: a loop that ends while it waits does not complain.
        self._timer: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def admit(self, sandbox: CodeSandbox) -> None:
        if len(self.live) >= self.limit:
            raise RuntimeError(
                f"the server already runs {self.limit} sandbox sessions; close one or retry later"
            )
        self.live[id(sandbox)] = (sandbox, float("inf"))  # not idle while it starts: touch() after
        self.warm.fill()  # replaces the member this session may have taken
        loop = asyncio.get_running_loop()
        if self._timer is None or self._timer[0] is not loop or self._timer[1].when() < loop.time():
            self._check_soon()

    def touch(self, sandbox: CodeSandbox) -> bool:
        """Mark a sandbox as used; False if the reaper already closed it."""
        if id(sandbox) not in self.live:
            return False
        self.live[id(sandbox)] = (sandbox, time.monotonic())
        return True

    def release(self, sandbox: CodeSandbox) -> None:
        self.live.pop(id(sandbox), None)

    def _check_soon(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop, loop.call_later(min(30.0, self.idle_ttl / 2), self._reap)

    def _reap(self) -> None:
        now = time.monotonic()
        for key, (sandbox, used) in list(self.live.items()):
            if now - used > self.idle_ttl:
                self.live.pop(key, None)
                task = asyncio.ensure_future(sandbox.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        if self.live:
            self._check_soon()


async def _local() -> LocalKernelSandbox:
    return LocalKernelSandbox(
        await asyncio.to_thread(kernel_python),  # builds the kernel venv on first use
        root=settings.SESSION_ROOT,
        isolation_mode=settings.ISOLATION,
        memory_mb=settings.MEMORY_MB,
        network=settings.NETWORK,
    )


async def _started_local() -> LocalKernelSandbox:
    sandbox = await _local()
    await sandbox.start()
    return sandbox


POOL = Pool(
    settings.MAX_SESSIONS,
    settings.IDLE_TTL,
    warm=settings.POOL_SIZE if settings.BACKEND == "local" else 0,  # e2b: started remotely
)


async def make_sandbox(backend: str | None = None) -> CodeSandbox:
    """The configured backend (``<PACKAGE>_SANDBOX_BACKEND``: local or e2b), not started, or a
    local kernel already started from the warm pool (``start()`` then returns at once)."""
    name = backend or settings.BACKEND
    if name == "local":
        return await POOL.warm.take() or await _local()
    if name == "e2b":
        return E2BSandbox()
    raise ValueError(f"unknown sandbox backend {name!r}; expected 'local' or 'e2b'")
