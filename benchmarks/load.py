"""Load generator, in its own process: ``python load.py 'JSON spec'`` prints one JSON result.

spec: targets, each with url (127.0.0.1 only), protocol (ors | nemo_gym | openenv | floor),
tool, args, env (ORS environment name), pid (the server's, for CPU and RSS from /proc); mode
and its bounds; the result has one entry per target, in order:
  calls     k >= max(c) sessions opened per target (the server's RSS read before and after),
            a warm-up, then for each c and repeat, each target in turn: n timed calls on c of
            them (one in-flight call each), at most `seconds`; then all closed
  sessions  for each repeat, each target in turn: n sequential create+close, at most `seconds`
Repeats interleave the targets, so drift in background load hits them all alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import aiohttp

TICK = os.sysconf("SC_CLK_TCK")
RESPONSE = {  # the smallest NeMoGymResponse a /verify accepts
    "id": "resp",
    "created_at": 0,
    "model": "m",
    "object": "response",
    "output": [],
    "parallel_tool_calls": False,
    "tool_choice": "auto",
    "tools": [],
}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Protocol:
    def __init__(self, http: aiohttp.ClientSession, spec: dict[str, Any]) -> None:
        self.http, self.spec, self.url = http, spec, spec["url"]
        self.tool, self.args = spec["tool"], spec["args"]

    async def post(self, path: str, body: Any, http: Any = None, **headers: str) -> bytes:
        async with (http or self.http).post(self.url + path, json=body, headers=headers) as r:
            data = await r.read()
            if r.status >= 500 or (r.status >= 400 and path != f"/{self.tool}"):
                raise RuntimeError(f"{path}: {r.status} {data[:300]!r}")
            return data


class Ors(Protocol):
    async def open(self) -> Any:
        """/create returns before the env's setup() runs; /prompt waits for it, as a rollout."""
        sid = uuid.uuid4().hex
        body = {"env_name": self.spec["env"], "split": "test", "index": 0}
        await self.post("/create", body, **{"X-Session-ID": sid})
        prompt = f"{self.url}/{self.spec['env']}/prompt"
        async with self.http.get(prompt, headers={"X-Session-ID": sid}) as r:
            if r.status != 200:
                raise RuntimeError(f"/prompt: {r.status} {(await r.read())[:300]!r}")
        return sid

    async def call(self, sid: Any) -> None:
        body = {"name": self.tool, "input": self.args}
        data = await self.post(f"/{self.spec['env']}/call", body, **{"X-Session-ID": sid})
        if b"event: end" not in data:
            raise RuntimeError(f"no result: {data[:300]!r}")

    async def close(self, sid: Any) -> None:
        await self.post("/delete", {}, **{"X-Session-ID": sid})


class NemoGym(Protocol):
    ROW: ClassVar[dict[str, Any]] = {
        "responses_create_params": {"input": [{"role": "user", "content": "hi"}]}
    }

    async def open(self) -> Any:
        jar = aiohttp.CookieJar(unsafe=True)  # the default jar drops cookies from IP hosts
        http = aiohttp.ClientSession(
            connector=self.http.connector, connector_owner=False, cookie_jar=jar
        )
        await self.post("/seed_session", {**self.ROW, "task_id": "test-0000"}, http)
        return http

    async def call(self, http: Any) -> None:
        await self.post(f"/{self.tool}", self.args, http)

    async def close(self, http: Any) -> None:
        await self.post("/verify", {**self.ROW, "task_id": "test-0000", "response": RESPONSE}, http)
        await http.close()


class OpenEnv(Protocol):
    async def open(self) -> Any:
        ws = await self.http.ws_connect(self.url.replace("http", "ws", 1) + "/ws")
        await self.send(ws, {"type": "reset", "data": {"split": "test", "index": 0}})
        return ws

    async def send(self, ws: Any, msg: dict[str, Any]) -> None:
        await ws.send_json(msg)
        reply = await ws.receive_json()
        if reply.get("type") == "error":
            raise RuntimeError(str(reply)[:300])

    async def call(self, ws: Any) -> None:
        data = {"type": "call_tool", "tool_name": self.tool, "arguments": self.args}
        await self.send(ws, {"type": "step", "data": data})

    async def close(self, ws: Any) -> None:
        await ws.send_json({"type": "close"})
        await ws.close()


