"""Seeded data and coding tasks whose answers depend on per-task generated inputs.

Each task kind writes its own input files (or picks its own parameters) from a string-seeded
RNG and computes the answer from them, so the answer exists only on the server and can only
be found by computing it. Splits use disjoint seed ranges.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from ..core import SPLITS, Split, Task
from .settings import OUTPUT_LIMIT

SEED = "sandbox-v1"
PER_KIND = {"train": 10, "validation": 2, "test": 3}
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "nu",
    "pe",
    "ra",
    "si",
    "to",
    "vu",
    "ze",
    "bri",
    "cla",
    "dro",
    "fen",
    "gor",
]


@dataclass(frozen=True)
class Spec:
    """What one task kind generates: the question, the input files, the answer."""

    question: str
    files: dict[str, str]
    answer: str


def _csv_group_mean(rng: random.Random) -> Spec:
    groups = rng.sample(["alpha", "beta", "gamma", "delta", "omega"], 4)
    rows = [
        (i, rng.choice(groups), round(rng.uniform(0, 500), 2)) for i in range(rng.randint(200, 400))
    ]
    group = rng.choice(groups)
    values = [v for _, g, v in rows if g == group]
    body = "id,group,value\n" + "".join(f"{i},{g},{v}\n" for i, g, v in rows)
    return Spec(
        f"What is the mean of the `value` column of data.csv over the rows whose `group` is "
        f"'{group}'? Answer with the number rounded to 2 decimals.",
        {"data.csv": body},
        f"{sum(values) / len(values):.2f}",
    )


def _csv_threshold_count(rng: random.Random) -> Spec:
    rows = [(i, round(rng.gauss(100, 30), 3)) for i in range(rng.randint(300, 600))]
    threshold = round(rng.uniform(80, 140), 1)
    body = "id,reading\n" + "".join(f"{i},{v}\n" for i, v in rows)
    return Spec(
        f"How many rows of readings.csv have a `reading` strictly greater than {threshold}? "
        "Answer with an integer.",
        {"readings.csv": body},
        str(sum(v > threshold for _, v in rows)),
    )


def _log_errors(rng: random.Random) -> Spec:
    services = rng.sample(["auth", "billing", "search", "upload", "mailer", "cache"], 4)
    levels = ["INFO"] * 6 + ["WARNING"] * 2 + ["ERROR"]
    lines = [
        f"2026-03-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00 "
        f"{rng.choice(levels)} [{rng.choice(services)}] request {rng.randint(1000, 9999)} done"
        for _ in range(rng.randint(400, 800))
    ]
    service = rng.choice(services)
    count = sum(f"ERROR [{service}]" in line for line in lines)
    return Spec(
        f"How many ERROR lines from the service '{service}' are in app.log? "
        "Answer with an integer.",
        {"app.log": "\n".join(lines) + "\n"},
        str(count),
    )


def _json_customer_total(rng: random.Random) -> Spec:
    customers = [f"c{rng.randint(100, 999)}" for _ in range(6)]
    orders = [
        {"order": n, "customer": rng.choice(customers), "amount": round(rng.uniform(5, 250), 2)}
        for n in range(rng.randint(100, 250))
    ]
    customer = rng.choice(customers)
    total = sum(o["amount"] for o in orders if o["customer"] == customer)
    return Spec(
        f"orders.json lists orders. What is the total `amount` of the orders of customer "
        f"'{customer}'? Answer with the number rounded to 2 decimals.",
        {"orders.json": json.dumps(orders, indent=1)},
        f"{total:.2f}",
    )


def _text_top_word(rng: random.Random) -> Spec:
    words = sorted({"".join(rng.choices(SYLLABLES, k=3)) for _ in range(25)})
    weights = [rng.randint(1, 40) for _ in words]
    text = " ".join(rng.choices(words, weights=weights, k=rng.randint(800, 1500)))
    counts = Counter(text.split())
    best = min(counts, key=lambda w: (-counts[w], w))
    return Spec(
        "Which word occurs most often in essay.txt? If several tie, give the alphabetically "
        "first. Answer with the word.",
        {"essay.txt": text + "\n"},
        best,
    )


def _prime_sum(rng: random.Random) -> Spec:
    limit = rng.randint(20_000, 200_000)
    sieve = bytearray([1]) * limit
    sieve[:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(range(i * i, limit, i)))
    return Spec(
        f"What is the sum of all prime numbers below {limit}? Answer with an integer.",
        {},
        str(sum(i for i in range(limit) if sieve[i])),
    )


def _fibonacci_mod(rng: random.Random) -> Spec:
    n, modulus = rng.randint(10_000, 100_000), rng.choice([1_000_007, 998_244_353, 65_521])
    a, b = 0, 1
    for _ in range(n):
        a, b = b, (a + b) % modulus
    return Spec(
        f"Let F(0)=0, F(1)=1, F(k)=F(k-1)+F(k-2). What is F({n}) modulo {modulus}? "
        "Answer with an integer.",
        {},
        str(a),
    )


KINDS: dict[str, Callable[[random.Random], Spec]] = {
    "csv_group_mean": _csv_group_mean,
    "csv_threshold_count": _csv_threshold_count,
    "log_errors": _log_errors,
    "json_customer_total": _json_customer_total,
    "text_top_word": _text_top_word,
    "prime_sum": _prime_sum,
    "fibonacci_mod": _fibonacci_mod,
}

PROMPT = """\
You have a Python sandbox: a stateful Jupyter kernel whose working directory is your session
folder. Tools: `run_code` (Python; state persists between calls; output is cut to {limit}
characters per stream), `run_shell` (a shell command in the session folder), `read_file` and
`write_file` (paths relative to the session folder), and `submit` (your final answer; it ends
the episode).

{files}Task: {question}
Compute the answer with code, then call `submit` with just the answer."""


def spec_of(task: Task) -> Spec:
    """Regenerate a task's inputs and answer from its id (deterministic)."""
    rng = random.Random(f"{SEED}:{task.id}")
    return KINDS[task.public["kind"]](rng)


@cache
def load_tasks(split: Split) -> tuple[Task, ...]:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    tasks = []
    for kind in KINDS:
        for _ in range(PER_KIND[split]):
            index = len(tasks)
            task_id = f"{split}-{index:04d}"
            spec = KINDS[kind](random.Random(f"{SEED}:{task_id}"))
            files = "".join(f"- {name} ({len(body)} bytes)\n" for name, body in spec.files.items())
            listing = f"Files in your session folder:\n{files}\n" if files else ""
            prompt = PROMPT.format(limit=OUTPUT_LIMIT, files=listing, question=spec.question)
            public = {"kind": kind, "files": sorted(spec.files)}
            tasks.append(Task(task_id, split, index, prompt, public, {"answer": spec.answer}))
    return tuple(tasks)
