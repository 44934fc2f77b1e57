"""The ``Agent`` protocol: what textgym's tooling needs of an agent, and agents named by string.

Evaluation and comparison runs treat every agent alike: textgym's own (``"ppo"``, ``"reinforce"``),
the adapters over other libraries (``"sb3-ppo"``, ``"sb3-a2c"``, ``"sb3-maskable-ppo"``,
``"torchrl-ppo"``) and yours, named by import string with no registration call:

```python
from textgym.agent import make_agent

agent = make_agent("my_package.my_module:MyAgent", "textgym/Copy-v0", seed=0, learning_rate=1e-3)
agent.learn(total_timesteps=10_000)
textgym.evaluate(agent, "textgym/Copy-v0")
```
"""

from __future__ import annotations

import os
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
}

REQUIRED = ("learn", "predict", "save", "load")


@runtime_checkable
class Agent(Protocol):
    """An RL agent on a textgym env, with stable-baselines3's four methods.

    - ``Agent(env_id, *, model=None, seed=0, **config)``: the constructor :func:`make_agent` calls.
      ``model`` names the policy's starting LM (None: the env's own model); ``config`` holds the agent's
      hyperparameters, an unknown key being an error.
    - ``learn(total_timesteps=N)``: trains for ``N`` env steps (generated tokens), called by keyword;
      returns the agent.
    - ``predict(observation, state=None, episode_start=None, deterministic=False) -> (actions, state)``:
      next tokens for a batch of textgym observations (``input_ids``/``attention_mask`` arrays), as SB3.
    - ``save(path)`` and the classmethod ``load(path)``: a checkpoint that rebuilds the agent.

    Optional: an ``lm`` attribute holding the causal LM the agent samples from. :func:`textgym.evaluate`
    then samples it with a KV cache at the evaluation's temperature and reports its KL to the reference;
    without it evaluation calls ``predict`` step by step and the KL is unknown (NaN).
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
            raise ValueError(
                f"unknown agent {spec!r}: expected one of {sorted(AGENTS)} or an import string "
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
