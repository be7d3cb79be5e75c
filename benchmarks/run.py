"""Measure every generated adapter beside its framework's own minimal env and a plain floor.

Run by ``nox -s bench``. Renders each archetype with every framework into benchmarks/tmp/,
installs each framework folder (all three archetypes' envs) in its own uv venv, serves on
127.0.0.1 only, drives load from a separate process (benchmarks/load.py) and writes
benchmarks/results/latest.{json,md}. The scale part (the game adapter at c=16, 256 and 2,000
sessions, direct and behind HAProxy with 1 and 2 replicas; Verifiers' tool servers of 1 and 2
workers) also runs alone: --only scale.
"""

import datetime
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TMP = HERE / "tmp"
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
PY312 = next(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"), "3.12")

FRAMEWORKS = ["nemo_gym", "verifiers", "openenv", "ors"]
SERVED = ["ors", "nemo_gym", "openenv"]  # verifiers: CPU per scripted rollout instead
QUICK = "--quick" in sys.argv  # a smoke run: one repeat, few sessions; not for the table
# --only scale: just the scale table; the other results are kept from results/latest.json
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
if ONLY not in (None, "scale"):
    sys.exit(f"--only {ONLY}: only 'scale' can be run alone")
# --only scale --frameworks a,b: measure only these at scale, keep the others' kept results
SCALE_ONLY = (
    sys.argv[sys.argv.index("--frameworks") + 1].split(",") if "--frameworks" in sys.argv else None
)
if SCALE_ONLY and ONLY != "scale":
    sys.exit("--frameworks goes with --only scale (a full run measures every framework)")
REPEATS = 1 if QUICK else 3
WARMUP = 64


@dataclass(frozen=True)
class Archetype:
    """A rendered env and how hard it is driven."""

    env: str  # env name = domain package; its settings read <ENV>_* variables
    tool: str  # the timed tool call, with args
    args: dict[str, Any]
    calls: dict[int, tuple[int, float]]  # concurrency: (timed calls, seconds), both bounds
    sessions: tuple[int, float]  # create+close per repeat: count, seconds
    hold: int  # sessions held open (for RSS per session) while c of them take the calls


GAME_CALLS = {1: (2000, 3.0), 16: (6000, 4.0)}
HEAVY_CALLS = {1: (2000, 1.5), 16: (4000, 2.5)}  # a kernel or display round trip per call
HEAVY_SESSIONS = 3 if QUICK else 10  # create+close per repeat: each starts a kernel or display
ARCHETYPES = {
    # `zzzzz` is not in the word list: an error result that uses no turn
    "game": Archetype(
        "wordle", "guess", {"word": "zzzzz"}, GAME_CALLS, (40 if QUICK else 350, 10.0), 500
    ),
    "sandbox": Archetype(
        "sbx", "run_code", {"code": "x = 1"}, HEAVY_CALLS, (HEAVY_SESSIONS, 5.0), 16
    ),
    "computer_use": Archetype(
        "desk", "computer", {"action": "screenshot"}, HEAVY_CALLS, (HEAVY_SESSIONS, 5.0), 16
    ),
}
ECHO = ("echo", {"text": "zzzzz"})
# Scale: the game adapter at c concurrent sessions, each with one call in flight: (at most n
# timed calls, at most s seconds) per level; --quick keeps c=2,000 but times a short window.
SCALE_LEVELS = (
    {16: (400, 0.5), 256: (1000, 0.5), 2000: (3000, 1.0)}
    if QUICK
    else {16: (3000, 2.0), 256: (6000, 3.0), 2000: (12000, 5.0)}
)
SCALE_SETUPS = {"direct": 0, "router-1": 1, "router-2": 2}  # replicas behind HAProxy (0: none)
# Verifiers has no router: each worker of its env server runs one shared tool server, and its
# broker hands every rollout to one worker (load.Verifiers plays the broker).
VF_SETUPS = {"direct": 1, "workers-2": 2}  # tool servers
TWO_OVER_ONE = {"verifiers": ("workers-2", "direct")}  # else ("router-2", "router-1")
SCALE_BATCH = 100  # sessions opened (and closed) at once
SCALE_OPEN_S = 60.0  # bound on opening (and on closing) one level's sessions
SCALE_MAX_ENVS = 2100  # OpenEnv's MAX_CONCURRENT_ENVS for the scale servers: above 2,000
DESKTOPS = ["x11", "browser"]  # local desktop backends (e2b needs an account)
DISTS = ["openreward", "nemo-gym", "openenv", "verifiers", "fastapi", "uvicorn", "pydantic"]
BEGIN, END = "<!-- results: written by benchmarks/run.py -->", "<!-- /results -->"
TWO_CORES = (os.cpu_count() or 1) >= 2


def env_dir(archetype: str) -> Path:
    return TMP / f"env-{archetype}"


def pin(core: int, cmd: list[Any]) -> list[str]:
    return [str(c) for c in (["taskset", "-c", str(core), *cmd] if TWO_CORES else cmd)]


def timed(cmd: list[Any], **kw: Any) -> float:
    start = time.perf_counter()
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True, **kw)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def python(name: str) -> Path:
    return TMP / "venvs" / name / "bin" / "python"


