"""The house rules, read from the source with ``ast``: imports run one way, and only ``textgym/envs/``
touches the engine behind the env's two faces."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module may import from its own layer or a lower one, never from a higher one.
LAYERS: list[tuple[str, ...]] = [
    ("textgym.importing", "textgym.jsonl", "textgym.kl", "textgym.models", "textgym.distributed"),
    ("textgym.rewards",),
    ("textgym.task",),
    ("textgym.envs",),
    ("textgym.tasks",),
    ("textgym.registration",),
    ("textgym.rollout", "textgym.agent"),
    ("textgym.evaluation",),
    ("textgym",),  # the package itself: its __init__ gathers the public names
    ("textgym.preferences", "textgym.sft"),
    ("textgym.agents.config", "textgym.agents.checkpoint", "textgym.agents.logger"),
    ("textgym.agents.policy",),
    ("textgym.agents.base",),
    (
        "textgym.agents.reinforce",
        "textgym.agents.ppo",
        "textgym.agents.sb3",
        "textgym.agents.torchrl",
        "textgym.agents.trl",
    ),
    ("textgym.agents",),
    # The textgym command: agents by name (textgym.agent), never by import of textgym.agents.
    ("textgym.run", "textgym.export"),
    ("textgym.compare",),
    ("textgym.cli", "textgym.__main__"),
]


def module_name(path: Path) -> str:
    """The import name of a source file; ``agents/`` installs as ``textgym.agents``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "agents":
        parts.insert(0, "textgym")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(name: str) -> int | None:
    """The layer of the longest prefix (whole dotted components) of ``name`` in LAYERS."""
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in the file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from textgym import evaluation" imports textgym.evaluation; "from textgym import evaluate"
            # resolves to the package textgym itself (no layer is named textgym.evaluate).
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


PACKAGE_FILES = sorted([*ROOT.glob("textgym/**/*.py"), *ROOT.glob("agents/**/*.py")])
ALL_FILES = sorted(
    p for p in ROOT.rglob("*.py") if not any(part.startswith(".") or part == "build" for part in p.parts)
)


def test_every_package_module_has_a_layer():
    assert PACKAGE_FILES
    assert [str(p) for p in PACKAGE_FILES if layer(module_name(p)) is None] == []


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_from_a_higher_layer(path):
    own = layer(module_name(path))
    upward = []
    for line, name in imports(path):
        target = layer(name)
        if target is not None and target > own:
            upward.append(f"line {line}: {name} (layer {target} > {own})")
    assert upward == [], f"{module_name(path)} imports from a higher layer"


def test_the_layer_check_catches_an_upward_import(tmp_path):
    assert layer("textgym.envs.text_env") < layer("textgym.tasks.toy") < layer("textgym.agents.ppo")
    assert layer("textgym.task") != layer("textgym.tasks")  # whole components, not string prefixes
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from textgym.agents import PPO\n")
    assert (2, "textgym.agents.PPO") in imports(bad) and layer("textgym.agents.PPO") > layer("textgym.envs")


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_envs_package_touches_the_engine(path):
    if path.is_relative_to(ROOT / "textgym" / "envs"):
        return
    tree = ast.parse(path.read_text(), filename=str(path))
    touches = [f"line {line}: import {name}" for line, name in imports(path) if "generation_batch" in name]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("_engine", "batch") and _is_env(node.value):
            touches.append(f"line {node.lineno}: .{node.attr}")
        if isinstance(node, ast.Name) and node.id == "GenerationBatch":
            touches.append(f"line {node.lineno}: GenerationBatch")
    assert touches == []


def _is_env(node: ast.expr) -> bool:
    """``env``, ``envs``, ``x.envs``, ``env.unwrapped``...: the expressions that hold an env."""
    if isinstance(node, ast.Attribute):
        return node.attr in ("env", "envs", "unwrapped") or node.attr.endswith("_env")
    return isinstance(node, ast.Name) and (node.id in ("env", "envs") or node.id.endswith("_env"))


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_agents_are_imported_as_textgym_agents(path):
    # A bare "agents" would clash with other distributions that install a package of that name.
    bare = [f"line {line}: {name}" for line, name in imports(path) if name.split(".")[0] == "agents"]
    assert bare == []
