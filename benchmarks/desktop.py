"""Desktop backend figures, run inside a rendered computer-use env's venv by benchmarks/run.py.

    python desktop.py SESSIONS BACKEND   # BACKEND: x11 (Xvfb + Tk app) or browser (Chromium)

Prints one JSON object: cold session start (the desktop and task app up), screenshot latency
and PNG size, action round trip (a click through the episode, screenshot included), memory per
session (PSS of every process in the session's process groups), sessions held at once, close
time; then session start from a warm pool (``<PACKAGE>_POOL_SIZE``), each session arriving with
the pool refilled, its first action checked.
"""

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

SESSIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 16
BACKEND = sys.argv[2] if len(sys.argv) > 2 else "x11"
WARM = 4  # desktops kept started; each warm session arrives once the pool has refilled
os.environ["DESK_MAX_SESSIONS"] = str(SESSIONS)
os.environ["DESK_DESKTOP_BACKEND"] = BACKEND
os.environ["DESK_MAX_STEPS"] = "1000"  # the timed calls must not end the episode

from desk import get_task, new_episode  # noqa: E402
from desk.computer_use.backends import WARM as POOL  # noqa: E402


def pss_kb(groups: set[int]) -> int:
    """PSS of every process whose process group is in ``groups`` (each session's processes
    run in groups of their own)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) in groups:
                rollup = (stat.parent / "smaps_rollup").read_text().splitlines()
                total += sum(int(x.split()[1]) for x in rollup if x.startswith("Pss:"))
        except (OSError, ValueError):  # gone meanwhile, or a kernel thread
            continue
    return total


def groups(desktop: object) -> set[int]:
    processes = [getattr(desktop, name, None) for name in ("xvfb", "app", "browser")]
    return {p.pid for p in processes if p is not None}


async def main() -> None:
    episodes, starts, shots, sizes, trips = [], [], [], [], []
    for i in range(SESSIONS):
        episode = new_episode(get_task("test", i % 6))  # click_button tasks
        began = time.perf_counter()
        await episode.reset()
        starts.append(time.perf_counter() - began)
        episodes.append(episode)
    for episode in episodes[:4]:
        desktop = episode.desktop
        for _ in range(30):
            began = time.perf_counter()
            png = await desktop.screenshot()
            shots.append(time.perf_counter() - began)
            sizes.append(len(png))
        for _ in range(30):
            began = time.perf_counter()
            result = await episode.step("computer", {"action": "left_click", "coordinate": [5, 5]})
            trips.append(time.perf_counter() - began)
            assert not result.error, result.text
    screen = episodes[0].info["screen"]
    memory = [pss_kb(groups(e.desktop)) for e in episodes]
    answering = 0
    for episode in episodes:
        result = await episode.step("computer", {"action": "screenshot"})
        answering += not result.error and result.images[0][:4] == b"\x89PNG"
    began = time.perf_counter()
    for episode in episodes:
        await episode.close()
    close_s = (time.perf_counter() - began) / SESSIONS
    POOL.size = WARM  # what DESK_POOL_SIZE=4 sets
    warm = []
    for i in range(SESSIONS + 1):  # the first one fills the pool
        episode = new_episode(get_task("test", i % 6))
        await POOL.ready()
        began = time.perf_counter()
        await episode.reset()
        warm.append(time.perf_counter() - began)
        result = await episode.step("computer", {"action": "left_click", "coordinate": [5, 5]})
        assert not result.error and result.images[0][:4] == b"\x89PNG", result.text
        await episode.close()
    POOL.drain()
    print(
        json.dumps(
            {
                "backend": BACKEND,
                "screen": "x".join(map(str, screen)),
                "sessions_held": SESSIONS,
                "sessions_answering": answering,
                "cold_start_p50_s": statistics.median(starts),
                "cold_start_max_s": max(starts),
                "screenshot_p50_ms": statistics.median(shots) * 1000,
                "screenshot_kb": statistics.median(sizes) / 1024,
                "click_p50_ms": statistics.median(trips) * 1000,
                "click_p99_ms": statistics.quantiles(trips, n=100)[-1] * 1000,
                "pss_per_session_mib": statistics.median(memory) / 1024,
                "close_s": close_s,
                "warm_pool": WARM,
                "warm_start_p50_ms": statistics.median(warm[1:]) * 1000,
                "warm_start_max_ms": max(warm[1:]) * 1000,
            }
        )
    )


asyncio.run(main())
