"""Load generator, in its own process: ``python load.py 'JSON spec'`` prints one JSON result.

spec: targets, each with url (127.0.0.1 only), protocol (ors | nemo_gym | openenv | floor |
verifiers), tool, args, env (ORS environment name), pid (the server's, for CPU and RSS from
/proc); mode and its bounds; the result has one entry per target, in order:
  calls     k >= max(c) sessions opened per target (the server's RSS read before and after),
            a warm-up, then for each c and repeat, each target in turn: n timed calls on c of
            them (one in-flight call each), at most `seconds`; then all closed
  sessions  for each repeat, each target in turn: n sequential create+close, at most `seconds`
  scale     for each c and repeat, each target (a set-up: one server, or a router in front of
            replicas) in turn: c sessions opened in batches, one warm-up call each, a window of
            n timed calls (at most `seconds`) with one in flight per session, all closed; every
            reply's X-Replica is checked against the replica that opened its session
            (Verifiers: the workers' tool servers, no router; see ``Verifiers``)
Repeats interleave the targets, so drift in background load hits them all alike.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode, urlparse

import aiohttp
from aiohttp import web

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


REPLICA = "X-Replica"  # set by every adapter's server from REPLICA_ID
TIMEOUT_S = 120  # per call: above c / throughput at c=2,000 for the slowest server here


class Protocol:
    """How a target opens a session, calls the tool and closes. The ``*_at`` variants (scale
    mode) accept nothing but success and return the replica (X-Replica) that answered."""

    def __init__(self, http: aiohttp.ClientSession, spec: dict[str, Any]) -> None:
        self.http, self.spec, self.url = http, spec, spec["url"]
        self.tool, self.args = spec["tool"], spec["args"]

    async def request(
        self, path: str, body: Any, http: Any = None, **headers: str
    ) -> tuple[int, bytes, str]:
        async with (http or self.http).post(self.url + path, json=body, headers=headers) as r:
            return r.status, await r.read(), r.headers.get(REPLICA, "")

    async def post(self, path: str, body: Any, http: Any = None, **headers: str) -> bytes:
        status, data, _ = await self.request(path, body, http, **headers)
        if status >= 500 or (status >= 400 and path != f"/{self.tool}"):
            raise RuntimeError(f"{path}: {status} {data[:300]!r}")
        return data

    async def ok(self, path: str, body: Any, http: Any = None, **headers: str) -> tuple[bytes, str]:
        status, data, replica = await self.request(path, body, http, **headers)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {data[:300]!r}")
        return data, replica

    async def open_at(self) -> tuple[Any, list[str]]:
        raise NotImplementedError

    async def call_at(self, session: Any) -> str:
        raise NotImplementedError

    async def close_at(self, session: Any) -> None:
        await self.close(session)


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

    async def open_at(self) -> tuple[Any, list[str]]:
        sid = uuid.uuid4().hex
        body = {"env_name": self.spec["env"], "split": "test", "index": 0}
        _, created = await self.ok("/create", body, **{"X-Session-ID": sid})
        prompt = f"{self.url}/{self.spec['env']}/prompt"
        async with self.http.get(prompt, headers={"X-Session-ID": sid}) as r:
            data = await r.read()
            if r.status != 200:
                raise RuntimeError(f"/prompt: {r.status} {data[:300]!r}")
            return sid, [created, r.headers.get(REPLICA, "")]

    async def call_at(self, sid: Any) -> str:
        body = {"name": self.tool, "input": self.args}
        path = f"/{self.spec['env']}/call"
        data, replica = await self.ok(path, body, **{"X-Session-ID": sid})
        # ORS answers a refused call (e.g. after the episode ended) with 200 and "ok": false
        if (
            b"event: end" not in data
            or b'data: {"ok":true' not in data
            or b'"finished":false' not in data
        ):
            raise RuntimeError(f"no result: {data[:300]!r}")
        return replica

    async def close_at(self, sid: Any) -> None:
        await self.ok("/delete", {}, **{"X-Session-ID": sid})


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

    async def open_at(self) -> tuple[Any, list[str]]:
        jar = aiohttp.CookieJar(unsafe=True)
        http = aiohttp.ClientSession(
            connector=self.http.connector, connector_owner=False, cookie_jar=jar
        )
        try:
            _, replica = await self.ok("/seed_session", {**self.ROW, "task_id": "test-0000"}, http)
        except BaseException:
            await http.close()
            raise
        return http, [replica]

    async def call_at(self, http: Any) -> str:
        """The adapter answers a call the game rejects (``zzzzz``: not a word) with 400 and the
        game's text, as JSON (tests/test_app.py); the other two send that text with 200. Any
        other reply (an unknown session's 400 ``detail``, a 5xx) is an error."""
        status, data, replica = await self.request(f"/{self.tool}", self.args, http)
        if b'"done":false' not in data:
            raise RuntimeError(f"/{self.tool}: {status} {data[:300]!r}")
        if status == 400 and data.startswith(b'{"observation":"Error: '):
            return replica
        if status != 200:
            raise RuntimeError(f"/{self.tool}: {status} {data[:300]!r}")
        return replica

    async def close_at(self, http: Any) -> None:
        try:
            body = {**self.ROW, "task_id": "test-0000", "response": RESPONSE}
            await self.ok("/verify", body, http)
        finally:
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

    async def open_at(self) -> tuple[Any, list[str]]:
        """One WebSocket per session: every message of it goes to the replica that accepted
        the upgrade (its X-Replica), so the session's replica is read once, here."""
        ws = await self.http.ws_connect(self.url.replace("http", "ws", 1) + "/ws")
        replica = ws._response.headers.get(REPLICA, "")
        try:
            await self.send_ok(ws, {"type": "reset", "data": {"split": "test", "index": 0}})
        except BaseException:
            await ws.close()
            raise
        return (ws, replica), [replica]

    async def send_ok(self, ws: Any, msg: dict[str, Any]) -> None:
        await ws.send_json(msg)
        reply = await ws.receive_json(timeout=TIMEOUT_S)
        if reply.get("type") != "observation" or reply["data"].get("done"):
            raise RuntimeError(str(reply)[:300])

    async def call_at(self, session: Any) -> str:
        ws, replica = session
        data = {"type": "call_tool", "tool_name": self.tool, "arguments": self.args}
        await self.send_ok(ws, {"type": "step", "data": data})
        return replica

    async def close_at(self, session: Any) -> None:
        await self.close(session[0])


class Floor(Protocol):
    async def open(self) -> Any:
        sid = uuid.uuid4().hex
        await self.post("/open", {"split": "test", "index": 0}, **{"X-Session-ID": sid})
        return sid

    async def call(self, sid: Any) -> None:
        await self.post(f"/call/{self.tool}", self.args, **{"X-Session-ID": sid})

    async def close(self, sid: Any) -> None:
        await self.post("/close", {}, **{"X-Session-ID": sid})


class StateChannel:
    """What Verifiers' interception serves a shared tool server: each rollout's typed state by
    route (``GET`` before a call, ``PUT`` after), behind the server's bearer secret."""

    def __init__(self, secret: str) -> None:
        self.secret, self.states, self.url = secret, dict[str, bytes](), ""
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.secret}":
            return web.Response(status=401)
        route = request.headers.get("X-Verifiers-State-Route", "")
        if request.method == "PUT":
            self.states[route] = await request.read()
            return web.Response()
        if route not in self.states:
            return web.Response(status=404)
        return web.Response(body=self.states[route], content_type="application/json")

    async def start(self) -> None:
        app = web.Application(client_max_size=2**26)
        app.router.add_route("*", "/state", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/state"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class Verifiers(Protocol):
    """A Verifiers worker's shared MCP tool server, reached as the worker reaches it: JSON-RPC
    ``tools/call`` over HTTP with the rollout's signed state coordinates in the query, its
    state on this process's channel. Verifiers has no router: its broker hands each whole
    rollout to its least busy worker, and that worker's tool server takes all of the rollout's
    calls. Here each session is one rollout, sent to the server with the fewest open ones, so
    a call cannot reach another server (nothing to check; ``routed`` is false)."""

    channel: ClassVar[StateChannel]
    HEADERS: ClassVar[dict[str, str]] = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }

    def __init__(self, http: aiohttp.ClientSession, spec: dict[str, Any]) -> None:
        super().__init__(http, spec)
        self.servers: dict[str, str] = spec["servers"]  # worker name -> its tool server URL
        self.open_on = collections.Counter({name: 0 for name in self.servers})

    def signature(self, route: str) -> str:
        message = f"vf-state-v1\0{self.channel.url}\0{route}".encode()
        return hmac.new(self.channel.secret.encode(), message, hashlib.sha256).hexdigest()

    async def open_at(self) -> tuple[Any, list[str]]:
        """What the task's setup does: the task id and the rollout id in the typed state."""
        name = min(self.open_on, key=self.open_on.__getitem__)
        self.open_on[name] += 1
        route = uuid.uuid4().hex
        state = {"task_id": self.spec["task_id"], "rollout_id": route}
        self.channel.states[route] = json.dumps(state).encode()
        query = {"vf_state_url": self.channel.url, "vf_state_route": route}
        query["vf_state_signature"] = self.signature(route)
        return (name, route, f"{self.servers[name]}?{urlencode(query)}"), [name]

    async def call_at(self, session: Any) -> str:
        """Success is the tool's result (``zzzzz`` is the game's own error, ``isError``) with
        the episode still running; a JSON-RPC error or any other status is a failure."""
        name, _, url = session
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": self.tool, "arguments": self.args},
        }
        async with self.http.post(url, json=body, headers=self.HEADERS) as r:
            data = await r.read()
            if r.status != 200:
                raise RuntimeError(f"tools/call: {r.status} {data[:300]!r}")
        result = json.loads(data).get("result")
        if not result or not result.get("content") or (result.get("_meta") or {}).get("done"):
            raise RuntimeError(f"tools/call: {data[:300]!r}")
        return name

    async def close_at(self, session: Any) -> None:
        """A rollout ends by dropping its state: a shared server has no per-rollout close (the
        episode stays until it ends or its idle TTL closes it)."""
        name, route, _ = session
        self.open_on[name] -= 1
        del self.channel.states[route]