def copy(archetype: str, dst: Path) -> float:
    data = [f"env_name={ARCHETYPES[archetype].env}", f"archetype={archetype}"]
    data.append(f"frameworks=[{', '.join(FRAMEWORKS)}]")
    flags = ["--quiet", "--defaults", "--overwrite", "--vcs-ref", "HEAD"]
    flags += [arg for d in data for arg in ("--data", d)]
    shutil.rmtree(dst, ignore_errors=True)
    return timed([BIN / "copier", "copy", *flags, ROOT, dst])


def render() -> list[float]:
    """Every archetype with all four frameworks; the game thrice, for the copy time."""
    times = [copy("game", dst) for dst in (env_dir("game"), TMP / "render-2", TMP / "render-3")]
    for archetype in ARCHETYPES.keys() - {"game"}:
        copy(archetype, env_dir(archetype))
    return times


def install() -> float:
    """One uv venv per framework folder (Python 3.12), each with every archetype's env (their
    packages differ by name), and one with the domains for their tests and backend figures."""
    env = {**os.environ, "UV_COMPILE_BYTECODE": "1"}
    jobs, begin = {}, time.perf_counter()
    for name in [*FRAMEWORKS, "domain"]:
        venv = TMP / "venvs" / name
        subprocess.run(["uv", "venv", "-q", "--allow-existing", "-p", PY312, venv], check=True)
        reqs: list[Any] = []
        for archetype in ARCHETYPES:
            root = env_dir(archetype)
            if name == "domain":
                reqs += ["-e", f"{root}[test]" if archetype == "game" else root]
            elif name == "verifiers":
                reqs += ["-e", root, "-e", root / name]
            else:
                reqs += ["-e", root, "-r", root / name / "pyproject.toml"]
        cmd = ["uv", "pip", "install", "-q", "-p", python(name), *reqs]
        jobs[name] = subprocess.Popen([str(c) for c in cmd], env=env)
    for name, proc in jobs.items():
        if proc.wait(timeout=900) != 0:
            raise RuntimeError(f"installing {name} failed")
    return time.perf_counter() - begin


def versions() -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        f"for d in {DISTS!r}:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    found: dict[str, str] = {}
    for name in FRAMEWORKS:
        run = subprocess.run([python(name), "-c", code], capture_output=True, text=True)
        for dist, version in json.loads(run.stdout).items():
            found.setdefault(dist, version)
    return found


def target(fw: str, archetype: str, kind: str, port: int) -> tuple[list[Any], dict[str, Any]]:
    """The server command (run in the env's fw folder) and the load generator's spec for it."""
    arch = ARCHETYPES[archetype]
    spec: dict[str, Any] = {"url": f"http://127.0.0.1:{port}", "protocol": fw}
    spec["tool"], spec["args"] = ECHO if kind == "baseline" else (arch.tool, arch.args)
    spec["env"] = "echoenv" if kind == "baseline" else f"{arch.env}env"  # ORS env names
    if kind == "adapter":
        serve = ["serve.py", "--host", "127.0.0.1", "--port", port]
        cmd: list[Any] = [HERE / "targets.py", "adapter", arch.env, *serve]
    elif kind == "baseline":
        cmd = [HERE / "targets.py", "baseline", fw, port]
    else:
        cmd = [HERE / "targets.py", "floor", arch.env, port]
        if fw != "openenv":
            spec["protocol"] = "floor"  # plain HTTP; OpenEnv's floor speaks its WebSocket shape
    return [python(fw), *cmd], spec


def environ() -> dict[str, str]:
    env = {**os.environ, "OPENREWARD_DISABLE_UPDATE_CHECK": "1", "PYTHONUNBUFFERED": "1"}
    # glibc's dynamic mmap threshold otherwise decides, by heap history, whether a screenshot's
    # multi-MB buffers are page-faulted in afresh on every call (4 or 7 ms per screenshot)
    env["MALLOC_MMAP_THRESHOLD_"] = str(32 * 2**20)  # its maximum; no dynamic adjustment
    env["MALLOC_TRIM_THRESHOLD_"] = str(256 * 2**20)
    hold = max(a.hold for a in ARCHETYPES.values())
    env["MAX_CONCURRENT_ENVS"] = str(hold + 16)  # OpenEnv's cap on live sessions (default 64)
    for arch in ARCHETYPES.values():  # the heavy domains' settings; the game has none
        env[f"{arch.env.upper()}_MAX_SESSIONS"] = "32"  # the 16 held, with room
        env[f"{arch.env.upper()}_MAX_STEPS"] = str(10**9)  # timed calls must not end episodes
    return env


