"""What the adapters are compared with. Runs inside a framework's venv, from its folder.

    python targets.py baseline FRAMEWORK PORT    # the framework's own minimal env: one `echo` tool
    python targets.py floor PACKAGE PORT         # plain FastAPI calling the domain directly
    python targets.py domain PACKAGE TOOL ARGS   # one in-process domain call (ARGS: JSON), in us
    python targets.py adapter PACKAGE SCRIPT ARG...  # run the adapter's serve.py, turn limit lifted
    python targets.py adapter PACKAGE -m MODULE      # or its server module (Verifiers' tool server)

Servers bind 127.0.0.1 and freeze the garbage collector before serving, as the adapters do.
Each command first lifts the domain's turn limit (``Episode.max_steps``, which every
well-formed call counts against, rejected words included): the timed calls must not end
their episodes.
"""

import asyncio
import base64
import gc
import importlib
import json
import os
import runpy
import sys
import time
from typing import Any

HOST = "127.0.0.1"


def lift_turn_limit(package: str) -> None:
    """A session can then take any number of timed calls (the game allows 12 by default; the
    heavy domains also read ``<PACKAGE>_MAX_STEPS``, which the harness raises as well)."""
    episode = importlib.import_module(package).SPEC.episode
    if isinstance(episode.max_steps, int):
        episode.max_steps = 10**9


def serve(app: Any, port: int) -> None:
    import uvicorn

    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=HOST, port=port, log_level="warning")


def floor_app(package: str) -> Any:
    """HTTP (/open, /call/NAME, /close by X-Session-ID) and a WebSocket shaped like OpenEnv's.

    Replies carry the domain's images (PNG) as base64, as an adapter that delivers them must.
    """
    from fastapi import FastAPI, Header, Request, WebSocket

    domain = importlib.import_module(package)
    app = FastAPI()
    episodes: dict[str, Any] = {}

    async def start(data: dict[str, Any]) -> tuple[Any, str]:
        episode = domain.new_episode(domain.get_task(data["split"], data["index"]))
        return episode, (await episode.reset()).text

    def reply(result: Any) -> dict[str, Any]:
        images = [base64.b64encode(png).decode() for png in result.images]
        return {"text": result.text, "images": images, "reward": result.reward, "done": result.done}

    @app.post("/open")
    async def open_(request: Request, x_session_id: str = Header()) -> dict[str, Any]:
        episodes[x_session_id], prompt = await start(await request.json())
        return {"prompt": prompt}

    @app.post("/call/{name}")
    async def call(name: str, request: Request, x_session_id: str = Header()) -> dict[str, Any]:
        return reply(await episodes[x_session_id].step(name, await request.json()))

    @app.post("/close")
    async def close(x_session_id: str = Header()) -> dict[str, Any]:
        episode = episodes.pop(x_session_id, None)
        if episode is not None:
            await episode.close()
        return {}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        episode = None
        try:
            while (msg := await websocket.receive_json())["type"] != "close":
                if msg["type"] == "reset":
                    episode, prompt = await start(msg["data"])
                    await websocket.send_json({"type": "observation", "data": {"prompt": prompt}})
                elif episode is not None:
                    result = await episode.step(msg["data"]["tool_name"], msg["data"]["arguments"])
                    await websocket.send_json({"type": "observation", "data": reply(result)})
        finally:
            if episode is not None:
                await episode.close()

    return app


def ors_baseline(port: int) -> None:
    os.environ.setdefault("OPENREWARD_LOG_LEVEL", "WARNING")  # as the adapter's serve.py
    from openreward.environments import Environment, Server, Split, TextBlock, ToolOutput, tool
    from pydantic import BaseModel

    class EchoArgs(BaseModel):
        text: str

    class EchoEnv(Environment):
        @classmethod
        def list_splits(cls) -> list[Split]:
            return [Split(name="test", type="test")]

        @classmethod
        def list_tasks(cls, split: str) -> list[dict[str, Any]]:
            return [{"id": "echo-0"}]

        async def get_prompt(self) -> list[TextBlock]:
            return [TextBlock(text="Say something.")]

        @tool
        async def echo(self, params: EchoArgs) -> ToolOutput:
            """Echo the text back."""
            return ToolOutput(blocks=[TextBlock(text=params.text)], reward=0.0, finished=False)

    server = Server([EchoEnv])
    gc.collect()
    gc.freeze()
    server.run(host=HOST, port=port)


