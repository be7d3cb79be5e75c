"""Bad input generated from the tools' JSON schemas, and the checks every adapter's fuzz test
applies to what its real server answers. Framework-free: each adapter suite wraps one session of
its server in a ``FuzzSession`` and calls ``fuzz_episode`` and ``concurrent_calls``, and
``expired_session`` against a server started with a short idle limit where the framework lets
one be set (ORS's reaper closes sessions idle for 900 s, a fixed value; what it closes then
answers as a deleted session does, which ``fuzz_episode`` covers).

Every bad request must be refused (a 4xx or an error result) with a message that names the
problem, carries no stack trace and no secret of the task; the server must then answer good
calls, and the episode must play on exactly as the oracle's transcript says.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import SPEC, get_task, new_episode
from .conformance import oracle_transcript, play_oracle
from .contract import secret_values, shows
from .core import ToolError, ToolSpec

BIG = 2**20 + 1
"""Characters in the oversized strings: just over 1 MiB."""
MINIMUM = 200
"""Bad tool calls in the corpus at least: seeded random garbage tops up the structured cases."""
STACK_TRACE = ("Traceback (most recent call last)", 'File "/')
FIXED_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    -(2**63),
    2**64,
    1e308,
    "",
    " ",
    "\x00",
    "null",
    "{}",
    "\u202e\U0001f600",
    "x" * 10_000,
    [],
    [None],
    [1, 2, 3],
    ["a", "b"],
    {},
    {"a": 1},
    {"$ref": "#"},
)


def nested(depth: int, leaf: Any = 0) -> Any:
    """``[[[...leaf...]]]`` and ``{"k": {"k": ...}}`` alternating, ``depth`` levels deep."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def garbage(rng: random.Random, depth: int = 3) -> Any:
    """A random JSON value: scalars of every type, odd strings, nested lists and objects."""
    kind = rng.randrange(8 if depth else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-(10**12), 10**12)
    if kind == 3:
        return rng.uniform(-1e9, 1e9)
    if kind in (4, 5):
        alphabet = "aZ09 _-./\\\"'{}[]<>%$\n\t\x00\x7féß漢\U0001f600"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
    if kind == 6:
        return [garbage(rng, depth - 1) for _ in range(rng.randrange(4))]
    return {f"k{rng.randrange(99)}": garbage(rng, depth - 1) for _ in range(rng.randrange(4))}