def raise_fd_limit() -> None:
    """In a child before exec: its open-file soft limit up to the hard one (2,000 sessions are
    2,000 sockets)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start(
    cmd: list[Any], cwd: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        pin(0, cmd),
        cwd=cwd,
        env=env or environ(),
        stdout=out,
        stderr=out,
        preexec_fn=raise_fd_limit,
    )


def wait_ports(procs: dict[int, subprocess.Popen[bytes]], seconds: float = 180) -> dict[int, float]:
    """Seconds from now until each port accepts a connection."""
    begin, ready = time.perf_counter(), {}
    while len(ready) < len(procs) and time.perf_counter() - begin < seconds:
        for port, proc in procs.items():
            if port in ready:
                continue
            if proc.poll() is not None:
                raise RuntimeError(f"server on {port} exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                ready[port] = time.perf_counter() - begin
            except OSError:
                pass
        time.sleep(0.05)
    if len(ready) < len(procs):
        raise TimeoutError(f"servers not listening after {seconds} s")
    return ready


def load(spec: dict[str, Any], timeout: float = 400, stderr: Any = subprocess.PIPE) -> list[Any]:
    cmd = pin(1, [sys.executable, HERE / "load.py", json.dumps(spec)])
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=timeout)
    if run.returncode:
        urls = [t["url"] for t in spec["targets"]]
        raise RuntimeError(f"load {spec['mode']} on {urls}: {(run.stderr or '')[-1500:]}")
    return json.loads(run.stdout)


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def session_processes(pid: int) -> list[int]:
    """``descendants`` less the sandbox's guard (``isolation.py``), one per server by design: it
    outlives the server to kill what a crashed server's sessions left, then exits."""
    return [p for p in descendants(pid) if not cmdline(p).endswith("/isolation.py")]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode(errors="replace")
    except OSError:
        return ""


def live_parents() -> dict[int, int]:
    """Every live (not zombie) process's parent, by pid."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    """Live processes started, directly or not, by ``pid`` (kernels, displays, task apps)."""
    parents, found, todo = live_parents(), [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        todo += kids
    return found


def serve_and_measure(fw: str, archetype: str) -> dict[str, Any]:
    """The archetype's adapter and floor (and for the game the baseline) up together."""
    arch = ARCHETYPES[archetype]
    kinds = ["adapter", "baseline", "floor"] if archetype == "game" else ["adapter", "floor"]
    procs, specs, out = {}, {}, {}
    for kind in kinds:
        port = free_port()
        cmd, specs[kind] = target(fw, archetype, kind, port)
        log = TMP / f"{fw}-{archetype}-{kind}.log"
        procs[kind] = start(cmd, env_dir(archetype) / fw, log)
        specs[kind]["pid"] = procs[kind].pid
        out[kind] = {"port": port}
    targets = [specs[kind] for kind in kinds]
    try:
        ready = wait_ports({out[kind]["port"]: procs[kind] for kind in kinds})
        calls = {"mode": "calls", "k": arch.hold, "calls": arch.calls, "warmup": WARMUP}
        sessions = {"mode": "sessions", "sessions": arch.sessions}
        results = zip(
            load({"targets": targets, "repeats": REPEATS, **calls}),
            load({"targets": targets, "repeats": REPEATS, **sessions}),
            strict=True,
        )
        for kind, (c, s) in zip(kinds, results, strict=True):
            out[kind].update(ready_s=ready[out[kind].pop("port")], calls=c, sessions=s)
        deadline = time.perf_counter() + 10  # closes may finish in the background
        left = {kind: session_processes(procs[kind].pid) for kind in kinds}
        while any(left.values()) and time.perf_counter() < deadline:
            time.sleep(0.2)
            left = {kind: session_processes(procs[kind].pid) for kind in kinds}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    deadline = time.perf_counter() + 10  # the backend's processes exit with their server
    pending = [p for pids in left.values() for p in pids]
    while (alive := live_parents().keys() & pending) and time.perf_counter() < deadline:
        time.sleep(0.2)
    for kind in kinds:
        runs = out[kind]["sessions"]
        out[kind]["summary"] = {
            **{f"c{c}": median(out[kind]["calls"]["runs"][str(c)]) for c in arch.calls},
            "sessions": median(runs),
            "sessions_total": sum(r["sessions"] for r in runs),
            "rss_start_kb": runs[0]["rss_before_kb"],
            "rss_after_sessions_kb": runs[-1]["rss_after_kb"],
            "rss_per_live_session_kb": out[kind]["calls"]["rss_per_session_kb"],
            "held": arch.hold,
            "left_after_close": len(left[kind]),
            "left_after_stop": sum(p in alive for p in left[kind]),
        }
    cmd = [HERE / "targets.py", "domain", arch.env, arch.tool, json.dumps(arch.args)]
    domain = subprocess.run(
        pin(0, [python(fw), *cmd]), capture_output=True, check=True, env=environ(), timeout=120
    )
    out["domain_call_us"] = json.loads(domain.stdout)["domain_call_us"]
    return out


def router_config(fw: str, bind: str, servers: dict[str, str]) -> str:
    """The rendered deploy/haproxy.cfg with local addresses, by the env's own
    ``testing.local_router_config`` (as its tests/test_router.py runs it)."""
    code = (
        "import json, sys\n"
        "from wordle.testing import local_router_config\n"
        "text, bind, servers = json.load(sys.stdin)\n"
        "sys.stdout.write(local_router_config(text, bind, servers))"
    )
    text = (env_dir("game") / fw / "deploy" / "haproxy.cfg").read_text()
    return subprocess.run(
        [python("domain"), "-c", code],
        input=json.dumps([text, bind, servers]),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def wait_router(url: str, health: str, names: set[str], seconds: float = 30) -> None:
    """Ask the router's health path until every replica has answered through it."""
    seen: set[str] = set()
    deadline = time.perf_counter() + seconds
    while seen != names:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"router {url} reached only {sorted(seen)} of {sorted(names)}")
        try:
            with urllib.request.urlopen(url + health, timeout=2) as reply:
                seen.add(reply.headers.get("X-Replica", ""))
        except OSError:
            time.sleep(0.2)


