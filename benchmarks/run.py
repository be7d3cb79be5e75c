"""Measure every generated adapter beside its framework's own minimal env and a plain floor.

Run by ``nox -s bench``. Renders the game archetype with every framework into benchmarks/tmp/,
installs each framework folder in its own uv venv, serves on 127.0.0.1 only, drives load from
a separate process (benchmarks/load.py) and writes benchmarks/results/latest.{json,md}.
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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TMP = HERE / "tmp"
ENV = TMP / "env"
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
PY312 = next(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"), "3.12")

FRAMEWORKS = ["nemo_gym", "verifiers", "openenv", "ors"]
SERVED = ["ors", "nemo_gym", "openenv"]  # verifiers: CPU per scripted rollout instead
KINDS = ["adapter", "baseline", "floor"]
QUICK = "--quick" in sys.argv  # a smoke run: one repeat, few calls; not for the table
REPEATS = 1 if QUICK else 3
CALLS = {1: (2000, 3.0), 16: (6000, 4.0)}  # concurrency: (timed calls, seconds), both bounds
WARMUP = 64
SESSIONS = (40 if QUICK else 350, 10.0)  # create+close per repeat; 3 x 350 >= 1,000
HOLD = 500  # live sessions held open for RSS per session
GUESS = ("guess", {"word": "zzzzz"})  # not in the word list: an error result, no turn used
ECHO = ("echo", {"text": "zzzzz"})
DISTS = ["openreward", "nemo-gym", "openenv", "verifiers", "fastapi", "uvicorn", "pydantic"]
BEGIN, END = "<!-- results: written by benchmarks/run.py -->", "<!-- /results -->"
TWO_CORES = (os.cpu_count() or 1) >= 2


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


def render() -> list[float]:
    copier = BIN / "copier"
    data = ["env_name=wordle", "archetype=game", f"frameworks=[{', '.join(FRAMEWORKS)}]"]
    flags = ["--quiet", "--defaults", "--overwrite", "--vcs-ref", "HEAD"]
    flags += [arg for d in data for arg in ("--data", d)]
    times = []
    for dst in (ENV, TMP / "render-2", TMP / "render-3"):
        shutil.rmtree(dst, ignore_errors=True)
        times.append(timed([copier, "copy", *flags, ROOT, dst]))
    return times


def install() -> float:
    """One uv venv per framework folder (Python 3.12) and one for the domain's tests."""
    env = {**os.environ, "UV_COMPILE_BYTECODE": "1"}
    jobs, begin = {}, time.perf_counter()
    for name in [*FRAMEWORKS, "domain"]:
        venv = TMP / "venvs" / name
        subprocess.run(["uv", "venv", "-q", "--allow-existing", "-p", PY312, venv], check=True)
        if name == "domain":
            reqs = ["-e", f"{ENV}[test]"]
        elif name == "verifiers":
            reqs = ["-e", ENV, "-e", ENV / name]
        else:
            reqs = ["-e", ENV, "-r", ENV / name / "pyproject.toml"]
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


def target(fw: str, kind: str, port: int) -> tuple[list[Any], dict[str, Any]]:
    """The server command (run in ENV/fw) and the load generator's protocol for it."""
    spec: dict[str, Any] = {"url": f"http://127.0.0.1:{port}", "protocol": fw, "env": ""}
    tool = ECHO if kind == "baseline" else GUESS
    spec["tool"], spec["args"] = tool
    if kind == "adapter":
        cmd: list[Any] = ["serve.py", "--host", "127.0.0.1", "--port", port]
        spec["env"] = "wordleenv"
    else:
        cmd = [HERE / "targets.py", fw, kind, port]
        spec["env"] = "echoenv"
    if kind == "floor" and fw != "openenv":
        spec["protocol"] = "floor"  # plain HTTP; OpenEnv's floor speaks its WebSocket shape
    return [python(fw), *cmd], spec


