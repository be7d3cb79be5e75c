"""Check a domain against the contract every adapter relies on: ``python -m <package>.contract``.

Each problem is one line: where it is, what is wrong, and what to change; the exit status is
1 when there is any, so the check can gate a commit or a CI job. It lints the tool
declarations and capabilities, loads the tasks twice here and once in a new process, plays
the oracle on a few tasks of each split after the declared bad and illegal calls, and judges
the oracle's mean score on the test split against ``SPEC.oracle_floor``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .core import SPLITS, EnvSpec, Episode, Task, ToolSpec

TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
MIN_SECRET_LENGTH = 3
"""Shorter secret values (a digit, a yes/no) would match prompts by chance; they are skipped."""
HEAVY_SAMPLE = 2
"""Tasks per split played when episodes hold processes (kernels, displays)."""
LIGHT_SAMPLE = 3
"""Tasks per split played otherwise (besides the whole test split for the oracle floor)."""


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, where: str, what: str, fix: str) -> None:
        self.problems.append(f"{where}: {what} -> {fix}")


def check_tools(spec: EnvSpec, report: Report) -> None:
    tools = getattr(spec.episode, "tools", None)
    if not tools:
        report.problem(
            "tools", "the episode declares no tools", "set `tools = (ToolSpec(...), ...)`"
        )
        return
    seen: set[str] = set()
    for tool in tools:
        if not isinstance(tool, ToolSpec):
            report.problem("tools", f"{tool!r} is not a ToolSpec", "declare tools as ToolSpec")
            continue
        where = f"tool {tool.name!r}"
        if not TOOL_NAME.match(tool.name):
            report.problem(where, "the name is not an identifier", "use letters, digits, _ or -")
        if tool.name in seen:
            report.problem(where, "declared twice", "give every tool its own name")
        seen.add(tool.name)
        if not tool.description.strip():
            report.problem(where, "has no description", "say what it does and what it returns")
        if not (isinstance(tool.args, type) and issubclass(tool.args, BaseModel)):
            report.problem(where, "args is not a pydantic model", "use a BaseModel subclass")
            continue
        if tool.args.model_config.get("extra") != "forbid":
            report.problem(
                where,
                "its arguments model accepts unknown fields",
                f'add `model_config = ConfigDict(extra="forbid")` to {tool.args.__name__}',
            )
        for name, info in tool.args.model_fields.items():
            if not (info.description or "").strip():
                report.problem(
                    f"{where}, argument {name!r}",
                    "has no description",
                    f"give it `Field(description=...)` in {tool.args.__name__}",
                )
        try:
            json.dumps(tool.parameters())
        except (TypeError, ValueError) as exc:
            report.problem(where, f"its JSON schema fails: {exc}", "use JSON-friendly types")


def check_capabilities(spec: EnvSpec, report: Report) -> None:
    episode = spec.episode
    if not (isinstance(episode, type) and issubclass(episode, Episode)):
        report.problem("SPEC.episode", f"{episode!r} is not an Episode", "subclass core.Episode")
        return
    max_steps = getattr(episode, "max_steps", None)
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        report.problem(
            f"{episode.__name__}.max_steps",
            f"is {max_steps!r}",
            "declare the turn limit as a class attribute, e.g. `max_steps = 20`",
        )
    for flag in ("returns_images", "holds_resources"):
        if not isinstance(getattr(episode, flag, None), bool):
            report.problem(f"{episode.__name__}.{flag}", "is not a bool", f"set `{flag} = True`")
    if not 0.0 <= spec.oracle_floor <= 1.0:
        report.problem("SPEC.oracle_floor", f"is {spec.oracle_floor}", "use a score in [0, 1]")


def fingerprint(task: Task) -> str:
    return json.dumps(
        [task.id, task.split, task.index, task.prompt, dict(task.public), dict(task.secret)],
        sort_keys=True,
        default=repr,
    )


def secret_values(secret: dict[str, Any]) -> Iterable[str]:
    """The grader's scalar answers: top-level values of ``Task.secret`` (nested data, such as
    a layout the task also describes in its prompt, is not judged)."""
    for value in secret.values():
        scalar = isinstance(value, str | int | float) and not isinstance(value, bool)
        if scalar and len(text := str(value)) >= MIN_SECRET_LENGTH:
            yield text


def shows(text: str, value: str) -> bool:
    """Whether ``value`` stands in ``text`` on its own (not inside a longer word or number)."""
    pattern = rf"(?<!\w)(?<!\d\.){re.escape(value.lower())}(?!\w)(?!\.\d)"
    return re.search(pattern, text) is not None


FRESH_LOAD = """
import importlib, json, sys
from {package}.contract import fingerprint
module, _, attribute = sys.argv[1].partition(":")
spec = getattr(importlib.import_module(module), attribute or "SPEC")
print(json.dumps({{s: [fingerprint(t) for t in spec.load_tasks(s)] for s in sys.argv[2:]}}))
"""


def fresh_fingerprints(source: str) -> dict[str, list[str]] | None:
    """The tasks as a new interpreter with another hash seed loads them (None: it failed)."""
    code = FRESH_LOAD.format(package=__package__)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    run = subprocess.run(
        [sys.executable, "-c", code, source, *SPLITS], capture_output=True, text=True, env=env
    )
    return json.loads(run.stdout) if run.returncode == 0 else None


def check_tasks(
    spec: EnvSpec, report: Report, source: str | None = None
) -> dict[str, Sequence[Task]]:
    loaded: dict[str, Sequence[Task]] = {}
    fresh = fresh_fingerprints(source) if source else None
    for split in SPLITS:
        try:
            first, second = spec.load_tasks(split), spec.load_tasks(split)
        except Exception as exc:  # any failure is a contract problem
            report.problem(f"load_tasks({split!r})", f"raised {exc!r}", "return a list of Task")
            continue
        if not first:
            report.problem(f"split {split!r}", "has no tasks", "give every split some tasks")
            continue
        here = [fingerprint(t) for t in first]
        if here != [fingerprint(t) for t in second] or (fresh and fresh[split] != here):
            report.problem(
                f"split {split!r}",
                "tasks differ between two loads (or in a new process)",
                "seed with random.Random(<string>), never the global RNG or the clock",
            )
        loaded[split] = first
        shown = {
            task.id: f"{json.dumps(task.to_public(), default=repr)} {task.prompt}".lower()
            for task in first
        }
        for index, task in enumerate(first):
            where = f"task {task.id!r}"
            if (task.split, task.index, task.id) != (split, index, f"{split}-{index:04d}"):
                report.problem(
                    where,
                    f"is at {split}[{index}] with split={task.split!r}, index={task.index}",
                    f"use id '{split}-{index:04d}', split {split!r} and index {index}",
                )
                break
            try:
                json.dumps([task.to_public(), dict(task.secret)])
            except (TypeError, ValueError) as exc:
                report.problem(where, f"is not JSON-serialisable ({exc})", "use JSON types")
                break
            secrets = secret_values(dict(task.secret))
            leaked = [  # a value every task shows (a word of a fixed prompt) tells nothing
                v
                for v in secrets
                if shows(shown[task.id], v) and not all(shows(t, v) for t in shown.values())
            ]
            if "secret" in task.to_public() or leaked:
                report.problem(
                    where,
                    f"its public view or prompt shows a secret ({(leaked or ['secret'])[0]!r})",
                    "keep grader-only fields in Task.secret, out of public and prompt",
                )
                break
    # A task is its prompt, public fields and answer: the same one in two splits is a leak.
    same = {
        split: {
            json.dumps([t.prompt, dict(t.public), dict(t.secret)], sort_keys=True, default=repr)
            for t in tasks
        }
        for split, tasks in loaded.items()
    }
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        if shared := same.get(a, set()) & same.get(b, set()):
            example = json.loads(sorted(shared)[0])[2]
            report.problem(
                f"splits {a!r} and {b!r}",
                f"share {len(shared)} task(s), e.g. the one with secret {example}",
                "partition the answers (e.g. by a hash of the answer) so splits are disjoint",
            )
    return loaded


async def play(spec: EnvSpec, task: Task, mixed_in: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Play the oracle on ``task``, the declared bad calls first; report what went wrong."""
    episode = spec.episode(task)
    found: list[str] = []
    total, steps = 0.0, 0
    try:
        observations = [(await episode.reset()).text]
        for name, arguments in mixed_in:
            before = episode.score
            result = await episode.step(name, arguments)
            if not result.error or result.reward or result.done or episode.score != before:
                found.append(f"{name}({arguments}) was accepted (it answered {result.text[:60]!r})")
        while steps < spec.episode.max_steps:
            action = spec.oracle(observations)
            if action is None:
                break
            result = await episode.step(*action)
            steps += 1
            total += result.reward
            observations.append(result.text)
            if result.done:
                break
        return {
            "bad": found,
            "done": episode.done,
            "truncated": episode.over and not episode.done,
            "steps": steps,
            "total": total,
            "score": episode.score,
        }
    finally:
        await episode.close()
        await episode.close()  # closing twice must be harmless


