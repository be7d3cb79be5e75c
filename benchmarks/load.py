"""Load generator, in its own process: ``python load.py 'JSON spec'`` prints one JSON result.

spec: url (127.0.0.1 only), protocol (ors | nemo_gym | openenv | floor), tool, args, env (ORS
environment name), pid (the server's, for CPU and RSS from /proc), mode and its bounds:
  calls     c sessions, n timed calls after a warm-up, at most `seconds`
  sessions  n sequential create+close, at most `seconds`
  hold      k sessions opened and held while the server's RSS is read, then closed
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
        sid = uuid.uuid4().hex
        body = {"env_name": self.spec["env"], "split": "test", "index": 0}
        await self.post("/create", body, **{"X-Session-ID": sid})
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


async def calls(p: Any, pid: int, c: int, n: int, seconds: float, warmup: int) -> dict[str, Any]:
    sessions = [await p.open() for _ in range(c)]
    for i in range(warmup):
        await p.call(sessions[i % c])
    latencies: list[float] = []
    left, deadline = n, time.perf_counter() + seconds

    async def worker(session: Any) -> None:
        nonlocal left
        while left > 0 and time.perf_counter() < deadline:
            left -= 1
            start = time.perf_counter()
            await p.call(session)
            latencies.append(time.perf_counter() - start)

    cpu0, start = cpu_s(pid), time.perf_counter()
    await asyncio.gather(*(worker(s) for s in sessions))
    wall, cpu = time.perf_counter() - start, cpu_s(pid) - cpu0
    for session in sessions:
        await p.close(session)
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "calls": len(latencies),
        "calls_per_s": len(latencies) / wall,
        "p50_ms": q[49] * 1e3,
        "p99_ms": q[98] * 1e3,
        "server_cpu_ms_per_call": cpu / len(latencies) * 1e3,
    }


async def sessions(p: Any, pid: int, n: int, seconds: float) -> dict[str, Any]:
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


async def hold(p: Any, pid: int, k: int) -> dict[str, Any]:
    rss0 = rss_kb(pid)
    held = [await p.open() for _ in range(k)]
    await asyncio.sleep(0.5)
    rss1 = rss_kb(pid)
    for session in held:
        await p.close(session)
    return {"held": k, "rss_per_session_kb": (rss1 - rss0) / k, "rss_held_kb": rss1}


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    assert urlparse(spec["url"]).hostname == "127.0.0.1", "loopback only"
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        p = PROTOCOLS[spec["protocol"]](http, spec)
        mode, pid = spec["mode"], spec["pid"]
        if mode == "calls":
            return await calls(p, pid, spec["c"], spec["n"], spec["seconds"], spec["warmup"])
        if mode == "sessions":
            return await sessions(p, pid, spec["n"], spec["seconds"])
        return await hold(p, pid, spec["k"])


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
