"""Sandbox backend figures, run inside a rendered sandbox env's venv by benchmarks/run.py.

Prints one JSON object: cold session start, execute round trip, memory per idle session
(PSS of the session uid's processes), sessions held at once, close time, isolation mode; then
session start from a warm pool (``<PACKAGE>_POOL_SIZE``), each session arriving with the pool
refilled, its first call checked.
"""

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

SESSIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 32
WARM = 4  # kernels kept started; each warm session arrives once the pool has refilled
os.environ["SBX_MAX_SESSIONS"] = str(SESSIONS)
os.environ["SBX_MAX_STEPS"] = "1000"  # the timed calls must not end the episode

from sbx import get_task, new_episode  # noqa: E402
from sbx.sandbox.backends import POOL  # noqa: E402
from sbx.sandbox.kernel_env import kernel_python  # noqa: E402


def pss_kb(uid: int) -> int:
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
            if int(next(x for x in lines if x.startswith("Uid:")).split()[1]) != uid:
                continue
            rollup = (status.parent / "smaps_rollup").read_text().splitlines()
            total += sum(int(x.split()[1]) for x in rollup if x.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            continue
    return total


async def main() -> None:
    kernel_python()  # build the kernel venv before timing anything
    episodes, starts, trips = [], [], []
    for i in range(SESSIONS):
        episode = new_episode(get_task("test", i % 21))
        began = time.perf_counter()
        await episode.reset()
        starts.append(time.perf_counter() - began)
        episodes.append(episode)
    info = dict(episodes[0].info)
    for episode in episodes[:4]:
        await episode.step("run_code", {"code": "x = 1"})
        for _ in range(50):
            began = time.perf_counter()
            result = await episode.step("run_code", {"code": "x = 1"})
            trips.append(time.perf_counter() - began)
            assert not result.error, result.text
    memory = [pss_kb(e.info["uid"]) for e in episodes] if info.get("uid") else []
    answered = 0
    for episode in episodes:
        answered += (await episode.step("run_code", {"code": "print(6 * 7)"})).text.endswith("42\n")
    began = time.perf_counter()
    for episode in episodes:
        await episode.close()
    close_s = (time.perf_counter() - began) / SESSIONS
    POOL.warm.size = WARM  # what SBX_POOL_SIZE=4 sets
    warm = []
    for i in range(SESSIONS + 1):  # the first one fills the pool
        episode = new_episode(get_task("test", i % 21))
        await POOL.warm.ready()
        began = time.perf_counter()
        await episode.reset()
        warm.append(time.perf_counter() - began)
        result = await episode.step("run_code", {"code": "print(6 * 7)"})
        assert result.text.endswith("42\n"), result.text
        await episode.close()
    POOL.warm.drain()
    print(
        json.dumps(
            {
                "isolation": info.get("isolation"),
                "sessions_held": SESSIONS,
                "sessions_answering": answered,
                "cold_start_p50_s": statistics.median(starts),
                "cold_start_max_s": max(starts),
                "execute_p50_ms": statistics.median(trips) * 1000,
                "execute_p99_ms": statistics.quantiles(trips, n=100)[-1] * 1000,
                "pss_per_session_mib": statistics.median(memory) / 1024 if memory else None,
                "close_s": close_s,
                "warm_pool": WARM,
                "warm_start_p50_ms": statistics.median(warm[1:]) * 1000,
                "warm_start_max_ms": max(warm[1:]) * 1000,
            }
        )
    )


asyncio.run(main())
