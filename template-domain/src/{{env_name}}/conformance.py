"""Framework-neutral conformance scenarios.

Each adapter wraps its own real client/server path in a ``Driver`` and runs every scenario in
``SCENARIOS``; each scenario plays the bare domain (``DomainDriver``) in lockstep and asserts
that the adapter shows the same observations, rewards and ends. Nothing here depends on what
the domain is: the scenarios read only ``SPEC`` (its oracle, bad and illegal calls, turn limit).

    @pytest.mark.parametrize("scenario", SCENARIOS)
    async def test_conformance(scenario, driver):
        await SCENARIOS[scenario](driver)
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from . import SPEC, Episode, StepResult, get_task, new_episode


@dataclass(frozen=True)
class Outcome:
    """What an adapter returned for one tool call, reduced to what every framework can show."""

    text: str
    reward: float
    done: bool
    error: bool

    @classmethod
    def of(cls, result: StepResult) -> Outcome:
        return cls(result.text, result.reward, result.done, result.error)


class Session(Protocol):
    async def call(self, name: str, arguments: Mapping[str, Any]) -> Outcome: ...
    async def close(self) -> None: ...


class Driver(Protocol):
    async def open(self, split: str, index: int) -> tuple[str, Session]:
        """Start an episode on a task; return the first observation's text and the session."""
        ...


class _DomainSession:
    def __init__(self, episode: Episode) -> None:
        self.episode = episode

    async def call(self, name: str, arguments: Mapping[str, Any]) -> Outcome:
        return Outcome.of(await self.episode.step(name, arguments))

    async def close(self) -> None:
        await self.episode.close()


class DomainDriver:
    """The reference: the domain package with no framework in between."""

    async def open(self, split: str, index: int) -> tuple[str, Session]:
        episode = new_episode(get_task(split, index))
        return (await episode.reset()).text, _DomainSession(episode)


class _Pair:
    """An adapter session and a reference session on the same task, stepped together."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.observations: list[str] = []
        self.total = 0.0
        self.done = False

    async def open(self, driver: Driver, split: str, index: int) -> None:
        text, self.session = await driver.open(split, index)
        ref_text, self.reference = await DomainDriver().open(split, index)
        assert text == ref_text, (
            f"{self.label}: first observation differs:\n{text!r}\n!=\n{ref_text!r}"
        )
        self.observations.append(text)

    async def call(self, name: str, arguments: Mapping[str, Any], *, exact: bool = True) -> Outcome:
        got = await self.session.call(name, arguments)
        want = await self.reference.call(name, arguments)
        where = f"{self.label}: {name}({dict(arguments)})"
        if exact:
            assert got == want, f"{where}: adapter gave {got}, domain gave {want}"
        else:  # bad arguments: frameworks may phrase their own validation errors
            assert got.error and want.error, f"{where}: expected an error, got {got}"
            assert got.reward == 0 and not got.done, f"{where}: an error must not score or end"
        self.total += got.reward
        self.done = got.done
        if not got.error:
            self.observations.append(got.text)
        return got

    async def oracle_step(self) -> bool:
        action = SPEC.oracle(self.observations)
        if action is None:
            return False
        await self.call(*action)
        return True

    async def finish(self) -> None:
        for _ in range(SPEC.episode.max_steps):
            if not await self.oracle_step():
                break
        assert self.done, f"{self.label}: the oracle stopped before the episode ended"
        reference: _DomainSession = self.reference  # type: ignore[assignment]
        assert math.isclose(self.total, reference.episode.score, abs_tol=1e-9), (
            f"{self.label}: rewards sum to {self.total}; the domain says {reference.episode.score}"
        )

    async def close(self) -> None:
        await self.session.close()
        await self.reference.close()


async def solve_with_oracle(driver: Driver) -> None:
    pair = _Pair("solve")
    await pair.open(driver, "test", 0)
    try:
        await pair.finish()
    finally:
        await pair.close()


async def illegal_move(driver: Driver) -> None:
    """Illegal moves answer with the domain's error and change nothing."""
    pair = _Pair("illegal move")
    await pair.open(driver, "test", 1)
    try:
        for name, arguments in SPEC.illegal_calls:
            outcome = await pair.call(name, arguments)
            assert outcome.error, f"illegal move {arguments} was accepted"
        await pair.finish()
    finally:
        await pair.close()