class Floor(Protocol):
    async def open(self) -> Any:
        sid = uuid.uuid4().hex
        await self.post("/open", {"split": "test", "index": 0}, **{"X-Session-ID": sid})
        return sid

    async def call(self, sid: Any) -> None:
        await self.post(f"/call/{self.tool}", self.args, **{"X-Session-ID": sid})

    async def close(self, sid: Any) -> None:
        await self.post("/close", {}, **{"X-Session-ID": sid})


PROTOCOLS = {"ors": Ors, "nemo_gym": NemoGym, "openenv": OpenEnv, "floor": Floor}


async def window(p: Any, sessions: list[Any], n: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    left, deadline = n, time.perf_counter() + seconds

    async def worker(session: Any) -> None:
        nonlocal left
        while left > 0 and time.perf_counter() < deadline:
            left -= 1
            start = time.perf_counter()
            await p.call(session)
            latencies.append(time.perf_counter() - start)

    pid = p.spec["pid"]
    cpu0, start = cpu_s(pid), time.perf_counter()
    await asyncio.gather(*(worker(s) for s in sessions))
    wall, cpu = time.perf_counter() - start, cpu_s(pid) - cpu0
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "calls": len(latencies),
        "calls_per_s": len(latencies) / wall,
        "p50_ms": q[49] * 1e3,
        "p99_ms": q[98] * 1e3,
        "server_cpu_ms_per_call": cpu / len(latencies) * 1e3,
    }


async def calls(
    ps: list[Any], k: int, bounds: dict[str, list[float]], repeats: int, warmup: int
) -> list[dict[str, Any]]:
    assert k >= max(int(c) for c in bounds), "the c sessions come from the k held"
    out: list[dict[str, Any]] = []
    opened = []
    for p in ps:
        rss0 = rss_kb(p.spec["pid"])
        opened.append([await p.open() for _ in range(k)])
        await asyncio.sleep(0.5)
        rss = (rss_kb(p.spec["pid"]) - rss0) / k
        out.append({"held": k, "rss_per_session_kb": rss, "runs": {c: [] for c in bounds}})
        for i in range(warmup):
            await p.call(opened[-1][i % k])
    for c, (n, seconds) in bounds.items():
        for _ in range(repeats):
            for p, sessions, res in zip(ps, opened, out, strict=True):
                res["runs"][c].append(await window(p, sessions[: int(c)], int(n), seconds))
    for p, sessions in zip(ps, opened, strict=True):
        for session in sessions:
            await p.close(session)
    return out


async def sessions(p: Any, n: int, seconds: float) -> dict[str, Any]:
    pid = p.spec["pid"]
    rss0, cpu0, start = rss_kb(pid), cpu_s(pid), time.perf_counter()
    done = 0
    while done < n and time.perf_counter() - start < seconds:
        await p.close(await p.open())
        done += 1
    wall = time.perf_counter() - start
    cpu = cpu_s(pid) - cpu0
    return {
        "sessions": done,
        "sessions_per_s": done / wall,
        "server_cpu_ms_per_session": cpu / done * 1e3,
        "rss_before_kb": rss0,
        "rss_after_kb": rss_kb(pid),
    }


async def main(spec: dict[str, Any]) -> list[Any]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        ps = []
        for target in spec["targets"]:
            assert urlparse(target["url"]).hostname == "127.0.0.1", "loopback only"
            ps.append(PROTOCOLS[target["protocol"]](http, target))
        repeats = spec["repeats"]
        if spec["mode"] == "calls":
            return await calls(ps, spec["k"], spec["calls"], repeats, spec["warmup"])
        n, seconds = spec["sessions"]
        runs = [[await sessions(p, n, seconds) for p in ps] for _ in range(repeats)]
        return [list(r) for r in zip(*runs, strict=True)]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
