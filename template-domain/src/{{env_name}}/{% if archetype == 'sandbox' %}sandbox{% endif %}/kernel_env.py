"""The kernel's own virtual environment: ipykernel plus the configured packages, nothing of
the server. Created on first use (or ahead of time: ``python -m <package>.sandbox.kernel_env``)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .settings import KERNEL_PACKAGES, KERNEL_VENV

REQUIREMENTS = ["ipykernel>=6.29", "matplotlib-inline", *KERNEL_PACKAGES]


def _stamp() -> str:
    return hashlib.sha256(json.dumps([sys.version, REQUIREMENTS]).encode()).hexdigest()[:16]


def kernel_python(venv: Path = KERNEL_VENV) -> Path:
    """The kernel venv's interpreter, creating or refreshing the venv when needed."""
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    if ready.exists() and ready.read_text() == _stamp():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
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
    base = getattr(sys, "_base_executable", sys.executable)
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
