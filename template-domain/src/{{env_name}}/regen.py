"""Derived artifacts, written from the domain: ``nox -s regen`` (``python -m <package>.regen``).

Everything here is a copy of a fact the domain declares once: the tool schemas
(``tests/tools.snapshot.json``), the README's tool table, NeMo Gym's ``data/example.jsonl`` and
the turn limits in the NeMo Gym and Verifiers configs, and the oracle tolerance in OpenEnv's
manifest. ``--check`` lists the stale ones and
exits non-zero; the tests call ``stale()``. Framework folders that are absent are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from . import SPEC, TOOLS

COMMAND = "nox -s regen"
ROOT = Path(os.environ.get("ENV_ROOT", Path.cwd()))
"""The generated environment's root (where noxfile.py is); the current directory by default."""
TABLE = re.compile(r"(<!-- tools: .*? -->\n).*?(<!-- /tools -->)", re.DOTALL)


def snapshot() -> str:
    """The tool declarations every adapter advertises, byte for byte."""
    tools = [spec.openai_tool()["function"] for spec in TOOLS]
    return json.dumps(tools, indent=2, sort_keys=True) + "\n"


def tools_table() -> str:
    lines = ["| tool | arguments | what it does |", "|---|---|---|"]
    for spec in TOOLS:
        schema = spec.parameters()
        required = set(schema.get("required", ()))
        args = [
            f"`{name}`{'' if name in required else ' (optional)'}: {prop.get('description', '')}"
            for name, prop in schema.get("properties", {}).items()
        ]
        cells = ["<br>".join(args) or "none", spec.description]
        arguments, does = (cell.replace("|", r"\|") for cell in cells)
        lines.append(f"| `{spec.name}` | {arguments} | {does} |")
    return "\n".join(lines) + "\n"


def readme(text: str) -> str:
    return TABLE.sub(lambda m: m.group(1) + tools_table() + m.group(2), text)


def turn_limits(text: str, pattern: str) -> str:
    """Model turns: every tool call the episode allows, and a final message."""
    return re.sub(pattern, lambda m: f"{m.group(1)}{SPEC.episode.max_steps + 1}", text, flags=re.M)


def nemo_gym_examples(folder: Path) -> Callable[[], str]:
    """NeMo Gym's example.jsonl, written by the server's own (framework-free) data generator."""
    module = f"resources_servers.{folder.parent.name}.generate_data"

    def render() -> str:
        cmd = [sys.executable, "-m", module, "--example", "-"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "nemo_gym")}
        run = subprocess.run(cmd, cwd=ROOT / "nemo_gym", env=env, capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(f"{module} failed:\n{run.stderr}")
        return run.stdout

    return render


def artifacts() -> dict[Path, Callable[[str], str]]:
    """Each derived file and how to write it from its current text."""
    found: dict[Path, Callable[[str], str]] = {
        ROOT / "tests" / "tools.snapshot.json": lambda _: snapshot(),
        ROOT / "README.md": readme,
    }
    for data in sorted(ROOT.glob("nemo_gym/resources_servers/*/data")):
        examples = nemo_gym_examples(data)
        found[data / "example.jsonl"] = lambda _, examples=examples: examples()
    for config in sorted(ROOT.glob("nemo_gym/resources_servers/*/configs/*.yaml")):
        found[config] = lambda text: turn_limits(text, r"^(\s+max_steps: )\d+")
    for config in sorted(ROOT.glob("verifiers/configs/*.toml")):
        found[config] = lambda text: turn_limits(text, r"^(max_turns = )\d+")
    if (manifest := ROOT / "openenv" / "openenv.yaml").exists():
        found[manifest] = oracle_tolerance
    return found


def oracle_tolerance(text: str) -> str:
    """OpenEnv's oracle check passes when the oracle scores at least 1.0 - oracle_tolerance."""
    tolerance = round(1.0 - SPEC.oracle_floor, 6)
    return re.sub(r"^(\s+oracle_tolerance: )[\d.]+", rf"\g<1>{tolerance}", text, flags=re.M)


def stale() -> list[str]:
    """The derived files that differ from what the domain says (paths relative to the root)."""
    out = []
    for path, write in artifacts().items():
        current = path.read_text() if path.exists() else ""
        if write(current) != current:
            out.append(str(path.relative_to(ROOT)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.regen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only list stale artifacts")
    args = parser.parse_args(argv)
    if args.check:
        files = stale()
        for name in files:
            print(f"stale: {name} (run `{COMMAND}`)")
        return 1 if files else 0
    for path, write in artifacts().items():
        current = path.read_text() if path.exists() else ""
        if (new := write(current)) != current:
            path.write_text(new)
            print(f"regen: wrote {path.relative_to(ROOT)}")
        else:
            print(f"regen: {path.relative_to(ROOT)} is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
