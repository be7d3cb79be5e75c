"""Framework-free building blocks shared by every domain and every adapter.

Adapters (NeMo Gym, Verifiers, OpenEnv, ORS) only ever talk to these types: a ``Task``
(what the agent may see, plus what only the grader may see), the ``ToolSpec`` list that
declares the tools once, an ``Episode`` that turns tool calls into ``StepResult``s and
declares its capabilities, and the ``EnvSpec`` that declares a whole domain once.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ValidationError

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")


class ToolError(ValueError):
    """Bad input from the model, phrased so the model can read it and try again."""


@dataclass(frozen=True)
class Task:
    """One deterministic task. ``public`` is safe to show anyone; ``secret`` is grader-only."""

    id: str
    split: Split
    index: int
    prompt: str
    public: Mapping[str, Any] = field(default_factory=dict)
    secret: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def to_public(self) -> dict[str, Any]:
        """JSON-serialisable description that never contains the answer."""
        return {"id": self.id, "split": self.split, "index": self.index, **self.public}


@dataclass(frozen=True)
class ToolSpec:
    """A tool declared once: every adapter derives its framework's declaration from this."""

    name: str
    description: str
    args: type[BaseModel]

    def parameters(self) -> dict[str, Any]:
        """JSON Schema of the arguments (what function-calling APIs call ``parameters``)."""
        return self.args.model_json_schema()

    def openai_tool(self) -> dict[str, Any]:
        """Chat Completions tool declaration."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters(),
            },
        }

    def responses_tool(self) -> dict[str, Any]:
        """Responses API tool declaration (flat, as NeMo Gym datasets carry it)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters(),
            "strict": False,
        }

    def parse(self, arguments: Mapping[str, Any] | str | None) -> BaseModel:
        """Validate raw arguments (a mapping or a JSON string) or raise ``ToolError``."""
        if arguments is None or arguments == "":
            arguments = {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as exc:
                raise ToolError(
                    f"Arguments for {self.name!r} are not valid JSON: {exc.msg}."
                ) from None
            except RecursionError:
                raise ToolError(f"Arguments for {self.name!r} are nested too deeply.") from None
        if not isinstance(arguments, Mapping):
            raise ToolError(f"Arguments for {self.name!r} must be a JSON object.")
        try:
            return self.args.model_validate(dict(arguments))
        except RecursionError:
            raise ToolError(f"Arguments for {self.name!r} are nested too deeply.") from None
        except ValidationError as exc:
            raise ToolError(
                f"Invalid arguments for {self.name!r}: {describe_errors(exc)}."
            ) from None


def describe_errors(exc: ValidationError) -> str:
    """One line per problem, without pydantic's URLs and reprs."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Observation:
    """What the agent sees: text and optional PNG images."""

    text: str
    images: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class StepResult:
    """The outcome of one tool call."""

    text: str
    reward: float = 0.0
    done: bool = False
    error: bool = False
    images: tuple[bytes, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)


def find_tool(tools: Sequence[ToolSpec], name: str) -> ToolSpec:
    for spec in tools:
        if spec.name == name:
            return spec
    names = ", ".join(spec.name for spec in tools)
    raise ToolError(f"Unknown tool {name!r}. Available tools: {names}.")


Call = tuple[str, Mapping[str, Any]]
"""A tool call: the tool's name and its raw arguments."""
Policy = Callable[[Sequence[str]], Call | None]
"""Observations so far (texts, oldest first) -> the next call, or ``None`` when done."""


@dataclass(frozen=True)
class EnvSpec:
    """The domain contract, declared once: everything adapters and tests need from a domain.

    ``python -m <package>.contract`` checks a spec and says what to change.
    """

    episode: type[Episode]
    """The episode class: its tools and capabilities are class attributes."""
    load_tasks: Callable[[Split], Sequence[Task]]
    """Every task of a split, deterministic, ids ``<split>-<index:04d>``."""
    oracle: Policy
    """A scripted policy that plays any task from observations alone."""
    bad_calls: Sequence[Call] = ()
    """Malformed calls (wrong types, missing or extra fields): each must give an error."""
    illegal_calls: Sequence[Call] = ()
    """Well-formed calls the rules refuse: each must give an error and change nothing."""
    oracle_floor: float = 1.0
    """Lowest mean score the oracle may get on the test split (1.0: it solves every task)."""

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        return self.episode.tools


class Episode(ABC):
    """One session on one task. Tool calls are validated here, once, for every adapter.

    A subclass declares its tools and capabilities as class attributes; adapters, tests and
    derived artifacts read these, never the name of the reference domain.
    """

    tools: ClassVar[tuple[ToolSpec, ...]]
    max_steps: ClassVar[int]
    """Most well-formed tool calls an episode can take; servers set their turn limits from it."""
    returns_images: ClassVar[bool] = False
    """True when observations or tool results can carry PNG images."""
    holds_resources: ClassVar[bool] = False
    """True when an episode owns processes or files that only ``close()`` releases."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.closed = False
        self.calls = 0
        """Well-formed tool calls taken, illegal moves included (``max_steps`` caps them)."""
        self._turn = asyncio.Lock()
        """Held by the call being applied: calls on one episode run one at a time."""

    @abstractmethod
    async def reset(self) -> Observation:
        """Start (or restart) the episode and return the first observation."""

    @abstractmethod
    async def _apply(self, name: str, args: BaseModel) -> StepResult:
        """Apply one validated tool call. Raise ``ToolError`` for an illegal move."""

    @property
    @abstractmethod
    def done(self) -> bool: ...

    @property
    @abstractmethod
    def score(self) -> float:
        """Episode score so far; equals the sum of the per-step rewards."""

    @property
    def over(self) -> bool:
        """True once the domain ended the episode or it used its ``max_steps`` tool calls."""
        return self.done or self.calls >= self.max_steps

    async def step(self, name: str, arguments: Mapping[str, Any] | str | None) -> StepResult:
        """Run one tool call. Bad input gives an error result and leaves the state unchanged.
        Every well-formed call counts towards the turn limit, illegal moves included: after
        ``max_steps`` of them the episode is over (the call that reaches it says so); malformed
        calls count for nothing. Concurrent calls are applied one after another, in order."""
        async with self._turn:
            return await self._step(name, arguments)

    async def _step(self, name: str, arguments: Mapping[str, Any] | str | None) -> StepResult:
        if self.closed or self.over:
            refusal = (
                "This session is closed."
                if self.closed
                else "The episode is over; no further tool calls are accepted."
            )
            return StepResult(text=f"Error: {refusal}", done=self.over, error=True)
        try:
            spec = find_tool(self.tools, name)
            args = spec.parse(arguments)
        except ToolError as exc:  # malformed: nothing changes, not even the count of calls
            return StepResult(text=f"Error: {exc}", done=self.done, error=True)
        self.calls += 1
        try:
            result = await self._apply(spec.name, args)
        except ToolError as exc:
            result = StepResult(text=f"Error: {exc}", done=self.done, error=True)
        if self.calls == self.max_steps and not result.done:
            ending, reward = await self._out_of_calls()
            text = f"{result.text}\nThat was the last of {self.max_steps} tool calls. {ending}"
            result = replace(result, text=text, reward=result.reward + reward, done=True)
        return result

    async def _out_of_calls(self) -> tuple[str, float]:
        """The episode used its ``max_steps`` calls before the domain ended it: a sentence
        saying how it ended and the reward of that end (override to grade the final state)."""
        return "The episode is over.", 0.0

    async def close(self) -> None:
        """Release everything the episode holds. Safe to call more than once."""
        self.closed = True
