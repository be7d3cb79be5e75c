"""Seeded GUI tasks: five kinds whose labels, values and layout vary with the seed.

A task's ``secret`` holds the layout the task app draws (every widget's box in screen pixels)
and what counts as solved; the agent sees only the instruction and screenshots. Layouts scale
to the configured screen. Splits use disjoint seed ranges; prompts are unique across splits.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cache
from typing import Any

from ..core import SPLITS, Split, Task
from .settings import HEIGHT, WIDTH

SEED = "desktop-v1"
PER_KIND = {"train": 20, "validation": 4, "test": 6}
ROW = 36  # list row height in pixels

WORDS = [
    "Archive",
    "Bloom",
    "Cobalt",
    "Delta",
    "Ember",
    "Fjord",
    "Granite",
    "Harbor",
    "Indigo",
    "Juniper",
    "Kestrel",
    "Lantern",
    "Meadow",
    "Nimbus",
    "Orchid",
    "Pebble",
    "Quartz",
    "Raven",
    "Saffron",
    "Tundra",
    "Umber",
    "Velvet",
    "Willow",
    "Zephyr",
    "Amber",
    "Beacon",
    "Cedar",
    "Dune",
    "Falcon",
    "Glacier",
    "Hazel",
    "Iris",
    "Jasper",
    "Kelp",
    "Lagoon",
    "Maple",
    "Nova",
    "Onyx",
    "Prairie",
    "Quill",
    "Ridge",
    "Summit",
    "Thistle",
    "Upland",
    "Vortex",
    "Walnut",
    "Yarrow",
    "Zenith",
]
FRUITS = [
    "Apple",
    "Apricot",
    "Banana",
    "Cherry",
    "Damson",
    "Date",
    "Fig",
    "Grape",
    "Guava",
    "Kiwi",
    "Lemon",
    "Lime",
    "Lychee",
    "Mango",
    "Melon",
    "Nectarine",
    "Olive",
    "Papaya",
    "Peach",
    "Pear",
    "Plum",
    "Quince",
    "Raspberry",
    "Tangerine",
    "Blackberry",
    "Blueberry",
    "Cranberry",
    "Currant",
    "Gooseberry",
    "Kumquat",
    "Loquat",
    "Mulberry",
    "Persimmon",
    "Pomelo",
    "Rhubarb",
    "Strawberry",
]
FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Tim", "Radia", "Ken"]
LAST = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Berners",
    "Perlman",
    "Thompson",
]
CITIES = ["Leeds", "Porto", "Lyon", "Graz", "Turku", "Gdansk", "Bergen", "Ghent", "Cork", "Malmo"]

Layout = dict[str, Any]
# Each kind draws what to do from ``rng`` and where widgets go from ``at``.


def box(x: int, y: int, w: int, h: int) -> dict[str, int]:
    return {"x": x, "y": y, "w": w, "h": h}


def center(b: dict[str, int]) -> list[int]:
    return [b["x"] + b["w"] // 2, b["y"] + b["h"] // 2]


def cells(rng: random.Random, n: int, w: int, h: int) -> list[tuple[int, int]]:
    """``n`` distinct top-left corners of a jittered grid below the header, shuffled."""
    cols, rows = max(1, (WIDTH - 80) // (w + 40)), max(1, (HEIGHT - 160) // (h + 40))
    picks = rng.sample(range(cols * rows), n)
    return [
        (
            40 + (i % cols) * (w + 40) + rng.randint(0, 30),
            110 + (i // cols) * (h + 40) + rng.randint(0, 30),
        )
        for i in picks
    ]


def click_button(rng: random.Random, at: random.Random) -> tuple[str, Layout]:
    labels = rng.sample(WORDS, rng.randint(4, 8))
    target = rng.choice(labels)
    buttons = [
        {"label": label, **box(x, y, 140, 44)}
        for label, (x, y) in zip(labels, cells(at, len(labels), 140, 44), strict=True)
    ]
    return f'Click the button labelled "{target}" (once; no other button).', {
        "buttons": buttons,
        "target": target,
        "goal": {"pressed": [target]},
    }


def fill_form(rng: random.Random, at: random.Random) -> tuple[str, Layout]:
    values = {
        "Name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "City": rng.choice(CITIES),
        "Code": f"{rng.randint(100, 999)}-{rng.choice(WORDS).lower()}",
    }
    names = rng.sample(list(values), 3)
    x, y = at.randint(60, WIDTH - 460), at.randint(110, HEIGHT - 330)
    fields = [{"name": n, **box(x + 110, y + i * 60, 280, 36)} for i, n in enumerate(names)]
    submit = box(x + 110 + at.randint(0, 160), y + 190, 120, 40)
    listed = ", ".join(f'{n} "{values[n]}"' for n in names)
    return f"Fill in the form ({listed}), then press Submit.", {
        "fields": fields,
        "submit": submit,
        "goal": {"submitted": values},
    }


def pick_item(rng: random.Random, at: random.Random) -> tuple[str, Layout]:
    items = rng.sample(FRUITS, rng.randint(9, 14))
    visible = 6
    target = rng.choice(items)
    x, y = at.randint(60, WIDTH - 360), at.randint(110, HEIGHT - visible * ROW - 60)
    more = " Scroll the list if you cannot see it." if items.index(target) >= visible else ""
    return f'In the list, double-click "{target}" to choose it.{more}', {
        "list": box(x, y, 260, visible * ROW),
        "items": items,
        "row": ROW,
        "target": target,
        "goal": {"chosen": target},
    }


def set_slider(rng: random.Random, at: random.Random) -> tuple[str, Layout]:
    start, target = rng.sample(range(0, 101, 5), 2)
    target += rng.choice([-2, -1, 1, 2]) if 2 < target < 98 else 0
    x, y = at.randint(60, WIDTH - 520), at.randint(140, HEIGHT - 100)
    return f"Drag the slider from {start} to exactly {target}.", {
        "slider": box(x, y, 440, 60),  # the track runs from x+20 to x+420: 4 px per unit
        "start": start,
        "goal": {"slider": target},
    }


def type_text(rng: random.Random, at: random.Random) -> tuple[str, Layout]:
    text = f"{rng.choice(WORDS).lower()} {rng.choice(FRUITS).lower()} {rng.randint(10, 99)}"
    x, y = at.randint(60, WIDTH - 420), at.randint(110, HEIGHT - 100)
    return f'Type "{text}" into the text field and press Enter.', {
        "entry": box(x, y, 360, 40),
        "goal": {"entered": text},
    }


KINDS: dict[str, Callable[[random.Random, random.Random], tuple[str, Layout]]] = {
    "click_button": click_button,
    "fill_form": fill_form,
    "pick_item": pick_item,
    "set_slider": set_slider,
    "type_text": type_text,
}

PROMPT = """\
You control a computer with a {width}x{height} screen through the `computer` tool (actions as
in Anthropic's computer-use tool: screenshot, left_click, right_click, double_click,
mouse_move, left_click_drag, scroll, type, key, wait, terminate). Every action returns a new
screenshot; coordinates are [x, y] pixels from the top-left corner. Start with the action
`screenshot` to see the screen.

