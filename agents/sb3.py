"""stable-baselines3 adapter: an SB3 actor-critic policy whose actor is a causal LM, for PPO and A2C.

```python
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from textgym.agents.sb3 import LM_DEFAULTS, LMActorCriticPolicy

env = make_vec_env("textgym:textgym/Copy-v0", n_envs=4)
model = PPO(LMActorCriticPolicy, env, policy_kwargs={"model": "path/to/model"}, **LM_DEFAULTS)
model.learn(10_000)
```

The policy wraps :class:`textgym.agents.policy.LMPolicy` (the LM and a value head on its last hidden
state at each row's last real column). SB3's own network building is skipped, so pretrained weights are
never orthogonally re-initialised, and the LM stays in eval mode (SB3's training mode would switch on
dropout, and PPO's first ratio would no longer be 1). The model is named by a string (a name or a local
folder for :func:`textgym.models.load_model`) so that ``save``/``load`` rebuild it.

This first step runs SB3 as it is: every step recomputes the whole observation (no KV cache) and PPO's
minibatches are single steps. Without announced log-probs the env pays ``beta * log pi_ref`` per token
(see the README), so with KL shaping SB3 trains on the entropy-free half of the KL-regularised reward.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule

from textgym.agents.policy import LMPolicy
from textgym.models import ModelBundle, load_model

# SB3's defaults are tuned for control tasks; these are the LM ones (TRL, OpenRLHF): no discount, GAE
# lambda 1 so the terminal score reaches the first token, a small step size.
LM_DEFAULTS: dict[str, Any] = {"gamma": 1.0, "gae_lambda": 1.0, "learning_rate": 1e-5}


class LMActorCriticPolicy(ActorCriticPolicy):
    """An SB3 ``ActorCriticPolicy`` over a causal LM: the LM head is the action distribution.

    Args:
        observation_space: textgym's ``Dict(input_ids, attention_mask)``.
        action_space: ``Discrete(V)``, V the model's logits dimension.
        lr_schedule: SB3's learning-rate schedule.
        model: a model name or local folder (kept as a string, so ``save``/``load`` round-trip), or a
            ``ModelBundle`` (not saved by name).
        temperature: the sampling temperature; log-probs use the same one.
        value_seed: seeds the value head's initial weights.
        optimizer_class, optimizer_kwargs: as SB3's (A2C passes RMSprop through them).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        model: str | ModelBundle,
        temperature: float = 1.0,
        value_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"LMActorCriticPolicy needs a Discrete action space, got {action_space}")
        self.model_spec, self.temperature, self.value_seed = model, float(temperature), int(value_seed)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        # Replaces SB3's MLP building outright: no mlp_extractor, no orthogonal init of the LM.
        bundle = self.model_spec if isinstance(self.model_spec, ModelBundle) else load_model(self.model_spec)
        self.lm_policy = LMPolicy(
            bundle, value_head=True, seed=self.value_seed, num_actions=int(self.action_space.n)
        )
        self.action_dist = CategoricalDistribution(int(self.action_space.n))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(False)  # eval always: dropout would make PPO's first ratio differ from 1

    def _distribution_and_values(self, obs: dict[str, torch.Tensor]):
        # SB3 hands Box observations over as floats (exact below 2^24): the ids go back to int64.
        logits, values = self.lm_policy.next_token(obs["input_ids"].long(), obs["attention_mask"].long())
        distribution = self.action_dist.proba_distribution(action_logits=logits / self.temperature)
        return distribution, values[:, None]  # values (B, 1), as SB3's value_net returns them

    def forward(self, obs: dict[str, torch.Tensor], deterministic: bool = False):
        distribution, values = self._distribution_and_values(obs)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, values, distribution.log_prob(actions)

    def evaluate_actions(self, obs: dict[str, torch.Tensor], actions: torch.Tensor):
        distribution, values = self._distribution_and_values(obs)
        return values, distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: dict[str, torch.Tensor]):
        return self._distribution_and_values(obs)[0]

    def predict_values(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._distribution_and_values(obs)[1]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(model=self.model_spec, temperature=self.temperature, value_seed=self.value_seed)
        for key in ("net_arch", "activation_fn", "ortho_init"):  # SB3's MLP options, unused here
            data.pop(key, None)
        return data
