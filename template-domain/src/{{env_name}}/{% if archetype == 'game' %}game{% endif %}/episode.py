"""The Wordle episode and its one tool."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..core import Episode, Observation, StepResult, Task, ToolError, ToolSpec
from . import reward
from .rules import MAX_GUESSES, SOLVED, WORD_LENGTH, allowed, feedback


class GuessArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    word: str = Field(
        min_length=WORD_LENGTH,
        max_length=WORD_LENGTH,
        description=f"Your guess: one {WORD_LENGTH}-letter English word, e.g. CRANE.",
    )


TOOLS = (
    ToolSpec(
        name="guess",
        description=(
            f"Guess the hidden {WORD_LENGTH}-letter word. Returns one feedback letter per "
            "position: G = right letter, right spot; Y = in the word, another spot; "
            "X = not in the word."
        ),
        args=GuessArgs,
    ),
)


class WordleEpisode(Episode):
    tools = TOOLS
    max_steps = 2 * MAX_GUESSES  # the guesses, and as many rejected words (they cost no turn)

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self.answer: str = task.secret["answer"]
        self.guesses: list[str] = []
        self.patterns: list[str] = []

    async def reset(self) -> Observation:
        self.guesses.clear()
        self.patterns.clear()
        return Observation(self.task.prompt)

    @property
    def solved(self) -> bool:
        return SOLVED in self.patterns

    @property
    def done(self) -> bool:
        return self.solved or len(self.patterns) >= MAX_GUESSES

    @property
    def score(self) -> float:
        return reward.score(self.patterns)

    async def _apply(self, name: str, args: GuessArgs) -> StepResult:  # type: ignore[override]
        word = args.word.strip().lower()
        if not word.isascii() or not word.isalpha():
            raise ToolError(f"{args.word!r} must contain letters A-Z only. No turn was used.")
        if word not in allowed():
            raise ToolError(f"{word.upper()!r} is not in the word list. No turn was used.")
        pattern = feedback(word, self.answer)
        step_reward = reward.step_reward(self.patterns, pattern)
        self.guesses.append(word)
        self.patterns.append(pattern)
        turn = len(self.patterns)
        lines = [f"Guess {turn}/{MAX_GUESSES}: {word.upper()} -> {pattern}"]
        if self.solved:
            lines.append(f"Solved in {turn} guesses!")
        elif self.done:
            lines.append(f"Out of guesses. The word was {self.answer.upper()}.")
        else:
            lines.append(f"{MAX_GUESSES - turn} guesses left.")
        return StepResult(
            text="\n".join(lines),
            reward=step_reward,
            done=self.done,
            info={"turn": turn, "pattern": pattern, "solved": self.solved},
        )