Task: {instruction}
When you are done, call `computer` with action `terminate`. Only what the application
records counts, not what you claim."""


def target_point(layout: Layout) -> list[int]:
    """Where the task's main widget is (the grader-only 'answer' of where to act)."""
    if "buttons" in layout:
        return next(center(b) for b in layout["buttons"] if b["label"] == layout["target"])
    return center(
        layout.get("submit") or layout.get("list") or layout.get("slider") or layout["entry"]
    )


@cache
def _all_tasks() -> dict[Split, tuple[Task, ...]]:
    seen: set[str] = set()
    out: dict[Split, tuple[Task, ...]] = {}
    for split in SPLITS:
        tasks = []
        for kind, make in KINDS.items():
            for n in range(PER_KIND[split]):
                for attempt in range(100):  # redraw collisions: every prompt names one task
                    seed = f"{SEED}:{split}:{kind}:{n}:{attempt}"
                    # what to do and where things are come from separate RNGs, so the
                    # instructions stay the same whatever the screen size
                    instruction, layout = make(random.Random(seed), random.Random(f"{seed}:at"))
                    if instruction not in seen:
                        break
                else:
                    raise RuntimeError(f"{kind}: too few distinct instructions for {split}")
                seen.add(instruction)
                index = len(tasks)
                prompt = PROMPT.format(width=WIDTH, height=HEIGHT, instruction=instruction)
                secret = {"layout": layout, "answer": "{},{}".format(*target_point(layout))}
                tasks.append(
                    Task(f"{split}-{index:04d}", split, index, prompt, {"kind": kind}, secret)
                )
        out[split] = tuple(tasks)
    return out


def load_tasks(split: Split) -> tuple[Task, ...]:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    return _all_tasks()[split]


@cache
def _by_prompt() -> dict[str, Task]:
    return {task.prompt.strip(): task for split in SPLITS for task in load_tasks(split)}


def task_for_prompt(text: str) -> Task | None:
    """The task whose prompt ``text`` is (prompts are unique), if any."""
    return _by_prompt().get(text.strip())
