"""NeMo Gym's simple_agent, with the images in tool replies shown to the model.

The resources server answers a tool call with JSON whose ``images`` field holds PNG data URLs
(screenshots, figures). simple_agent would hand that JSON to the model as text. This agent runs
simple_agent's own loop (the one of the installed nemo-gym, 0.4 or >= 0.6) and rewrites each
request on its way to the model server: the images leave the tool outputs' text and follow
them as one user message of ``input_image`` parts, a form every Responses API model reads
(nemo-gym 0.4 allows only text in a tool output). Only the newest ``max_images`` are sent;
older ones become a one-line note, which bounds the context of long episodes. The trajectory
that reaches ``/verify`` and the rollout file keeps every tool output as the server sent it.
"""

import json
from typing import Any

from nemo_gym.server_utils import ServerClient
from pydantic import BaseModel, Field

from responses_api_agents.simple_agent.app import SimpleAgent, SimpleAgentConfig

LEAD = "The image(s) returned by the tool call(s) above:"
DROPPED = "(an earlier image, no longer shown)"


class ImageAgentConfig(SimpleAgentConfig):
    max_images: int = Field(3, ge=1)
    """How many of the newest tool images each model request carries."""


def split_images(output: Any) -> tuple[Any, list[str]]:
    """A tool output without its images, and the images (data URLs)."""
    try:
        reply = json.loads(output)
    except (TypeError, ValueError):
        return output, []
    if not isinstance(reply, dict) or not isinstance(reply.get("images"), list):
        return output, []
    images = [str(url) for url in reply.pop("images")]
    return json.dumps(reply), images


def show_images(body: dict[str, Any], max_images: int) -> dict[str, Any]:
    """A Responses API request whose tool-output images reach the model as input images."""
    items = body.get("input")
    if not isinstance(items, list):
        return body
    split = [split_images(item.get("output")) if is_tool_output(item) else None for item in items]
    to_hide = sum(len(images) for _, images in filter(None, split)) - max_images
    new_items: list[Any] = []
    parts: list[dict[str, str]] = [{"type": "input_text", "text": LEAD}]

    def add_images() -> None:  # after the run of tool outputs they came with
        if len(parts) > 1:
            new_items.append({"type": "message", "role": "user", "content": parts[:]})
            del parts[1:]

    for item, output in zip(items, split, strict=True):
        if output is None:
            add_images()
            new_items.append(item)
            continue
        text, images = output
        new_items.append({**item, "output": text})
        for url in images:
            to_hide -= 1
            hidden = to_hide >= 0  # the oldest images become a note
            image = {"type": "input_image", "image_url": url, "detail": "auto"}
            parts.append({"type": "input_text", "text": DROPPED} if hidden else image)
    add_images()
    return {**body, "input": new_items}


def is_tool_output(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "function_call_output"


class ImageClient(ServerClient):
    """NeMo Gym's server client; requests to the model server go through ``show_images``."""

    model_server: str
    max_images: int

    async def post(self, server_name: str, url_path: str, **kwargs: Any) -> Any:
        if server_name == self.model_server and "json" in kwargs:
            body = kwargs["json"]
            if isinstance(body, BaseModel):  # as ServerClient.request serializes it
                body = body.model_dump(exclude_unset=True)
            kwargs["json"] = show_images(body, self.max_images)
        return await super().post(server_name, url_path, **kwargs)


class ImageAgent(SimpleAgent):
    config: ImageAgentConfig

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        self.server_client = ImageClient(
            head_server_config=self.server_client.head_server_config,
            global_config_dict=self.server_client.global_config_dict,
            model_server=self.config.model_server.name,
            max_images=self.config.max_images,
        )


if __name__ == "__main__":
    ImageAgent.run_webserver()
