"""A second game, written only against the domain contract: guess a hidden number.

The template's tests swap it in for the reference domain (``nox -s swapped``) and run every
adapter's suite unchanged. Each reply also carries a small PNG (the range still open), so the
image paths of every adapter are exercised by a domain other than the reference ones.
"""

from __future__ import annotations

import hashlib
import random
import re
import struct
import zlib
from collections.abc import Sequence
from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from ..core import (
    SPLITS,
    EnvSpec,
    Episode,
    Observation,
    Split,
    StepResult,
    Task,
    ToolError,
    ToolSpec,
)

LOW, HIGH = 1, 1000
MAX_GUESSES = 10
FEEDBACK = re.compile(r"^Guess \d+: (\d+) is too (low|high)\.$", re.MULTILINE)


class GuessArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int = Field(ge=-(10**6), le=10**6, description="Your guess: a whole number.")


TOOLS = (
    ToolSpec(
        name="guess",
        description="Guess the hidden number. Answers 'too low', 'too high' or 'right'.",
        args=GuessArgs,
    ),
)


def png(low: int, high: int) -> bytes:
    """A 100x1 grey-scale strip, white where the hidden number may still be."""
    row = bytes(255 if low <= LOW + i * (HIGH - LOW) // 99 <= high else 0 for i in range(100))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 100, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" + row))
        + chunk(b"IEND", b"")
    )


class GuessEpisode(Episode):
    tools = TOOLS
    max_steps = MAX_GUESSES + 5  # room for rejected guesses (each counts towards it)
    returns_images = True

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self.number: int = task.secret["number"]
        self.guesses: list[int] = []

    async def reset(self) -> Observation:
        self.guesses.clear()
        return Observation(self.task.prompt, images=(png(LOW, HIGH),))

    @property
    def done(self) -> bool:
        return self.number in self.guesses or len(self.guesses) >= MAX_GUESSES

    @property
    def score(self) -> float:
        return 1.0 if self.number in self.guesses else 0.0

    async def _apply(self, name: str, args: GuessArgs) -> StepResult:  # type: ignore[override]
        if not LOW <= args.number <= HIGH:
            raise ToolError(f"{args.number} is outside {LOW}-{HIGH}. No guess was used.")
        before = self.score
        self.guesses.append(args.number)
        n = len(self.guesses)
        if args.number == self.number:
            text = f"Guess {n}: {args.number} is right!"
        else:
            text = (
                f"Guess {n}: {args.number} is too {'low' if args.number < self.number else 'high'}."
            )
        low = max([LOW, *(g + 1 for g in self.guesses if g < self.number)])
        high = min([HIGH, *(g - 1 for g in self.guesses if g > self.number)])
        return StepResult(text, self.score - before, self.done, images=(png(low, high),))


def split_of(number: int) -> Split:
    bucket = int(hashlib.sha256(str(number).encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else "validation" if bucket == 8 else "test"


@cache
def load_tasks(split: Split) -> tuple[Task, ...]:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    pool = [n for n in range(LOW + 1, HIGH) if split_of(n) == split]
    random.Random(f"number-guess:{split}").shuffle(pool)
    prompt = (
        f"I am thinking of a whole number from {LOW} to {HIGH}. Find it with the `guess` tool "
        f"in at most {MAX_GUESSES} guesses; after each guess I say if it is too low or too high."
    )
    return tuple(
        Task(f"{split}-{i:04d}", split, i, prompt, {"low": LOW, "high": HIGH}, {"number": n})
        for i, n in enumerate(pool)
    )


def next_action(observations: Sequence[str]) -> tuple[str, dict[str, int]] | None:
    """Bisect the range the feedback leaves open."""
    text = "\n".join(observations)
    if "is right!" in text or len(FEEDBACK.findall(text)) >= MAX_GUESSES:
        return None
    low, high = LOW, HIGH
    for number, direction in FEEDBACK.findall(text):
        if direction == "low":
            low = max(low, int(number) + 1)
        else:
            high = min(high, int(number) - 1)
    return "guess", {"number": (low + high) // 2}


SPEC = EnvSpec(
    episode=GuessEpisode,
    load_tasks=load_tasks,
    oracle=next_action,
    illegal_calls=[("guess", {"number": 0}), ("guess", {"number": HIGH + 1})],
    bad_calls=[
        ("guess", {"number": "five"}),
        ("guess", {"number": 5, "hint": True}),
        ("guess", {}),
        ("guess", {"number": 10**9}),
        ("ask", {"question": "is it even?"}),
    ],
)

__all__ = ["SPEC"]
