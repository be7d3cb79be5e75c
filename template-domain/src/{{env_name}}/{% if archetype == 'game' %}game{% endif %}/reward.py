"""The one place rewards come from.

The episode score is a potential over the feedback seen so far: 1.0 once the word is found,
otherwise a small partial credit for the most green letters in any one guess. Each step's
reward is the change in that potential, so the per-call rewards (ORS, OpenEnv) always sum
to the episode score that post-episode graders (NeMo Gym ``/verify``, Verifiers) compute.
"""

from __future__ import annotations

from collections.abc import Sequence

from .rules import CORRECT, SOLVED, WORD_LENGTH

PARTIAL_CREDIT = 0.2
"""Most a failed game can earn (reached only with four greens in one guess, scaled by 5)."""


def score(patterns: Sequence[str]) -> float:
    """Episode score for the feedback patterns of the valid guesses made so far."""
    if SOLVED in patterns:
        return 1.0
    best = max((p.count(CORRECT) for p in patterns), default=0)
    return round(PARTIAL_CREDIT * best / WORD_LENGTH, 6)


def step_reward(before: Sequence[str], pattern: str) -> float:
    """Reward for the guess that produced ``pattern`` after the patterns ``before``."""
    return round(score([*before, pattern]) - score(before), 6)
