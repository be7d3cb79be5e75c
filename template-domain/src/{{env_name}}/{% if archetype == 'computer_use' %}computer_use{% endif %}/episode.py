"""The computer-use episode: one desktop per session, Anthropic's action set as one tool.

Every action returns a screenshot. ``terminate`` (or running out of actions) ends the episode,
which is then graded from the task app's recorded state; the agent's ``status`` is only noted.
"""

from __future__ import annotations

from pydantic import BaseModel

from ..core import Episode, Observation, StepResult, Task, ToolError, ToolSpec
from ..sessions import hold, release
from . import settings
from .actions import ComputerArgs
from .backends import WARM, Desktop, make_desktop, session_of
from .display import LIMIT, DesktopError
from .reward import grade

TOOLS = (
    ToolSpec(
        "computer",
        f"Use the computer: a {settings.WIDTH}x{settings.HEIGHT} screen with a mouse and "
        "keyboard. Actions: screenshot, left_click, right_click, double_click, mouse_move "
        "(coordinate), left_click_drag (start_coordinate, coordinate), scroll (coordinate, "
        "scroll_direction, scroll_amount), type (text), key (text, e.g. 'Return' or 'ctrl+a'), "
        "wait (duration), terminate (status). Returns a screenshot after every action.",
        ComputerArgs,
    ),
)


class DesktopEpisode(Episode):
    tools = TOOLS
    max_steps = settings.MAX_STEPS
    returns_images = True  # a screenshot after every action
    holds_resources = True  # an X server and the task app

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self.desktop: Desktop | None = None
        self.ended = False
        self.result = 0.0
        self.session_id = ""  # its desktop's, once it has one (backends.session_of)

    async def reset(self) -> Observation:
        await self._release()
        self.ended, self.result = False, 0.0
        layout = self.task.secret["layout"]
        LIMIT.admit()  # refuses beyond MAX_SESSIONS; _release() gives the slot back
        try:  # a warm desktop waiting for a task, else a new one (refuses an unknown backend)
            desktop = await WARM.take() or make_desktop(layout)
        except BaseException:
            LIMIT.release()
            raise
        WARM.fill()  # replaces the member this session may have taken
        desktop.layout, self.desktop, self.session_id = layout, desktop, session_of(desktop)
        hold(self.session_id, desktop.teardown)  # close() releases it, whatever start() reached
        try:
            await self.desktop.start()
            screen = await self.desktop.screenshot()
        except BaseException:
            await self._release()
            raise
        return Observation(self.task.prompt, (screen,))

    @property
    def info(self) -> dict[str, object]:
        return {**self.desktop.info, "calls": self.calls} if self.desktop else {}

    @property
    def done(self) -> bool:
        return self.ended

    @property
    def score(self) -> float:
        return self.result

    async def _apply(self, name: str, args: BaseModel) -> StepResult:
        assert isinstance(args, ComputerArgs)
        args.check()
        desktop = self.desktop
        if desktop is None:
            raise ToolError("The desktop session has ended.")
        if args.action == "terminate":
            return StepResult(*await self._end(f"You ended the episode ({args.status})."), True)
        try:
            if args.action != "screenshot":
                await desktop.act(args)
            screen = await desktop.screenshot()
        except DesktopError as exc:
            raise ToolError(f"The action failed: {exc}.") from None
        return StepResult(args.describe(), images=(screen,), info=self.info)

    async def _out_of_calls(self) -> tuple[str, float]:
        return await self._end("")

    async def _end(self, text: str) -> tuple[str, float]:
        """End the episode and grade it from the app's state: the final text and reward."""
        assert self.desktop is not None
        self.ended = True
        self.result = grade(self.task, await self.desktop.state())
        verdict = "solved" if self.result == 1.0 else "not solved"
        return f"{text} The episode is over: the task is {verdict}.".lstrip(), self.result

    async def _release(self) -> None:
        if self.desktop is not None:
            desktop, self.desktop = self.desktop, None
            LIMIT.release()
            try:
                await desktop.close()
            finally:
                release(self.session_id)

    async def close(self) -> None:
        await self._release()
        await super().close()
