"""A scripted player that solves from the feedback text alone (it never sees the answer)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import cache
from typing import Any

from .rules import MAX_GUESSES, SOLVED, allowed, answers, feedback

FEEDBACK_LINE = re.compile(r"^Guess \d+/\d+: ([A-Z]{5}) -> ([GYX]{5})$", re.MULTILINE)
OPENER = "crate"
"""Best first guess for the bundled answer list by number of distinct feedback patterns."""
WIDE_SEARCH_LIMIT = 16
"""Below this many candidates, probe words outside the candidates too (costs CPU, saves turns)."""


def history(observations: Sequence[str]) -> list[tuple[str, str]]:
    """(guess, pattern) pairs in the order they appear in the observations."""
    return [(g.lower(), p) for g, p in FEEDBACK_LINE.findall("\n".join(observations))]


def next_action(observations: Sequence[str]) -> tuple[str, dict[str, Any]] | None:
    """The next tool call, or ``None`` when the game is over."""
    seen = history(observations)
    if len(seen) >= MAX_GUESSES or any(p == SOLVED for _, p in seen):
        return None
    if not seen:
        return "guess", {"word": OPENER}
    return "guess", {"word": _choose(tuple(seen))}


@cache
def _choose(seen: tuple[tuple[str, str], ...]) -> str:
    candidates = [w for w in answers() if all(feedback(g, w) == p for g, p in seen)]
    if not candidates:  # the hidden word is outside our list: fall back to every valid word
        candidates = sorted(w for w in allowed() if all(feedback(g, w) == p for g, p in seen))
    return best_guess(candidates, {g for g, _ in seen})


def best_guess(candidates: Sequence[str], tried: set[str]) -> str:
    """The guess that splits the candidates into the most feedback groups; candidates win ties."""
    if len(candidates) <= 2:
        return candidates[0]
    pool: Sequence[str] = candidates
    if len(candidates) <= WIDE_SEARCH_LIMIT:
        pool = [*candidates, *sorted(set(answers()) - set(candidates) - tried)]
    is_candidate = set(candidates)

    def quality(guess: str) -> tuple[int, int, bool]:
        groups = Counter(feedback(guess, answer) for answer in candidates)
        return len(groups), -max(groups.values()), guess in is_candidate

    return max(pool, key=quality)