def nemo_gym_baseline(port: int) -> None:
    import serve as adapter
    from nemo_gym.base_resources_server import (
        BaseResourcesServerConfig,
        BaseVerifyRequest,
        BaseVerifyResponse,
        SimpleResourcesServer,
    )
    from pydantic import BaseModel

    class EchoArgs(BaseModel):
        text: str

    class EchoServer(SimpleResourcesServer):
        config: BaseResourcesServerConfig

        def setup_webserver(self) -> Any:
            app = super().setup_webserver()

            @app.post("/echo")
            async def echo(body: EchoArgs) -> dict[str, Any]:
                return {"observation": body.text, "reward": 0.0, "done": False}

            return app

        async def verify(self, body: BaseVerifyRequest) -> BaseVerifyResponse:
            return BaseVerifyResponse(**body.model_dump(), reward=0.0)

    config = adapter.resources_config(HOST, port)
    serve(adapter.build_app(config, adapter.RESOURCES_SERVER, EchoServer), port)


def openenv_baseline(port: int) -> None:
    from openenv.core.env_server.http_server import create_app
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.mcp_types import CallToolAction, CallToolObservation
    from openenv.core.env_server.types import ConcurrencyConfig, Observation, State

    class EchoEnvironment(Environment):
        SUPPORTS_CONCURRENT_SESSIONS = True

        def __init__(self) -> None:
            super().__init__()
            self._state = State()

        @property
        def state(self) -> State:
            return self._state

        async def reset_async(self, seed: Any = None, episode_id: Any = None, **kw: Any) -> Any:
            return Observation()

        async def step_async(self, action: Any, timeout_s: Any = None, **kw: Any) -> Any:
            text = {"type": "text", "text": action.arguments.get("text", "")}
            result = {"content": [text], "is_error": False}
            return CallToolObservation(tool_name=action.tool_name, result=result, reward=0.0)

        def reset(self, seed: Any = None, episode_id: Any = None, **kw: Any) -> Any:
            return Observation()

        def step(self, action: Any, timeout_s: Any = None, **kw: Any) -> Any:
            return asyncio.run(self.step_async(action))

    cap = int(os.environ.get("MAX_CONCURRENT_ENVS", "64"))  # as the adapter's server/app.py
    concurrency = ConcurrencyConfig(max_concurrent_envs=cap, session_timeout=600)
    app = create_app(
        EchoEnvironment,
        CallToolAction,
        CallToolObservation,
        env_name="echo",
        concurrency_config=concurrency,
    )
    serve(app, port)


async def domain_call_us(package: str, tool: str, args: dict[str, Any]) -> float:
    """Mean of at most 20,000 calls or 1 s, on one episode of test task 0."""
    domain = importlib.import_module(package)
    episode = domain.new_episode(domain.get_task("test", 0))
    await episode.reset()
    try:
        n, start = 0, time.perf_counter()
        while n < 20000 and time.perf_counter() - start < 1.0:
            await episode.step(tool, args)
            n += 1
        return (time.perf_counter() - start) / n * 1e6
    finally:
        await episode.close()


BASELINES = {"ors": ors_baseline, "nemo_gym": nemo_gym_baseline, "openenv": openenv_baseline}

if __name__ == "__main__":
    kind, name, *rest = sys.argv[1:]
    sys.path.insert(0, ".")
    if kind in ("domain", "floor", "adapter"):
        lift_turn_limit(name)
    if kind == "adapter" and rest[0] == "-m":  # as `python -m MODULE` would, in this process
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    elif kind == "adapter":  # as `python SCRIPT ARG...` would, in this process
        sys.argv = rest
        sys.path[0] = os.path.dirname(os.path.abspath(rest[0]))
        runpy.run_path(rest[0], run_name="__main__")
    elif kind == "domain":
        us = asyncio.run(domain_call_us(name, rest[0], json.loads(rest[1])))
        print(json.dumps({"domain_call_us": us}))
    elif kind == "floor":
        serve(floor_app(name), int(rest[0]))
    else:
        BASELINES[name](int(rest[0]))
