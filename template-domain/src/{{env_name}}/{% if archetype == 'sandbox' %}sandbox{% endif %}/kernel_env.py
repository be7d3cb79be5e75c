"""The kernel's own virtual environment: ipykernel plus the configured packages, nothing of
the server. Created on first use (or ahead of time: ``python -m <package>.sandbox.kernel_env``)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

from .isolation import others_can_run
from .settings import KERNEL_PACKAGES, KERNEL_VENV

REQUIREMENTS = ["ipykernel>=6.29", "matplotlib-inline", *KERNEL_PACKAGES]


@cache
def base_python() -> str:
    """The interpreter the kernel venv is built on: the server's own, unless the server runs
    as root and a session uid could not run it (pyenv and uv keep theirs in root's private
    home), then the system's python3."""
    own = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    stdlib = Path(os.__file__).parent
    if os.geteuid() != 0 or (others_can_run(Path(own)) and others_can_run(stdlib / "os.py")):
        return own
    for system in ("/usr/local/bin/python3", "/usr/bin/python3"):
        if others_can_run(Path(system)):
            return os.path.realpath(system)
    return own  # rlimits sessions then refuse to start, saying why


def _stamp() -> str:
    return hashlib.sha256(json.dumps([base_python(), REQUIREMENTS]).encode()).hexdigest()[:16]


def kernel_python(venv: Path = KERNEL_VENV) -> Path:
    """The kernel venv's interpreter, creating or refreshing the venv when needed."""
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    if ready.exists() and ready.read_text() == _stamp():
        return python
    venv.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse
        if ready.exists() and ready.read_text() == _stamp():
            return python
        _build(venv)
        ready.write_text(_stamp())
    return python


def _build(venv: Path) -> None:
    print(
        f"Creating the kernel environment in {venv}: {' '.join(REQUIREMENTS)} ...", file=sys.stderr
    )
    started = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    base = base_python()
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "--quiet", "--python", base, str(venv)], check=True)
        install = [
            uv,
            "pip",
            "install",
            "--quiet",
            "--compile-bytecode",
            "--python",
            str(venv / "bin" / "python"),
        ]
    else:
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*install, *REQUIREMENTS], check=True)
    print(f"Kernel environment ready in {time.monotonic() - started:.0f}s.", file=sys.stderr)


if __name__ == "__main__":
    print(kernel_python())
