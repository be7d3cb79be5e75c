"""Pytest fixtures every adapter folder's tests share (import them in a conftest.py):

    from <package>.testing import model_url, server_url

``server_url`` serves the folder's own ``serve.py``; a conftest may override it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conformance import oracle_transcript
from .harness import local_server
from .scripted_model import serve


@pytest.fixture(scope="session")
def server_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """A real `python serve.py` of the folder under test, on a free 127.0.0.1 port."""
    with local_server(pytestconfig.rootpath / "serve.py") as url:
        yield url


@pytest.fixture(scope="session")
def model_url() -> Iterator[str]:
    """The scripted OpenAI-compatible model (the oracle) on a free 127.0.0.1 port."""
    with serve() as url:
        yield url


def run_rollout(folder: Path, model_url: str, *extra: str, timeout: float = 600) -> str:
    """Run ``folder``'s rollout.py on test task 0 with the scripted model; return its output
    after checking that it exited cleanly and printed the domain's episode score."""
    cmd = [sys.executable, "rollout.py", "--base-url", model_url, "--model", "scripted-oracle"]
    cmd += ["--split", "test", "--index", "0", *extra]
    run = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(run.stdout)
    expected = asyncio.run(oracle_transcript("test", 0))
    assert f"episode score: {expected.score:.3f} (" in run.stdout, run.stdout[-3000:]
    return run.stdout