async def check_episodes(
    spec: EnvSpec, tasks: dict[str, Sequence[Task]], report: Report, floor_tasks: int | None
) -> None:
    sample = HEAVY_SAMPLE if spec.episode.holds_resources else LIGHT_SAMPLE
    if floor_tasks is None:
        floor_tasks = sample if spec.episode.holds_resources else len(tasks.get("test", ()))
    plays = [(split, task) for split, ts in tasks.items() for task in ts[:sample]]
    plays += [("test", t) for t in tasks.get("test", ())[sample:floor_tasks]]
    mixed_in = [spec.bad_calls, spec.illegal_calls]  # before the oracle on the first tasks
    scores: list[float] = []
    for n, (split, task) in enumerate(plays):
        where = f"task {task.id!r}"
        mixed = mixed_in[n] if n < len(mixed_in) else ()
        try:
            result = await play(spec, task, mixed)
        except Exception as exc:  # a crash is a contract problem
            report.problem(where, f"the episode raised {exc!r}", "return errors as ToolError")
            continue
        for call in result["bad"]:
            report.problem(
                "SPEC.bad_calls / illegal_calls",
                call,
                "raise ToolError for it in _apply() (the base class makes it an error result)",
            )
        if result["truncated"]:
            report.problem(
                where,
                f"the turn limit ended the episode: {len(mixed)} refused call(s) and "
                f"{result['steps']} oracle call(s) reached max_steps = {spec.episode.max_steps}",
                "raise max_steps: every well-formed call counts, illegal moves included",
            )
        elif not result["done"]:
            report.problem(
                where,
                f"the oracle stopped after {result['steps']} steps with the episode still open",
                "make the oracle play to the end, or raise max_steps",
            )
        if not math.isclose(result["total"], result["score"], abs_tol=1e-6):
            report.problem(
                where,
                f"step rewards sum to {result['total']:.6g}, "
                f"the episode score is {result['score']:.6g}",
                "give each step the change in score it causes",
            )
        if split == "test" and len(scores) < floor_tasks:
            scores.append(result["score"])
    if scores:
        mean = sum(scores) / len(scores)
        report.notes.append(f"oracle: mean score {mean:.3f} on {len(scores)} test tasks")
        if mean < spec.oracle_floor - 1e-9:
            report.problem(
                "oracle",
                f"mean score {mean:.3f} on {len(scores)} test tasks is below "
                f"SPEC.oracle_floor = {spec.oracle_floor}",
                "fix the oracle, or lower oracle_floor to what it really reaches",
            )
    if not spec.bad_calls:
        report.problem("SPEC.bad_calls", "is empty", "list malformed calls adapters must refuse")


