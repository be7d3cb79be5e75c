"""The sandbox episode and its tools: run code, run a shell command, read and write files in
the session folder, submit an answer. Graded from the submitted answer, never the transcript."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..core import Episode, Observation, StepResult, Task, ToolError, ToolSpec
from . import settings
from .backends import POOL, CodeSandbox, make_sandbox
from .kernel import describe
from .reward import grade
from .tasks import spec_of

MAX_FILE_BYTES = 1 << 20


def reason(exc: Exception) -> str:
    """Why a file operation failed, without host paths."""
    return (exc.strerror or type(exc).__name__).lower() if isinstance(exc, OSError) else str(exc)


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunCodeArgs(Args):
    code: str = Field(min_length=1, max_length=100_000, description="Python code to run.")


class RunShellArgs(Args):
    command: str = Field(
        min_length=1, max_length=10_000, description="A shell command, run in the session folder."
    )


class ReadFileArgs(Args):
    path: str = Field(
        min_length=1, max_length=500, description="Path relative to the session folder."
    )


class WriteFileArgs(ReadFileArgs):
    content: str = Field(max_length=MAX_FILE_BYTES, description="Text to write (UTF-8).")


class SubmitArgs(Args):
    answer: str = Field(min_length=1, max_length=1000, description="Your final answer only.")


TOOLS = (
    ToolSpec(
        "run_code",
        "Run Python in the session's Jupyter kernel (state persists between calls). Returns "
        "stdout, stderr, results, errors; figures come back as PNG images.",
        RunCodeArgs,
    ),
    ToolSpec("run_shell", "Run a shell command in the session folder.", RunShellArgs),
    ToolSpec("read_file", "Read a text file from the session folder.", ReadFileArgs),
    ToolSpec("write_file", "Write a text file in the session folder.", WriteFileArgs),
    ToolSpec("submit", "Submit your final answer. This ends the episode.", SubmitArgs),
)

SHELL = (
    "(lambda r: (print(r.stdout, end=''), print(r.stderr, end='', file=__import__('sys').stderr),"
    " print(f'[exit code {{r.returncode}}]')))(__import__('subprocess').run({command!r},"
    " shell=True, capture_output=True, text=True, timeout={timeout}));"
)


class SandboxEpisode(Episode):
    tools = TOOLS
    max_steps = settings.MAX_STEPS
    returns_images = True  # figures a cell draws
    holds_resources = True  # a kernel process and a session folder

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self.sandbox: CodeSandbox | None = None
        self.submitted: str | None = None
        self.result = 0.0

    async def reset(self) -> Observation:
        await self._release()
        self.submitted, self.result = None, 0.0
        sandbox = await make_sandbox()
        POOL.admit(sandbox)  # refuses beyond MAX_SESSIONS before anything starts
        self.sandbox = sandbox
        try:
            await sandbox.start()
            for name, body in spec_of(self.task).files.items():
                await sandbox.write_file(name, body.encode())
            POOL.touch(sandbox)  # started: idle from now on
        except BaseException:
            await self._release()
            raise
        return Observation(self.task.prompt)

    @property
    def info(self) -> dict[str, object]:
        return self.sandbox.info if self.sandbox is not None else {}

    @property
    def done(self) -> bool:
        return self.submitted is not None

    @property
    def score(self) -> float:
        return self.result

    async def _apply(self, name: str, args: BaseModel) -> StepResult:
        sandbox = self.sandbox
        if sandbox is None or not POOL.touch(sandbox):
            raise ToolError("The sandbox session has ended (closed or idle too long).")
        if isinstance(args, SubmitArgs):
            self.submitted = args.answer
            self.result = grade(self.task, args.answer)
            verdict = "correct" if self.result == 1.0 else "not correct"
            return StepResult(f"Submitted {args.answer!r}: {verdict}.", self.result, True)
        images: tuple[bytes, ...] = ()
        if isinstance(args, RunCodeArgs | RunShellArgs):
            code = (
                args.code
                if isinstance(args, RunCodeArgs)
                else SHELL.format(command=args.command, timeout=max(1.0, settings.CELL_TIMEOUT - 1))
            )
            cell = await sandbox.execute(code, settings.CELL_TIMEOUT)
            text, images = describe(cell, settings.OUTPUT_LIMIT), tuple(cell.images[:4])
        elif isinstance(args, WriteFileArgs):
            try:
                await sandbox.write_file(args.path, args.content.encode())
            except (ValueError, OSError) as exc:
                raise ToolError(f"Cannot write {args.path!r}: {reason(exc)}.") from None
            text = f"Wrote {len(args.content)} characters to {args.path}."
        else:
            text = await self._read(sandbox, args.path)  # type: ignore[attr-defined]
        POOL.touch(sandbox)  # a long cell is not idleness
        return StepResult(text, 0.0, False, images=images, info=self.info)

    async def _read(self, sandbox: CodeSandbox, path: str) -> str:
        try:
            data = await sandbox.read_file(path)
        except (ValueError, OSError) as exc:
            raise ToolError(f"Cannot read {path!r}: {reason(exc)}.") from None
        text = data[: settings.OUTPUT_LIMIT].decode("utf-8", errors="replace")
        cut = len(data) - settings.OUTPUT_LIMIT
        return text + (f"\n... [{cut} more bytes cut]" if cut > 0 else "")

    async def _release(self) -> None:
        if self.sandbox is not None:
            sandbox, self.sandbox = self.sandbox, None
            POOL.release(sandbox)
            await sandbox.close()

    async def close(self) -> None:
        await self._release()
        await super().close()