PROTOCOLS = {
    "ors": Ors,
    "nemo_gym": NemoGym,
    "openenv": OpenEnv,
    "floor": Floor,
    "verifiers": Verifiers,
}


async def drive(
    sessions: list[Any], n: int, seconds: float, timed: Callable[[Any], Awaitable[float | None]]
) -> list[float]:
    """One call in flight per session until ``n`` calls are sent or ``seconds`` pass; the
    latencies ``timed(session)`` returned (None: a failed call, not counted)."""
    latencies: list[float] = []
    left, deadline = n, time.perf_counter() + seconds

    async def worker(session: Any) -> None:
        nonlocal left
        while left > 0 and time.perf_counter() < deadline:
            left -= 1
            if (latency := await timed(session)) is not None:
                latencies.append(latency)

    await asyncio.gather(*(worker(s) for s in sessions))
    return latencies


async def window(p: Any, sessions: list[Any], n: int, seconds: float) -> dict[str, Any]:
    async def timed(session: Any) -> float:
        start = time.perf_counter()
        await p.call(session)
        return time.perf_counter() - start

    pid = p.spec["pid"]
    cpu0, start = cpu_s(pid), time.perf_counter()
    latencies = await drive(sessions, n, seconds, timed)
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


def log(msg: str) -> None:
    print(f"  load: {msg}", file=sys.stderr, flush=True)