def start(cmd: list[Any], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENREWARD_DISABLE_UPDATE_CHECK": "1", "PYTHONUNBUFFERED": "1"}
    env["MAX_CONCURRENT_ENVS"] = str(HOLD + 16)  # OpenEnv's cap on live sessions (default 64)
    out = log.open("wb")
    return subprocess.Popen(pin(0, cmd), cwd=cwd, env=env, stdout=out, stderr=out)


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


def load(spec: dict[str, Any]) -> dict[str, Any]:
    cmd = pin(1, [sys.executable, HERE / "load.py", json.dumps(spec)])
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if run.returncode:
        raise RuntimeError(f"load {spec['mode']} on {spec['url']}: {run.stderr[-1500:]}")
    return json.loads(run.stdout)


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def serve_and_measure(fw: str) -> dict[str, Any]:
    """Adapter, baseline and floor up together; repeats interleave them so drift hits all."""
    procs, specs, out = {}, {}, {}
    for kind in KINDS:
        port = free_port()
        cmd, specs[kind] = target(fw, kind, port)
        procs[kind] = start(cmd, ENV / fw, TMP / f"{fw}-{kind}.log")
        specs[kind]["pid"] = procs[kind].pid
        out[kind] = {"port": port, "calls": {1: [], 16: []}, "sessions": []}
    try:
        ready = wait_ports({out[kind]["port"]: procs[kind] for kind in KINDS})
        for kind in KINDS:
            out[kind]["ready_s"] = ready[out[kind].pop("port")]
        for _ in range(REPEATS):
            for c, (n, seconds) in CALLS.items():
                for kind in KINDS:
                    spec = {**specs[kind], "mode": "calls", "c": c, "n": n, "seconds": seconds}
                    out[kind]["calls"][c].append(load({**spec, "warmup": WARMUP}))
        for _ in range(REPEATS):
            for kind in KINDS:
                n, seconds = SESSIONS
                spec = {**specs[kind], "mode": "sessions", "n": n, "seconds": seconds}
                out[kind]["sessions"].append(load(spec))
        for kind in KINDS:
            out[kind]["hold"] = load({**specs[kind], "mode": "hold", "k": HOLD})
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    for kind in KINDS:
        runs = out[kind]["sessions"]
        out[kind]["summary"] = {
            **{f"c{c}": median(out[kind]["calls"][c]) for c in CALLS},
            "sessions": median(runs),
            "sessions_total": sum(r["sessions"] for r in runs),
            "rss_start_kb": runs[0]["rss_before_kb"],
            "rss_after_sessions_kb": runs[-1]["rss_after_kb"],
            "rss_per_live_session_kb": out[kind]["hold"]["rss_per_session_kb"],
        }
    domain = subprocess.run(
        [python(fw), HERE / "targets.py", fw, "domain"], capture_output=True, check=True
    )
    out["domain_call_us"] = json.loads(domain.stdout)["domain_call_us"]
    return out


def verifiers_rollouts() -> dict[str, Any]:
    """CPU-seconds (vf-eval and everything it waited for) per scripted offline rollout."""
    port = free_port()
    model = start(
        [python("verifiers"), "-m", "wordle.scripted_model", "--port", port],
        ENV,
        TMP / "scripted-model.log",
    )
    try:
        wait_ports({port: model})
        cmd = [
            python("verifiers").parent / "vf-eval",
            "wordle-vf",
            "@",
            "configs/eval.offline.toml",
        ]
        cmd += ["--no-rich", "--client.base-url", f"http://127.0.0.1:{port}/v1"]
        cmd += ["-o", TMP / "vf-outputs"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = timed(pin(1, cmd), cwd=ENV / "verifiers", timeout=600)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        model.terminate()
        model.wait(timeout=10)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rollouts = 2  # configs/eval.offline.toml: [select] limit = 2, num_rollouts = 1
    return {"rollouts": rollouts, "wall_s": wall, "cpu_s_per_rollout": cpu / rollouts}


def backend_figures(archetype: str, env_name: str, script: str, sessions: int) -> dict[str, Any]:
    """Backend figures from a rendered env of ``archetype`` (domain package only)."""
    env, venv = TMP / f"env-{archetype}", TMP / "venvs" / archetype
    shutil.rmtree(env, ignore_errors=True)
    data = [f"env_name={env_name}", f"archetype={archetype}", "frameworks=[ors]"]
    flags = [
        "--quiet",
        "--defaults",
        "--vcs-ref",
        "HEAD",
        *(a for d in data for a in ("--data", d)),
    ]
    subprocess.run([str(c) for c in [BIN / "copier", "copy", *flags, ROOT, env]], check=True)
    subprocess.run(["uv", "venv", "-q", "--allow-existing", "-p", PY312, venv], check=True)
    install = ["uv", "pip", "install", "-q", "-p", venv / "bin" / "python", "-e", env]
    subprocess.run(
        [str(c) for c in install], check=True, env={**os.environ, "UV_COMPILE_BYTECODE": "1"}
    )
    cmd = pin(0, [venv / "bin" / "python", HERE / script, str(sessions)])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900).stdout
    return json.loads(out.strip().splitlines()[-1])


def sandbox_backend() -> dict[str, Any]:
    """Kernel figures (bubblewrap if it works)."""
    return backend_figures("sandbox", "wordle", "sandbox.py", 8 if QUICK else 32)


def desktop_backend() -> dict[str, Any]:
    """X display figures (Xvfb + the task app per session)."""
    return backend_figures("computer_use", "desk", "desktop.py", 4 if QUICK else 16)


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


def ratios(frameworks: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Adapter cost over baseline (> 1: the adapter is slower or bigger)."""
    out = {}
    for fw, res in frameworks.items():
        a, b = res["adapter"]["summary"], res["baseline"]["summary"]
        out[fw] = {
            "c1_p50_latency": a["c1"]["p50_ms"] / b["c1"]["p50_ms"],
            "c1_throughput": b["c1"]["calls_per_s"] / a["c1"]["calls_per_s"],
            "c16_throughput": b["c16"]["calls_per_s"] / a["c16"]["calls_per_s"],
            "c16_server_cpu_per_call": a["c16"]["server_cpu_ms_per_call"]
            / b["c16"]["server_cpu_ms_per_call"],
            "session_rate": b["sessions"]["sessions_per_s"] / a["sessions"]["sessions_per_s"],
        }
    return out


def table(result: dict[str, Any]) -> str:
    head = (
        "| framework | target | ready s* | c=1 calls/s | c=1 p50 / p99 ms | c=16 calls/s "
        "| c=16 p50 / p99 ms | server CPU ms/call (c=16) | sessions/s | RSS kB per live session "
        "| RSS MB: start -> after N sessions |\n|" + "---|" * 11 + "\n"
    )
    rows = []
    for fw, res in result["frameworks"].items():
        for kind in KINDS:
            s = res[kind]["summary"]
            c1, c16, ses = s["c1"], s["c16"], s["sessions"]
            rows.append(
                f"| {fw} | {kind} | {res[kind]['ready_s']:.1f} | {c1['calls_per_s']:.0f} "
                f"| {c1['p50_ms']:.2f} / {c1['p99_ms']:.2f} | {c16['calls_per_s']:.0f} "
                f"| {c16['p50_ms']:.1f} / {c16['p99_ms']:.1f} "
                f"| {c16['server_cpu_ms_per_call']:.2f} | {ses['sessions_per_s']:.0f} "
                f"| {s['rss_per_live_session_kb']:.1f} | {s['rss_start_kb'] / 1024:.0f} -> "
                f"{s['rss_after_sessions_kb'] / 1024:.0f} (N={s['sessions_total']}) |"
            )
    ratio_rows = [
        f"| {fw} | " + " | ".join(f"{v:.2f}" for v in r.values()) + " |"
        for fw, r in result["ratios"].items()
    ]
    fw, metric, worst = result["worst_ratio"]
    v, sb, dk = result["verifiers"], result["sandbox"], result["desktop"]
    lines = [
        f"Date {result['date']}; {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"{result['machine']['mem_gb']} GB; load average (1 min) "
        f"{result['load_average']['start'][0]:.2f} at start, "
        f"{result['load_average']['end'][0]:.2f} at end; wall {result['wall_s']:.0f} s.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        "### Tool calls and sessions (medians of "
        f"{REPEATS}; baseline = the framework's own minimal env with one `echo` tool; "
        "floor = plain FastAPI calling the domain in the same venv)",
        "",
        head + "\n".join(rows),
        "",
        "*ready s: from launch until the port accepts; the three servers start together on "
        "one core. RSS per live session: "
        f"{HOLD} sessions held open at once.",
        "",
        "### Adapter / baseline (> 1 means the adapter costs more)",
        "",
        "| framework | c=1 p50 latency | c=1 throughput | c=16 throughput "
        "| c=16 server CPU/call | session rate |",
        "|---|---|---|---|---|---|",
        *ratio_rows,
        "",
        f"Worst: {fw} {metric} = {worst:.2f}.",
        "",
        "### Other figures",
        "",
        "| figure | value |",
        "|---|---|",
        *(
            f"| in-process domain call ({fw} venv) | {res['domain_call_us']:.1f} us |"
            for fw, res in result["frameworks"].items()
        ),
        f"| Verifiers: CPU-s per scripted rollout (vf-eval, {v['rollouts']} rollouts, "
        f"offline scripted model) | {v['cpu_s_per_rollout']:.1f} s (wall {v['wall_s']:.0f} s) |",
        f"| `copier copy`, all {len(FRAMEWORKS)} frameworks (median of 3) "
        f"| {statistics.median(result['render_s']):.2f} s |",
        f"| domain test suite (`pytest`, rendered env) | {result['domain_tests_s']:.1f} s |",
        "| generated env's full suite (`nox`: domain, lint, the four adapter folders, each in a "
        f"fresh venv from a warm uv cache) | {result['env_suite_s']:.0f} s |",
        f"| uv install of all {len(FRAMEWORKS) + 1} venvs, in parallel (warm uv cache) "
        f"| {result['install_s']:.0f} s |",
        "",
        f"### Sandbox backend (a Jupyter kernel per session, isolation {sb['isolation']})",
        "",
        "| figure | value |",
        "|---|---|",
        f"| cold session start, p50 / max of {sb['sessions_held']} "
        f"| {sb['cold_start_p50_s']:.2f} / {sb['cold_start_max_s']:.2f} s |",
        f"| execute round trip (`x = 1`), p50 / p99 "
        f"| {sb['execute_p50_ms']:.1f} / {sb['execute_p99_ms']:.1f} ms |",
        f"| memory per idle session (PSS) | {sb['pss_per_session_mib'] or float('nan'):.0f} MiB |",
        f"| sessions held at once, answering | {sb['sessions_answering']}/{sb['sessions_held']} |",
        f"| close, per session | {sb['close_s']:.2f} s |",
        "",
        f"### Desktop backend (Xvfb + the task app per session, {dk['screen']} screen)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| cold session start, p50 / max of {dk['sessions_held']} "
        f"| {dk['cold_start_p50_s']:.2f} / {dk['cold_start_max_s']:.2f} s |",
        f"| screenshot (grab + PNG), p50; PNG size | {dk['screenshot_p50_ms']:.1f} ms; "
        f"{dk['screenshot_kb']:.0f} KB |",
        f"| action round trip (left_click + settle + screenshot), p50 / p99 "
        f"| {dk['click_p50_ms']:.1f} / {dk['click_p99_ms']:.1f} ms |",
        f"| memory per session (PSS, Xvfb + app) | {dk['pss_per_session_mib']:.0f} MiB |",
        f"| sessions held at once, answering | {dk['sessions_answering']}/{dk['sessions_held']} |",
        f"| close, per session | {dk['close_s']:.2f} s |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    begin = time.perf_counter()
    TMP.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": {"start": os.getloadavg()},
        "settings": {"repeats": REPEATS, "calls": CALLS, "sessions": SESSIONS, "hold": HOLD},
    }
    result["render_s"] = render()
    result["install_s"] = install()
    result["versions"] = versions()
    tests = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result["domain_tests_s"] = timed([python("domain"), *tests], cwd=ENV, timeout=600)
    result["frameworks"] = {}
    for fw in SERVED:
        print(f"measuring {fw}", flush=True)
        result["frameworks"][fw] = serve_and_measure(fw)
    print("measuring verifiers", flush=True)
    result["verifiers"] = verifiers_rollouts()
    print("measuring the sandbox backend", flush=True)
    result["sandbox"] = sandbox_backend()
    print("measuring the desktop backend", flush=True)
    result["desktop"] = desktop_backend()
    print("timing the generated env's full suite", flush=True)
    result["env_suite_s"] = timed([BIN / "nox"], cwd=ENV, timeout=1800)
    result["ratios"] = ratios(result["frameworks"])
    result["worst_ratio"] = max(
        ((fw, k, v) for fw, r in result["ratios"].items() for k, v in r.items()),
        key=lambda item: item[2],
    )
    result["load_average"]["end"] = os.getloadavg()
    result["wall_s"] = time.perf_counter() - begin
    if QUICK:
        print(table(result))
        return
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "latest.md").write_text(table(result))
    doc = ROOT / "BENCHMARKS.md"  # the committed table lives between these markers
    head, rest = doc.read_text().split(BEGIN, 1)
    doc.write_text(head + BEGIN + "\n" + table(result) + END + rest.split(END, 1)[1])
    print(table(result))


if __name__ == "__main__":
    main()
