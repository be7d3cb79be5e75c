"""Deterministic tasks: the answer pool is partitioned by hash into disjoint splits, and each
split's order is shuffled with a string-seeded RNG (never the global one)."""

from __future__ import annotations

import hashlib
import random
from functools import cache

from ..core import SPLITS, Split, Task
from .rules import MAX_GUESSES, WORD_LENGTH, answers

SEED = "wordle-v1"
"""Changing this reshuffles every split; bump it only with a new dataset version."""

PROMPT = f"""\
Let's play Wordle. Find the hidden {WORD_LENGTH}-letter English word in at most {MAX_GUESSES} \
guesses, using the `guess` tool once per guess.

After each guess you get one feedback letter per position:
  G = right letter in the right spot
  Y = the letter is in the word, but in another spot
  X = the letter is not in the word (or not that many times)
For example `CRANE -> XYGXX` means A is correct, R is elsewhere, and C, N, E are absent.

Guesses must be real {WORD_LENGTH}-letter words; an invalid guess is rejected and costs no turn.
Stop once the word is found or the guesses run out."""


def split_of(word: str) -> Split:
    """80% train, 10% validation, 10% test, stable across releases for a given word."""
    bucket = int(hashlib.sha256(word.encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else "validation" if bucket == 8 else "test"


@cache
def load_tasks(split: Split) -> tuple[Task, ...]:
    """All tasks of a split, in a fixed seeded order."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    pool = sorted(word for word in answers() if split_of(word) == split)
    random.Random(f"{SEED}:{split}").shuffle(pool)
    return tuple(
        Task(
            id=f"{split}-{index:04d}",
            split=split,
            index=index,
            prompt=PROMPT,
            public={"word_length": WORD_LENGTH, "max_guesses": MAX_GUESSES},
            secret={"answer": word},
        )
        for index, word in enumerate(pool)
    )