def raise_fd_limit() -> None:
    """2,000 sessions are 2,000 sockets (and more while they open): soft limit to the hard."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Tally:
    """Failures of one level (every non-success reply, timeout or connection error) and
    replies from a replica other than the one that opened their session."""

    def __init__(self) -> None:
        self.errors: collections.Counter[str] = collections.Counter()
        self.misrouted = 0
        self.examples: list[str] = []

    def error(self, where: str, exc: BaseException) -> None:
        self.errors[where] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {type(exc).__name__}: {str(exc)[:200]}")


async def batched(
    jobs: list[Any], run: Any, batch: int, what: str, seconds: float
) -> tuple[list[Any], float]:
    """``run(job)`` for every job, ``batch`` at a time, stopping at ``seconds``; (results, wall).
    A progress line to stderr every 500 jobs."""
    out: list[Any] = []
    start = time.perf_counter()
    for i in range(0, len(jobs), batch):
        if time.perf_counter() - start > seconds:
            break
        out += await asyncio.gather(*(run(job) for job in jobs[i : i + batch]))
        done = min(i + batch, len(jobs))
        if done % 500 < batch and len(jobs) >= 500:
            log(f"{what}: {done}/{len(jobs)} in {time.perf_counter() - start:.1f} s")
    return out, time.perf_counter() - start


async def level(
    p: Any, c: int, n: int, seconds: float, batch: int, open_seconds: float
) -> dict[str, Any]:
    """One set-up at concurrency c: open c sessions, one warm-up call each, a window of at most
    n calls or ``seconds`` with one call in flight per session, close them all."""
    tally, name = Tally(), p.spec["name"]
    home: dict[int, str] = {}

    async def open_one(_: int) -> Any:
        try:
            session, seen = await p.open_at()
        except Exception as exc:
            tally.error("open", exc)
            return None
        home[id(session)] = seen[0]
        tally.misrouted += sum(r != seen[0] for r in seen)
        return session

    async def call(session: Any, where: str) -> float | None:
        start = time.perf_counter()
        try:
            replica = await p.call_at(session)
        except Exception as exc:
            tally.error(where, exc)
            return None
        tally.misrouted += replica != home[id(session)]
        return time.perf_counter() - start

    opened, open_s = await batched(
        list(range(c)), open_one, batch, f"{name} c={c} open", open_seconds
    )
    sessions = [s for s in opened if s is not None]
    await asyncio.gather(*(call(s, "warm-up") for s in sessions))
    pids, router = p.spec["pids"], p.spec.get("router_pid")
    cpu0, router0 = sum(cpu_s(pid) for pid in pids), cpu_s(router) if router else 0.0
    self0, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    latencies = await drive(sessions, n, seconds, lambda session: call(session, "call"))
    wall = time.perf_counter() - start
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = sum(cpu_s(pid) for pid in pids) - cpu0
    router_cpu = cpu_s(router) - router0 if router else None
    load_cpu = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)

    async def close_one(session: Any) -> None:
        try:
            await p.close_at(session)
        except Exception as exc:
            tally.error("close", exc)

    _, close_s = await batched(sessions, close_one, batch, f"{name} c={c} close", open_seconds)
    done = max(len(latencies), 1)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else None
    per_replica = collections.Counter(home.values())
    result = {
        "c": c,
        "opened": len(sessions),
        "open_failures": c - len(sessions),
        "open_s": open_s,
        "close_s": close_s,
        "calls": len(latencies),
        "wall_s": wall,
        "calls_per_s": len(latencies) / wall,
        "p50_ms": q[49] * 1e3 if q else float("nan"),
        "p99_ms": q[98] * 1e3 if q else float("nan"),
        "server_cpu_ms_per_call": cpu / done * 1e3,
        "router_cpu_ms_per_call": router_cpu / done * 1e3 if router_cpu is not None else None,
        "load_cpu_ms_per_call": load_cpu / done * 1e3,
        "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(tally.errors),
        "error_examples": tally.examples,
        "misrouted": tally.misrouted if p.spec.get("routed", True) else None,
        "sessions_per_replica": dict(sorted(per_replica.items())),
    }
    log(
        f"{name} c={c}: {result['calls_per_s']:.0f} calls/s, p99 {result['p99_ms']:.1f} ms, "
        f"opened {len(sessions)}/{c} in {open_s:.1f} s, errors {result['errors']}, "
        f"misrouted {tally.misrouted}, sessions per replica {result['sessions_per_replica']}"
    )
    for example in tally.examples:
        log(f"  {example}")
    return result


async def scale(ps: list[Any], spec: dict[str, Any]) -> list[dict[str, list[Any]]]:
    out: list[dict[str, list[Any]]] = [{c: [] for c in spec["levels"]} for _ in ps]
    for c, (n, seconds) in spec["levels"].items():
        for _ in range(spec["repeats"]):
            for p, res in zip(ps, out, strict=True):
                args = (int(c), int(n), seconds, spec["batch"], spec["open_seconds"])
                res[c].append(await level(p, *args))
    return out


async def main(spec: dict[str, Any]) -> list[Any]:
    # no cap on connections; idle ones are dropped before uvicorn's 5 s keep-alive timeout
    # closes them from its side (reusing one it is closing resets the call)
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=2)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        ps = []
        for target in spec["targets"]:
            urls = [target["url"], *target.get("servers", {}).values()]
            assert all(urlparse(u).hostname == "127.0.0.1" for u in urls), "loopback only"
            ps.append(PROTOCOLS[target["protocol"]](http, target))
        repeats = spec["repeats"]
        if spec["mode"] == "scale" and "state_secret" in spec:
            Verifiers.channel = StateChannel(spec["state_secret"])
            await Verifiers.channel.start()
            try:
                return await scale(ps, spec)
            finally:
                await Verifiers.channel.stop()
        if spec["mode"] == "scale":
            return await scale(ps, spec)
        if spec["mode"] == "calls":
            return await calls(ps, spec["k"], spec["calls"], repeats, spec["warmup"])
        n, seconds = spec["sessions"]
        runs = [[await sessions(p, n, seconds) for p in ps] for _ in range(repeats)]
        return [list(r) for r in zip(*runs, strict=True)]


if __name__ == "__main__":
    raise_fd_limit()
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
