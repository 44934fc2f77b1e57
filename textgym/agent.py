"""The ``Agent`` protocol: what textgym's tooling needs of an agent, and agents named by string.

Evaluation and comparison runs treat every agent alike: textgym's own (``"ppo"``, ``"reinforce"``),
the adapters over other libraries (``"sb3-ppo"``, ``"sb3-a2c"``, ``"sb3-maskable-ppo"``,
``"torchrl-ppo"``, and ``"trl-rloo"`` with the bench extra) and yours, named by import string with no
registration call:

```python
from textgym.agent import make_agent

agent = make_agent("my_package.my_module:MyAgent", "textgym/Copy-v1", seed=0, learning_rate=1e-3)
agent.learn(total_timesteps=10_000)
textgym.evaluate(agent, "textgym/Copy-v1")
```
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from textgym.importing import import_object

# Built-in agents by name. Import strings, so that naming one imports only its own library.
AGENTS: dict[str, str] = {
    "reinforce": "textgym.agents.reinforce:REINFORCE",
    "ppo": "textgym.agents.ppo:PPO",
    "sb3-ppo": "textgym.agents.sb3:SB3PPO",
    "sb3-a2c": "textgym.agents.sb3:SB3A2C",
    "sb3-maskable-ppo": "textgym.agents.sb3:SB3MaskablePPO",
    "torchrl-ppo": "textgym.agents.torchrl:TorchRLPPO",
    "trl-rloo": "textgym.agents.trl:TRLRLOO",  # needs pip install 'textgym[bench]'
}

REQUIRED = ("learn", "predict", "save", "load")


@runtime_checkable
class Agent(Protocol):
    """An RL agent on a textgym env, with stable-baselines3's four methods.

    - ``Agent(env_id, *, model=None, seed=0, **config)``: the constructor :func:`make_agent` calls.
      ``model`` names the policy's starting LM (None: the env's own model); ``config`` holds the agent's
      hyperparameters, an unknown key being an error.
    - ``learn(total_timesteps=N)``: trains until the agent has taken ``N`` env steps (generated tokens)
      since its run started, called by keyword; returns the agent. A fresh agent trains ``N`` steps, as
      SB3's ``learn(N)``; a loaded one continues towards the same total, so ``learn`` in chunks of
      ``N/k`` with ``save`` and ``load`` between them trains one run (what ``textgym train`` does).
    - ``predict(observation, state=None, episode_start=None, deterministic=False) -> (actions, state)``:
      next tokens for a batch of textgym observations (``input_ids``/``attention_mask`` arrays), as SB3.
    - ``save(path)`` and the classmethod ``load(path)``: a checkpoint that rebuilds the agent.

    Optional:

    - an ``lm`` attribute holding the causal LM the agent samples from. :func:`textgym.evaluate` then
      samples it with a KV cache at the evaluation's temperature and reports its KL to the reference;
      without it evaluation calls ``predict`` step by step and the KL is unknown (NaN);
    - ``num_timesteps``, the env steps taken so far (curves use it; else the requested total);
    - a ``log_dir`` setting: where the agent writes its training metrics (TensorBoard, CSV);
    - a ``config_class`` dataclass whose fields carry ``metadata["help"]``, or an ``options()``
      classmethod: what ``textgym train --help`` lists (else the constructor's keyword parameters).
    """

    def learn(self, total_timesteps: int, *args: Any, **kwargs: Any) -> Any: ...

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, Any]: ...

    def save(self, path: str | os.PathLike[str]) -> Any: ...

    @classmethod
    def load(cls, path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Agent: ...


def agent_class(spec: str | type) -> type:
    """The agent class for a built-in name (a key of :data:`AGENTS`), an import string or a class.

    Raises:
        ValueError: a string that is neither a built-in name nor an import string ``"pkg.module:Class"``.
        TypeError: a class without the protocol's methods; the message names the missing ones.
    """
    if isinstance(spec, str):
        if spec not in AGENTS and ":" not in spec:
            close = difflib.get_close_matches(spec, AGENTS, n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise ValueError(
                f"unknown agent {spec!r}{hint}: expected one of {sorted(AGENTS)} or an import string "
                f"'pkg.module:Class'"
            )
        spec = import_object(AGENTS.get(spec, spec))
    if not isinstance(spec, type):
        raise TypeError(f"an agent must be a class, got {spec!r}")
    missing = [name for name in REQUIRED if not callable(getattr(spec, name, None))]
    if missing:
        raise TypeError(f"{spec.__name__} is not a textgym Agent: it has no {', '.join(missing)} method")
    return spec


def make_agent(spec: str | type, env_id: str, *, model: Any = None, seed: int = 0, **config: Any) -> Any:
    """Build an agent by name, import string or class: ``cls(env_id, model=model, seed=seed, **config)``."""
    return agent_class(spec)(env_id, model=model, seed=seed, **config)


@dataclass(frozen=True)
class Option:
    """One setting an agent takes: its name, default and help text."""

    name: str
    default: Any
    help: str = ""


def agent_options(cls: type) -> list[Option] | None:
    """The settings of an agent class, for ``--help`` and for checking settings before a run starts.

    From its ``config_class`` dataclass, else its ``options()`` classmethod, else its constructor's
    keyword parameters; None when the constructor takes ``**kwargs`` that none of these describe.
    """
    config_class = getattr(cls, "config_class", None)
    if dataclasses.is_dataclass(config_class):
        return [
            Option(f.name, f.default, f.metadata.get("help", "")) for f in dataclasses.fields(config_class)
        ]
    if callable(getattr(cls, "options", None)):
        return list(cls.options())
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, env
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [Option(p.name, p.default) for p in params if p.default is not p.empty]


def check_settings(cls: type, settings: dict[str, Any]) -> None:
    """Raise a ValueError naming each setting ``cls`` does not take, with the close matches."""
    options = agent_options(cls)
    if options is None:
        return
    known = [o.name for o in options] + ["model", "seed", "env_kwargs"]
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"{cls.__name__} has no setting {key!r}{hint} (`textgym train --agent ... --help` lists them)"
            )
