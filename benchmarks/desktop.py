"""Desktop backend figures, run inside a rendered computer-use env's venv by benchmarks/run.py.

Prints one JSON object: cold session start (Xvfb + task app up), screenshot latency and PNG
size, action round trip (a click through the episode, screenshot included), memory per
session (PSS of its Xvfb and app processes), sessions held at once, close time.
"""

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

SESSIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 16
os.environ["DESK_MAX_SESSIONS"] = str(SESSIONS)
os.environ["DESK_MAX_STEPS"] = "1000"  # the timed calls must not end the episode

from desk import get_task, new_episode  # noqa: E402


def pss_kb(pid: int) -> int:
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    return sum(int(x.split()[1]) for x in rollup if x.startswith("Pss:"))


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
    memory = [pss_kb(e.desktop.xvfb.pid) + pss_kb(e.desktop.app.pid) for e in episodes]
    answering = 0
    for episode in episodes:
        result = await episode.step("computer", {"action": "screenshot"})
        answering += not result.error and result.images[0][:4] == b"\x89PNG"
    began = time.perf_counter()
    for episode in episodes:
        await episode.close()
    print(
        json.dumps(
            {
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
                "close_s": (time.perf_counter() - began) / SESSIONS,
            }
        )
    )


asyncio.run(main())
