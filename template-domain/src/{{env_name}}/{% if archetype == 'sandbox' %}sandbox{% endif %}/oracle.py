"""A scripted solver that reads the task from the prompt, computes the answer in the sandbox
with code, and submits what the code printed. It never sees the answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

PRIME_SUM = """\
n = {0}
sieve = bytearray([1]) * n
sieve[:2] = b"\\x00\\x00"
for i in range(2, int(n**0.5) + 1):
    if sieve[i]:
        sieve[i * i :: i] = bytearray(len(range(i * i, n, i)))
print(sum(i for i in range(n) if sieve[i]))"""

SOLUTIONS = {
    # marker in the prompt: (pattern of the parameters in the question, code template)
    "data.csv": (
        r"'(\w+)'",
        "import csv\n"
        "rows = csv.DictReader(open('data.csv'))\n"
        "rows = [float(r['value']) for r in rows if r['group'] == {0!r}]\n"
        "print(f'{{sum(rows) / len(rows):.2f}}')",
    ),
    "readings.csv": (
        r"greater than ([\d.]+)",
        "import csv\n"
        "print(sum(float(r['reading']) > {0} for r in csv.DictReader(open('readings.csv'))))",
    ),
    "app.log": (
        r"'(\w+)'",
        "print(sum('ERROR [{0}]' in line for line in open('app.log')))",
    ),
    "orders.json": (
        r"'(c\d+)'",
        "import json\n"
        "orders = json.load(open('orders.json'))\n"
        "total = sum(o['amount'] for o in orders if o['customer'] == {0!r})\n"
        "print(f'{{total:.2f}}')",
    ),
    "essay.txt": (
        r"()",
        "from collections import Counter\n"
        "counts = Counter(open('essay.txt').read().split())\n"
        "print(min(counts, key=lambda w: (-counts[w], w)))",
    ),
    "prime numbers below": (r"below (\d+)", PRIME_SUM),
    "modulo": (
        r"F\((\d+)\) modulo (\d+)",
        "a, b = 0, 1\nfor _ in range({0}):\n    a, b = b, (a + b) % {1}\nprint(a)",
    ),
}


def solution(prompt: str) -> str:
    """Python that prints the answer to the task in ``prompt``."""
    question = prompt.split("Task:", 1)[-1]
    for marker, (pattern, template) in SOLUTIONS.items():
        if marker in prompt and (found := re.search(pattern, question)):
            return template.format(*found.groups())
    raise ValueError("the oracle does not know this task")


def next_action(observations: Sequence[str]) -> tuple[str, dict[str, Any]] | None:
    """Run the solution, then submit its last printed line; ``None`` once submitted."""
    if any(o.startswith("Submitted ") for o in observations):
        return None
    prompt = next((o for o in observations if "Task:" in o), None)
    if prompt is None:
        return None
    printed = [o for o in observations if o.startswith("[stdout]\n")]
    if not printed:
        ran = any(o.startswith("[") for o in observations)  # a run that printed nothing: give up
        return None if ran else ("run_code", {"code": solution(prompt)})
    return "submit", {"answer": printed[-1].removeprefix("[stdout]\n").strip().splitlines()[-1]}