def verifiers_setups(
    env: dict[str, str], procs: list[subprocess.Popen[bytes]], waits: dict[int, Any]
) -> tuple[list[dict[str, Any]], str]:
    """One and two Verifiers workers' shared tool servers (``python -m <env>_vf.servers.tools``,
    as a worker starts it), their states on the load process's channel under one secret."""
    arch, folder = ARCHETYPES["game"], env_dir("game") / "verifiers"
    secret, specs = os.urandom(16).hex(), []
    for setup, n in VF_SETUPS.items():
        servers, pids = {}, []
        for i in range(n):
            name, port = f"{setup}-w{i + 1}", free_port()
            module = ["-m", f"{arch.env}_vf.servers.tools"]
            cmd = [python("verifiers"), HERE / "targets.py", "adapter", arch.env, *module]
            tool_env = {**env, "VF_CONFIG": "{}", "VF_STATE_SECRET": secret}
            tool_env |= {"MCP_HOST": "127.0.0.1", "MCP_PORT": str(port)}
            proc = start(cmd, folder, TMP / f"scale-verifiers-{name}.log", tool_env)
            procs.append(proc)
            pids.append(proc.pid)
            waits[port] = proc
            servers[name] = f"http://127.0.0.1:{port}/mcp"
        spec = {"name": setup, "protocol": "verifiers", "tool": arch.tool, "args": arch.args}
        spec.update(url=next(iter(servers.values())), servers=servers, pids=pids)
        spec.update(replicas=sorted(servers), routed=False, task_id="test-0000")
        specs.append(spec)
    return specs, secret


