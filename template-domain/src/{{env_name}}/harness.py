"""Glue the adapter folders share: their `rollout.py` command line, the OpenAI-compatible chat
loop those scripts run, and a local server for rollouts and tests.

Framework-free: each adapter passes in what is specific to it (how to call one tool, which
script serves it), and this module does the rest the same way for every framework.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from . import SPEC, SPLITS, get_task

CallTool = Callable[[str, str], Awaitable[tuple[str, float, bool]]]
"""One tool call: (name, JSON arguments) -> (text the model reads, reward, episode over)."""

REPLICA_HEADER = "X-Replica"
"""The response header that names the server replica which answered (see ``ReplicaHeader``)."""


class ReplicaHeader:
    """ASGI middleware: every HTTP response and WebSocket handshake carries ``X-Replica``, the
    replica's name (``REPLICA_ID``, else the host name: a pod's or container's own), so a router's
    affinity can be checked from the client side."""

    def __init__(self, app: Any, replica: str | None = None) -> None:
        self.app = app
        self.header = (REPLICA_HEADER.lower().encode(), replica_id(replica).encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_named(message: dict[str, Any]) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_named if scope["type"] != "lifespan" else send)


def replica_id(replica: str | None = None) -> str:
    return replica or os.environ.get("REPLICA_ID") or socket.gethostname()


def rollout_parser(
    doc: str, env_url: str | None = None, max_turns: bool = True
) -> argparse.ArgumentParser:
    """The flags every rollout.py takes; ``env_url`` is the help of ``--env-url``, if any;
    ``max_turns``: whether the script sets the turn limit itself."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--index", type=int, default=0)
    if max_turns:
        parser.add_argument(
            "--max-turns",
            type=int,
            default=SPEC.episode.max_steps + 1,
            help="model turns before the rollout stops (default: the turn limit, %(default)s)",
        )
    if env_url:
        parser.add_argument("--env-url", help=env_url)
    return parser


def parse_rollout_args(parser: argparse.ArgumentParser, known: bool = False) -> Any:
    """Parse and check: a model endpoint is given and the task exists."""
    args, extra = parser.parse_known_args() if known else (parser.parse_args(), [])
    if not args.base_url:
        parser.error("--base-url (or OPENAI_BASE_URL) is required")
    try:
        get_task(args.split, args.index)
    except ValueError as exc:
        parser.error(str(exc))
    return (args, extra) if known else args


def chat_tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions tool declaration."""
    function = {"name": name, "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


def show(turn: int, name: str, arguments: str, text: str, reward: float) -> None:
    shown = text.replace("\n", "\n     ")
    print(f"[turn {turn}] {name}({arguments})\n  -> {shown}\n  reward {reward:+.3f}")


async def chat_episode(
    args: argparse.Namespace, prompt: str, tools: list[dict[str, Any]], call_tool: CallTool
) -> float:
    """Play one episode with the model at ``args.base_url`` through Chat Completions: print
    each call, its result and reward, then the episode score; return the score."""
    from openai import AsyncOpenAI  # the adapters' dependency, not the domain's

    llm = AsyncOpenAI(base_url=args.base_url, api_key=args.api_key or "EMPTY")
    print(f"[{args.split} #{args.index}] {prompt}\n")
    messages: list[Any] = [{"role": "user", "content": prompt}]
    total, done = 0.0, False
    for turn in range(1, args.max_turns + 1):
        reply = await llm.chat.completions.create(model=args.model, messages=messages, tools=tools)
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            print(f"[turn {turn}] model: {message.content}")
            break
        for call in message.tool_calls:
            name, arguments = call.function.name, call.function.arguments
            text, reward, done = await call_tool(name, arguments)
            total += reward
            show(turn, name, arguments, text, reward)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
            if done:
                break
        if done:
            break
    print(f"\nepisode score: {total:.3f} ({'finished' if done else 'not finished'})")
    return total


def json_arguments(arguments: str) -> dict[str, Any] | str:
    """The parsed arguments, or the error text the model reads for unparsable ones."""
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        return f"Error: the arguments are not valid JSON ({exc.msg})."
    if not isinstance(parsed, dict):
        return "Error: the arguments must be a JSON object."
    return parsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_server(script: Path, health: str = "/health", timeout: float = 180.0) -> Iterator[str]:
    """Start ``python <script> --host 127.0.0.1 --port <free port>``; yield its URL once
    ``health`` answers; always stop it."""
    with server_process(script, health, timeout) as (url, _):
        yield url


@contextmanager
def server_process(
    script: Path,
    health: str = "/health",
    timeout: float = 180.0,
    log: IO[bytes] | None = None,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``local_server``, yielding the process too; ``log`` takes its output, ``env`` adds
    variables to its environment, ``args`` follow the address on its command line."""
    with server_processes(script, [env or {}], health, timeout, log, args) as [started]:
        yield started


@contextmanager
def server_processes(
    script: Path,
    envs: Sequence[dict[str, str]],
    health: str = "/health",
    timeout: float = 180.0,
    log: IO[bytes] | None = None,
    args: Sequence[str] = (),
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """One ``server_process`` per entry of ``envs`` (its extra variables), all started at once;
    yield their URLs and processes once each one's ``health`` answers; always stop them all."""
    servers: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for env in envs:
            port = free_port()
            cmd = [sys.executable, str(script), "--host", "127.0.0.1", "--port", str(port), *args]
            variables = {**os.environ, **env}
            server = subprocess.Popen(cmd, cwd=script.parent, stdout=log, stderr=log, env=variables)
            servers.append((f"http://127.0.0.1:{port}", server))
        deadline = time.monotonic() + timeout
        for url, server in servers:
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"{script.name} exited with code {server.returncode}")
                try:
                    urllib.request.urlopen(url + health, timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{script.name} did not answer on {url}") from None
                    time.sleep(0.2)
        yield servers
    finally:
        for _, server in servers:
            server.terminate()
        for _, server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def rollout_main(
    doc: str, framework: str, play: Callable[[Any, str], Awaitable[float]], serve: Path
) -> None:
    """A rollout.py's ``main``: parse the flags, then ``play`` against ``--env-url`` or a
    ``serve`` script started on a free loopback port for the episode."""
    help_text = f"a running {framework} server (default: start {serve.name})"
    args = parse_rollout_args(rollout_parser(doc, env_url=help_text))
    if args.env_url:
        asyncio.run(play(args, args.env_url))
    else:
        with local_server(serve) as url:
            asyncio.run(play(args, url))