async def bad_arguments(driver: Driver) -> None:
    """Malformed calls give a readable error and leave the episode playable."""
    pair = _Pair("bad arguments")
    await pair.open(driver, "test", 2)
    try:
        for name, arguments in SPEC.bad_calls:
            outcome = await pair.call(name, arguments, exact=False)
            assert outcome.text.strip(), "an error must say what was wrong"
        await pair.finish()
    finally:
        await pair.close()


async def interleaved_sessions(driver: Driver) -> None:
    """Two sessions stepped alternately never see each other's state."""
    first, second = _Pair("session A"), _Pair("session B")
    await first.open(driver, "test", 3)
    await second.open(driver, "validation", 0)
    try:
        for _ in range(SPEC.episode.max_steps):
            moved = [await first.oracle_step(), await second.oracle_step()]
            if not any(moved):
                break
        await first.finish()
        await second.finish()
    finally:
        await first.close()
        await second.close()


async def turn_limit(driver: Driver) -> None:
    """Illegal moves count towards ``max_steps`` like any well-formed call: the call that
    reaches it ends the episode, and the server refuses the next one. (A domain that declares
    no illegal call has nothing to play here.)"""
    refused = [*SPEC.illegal_calls]
    limit = SPEC.episode.max_steps
    if not refused:
        return
    pair = _Pair("turn limit")
    await pair.open(driver, "test", 4)
    try:
        for n in range(1, limit + 1):
            outcome = await pair.call(*refused[n % len(refused)])
            assert outcome.done == (n == limit), f"{pair.label}: call {n} of {limit}: {outcome}"
        after = await pair.session.call(*refused[0])  # adapters may word this refusal
        assert after.error and not after.reward, f"{pair.label}: after the limit: {after}"
    finally:
        await pair.close()


async def close_twice(driver: Driver) -> None:
    """Closing is idempotent, also straight after a step."""
    pair = _Pair("close twice")
    await pair.open(driver, "train", 0)
    await pair.oracle_step()
    await pair.close()
    await pair.session.close()


SCENARIOS: dict[str, Callable[[Driver], Awaitable[None]]] = {
    fn.__name__: fn
    for fn in (
        solve_with_oracle,
        illegal_move,
        bad_arguments,
        interleaved_sessions,
        turn_limit,
        close_twice,
    )
}


@dataclass(frozen=True)
class Transcript:
    """The oracle played on the bare domain: what an adapter must reproduce for the task."""

    observations: tuple[str, ...]
    rewards: tuple[float, ...]
    images: tuple[int, ...]
    """How many images each tool result carried."""
    score: float
    done: bool


async def play_oracle(first: str, call: Callable[..., Awaitable[Any]]) -> list[Any]:
    """Play ``SPEC.oracle`` from the first observation through ``call``: every result."""
    observations, results = [first], []
    for _ in range(SPEC.episode.max_steps):
        if (action := SPEC.oracle(observations)) is None:
            break
        result = await call(*action)
        observations.append(result.text)
        results.append(result)
    return results


async def oracle_transcript(split: str, index: int) -> Transcript:
    """Play ``SPEC.oracle`` on task ``index`` of ``split`` with no framework in between."""
    episode = new_episode(get_task(split, index))
    try:
        first = (await episode.reset()).text
        results: list[StepResult] = await play_oracle(first, episode.step)
        return Transcript(
            (first, *(r.text for r in results)),
            tuple(r.reward for r in results),
            tuple(len(r.images) for r in results),
            episode.score,
            episode.done,
        )
    finally:
        await episode.close()


async def concurrent_group(driver: Driver, size: int = 8, split: str = "test") -> None:
    """A GRPO group: ``size`` sessions on one task at once, as trainers open them (one client
    per generation), each played by the oracle; none is refused and each scores as the bare
    domain does."""
    expected = await oracle_transcript(split, 0)

    async def play() -> tuple[float, ...]:
        first, session = await driver.open(split, 0)
        try:
            return tuple(outcome.reward for outcome in await play_oracle(first, session.call))
        finally:
            await session.close()

    played = await asyncio.gather(*(play() for _ in range(size)), return_exceptions=True)
    failed = [result for result in played if isinstance(result, BaseException)]
    assert not failed, f"{len(failed)} of {size} concurrent sessions failed: {failed[0]!r}"
    assert all(rewards == expected.rewards for rewards in played), (
        f"per-step rewards {played} != the domain's {expected.rewards}"
    )