def scale_measure(fw: str) -> dict[str, Any]:
    """The game adapter in each set-up (direct; HAProxy + 1 replica; HAProxy + 2 replicas; for
    Verifiers one and two workers' tool servers), all up at once on core 0, driven in turn by
    one load process at each c and repeat."""
    arch, folder = ARCHETYPES["game"], env_dir("game") / fw
    health = "/" if fw == "nemo_gym" else "/health"
    procs: list[subprocess.Popen[bytes]] = []
    specs, waits = [], {}
    env = {**environ(), "MAX_CONCURRENT_ENVS": str(SCALE_MAX_ENVS)}
    extra: dict[str, Any] = {}
    try:
        if fw == "verifiers":
            specs, extra["state_secret"] = verifiers_setups(env, procs, waits)
        for setup, n in {} if fw == "verifiers" else SCALE_SETUPS.items():
            pids, addresses = [], {}
            for i in range(max(n, 1)):
                name, port = f"{setup}-r{i + 1}", free_port()
                serve = ["serve.py", "--host", "127.0.0.1", "--port", port]
                cmd = [python(fw), HERE / "targets.py", "adapter", arch.env, *serve]
                log = TMP / f"scale-{fw}-{name}.log"
                proc = start(cmd, folder, log, {**env, "REPLICA_ID": name})
                procs.append(proc)
                pids.append(proc.pid)
                waits[port] = proc
                addresses[name] = f"127.0.0.1:{port}"
            spec = {"name": setup, "protocol": fw, "tool": arch.tool, "args": arch.args}
            spec.update(env=f"{arch.env}env", pids=pids, replicas=sorted(addresses))
            if n == 0:
                spec["url"] = "http://" + next(iter(addresses.values()))
            else:
                bind = f"127.0.0.1:{free_port()}"
                config = TMP / f"scale-{fw}-{setup}-haproxy.cfg"
                config.write_text(router_config(fw, bind, addresses))
                log = TMP / f"scale-{fw}-{setup}-haproxy.log"
                router = start(["haproxy", "-db", "-f", config], TMP, log)
                procs.append(router)
                waits[int(bind.rsplit(":", 1)[1])] = router
                spec.update(url=f"http://{bind}", router_pid=router.pid)
            specs.append(spec)
        wait_ports(waits)
        for spec in specs:
            if "router_pid" in spec:
                wait_router(spec["url"], health, set(spec["replicas"]))
        levels = {str(c): bounds for c, bounds in SCALE_LEVELS.items()}
        runs = load(
            {
                "mode": "scale",
                "targets": specs,
                "repeats": REPEATS,
                "levels": levels,
                "batch": SCALE_BATCH,
                "open_seconds": SCALE_OPEN_S,
                **extra,
            },
            timeout=1500,
            stderr=None,  # its progress lines go straight to ours
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    out = {}
    for spec, res in zip(specs, runs, strict=True):
        out[spec["name"]] = {"replicas": spec["replicas"], "levels": {}}
        for c, reps in res.items():
            keys = ["calls_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_call", "open_s"]
            keys += ["load_cpu_ms_per_call"]
            summary = {k: statistics.median(r[k] for r in reps) for k in keys}
            router = [r["router_cpu_ms_per_call"] for r in reps]
            summary["router_cpu_ms_per_call"] = (
                statistics.median(router) if None not in router else None
            )
            for k in ("errors", "open_failures", "calls"):
                summary[k] = sum(r[k] for r in reps)
            misrouted = [r["misrouted"] for r in reps]
            summary["misrouted"] = None if None in misrouted else sum(misrouted)
            per_replica: dict[str, int] = {}
            for r in reps:
                for name, count in r["sessions_per_replica"].items():
                    per_replica[name] = per_replica.get(name, 0) + count
            summary["sessions_per_replica"] = per_replica
            summary["error_examples"] = [e for r in reps for e in r["error_examples"]][:5]
            out[spec["name"]]["levels"][c] = {"runs": reps, "summary": summary}
    return out


def scale_all() -> dict[str, Any]:
    begin, start_load = time.perf_counter(), os.getloadavg()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    frameworks, dates = {}, {}
    for fw in SCALE_ONLY or [*SERVED, "verifiers"]:
        print(f"scale: {fw}", flush=True)
        frameworks[fw] = scale_measure(fw)
        dates[fw] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        # a later failure loses nothing measured
        (TMP / "scale-partial.json").write_text(json.dumps(frameworks, indent=1))
    return {
        "dates": dates,
        "date": date,
        "load_average": {"start": start_load, "end": os.getloadavg()},
        "wall_s": time.perf_counter() - begin,
        "repeats": REPEATS,
        "levels": SCALE_LEVELS,
        "setups": SCALE_SETUPS,
        "verifiers_setups": VF_SETUPS,
        "frameworks": frameworks,
        "derived": scale_derived(frameworks),
    }


def scale_derived(frameworks: dict[str, Any]) -> dict[str, Any]:
    """2 replicas / 1 replica throughput per framework and c (router-2 / router-1; Verifiers
    workers-2 / direct); c=top p99 / c=16 p99 per set-up."""
    low, top = str(min(SCALE_LEVELS)), str(max(SCALE_LEVELS))

    def s(fw: str, setup: str, c: str) -> dict[str, Any]:
        return frameworks[fw][setup]["levels"][c]["summary"]

    def two_over_one(fw: str, c: str) -> float:
        two, one = TWO_OVER_ONE.get(fw, ("router-2", "router-1"))
        base = s(fw, one, c)["calls_per_s"]
        return s(fw, two, c)["calls_per_s"] / base if base else float("nan")

    return {
        "two_over_one": {
            fw: {c: two_over_one(fw, c) for c in map(str, SCALE_LEVELS)} for fw in frameworks
        },
        "p99_top_over_low": {
            fw: {setup: s(fw, setup, top)["p99_ms"] / s(fw, setup, low)["p99_ms"] for setup in res}
            for fw, res in frameworks.items()
        },
    }


def scale_table(sc: dict[str, Any]) -> str:
    low, top = min(SCALE_LEVELS), max(SCALE_LEVELS)
    rows, problems = [], []
    for fw, setups in sc["frameworks"].items():
        for setup, res in setups.items():
            for c, level in res["levels"].items():
                s = level["summary"]
                router = s["router_cpu_ms_per_call"]
                spread = ", ".join(f"{v}" for v in s["sessions_per_replica"].values())
                rows.append(
                    f"| {fw} | {setup} | {int(c):,} | {s['calls_per_s']:.0f} "
                    f"| {s['p50_ms']:.1f} / {s['p99_ms']:.1f} | {s['server_cpu_ms_per_call']:.2f} "
                    f"| {'-' if router is None else f'{router:.2f}'} "
                    f"| {s['load_cpu_ms_per_call']:.2f} | {s['open_s']:.2f} "
                    f"| {s['open_failures']} | {s['errors']} "
                    f"| {'-' if s['misrouted'] is None else s['misrouted']} | {spread} |"
                )
                if s["errors"] or s["misrouted"] or s["open_failures"]:
                    problems.append(f"{fw} {setup} c={c}: " + "; ".join(s["error_examples"]))
    d = sc["derived"]
    levels = [str(c) for c in SCALE_LEVELS]
    ratio_rows = [
        f"| {fw} | {' / '.join(TWO_OVER_ONE.get(fw, ('router-2', 'router-1')))} | "
        + " | ".join(f"{r[c]:.2f}" for c in levels)
        + " |"
        for fw, r in d["two_over_one"].items()
    ]
    setups = [*SCALE_SETUPS, *(s for s in VF_SETUPS if s not in SCALE_SETUPS)]
    p99_rows = [
        f"| {fw} | " + " | ".join(f"{r[s]:.1f}" if s in r else "-" for s in setups) + " |"
        for fw, r in d["p99_top_over_low"].items()
    ]
    calls = sum(
        lv["summary"]["calls"]
        for setups in sc["frameworks"].values()
        for res in setups.values()
        for lv in res["levels"].values()
    )
    dates = sc.get("dates", {})
    merged = any(d < sc["date"] for d in dates.values())  # kept from an earlier run
    measured = "; ".join(f"{fw} {d}" for fw, d in dates.items()) if merged else ""
    lines = [
        f"### Scale: the game adapter at c = {', '.join(f'{c:,}' for c in SCALE_LEVELS)} "
        f"concurrent sessions (medians of {sc['repeats']}; errors, misrouted and failures summed)",
        "",
        f"Measured {sc['date']}; load average (1 min) {sc['load_average']['start'][0]:.2f} at "
        f"start, {sc['load_average']['end'][0]:.2f} at end; wall {sc['wall_s']:.0f} s; "
        f"{calls:,} timed calls."
        + (f" Each framework's rows are from one run: {measured}." if measured else ""),
        "",
        "| framework | set-up | c | calls/s | p50 / p99 ms | server CPU ms/call "
        "| haproxy CPU ms/call | load-gen CPU ms/call | open c sessions, s | open failures "
        "| errors | misrouted | sessions per replica (all repeats) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Errors: " + ("; ".join(problems) if problems else "none") + ".",
        "",
        "| framework | 2 replicas / 1 replica throughput | "
        + " | ".join(f"c={int(c):,}" for c in levels)
        + " |",
        "|---|---|" + "---|" * len(levels),
        *ratio_rows,
        "",
        f"| framework | c={top:,} p99 / c={low} p99: " + " | ".join(setups) + " |",
        "|---|" + "---|" * len(setups),
        *p99_rows,
    ]
    return "\n".join(lines) + "\n"


def verifiers_rollouts(archetype: str) -> dict[str, Any]:
    """CPU-seconds (vf-eval and everything it waited for) per scripted offline rollout."""
    env, port = ARCHETYPES[archetype].env, free_port()
    model = start(
        [python("verifiers"), "-m", f"{env}.scripted_model", "--port", port],
        TMP,
        TMP / f"scripted-model-{archetype}.log",
    )
    try:
        wait_ports({port: model})
        cmd = [
            python("verifiers").parent / "vf-eval",
            f"{env}-vf",
            "@",
            "configs/eval.offline.toml",
        ]
        cmd += ["--no-rich", "--client.base-url", f"http://127.0.0.1:{port}/v1"]
        cmd += ["-o", TMP / "vf-outputs" / archetype]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = timed(pin(1, cmd), cwd=env_dir(archetype) / "verifiers", timeout=600)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        model.terminate()
        model.wait(timeout=10)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rollouts = 2  # configs/eval.offline.toml: [select] limit = 2, num_rollouts = 1
    return {"rollouts": rollouts, "wall_s": wall, "cpu_s_per_rollout": cpu / rollouts}


def backend_figures(script: str, sessions: int, *args: str) -> dict[str, Any]:
    """Backend figures of a heavy archetype's domain package, in the domain venv."""
    cmd = pin(0, [python("domain"), HERE / script, str(sessions), *args])
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True, env=environ(), timeout=900
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024**2
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gb": mem, "os": platform.platform()}


def ratio(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Adapter cost over a reference (> 1: the adapter is slower or bigger)."""
    return {
        "c1_p50_latency": a["c1"]["p50_ms"] / b["c1"]["p50_ms"],
        "c1_throughput": b["c1"]["calls_per_s"] / a["c1"]["calls_per_s"],
        "c16_throughput": b["c16"]["calls_per_s"] / a["c16"]["calls_per_s"],
        "c16_server_cpu_per_call": a["c16"]["server_cpu_ms_per_call"]
        / b["c16"]["server_cpu_ms_per_call"],
        "session_rate": b["sessions"]["sessions_per_s"] / a["sessions"]["sessions_per_s"],
    }


def ratios(frameworks: dict[str, Any]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """framework -> archetype -> reference (baseline: the game run's echo env; floor) -> ratios."""
    return {
        fw: {
            archetype: {
                ref: ratio(res[archetype]["adapter"]["summary"], res[home][ref]["summary"])
                for ref, home in (("baseline", "game"), ("floor", archetype))
            }
            for archetype in ARCHETYPES
        }
        for fw, res in frameworks.items()
    }


def worst(ratios: dict[str, Any], ref: str, archetypes: list[str]) -> tuple[str, str, str, float]:
    found = (
        (fw, a, k, v) for fw, r in ratios.items() for a in archetypes for k, v in r[a][ref].items()
    )
    return max(found, key=lambda item: item[3])


def duration(us: float) -> str:
    return f"{us:.1f} us" if us < 1000 else f"{us / 1000:.1f} ms"


def targets(result: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(framework, archetype, kind, measurements): the baseline first, then adapter and floor."""
    out = []
    for fw, res in result["frameworks"].items():
        out.append((fw, "any", "baseline", res["game"]["baseline"]))
        out += [(fw, a, kind, res[a][kind]) for a in ARCHETYPES for kind in ("adapter", "floor")]
    return out


def row(fw: str, archetype: str, kind: str, res: dict[str, Any]) -> str:
    s = res["summary"]
    c1, c16, rate = s["c1"], s["c16"], s["sessions"]["sessions_per_s"]
    return (
        f"| {fw} | {archetype} | {kind} | {res['ready_s']:.1f} | {c1['calls_per_s']:.0f} "
        f"| {c1['p50_ms']:.2f} / {c1['p99_ms']:.2f} | {c16['calls_per_s']:.0f} "
        f"| {c16['p50_ms']:.1f} / {c16['p99_ms']:.1f} | {c16['server_cpu_ms_per_call']:.2f} "
        f"| {rate:.{0 if rate >= 10 else 2}f} | {s['rss_per_live_session_kb']:.1f} ({s['held']}) "
        f"| {s['rss_start_kb'] / 1024:.0f} -> {s['rss_after_sessions_kb'] / 1024:.0f} "
        f"(N={s['sessions_total']}) |"
    )


def table(result: dict[str, Any]) -> str:
    head = (
        "| framework | archetype | target | ready s* | c=1 calls/s | c=1 p50 / p99 ms "
        "| c=16 calls/s | c=16 p50 / p99 ms | server CPU ms/call (c=16) | sessions/s "
        "| RSS kB per live session (held) | RSS MB: start -> after N sessions |\n|" + "---|" * 12
    )
    left = [
        f"{fw} {a} {kind}: {r['summary']['left_after_close']} after the last close, "
        f"{r['summary']['left_after_stop']} after stop"
        for fw, a, kind, r in targets(result)
        if r["summary"]["left_after_close"] or r["summary"]["left_after_stop"]
    ]
    ratio_rows = [
        f"| {fw} | {archetype} | {ref} | " + " | ".join(f"{v:.2f}" for v in rs.values()) + " |"
        for fw, r in result["ratios"].items()
        for archetype, refs in r.items()
        for ref, rs in refs.items()
    ]
    repeats = result["settings"]["repeats"]
    v, sb, dk = result["verifiers"], result["sandbox"], result["desktop"]
    x11 = dk["x11"]

    def desktop_row(figure: str, template: str) -> str:
        return f"| {figure} | " + " | ".join(template.format(**dk[b]) for b in DESKTOPS) + " |"

    lines = [
        f"Date {result['date']}; {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"{result['machine']['mem_gb']} GB; load average (1 min) "
        f"{result['load_average']['start'][0]:.2f} at start, "
        f"{result['load_average']['end'][0]:.2f} at end; wall {result['wall_s']:.0f} s.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        f"### Tool calls and sessions (medians of {repeats}; baseline = the framework's own "
        "minimal env with one `echo` tool, the same server for every archetype; floor = plain "
        "FastAPI calling the archetype's domain in the same venv)",
        "",
        head,
        *(row(*t) for t in targets(result)),
        "",
        "*ready s: from launch until the port accepts; an archetype's servers start together on "
        "one core. Tool calls: game `guess` (`zzzzz`), sandbox `run_code` (`x = 1`), "
        "computer_use `computer` (`screenshot`: a PNG, base64, in every reply). Sessions "
        "and memory are the server's (kernels and displays are separate processes: see the "
        "backend tables). Backend processes (kernels, Xvfb, task apps) left after the last "
        "session closed and after the servers stopped: "
        + ("; ".join(left) if left else "none")
        + ".",
        "",
        "### Adapter / baseline and adapter / floor (> 1 means the adapter costs more)",
        "",
        "| framework | archetype | adapter / | c=1 p50 latency | c=1 throughput "
        "| c=16 throughput | c=16 server CPU/call | session rate |",
        "|---|---|---|---|---|---|---|---|",
        *ratio_rows,
        "",
        "Worst adapter / baseline: {} {} {} = {:.2f}.".format(*result["worst"]["baseline"]),
        "Worst adapter / floor where the backend dominates (sandbox, computer_use): "
        "{} {} {} = {:.2f}.".format(*result["worst"]["floor"]),
        "",
        *([scale_table(result["scale"])] if "scale" in result else []),
        "### Other figures",
        "",
        "| figure | value |",
        "|---|---|",
        *(
            f"| in-process domain call ({fw} venv) | "
            + ", ".join(f"{a} {duration(res[a]['domain_call_us'])}" for a in ARCHETYPES)
            + " |"
            for fw, res in result["frameworks"].items()
        ),
        *(
            f"| Verifiers {a}: CPU-s per scripted rollout (vf-eval, {r['rollouts']} rollouts, "
            f"offline scripted model) | {r['cpu_s_per_rollout']:.1f} s (wall {r['wall_s']:.0f} s) |"
            for a, r in v.items()
        ),
        f"| `copier copy` of the game, all {len(FRAMEWORKS)} frameworks (median of 3) "
        f"| {statistics.median(result['render_s']):.2f} s |",
        f"| domain test suite (`pytest`, rendered game env) | {result['domain_tests_s']:.1f} s |",
        "| generated game env's full suite (`nox`: domain, lint, the four adapter folders, each in "
        f"a fresh venv from a warm uv cache) | {result['env_suite_s']:.0f} s |",
        f"| uv install of all {len(FRAMEWORKS) + 1} venvs, in parallel (warm uv cache) "
        f"| {result['install_s']:.0f} s |",
        "",
        f"### Sandbox backend (a Jupyter kernel per session, isolation {sb['isolation']})",
        "",
        "| figure | value |",
        "|---|---|",
        f"| cold session start, p50 / max of {sb['sessions_held']} "
        f"| {sb['cold_start_p50_s']:.2f} / {sb['cold_start_max_s']:.2f} s |",
        f"| session start from a warm pool ({sb['warm_pool']} kernels, refilled before each "
        f"session), p50 / max of {sb['sessions_held']} "
        f"| {sb['warm_start_p50_ms']:.1f} / {sb['warm_start_max_ms']:.1f} ms |",
        f"| execute round trip (`x = 1`), p50 / p99 "
        f"| {sb['execute_p50_ms']:.1f} / {sb['execute_p99_ms']:.1f} ms |",
        f"| memory per idle session (PSS) | {sb['pss_per_session_mib'] or float('nan'):.0f} MiB |",
        f"| sessions held at once, answering | {sb['sessions_answering']}/{sb['sessions_held']} |",
        f"| close, per session | {sb['close_s']:.2f} s |",
        "",
        f"### Desktop backends (the task app per session, {x11['screen']} screen; x11: Xvfb + "
        "Tk app; browser: headless Chromium showing the app as a web page)",
        "",
        "| figure | " + " | ".join(DESKTOPS) + " |",
        "|---|" + "---|" * len(DESKTOPS),
        desktop_row(
            f"cold session start, p50 / max of {x11['sessions_held']}",
            "{cold_start_p50_s:.2f} / {cold_start_max_s:.2f} s",
        ),
        desktop_row(
            f"session start from a warm pool ({x11['warm_pool']} desktops, refilled before each "
            f"session), p50 / max of {x11['sessions_held']}",
            "{warm_start_p50_ms:.0f} / {warm_start_max_ms:.0f} ms",
        ),
        desktop_row(
            "screenshot (grab + PNG), p50; PNG size",
            "{screenshot_p50_ms:.1f} ms; {screenshot_kb:.0f} KB",
        ),
        desktop_row(
            "action round trip (left_click + settle + screenshot), p50 / p99",
            "{click_p50_ms:.1f} / {click_p99_ms:.1f} ms",
        ),
        desktop_row("memory per session (PSS of its processes)", "{pss_per_session_mib:.0f} MiB"),
        desktop_row("sessions held at once, answering", "{sessions_answering}/{sessions_held}"),
        desktop_row("close, per session", "{close_s:.2f} s"),
    ]
    return "\n".join(lines) + "\n"


def write(result: dict[str, Any]) -> None:
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=1, default=vars) + "\n")
    (RESULTS / "latest.md").write_text(table(result))
    doc = ROOT / "BENCHMARKS.md"  # the committed table lives between these markers
    head, rest = doc.read_text().split(BEGIN, 1)
    doc.write_text(head + BEGIN + "\n" + table(result) + END + rest.split(END, 1)[1])
    print(table(result))


def main_scale() -> None:
    """--only scale: render, install, the scale table; the rest kept from latest.json."""
    render()
    install()
    scale = scale_all()
    if QUICK:
        print(scale_table(scale))
        return
    result = json.loads((RESULTS / "latest.json").read_text())
    if SCALE_ONLY:  # the other frameworks' results stay, each with its own date
        old = result["scale"]
        dates = {fw: old.get("dates", {}).get(fw, old["date"]) for fw in old["frameworks"]}
        scale["dates"] = {**dates, **scale["dates"]}
        scale["frameworks"] = {**old["frameworks"], **scale["frameworks"]}
        scale["derived"] = scale_derived(scale["frameworks"])
    result["scale"] = scale
    write(result)


def main() -> None:
    begin = time.perf_counter()

    def progress(what: str) -> None:
        print(f"[{time.perf_counter() - begin:4.0f} s] {what}", flush=True)

    TMP.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    if ONLY == "scale":
        main_scale()
        return
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": {"start": os.getloadavg()},
        "settings": {"repeats": REPEATS, "warmup": WARMUP, "archetypes": ARCHETYPES},
    }
    result["render_s"] = render()
    result["install_s"] = install()
    result["versions"] = versions()
    tests = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result["domain_tests_s"] = timed([python("domain"), *tests], cwd=env_dir("game"), timeout=600)
    progress("measuring the sandbox backend")  # also builds the kernel venv
    result["sandbox"] = backend_figures("sandbox.py", 8 if QUICK else 32)
    progress("measuring the desktop backend")
    result["desktop"] = {
        backend: backend_figures("desktop.py", 4 if QUICK else 16, backend) for backend in DESKTOPS
    }
    result["frameworks"] = {}
    for fw in SERVED:
        result["frameworks"][fw] = {}
        for archetype in ARCHETYPES:
            progress(f"measuring {fw} {archetype}")
            result["frameworks"][fw][archetype] = serve_and_measure(fw, archetype)
    progress("measuring the game adapters at scale")
    result["scale"] = scale_all()
    result["verifiers"] = {}
    for archetype in ARCHETYPES:
        progress(f"measuring verifiers {archetype}")
        result["verifiers"][archetype] = verifiers_rollouts(archetype)
    progress("timing the generated env's full suite")
    result["env_suite_s"] = timed([BIN / "nox"], cwd=env_dir("game"), timeout=1800)
    result["ratios"] = ratios(result["frameworks"])
    result["worst"] = {
        "baseline": worst(result["ratios"], "baseline", list(ARCHETYPES)),
        "floor": worst(result["ratios"], "floor", ["sandbox", "computer_use"]),
    }
    result["load_average"]["end"] = os.getloadavg()
    result["wall_s"] = time.perf_counter() - begin
    if QUICK:
        print(table(result))
        return
    write(result)


if __name__ == "__main__":
    main()