def example(schema: Mapping[str, Any]) -> Any:
    """A plausible value for a JSON schema (the base a bad call changes one thing of)."""
    if "enum" in schema:
        return schema["enum"][0]
    for option in schema.get("anyOf", ()):
        if option.get("type") != "null":
            return example(option)
    kind = schema.get("type")
    if kind == "string":
        return "a" * max(1, schema.get("minLength", 1))
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
    if kind == "boolean":
        return False
    if kind == "array":
        return [example(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    return {}


def refused(spec: ToolSpec, arguments: Any) -> bool:
    """Whether the domain refuses these raw arguments before any rule runs."""
    try:
        spec.parse(arguments)
    except ToolError:
        return True
    return False


def base_arguments(spec: ToolSpec) -> dict[str, Any]:
    """Valid arguments for ``spec`` if one can be found (from the schema or the declared
    illegal calls), else ``{}``: each bad call then differs from it in one place."""
    schema = spec.parameters()
    props = schema.get("properties", {})
    built = {key: example(props[key]) for key in schema.get("required", ())}
    for candidate in [built, *(args for name, args in SPEC.illegal_calls if name == spec.name)]:
        if not refused(spec, candidate):
            return dict(candidate)
    return built


@dataclass(frozen=True)
class BadCall:
    label: str
    name: str
    arguments: Any
    """What goes on the wire as the arguments: not always an object."""


def structured(spec: ToolSpec) -> Iterator[BadCall]:
    """Wrong types for each property, missing required keys, extra keys, null, nested garbage,
    oversized strings and arguments that are not an object."""
    schema = spec.parameters()
    props: dict[str, Any] = schema.get("properties", {})
    base = base_arguments(spec)
    for arguments in (None, [], [base], "not json {", '"a string"', "[]", 5, True, nested(64)):
        yield BadCall(f"arguments {json.dumps(arguments)[:40]}", spec.name, arguments)
    for key in schema.get("required", ()):
        yield BadCall(f"missing {key}", spec.name, {k: v for k, v in base.items() if k != key})
    for extra in ("unexpected", "__proto__", "x" * 1000, ""):
        yield BadCall(f"extra key {extra[:20]!r}", spec.name, {**base, extra: 1})
    yield BadCall("extra key with 1 MiB value", spec.name, {**base, "pad": "x" * BIG})
    for key in props:
        for value in (*FIXED_VALUES, nested(32), "x" * BIG):
            yield BadCall(f"{key}={json.dumps(value)[:30]}", spec.name, {**base, key: value})


def unknown_tools() -> Iterator[BadCall]:
    known = {spec.name for spec in SPEC.tools}
    first = SPEC.tools[0].name
    names = ["no_such_tool", first.upper(), f"{first}_", f"../{first}", "x" * 1000, "__init__"]
    for name in names:
        if name not in known:
            yield BadCall(f"unknown tool {name[:20]!r}", name, base_arguments(SPEC.tools[0]))


def bad_calls(minimum: int = MINIMUM) -> list[BadCall]:
    """The corpus: structured cases for every tool, then seeded random garbage (a property set
    to a random value, random extra keys) until there are ``minimum``. Only calls the domain
    refuses are kept, so every one must be refused by every adapter too."""
    calls = [*unknown_tools()]
    for spec in SPEC.tools:
        calls += [c for c in structured(spec) if refused(spec, c.arguments)]
    rng = random.Random("fuzz")
    for n in range(100 * minimum):
        if len(calls) >= minimum:
            break
        spec = SPEC.tools[n % len(SPEC.tools)]
        arguments = base_arguments(spec)
        keys = [*spec.parameters().get("properties", {}), f"junk{rng.randrange(9)}"]
        for key in rng.sample(keys, k=rng.randint(1, len(keys))):
            arguments[key] = garbage(rng)
        if refused(spec, arguments):
            calls.append(BadCall(f"random #{n}", spec.name, arguments))
    return calls


@dataclass(frozen=True)
class Reply:
    """A server's answer to one request, as far as the checks need it."""

    text: str
    error: bool
    """Refused: a 4xx status, an error result or an error frame."""
    reward: float = 0.0
    done: bool = False
    status: int = 200
    """The HTTP status (200 for an answer inside an open connection or a stream)."""


Send = Callable[[], Awaitable[Reply]]


class FuzzSession(Protocol):
    """One session on an adapter's real server."""

    async def call(self, name: str, arguments: Any) -> Reply: ...

    def garbage(self) -> Iterable[tuple[str, Send]]:
        """Bad requests below the tool level on this open session (non-JSON bodies, ...)."""
        ...

    def stale(self) -> Iterable[tuple[str, Send]]:
        """Requests on this session once closed, and on sessions that never existed."""
        ...

    async def close(self) -> None: ...


Opener = Callable[[str, int], Awaitable[tuple[str, FuzzSession]]]
"""Open a session on task ``index`` of ``split``: the first observation's text, the session."""


@dataclass
class Tally:
    """What the server answered to the bad requests of one fuzz test."""

    label: str
    secrets: list[str] = field(default_factory=list)
    sent: int = 0
    server_errors: int = 0
    crashes: int = 0
    state_changes: int = 0
    problems: list[str] = field(default_factory=list)

    async def send(self, what: str, request: Send, over: bool = False) -> Reply | None:
        """Send one bad request and judge the answer (``over``: the episode has ended)."""
        self.sent += 1
        try:
            reply = await request()
        except Exception as exc:  # the client lost the server: a crash, whatever the type
            self.crashes += 1
            self.problems.append(f"{what}: the request failed with {exc!r}"[:300])
            return None
        if reply.status >= 500:
            self.server_errors += 1
        if problem := self.judge(reply, over):
            self.problems.append(f"{what}: {problem}: {reply.text[:200]!r}")
        return reply

    def judge(self, reply: Reply, over: bool = False) -> str | None:
        lowered = reply.text.lower()
        if reply.status >= 500:
            return f"server error {reply.status}"
        if not reply.error:
            return "accepted"
        if reply.reward or (reply.done and not over):
            return "refused, but it scored or ended the episode"
        if not reply.text.strip():
            return "refused without a message"
        if any(marker in reply.text for marker in STACK_TRACE):
            return "the message shows a stack trace"
        if leaked := [s for s in self.secrets if shows(lowered, s.lower())]:
            return f"the message shows the task's secret {leaked[0]!r}"
        return None

    def summary(self) -> str:
        state = "state unchanged" if not self.state_changes else "STATE CHANGED"
        return (
            f"fuzz {self.label}: {self.sent} bad requests, {self.server_errors} server errors, "
            f"{self.crashes} crashes, {state}"
        )

    def check_log(self, log: str) -> None:
        """The server's own output: bad input is no reason to log a stack trace."""
        if STACK_TRACE[0] in log:
            start = log.index(STACK_TRACE[0])
            self.problems.append(f"the server logged a stack trace: {log[start : start + 1500]}")

    def check(self) -> str:
        """Fail naming the first problems; return the summary line."""
        if self.problems or self.server_errors or self.crashes or self.state_changes:
            shown = "\n".join(self.problems[:20])
            raise AssertionError(f"{self.summary()}\n{shown}")
        return self.summary()


async def fuzz_episode(
    label: str, open_session: Opener, split: str = "test", index: int = 0
) -> Tally:
    """One oracle step, then the whole corpus and the session's own garbage, then the rest of the
    oracle's game, which must match ``oracle_transcript`` step for step; calls after the end and
    after closing must be refused too."""
    expected = await oracle_transcript(split, index)
    tally = Tally(label, list(secret_values(dict(get_task(split, index).secret))))
    first, session = await open_session(split, index)
    observations, rewards, done = [first], [], False
    try:

        async def oracle_step() -> bool:
            nonlocal done
            if done or len(rewards) >= SPEC.episode.max_steps:
                return False
            if (action := SPEC.oracle(observations)) is None:
                return False
            reply = await session.call(*action)
            observations.append(reply.text)
            rewards.append(reply.reward)
            done = reply.done
            return True

        await oracle_step()  # the bad requests meet an episode in progress
        for call in bad_calls():
            await tally.send(call.label, lambda c=call: session.call(c.name, c.arguments))
        for what, request in session.garbage():
            await tally.send(what, request)
        while await oracle_step():
            pass
        same = (tuple(observations), tuple(rewards), done) == (
            expected.observations,
            expected.rewards,
            expected.done,
        )
        if not same or not math.isclose(sum(rewards), expected.score, abs_tol=1e-9):
            tally.state_changes += 1
            tally.problems.append(
                f"after the bad requests the oracle got rewards {rewards} (done={done}); "
                f"its transcript says {list(expected.rewards)} (done={expected.done})"
            )
        if done:  # the episode is over: good and bad calls alike are refused
            last = SPEC.oracle(list(expected.observations[:1])) or (SPEC.tools[0].name, {})
            await tally.send("good call after the end", lambda: session.call(*last), over=True)
            await tally.send("bad call after the end", lambda: session.call(last[0], []), True)
    finally:
        await session.close()
    for what, request in session.stale():
        await tally.send(what, request)
    return tally


async def concurrent_calls(
    open_session: Opener, n: int | None = None, split: str = "test", index: int = 1
) -> str:
    """Send the oracle's first call ``n`` times at once on one session; the accepted ones must
    be what ``k`` serial calls give on the bare domain (in some order), and the episode must then
    play on as the domain does after those ``k`` calls. Returns a one-line account."""
    n = n or (4 if SPEC.episode.holds_resources else 8)
    first, session = await open_session(split, index)
    reference = new_episode(get_task(split, index))
    try:
        assert first == (await reference.reset()).text
        action = SPEC.oracle([first])
        assert action is not None, "the oracle makes no first move"
        replies = await asyncio.gather(*(session.call(*action) for _ in range(n)))
        assert all(r.status < 500 for r in replies), f"a concurrent call failed: {replies}"
        accepted = [r for r in replies if not r.error]
        serial = [await reference.step(*action) for _ in accepted]
        outcome = Counter((r.text, r.reward, r.done) for r in accepted)
        assert outcome == Counter((r.text, r.reward, r.done) for r in serial), (
            f"{n} concurrent calls on one session gave {list(outcome)}, "
            f"not what {len(accepted)} serial calls give: {[(r.text, r.reward) for r in serial]}"
        )
        observations = [first, *(r.text for r in serial)]
        total, done = sum(r.reward for r in accepted), any(r.done for r in accepted)
        for _ in range(SPEC.episode.max_steps):
            if done or (move := SPEC.oracle(observations)) is None:
                break
            got, want = await session.call(*move), await reference.step(*move)
            assert (got.text, got.reward, got.done, got.error) == (
                want.text,
                want.reward,
                want.done,
                want.error,
            ), f"after the concurrent calls, {move} gave {got}; the domain gives {want}"
            observations.append(got.text)
            total, done = total + got.reward, got.done
        assert done == reference.done and math.isclose(total, reference.score, abs_tol=1e-9), (
            f"rewards sum to {total} (done={done}); the domain's score is {reference.score}"
        )
        return f"{n} concurrent calls: {len(accepted)} accepted, {n - len(accepted)} refused"
    finally:
        await session.close()
        await reference.close()


async def expired_session(
    label: str, open_session: Opener, idle: float, split: str = "test", index: int = 0
) -> Tally:
    """A session left idle past the server's idle limit (``idle`` seconds, a little more than
    the limit): one oracle step, silence, then a new session (some servers reap only when the
    next one starts). The expired session's good and bad calls must be refused readably, and
    the new session must play exactly as the oracle's transcript says."""
    expected = await oracle_transcript(split, index)
    tally = Tally(label, list(secret_values(dict(get_task(split, index).secret))))
    opened, stale = await open_session(split, index)
    try:
        move = SPEC.oracle([opened])
        assert move is not None, "the oracle makes no first move"
        step = await stale.call(*move)
        assert not step.error, f"the first oracle call was refused: {step.text!r}"
        await asyncio.sleep(idle)
        first, fresh = await open_session(split, index)
        try:
            following = SPEC.oracle([opened, step.text]) or move
            await tally.send("good call on an expired session", lambda: stale.call(*following))
            await tally.send("bad call on an expired session", lambda: stale.call(move[0], []))
            replies = await play_oracle(first, fresh.call)
            observations = (first, *(r.text for r in replies))
            rewards = [r.reward for r in replies]
            if (observations, tuple(rewards)) != (expected.observations, expected.rewards):
                tally.state_changes += 1
                tally.problems.append(
                    f"a session opened after the expiry got rewards {rewards}; "
                    f"the oracle's transcript says {list(expected.rewards)}"
                )
        finally:
            await fresh.close()
    finally:
        await stale.close()
    return tally