def check(
    spec: object,
    *,
    floor_tasks: int | None = None,
    source: str | None = None,
    play: bool = True,
) -> Report:
    """Every contract problem of ``spec``.

    ``floor_tasks``: how many test tasks the oracle's mean score is judged on against
    ``SPEC.oracle_floor`` (default: the whole split, or a sample when episodes hold resources;
    0: not judged). ``source`` (``module:attribute``) also loads the tasks in a new process.
    ``play=False`` skips the episodes (only the declarations and the tasks are checked).
    """
    report = Report()
    if not isinstance(spec, EnvSpec):
        kind = type(spec).__name__
        report.problem("SPEC", f"is {kind}, not EnvSpec", "declare SPEC = EnvSpec(...)")
        return report
    check_capabilities(spec, report)
    check_tools(spec, report)
    tasks = check_tasks(spec, report, source)
    max_steps = getattr(spec.episode, "max_steps", 0)
    playable = isinstance(max_steps, int) and max_steps > 0 and getattr(spec.episode, "tools", ())
    if play and tasks and playable:
        asyncio.run(check_episodes(spec, tasks, report, floor_tasks))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.contract", description=__doc__)
    parser.add_argument(
        "--spec",
        default=f"{__package__}:SPEC",
        help="the EnvSpec to check, as module:attribute (default: %(default)s)",
    )
    parser.add_argument(
        "--floor-tasks",
        type=int,
        metavar="N",
        help="judge the oracle floor on the first N test tasks (default: all, or a sample "
        "when episodes hold processes; 0: skip)",
    )
    args = parser.parse_args(argv)
    module, _, attribute = args.spec.partition(":")
    try:
        spec = getattr(importlib.import_module(module), attribute or "SPEC")
    except Exception as exc:  # say why the spec does not load
        print(f"contract: {args.spec} does not load: {exc!r}", file=sys.stderr)
        return 1
    report = check(spec, floor_tasks=args.floor_tasks, source=args.spec)
    for problem in report.problems:
        print(f"contract: {problem}")
    if report.problems:
        print(f"contract: {len(report.problems)} problem(s) in {args.spec}", file=sys.stderr)
        return 1
    tools = ", ".join(t.name for t in spec.tools)
    print(f"contract: {args.spec} OK (tools: {'; '.join([tools, *report.notes])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
