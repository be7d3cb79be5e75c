"""Wordle rules: word lists (package data) and letter feedback."""

from __future__ import annotations

from collections import Counter
from functools import cache
from importlib.resources import files

WORD_LENGTH = 5
MAX_GUESSES = 6
CORRECT, PRESENT, ABSENT = "G", "Y", "X"
SOLVED = CORRECT * WORD_LENGTH


@cache
def answers() -> tuple[str, ...]:
    """Words that can be the hidden word (common English words, lower case, sorted)."""
    return _load("answers.txt")


@cache
def allowed() -> frozenset[str]:
    """Every word accepted as a guess; a superset of ``answers()``."""
    return frozenset(_load("allowed.txt")) | frozenset(answers())


def _load(name: str) -> tuple[str, ...]:
    text = files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    return tuple(word for word in text.split() if word)


def feedback(guess: str, answer: str) -> str:
    """Per-letter feedback in two passes so repeated letters are scored like Wordle.

    Greens first; then each remaining letter is yellow only while unmatched copies of it
    are left in the answer. ``feedback("speed", "abide") == "XXYXY"``.
    """
    result = [ABSENT] * WORD_LENGTH
    unmatched: Counter[str] = Counter()
    for i, (g, a) in enumerate(zip(guess, answer, strict=True)):
        if g == a:
            result[i] = CORRECT
        else:
            unmatched[a] += 1
    for i, g in enumerate(guess):
        if result[i] != CORRECT and unmatched[g] > 0:
            result[i] = PRESENT
            unmatched[g] -= 1
    return "".join(result)
