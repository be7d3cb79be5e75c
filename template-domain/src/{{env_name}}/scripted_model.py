"""An OpenAI-compatible model server whose "model" is the oracle policy.

It reads the conversation it is sent (prompt and tool results, never the hidden answer) and
answers with the oracle's next tool call, so every framework's real LLM code path can run
offline. Speaks ``/v1/chat/completions`` (streaming SSE and not) and ``/v1/responses``
(the Responses API that NeMo Gym agents call), plus ``/v1/models``. Binds 127.0.0.1.

    python -m <package>.scripted_model --port 8000
    # then point any OpenAI client at http://127.0.0.1:8000/v1 (any API key, any model name)
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import next_action

MODEL_NAME = "scripted-oracle"
FINAL_TEXT = "The game is over."
_ids = itertools.count(1)


def _text(content: Any) -> str:
    """Text of a message content that is a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(
            str(part.get("text") or part.get("output") or "")
            for part in content
            if isinstance(part, Mapping)
        )
    return ""


def _tool_text(output: Any) -> str:
    """A tool result's text. A JSON object (how NeMo Gym servers answer) gives its string fields."""
    text = _text(output)
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict):
        return "\n".join(v for v in value.values() if isinstance(v, str))
    return text


def decide(observations: Sequence[str], tools: Sequence[str]) -> tuple[str, str] | str:
    """(tool name, JSON arguments) for the next call, or final text when there is none."""
    action = next_action(observations)
    if action is None:
        return FINAL_TEXT
    name, arguments = action
    if tools and name not in tools:
        return f"I would call {name!r}, but the request offers only: {', '.join(tools)}."
    return name, json.dumps(arguments)


def _usage(prompt: str, completion: str) -> tuple[int, int]:
    return max(1, len(prompt) // 4), max(1, len(completion) // 4)


def chat_completion(body: Mapping[str, Any]) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ValueError("'messages' must be a list")
    observations = [_text(m.get("content")) for m in messages if m.get("role") != "assistant"]
    tools = [t.get("function", {}).get("name", "") for t in body.get("tools") or []]
    choice = decide(observations, tools)
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if isinstance(choice, str):
        message["content"], finish = choice, "stop"
    else:
        call = {"id": f"call_{next(_ids)}", "type": "function"}
        message["tool_calls"] = [{**call, "function": {"name": choice[0], "arguments": choice[1]}}]
        finish = "tool_calls"
    prompt_tokens, completion_tokens = _usage("".join(observations), json.dumps(message))
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or MODEL_NAME,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def chat_chunks(body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The same answer as ``chat_completion``, as streaming chunks."""
    full = chat_completion(body)
    choice = full["choices"][0]
    head = {k: full[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return head | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    if choice["message"]["content"]:
        yield chunk({"content": choice["message"]["content"]})
    for index, call in enumerate(choice["message"].get("tool_calls", [])):
        fn = call["function"]
        opening = {"index": index, "id": call["id"], "type": "function"}
        yield chunk({"tool_calls": [opening | {"function": {"name": fn["name"], "arguments": ""}}]})
        yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fn["arguments"]}}]})
    yield chunk({}, choice["finish_reason"])
    if (body.get("stream_options") or {}).get("include_usage"):
        yield head | {"choices": [], "usage": full["usage"]}


def _response_observations(body: Mapping[str, Any]) -> list[str]:
    observations = [str(body.get("instructions") or "")]
    items = body.get("input")
    if isinstance(items, str):
        return [*observations, items]
    if not isinstance(items, list):
        raise ValueError("'input' must be a string or a list of items")
    tool_results = False
    for item in items:
        kind = item.get("type", "message")
        if kind == "function_call_output":
            observations.append(_tool_text(item.get("output")))
            tool_results = True
        elif kind == "message" and item.get("role") != "assistant" and not tool_results:
            # after tool results, user messages carry their images (NeMo Gym image agents)
            observations.append(_text(item.get("content")))
    return observations


def response(body: Mapping[str, Any]) -> dict[str, Any]:
    observations = _response_observations(body)
    tools = [str(t.get("name", "")) for t in body.get("tools") or []]
    choice = decide(observations, tools)
    n = next(_ids)
    if isinstance(choice, str):
        item: dict[str, Any] = {
            "type": "message",
            "id": f"msg_{n}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": choice, "annotations": []}],
        }
    else:
        item = {
            "type": "function_call",
            "id": f"fc_{n}",
            "call_id": f"call_{n}",
            "name": choice[0],
            "arguments": choice[1],
            "status": "completed",
        }
    prompt_tokens, completion_tokens = _usage("".join(observations), json.dumps(item))
    return {
        "id": f"resp_{n}",
        "object": "response",
        "created_at": time.time(),
        "status": "completed",
        "model": body.get("model") or MODEL_NAME,
        "output": [item],
        "parallel_tool_calls": False,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "error": None,
        "incomplete_details": None,
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def response_events(body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The same answer as ``response``, as Responses API stream events."""
    full = response(body)
    item = full["output"][0]
    pending = full | {"status": "in_progress", "output": []}
    yield {"type": "response.created", "response": pending}
    yield {"type": "response.output_item.added", "output_index": 0, "item": item}
    if item["type"] == "function_call":
        yield {
            "type": "response.function_call_arguments.done",
            "output_index": 0,
            "item_id": item["id"],
            "arguments": item["arguments"],
        }
    else:
        part = item["content"][0]
        where = {"output_index": 0, "item_id": item["id"], "content_index": 0}
        yield {"type": "response.content_part.added", **where, "part": part | {"text": ""}}
        yield {"type": "response.output_text.delta", **where, "delta": part["text"]}
        yield {"type": "response.output_text.done", **where, "text": part["text"]}
        yield {"type": "response.content_part.done", **where, "part": part}
    yield {"type": "response.output_item.done", "output_index": 0, "item": item}
    yield {"type": "response.completed", "response": full}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-model"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, events: Iterator[dict[str, Any]], done_marker: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for number, event in enumerate(events):
            if not done_marker:  # Responses API events carry a sequence number and a name
                event = event | {"sequence_number": number}
                self.wfile.write(f"event: {event['type']}\n".encode())
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        if done_marker:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send_json(
                200, {"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]}
            )
        elif self.path == "/health":
            self._send_json(200, {"status": "ok"})
        else:
            self._error(404, f"No route {self.path}")

    def do_POST(self) -> None:
        route = self.path.split("?")[0].rstrip("/").removeprefix("/v1")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            if isinstance(self.server, _Server) and self.server.requests is not None:
                self.server.requests.append(body)
            if route == "/chat/completions":
                if body.get("stream"):
                    self._send_stream(chat_chunks(body), done_marker=True)
                else:
                    self._send_json(200, chat_completion(body))
            elif route == "/responses":
                if body.get("stream"):
                    self._send_stream(response_events(body), done_marker=False)
                else:
                    self._send_json(200, response(body))
            else:
                self._error(404, f"No route {self.path}")
        except (ValueError, AttributeError, TypeError) as exc:
            self._error(400, f"Bad request: {exc}")


class _Server(ThreadingHTTPServer):
    requests: list[dict[str, Any]] | None = None


@contextmanager
def serve(
    host: str = "127.0.0.1", port: int = 0, requests: list[dict[str, Any]] | None = None
) -> Iterator[str]:
    """Serve in a background thread; yields the base URL, e.g. ``http://127.0.0.1:PORT/v1``.
    Every request body is appended to ``requests`` when given: what the model was sent."""
    server = _Server((host, port), _Handler)
    server.requests = requests
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="scripted-model", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), _Handler)
    print(f"scripted model on http://{args.host}:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
