"""The agent's policy: one ``nn.Module`` holding the causal LM (or its LoRA view) and an optional value head.

Everything that trains or samples the LM goes through this module, so that ``DistributedDataParallel``,
an SB3 policy or a TorchRL actor wraps one thing and the value head is never left out:

- ``forward`` is the teacher-forced pass over prompts and completions: log-probs of the generated
  tokens, the policy's entropy and, with a value head, the values at each generated position;
- :meth:`LMPolicy.next_token` gives the next-token logits (and value) at each row's last real token of an
  observation, what a step-by-step RL library asks for;
- ``lm`` is the causal LM to sample from: :func:`textgym.rollout.sample_episodes` steps it with a KV
  cache, and :meth:`LMPolicy.generate` runs Hugging Face ``generate`` on it.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from textgym.models import ModelBundle
from textgym.models.cached_lm import position_ids_from_mask, shared_prefix_outputs


class TokenEvaluation(NamedTuple):
    """The teacher-forced pass at the generated positions, each ``(R, T)`` float32."""

    logprobs: torch.Tensor  # log pi of the generated tokens at the sampling temperature
    entropy: torch.Tensor  # entropy of pi at each generated position
    values: torch.Tensor | None  # the value head's estimate there; None without a value head


class LMPolicy(nn.Module):
    """A causal LM trained as an RL policy, with an optional scalar value head on its last hidden state.

    Args:
        bundle: the model to train. Without LoRA the policy trains a deep copy (the shared, frozen bundle
            stays the env's reference); with LoRA the adapter goes into the shared model itself and is
            active only inside this policy's calls, so one copy of the weights is held.
        value_head: add a ``Linear(hidden, 1)`` on the last hidden state (a shared trunk, as TRL's PPO).
        lora_config: a peft ``LoraConfig`` to train an adapter instead of every weight.
        seed: seeds the value head's initial weights.
        num_actions: the env's action count, ``V``; a model with another logits dimension is refused.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        value_head: bool = False,
        lora_config: Any = None,
        seed: int = 0,
        num_actions: int | None = None,
    ) -> None:
        super().__init__()
        if num_actions is not None and bundle.vocab_size != num_actions:
            raise ValueError(
                f"model {bundle.name!r} has {bundle.vocab_size} logits but the env's actions are "
                f"Discrete({num_actions}): they must share a tokenizer"
            )
        if lora_config is not None:
            self.bundle = bundle
            self.lm: nn.Module = AdapterView(bundle.model, lora_config)
        else:
            self.bundle = bundle.trainable_copy()
            self.lm = self.bundle.model
        self.value_head: nn.Linear | None = None
        if value_head:
            hidden = self.base_model.config.get_text_config().hidden_size
            self.value_head = nn.Linear(hidden, 1).to(bundle.device)
            generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():  # small init: values start near 0, as the returns do
                self.value_head.weight.copy_(torch.randn(1, hidden, generator=generator) * 0.01)
                self.value_head.bias.zero_()

    @property
    def base_model(self) -> nn.Module:
        """The Hugging Face model: the trained copy, or under LoRA the shared base the adapter sits in."""
        return self.lm.base if isinstance(self.lm, AdapterView) else self.lm

    @property
    def is_lora(self) -> bool:
        return isinstance(self.lm, AdapterView)

    def lm_parameters(self) -> list[nn.Parameter]:
        """The LM's trained parameters: every weight, or only the LoRA adapter's."""
        if isinstance(self.lm, AdapterView):
            return self.lm.adapter_parameters()
        return list(self.lm.parameters())

    def value_parameters(self) -> list[nn.Parameter]:
        return [] if self.value_head is None else list(self.value_head.parameters())

    def train(self, mode: bool = True) -> LMPolicy:
        super().train(mode)
        if isinstance(self.lm, AdapterView):
            # The shared module is also the env's reference: leave it in eval mode (the adapter has no
            # dropout, so the two modes compute the same).
            self.lm.base.eval()
        return self

    def forward(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        tokens: torch.Tensor,
        completion_mask: torch.Tensor,
        temperature: float = 1.0,
        entropy_grad: bool = True,
    ) -> TokenEvaluation:
        """Teacher-forced pass over left-padded prompts ``(R, P)`` and right-padded completions ``(R, T)``.

        ``completion_mask`` ``(R, T)`` is 1 on generated tokens. Log-probs use ``temperature``, as the
        sampler did, so that a ratio against the sampler's log-probs starts at 1. ``entropy_grad=False``
        returns the entropy detached, for a loss without an entropy bonus.
        """
        P, T = prompt_ids.shape[1], tokens.shape[1]
        width = int(prompt_mask.sum(-1).max())  # columns left of the widest prompt are padding everywhere
        ids = torch.cat([prompt_ids[:, P - width :], tokens], dim=1)  # (R, width + T)
        attention = torch.cat([prompt_mask[:, P - width :], completion_mask.long()], dim=1)
        positions = position_ids_from_mask(attention)
        hidden = self.value_head is not None
        # A group of completions of one prompt (RLOO, GRPO) runs the prompt once; the backward pass sums
        # the group's gradients through the copied cache.
        shared = shared_prefix_outputs(self.lm, ids, attention, positions, width, hidden_states=hidden)
        if shared is not None:
            logits, states = shared  # (R, T, V), (R, T, H) or None
        else:
            out = self.lm(
                input_ids=ids,
                attention_mask=attention,
                position_ids=positions,
                output_hidden_states=hidden,
                # The LM head only where a generated token is predicted (columns width-1 onwards): on a 49k
                # vocabulary it is a fifth of the forward pass, and prompts are the longer part.
                logits_to_keep=T + 1,
            )
            logits = out.logits[:, :T]  # (R, T, V)
            states = out.hidden_states[-1][:, width - 1 : width - 1 + T] if hidden else None  # (R, T, H)
        logits = logits.float() / temperature
        logp_all = torch.log_softmax(logits, -1)
        logprobs = logp_all.gather(-1, tokens[..., None])[..., 0]  # (R, T)
        # Differentiable, the entropy keeps two more (R, T, V) tensors alive until the backward pass.
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = -(logp_all.exp() * logp_all).sum(-1)  # (R, T)
        values = self.value(states) if hidden else None
        return TokenEvaluation(logprobs, entropy, values)

    def value(self, states: torch.Tensor) -> torch.Tensor:
        """The value head on hidden states ``(..., H)``: ``(...)`` float32, in fp32 even under autocast.

        A value is a regression target's estimate; bf16's 8 bits of mantissa would round returns near 1
        to steps of 1/128, which the value loss would then chase.
        """
        with torch.autocast(states.device.type, enabled=False):
            return self.value_head(states.float())[..., 0]

    def next_token(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-token logits ``(B, V)`` float32 (and values ``(B,)`` with a value head) of observations.

        The next token is predicted from each row's last real column (textgym's observations are
        left-padded prompts followed by right-padded completions), not from the last column.
        """
        mask = attention_mask.long()
        rows = torch.arange(len(mask), device=mask.device)
        return self.outputs_at(input_ids, mask, rows, last_real_column(mask))

    def outputs_at(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(N, V)`` float32 (and values ``(N,)``) at ``N`` positions ``(rows[n], columns[n])``.

        One forward over ``(R, L)`` sequences serves every position in them: an episode's step ``t``
        observation is a prefix of its last one (columns never move), so a whole episode's next-token
        outputs come from one pass over its last observation.
        """
        ids, mask = input_ids.long(), attention_mask.long()
        # Columns that are padding in every row change nothing (positions come from the mask): on the toy
        # tasks most of the 64 prompt columns are, so the forward pass shrinks several times.
        real = mask.any(0)
        first, end = int(real.int().argmax()), mask.shape[1] - int(real.flip(0).int().argmax())
        ids, mask, columns = ids[:, first:end], mask[:, first:end], columns - first
        keep = torch.unique(columns)  # sorted; the LM head runs only there: (R, len(keep), V), not (R, L, V)
        out = self.lm(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids_from_mask(mask),
            output_hidden_states=self.value_head is not None,
            logits_to_keep=keep,
        )
        logits = out.logits[rows, torch.searchsorted(keep, columns)].float()
        values = None
        if self.value_head is not None:
            values = self.value(out.hidden_states[-1][rows, columns])
        return logits, values

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Hugging Face ``generate`` on the policy's LM (its adapter switched on)."""
        adapter = self.lm.enabled() if isinstance(self.lm, AdapterView) else contextlib.nullcontext()
        with adapter:
            return self.base_model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def trainable_state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the LM's weights (or only the adapter's) and the value head's."""
        lm = self.lm.adapter_state_dict() if isinstance(self.lm, AdapterView) else self.lm.state_dict()
        value = None if self.value_head is None else self.value_head.state_dict()
        return {"lm": lm, "value_head": value}

    def load_trainable_state_dict(self, state: dict[str, Any]) -> None:
        if isinstance(self.lm, AdapterView):
            self.lm.load_adapter_state_dict(state["lm"])
        else:
            self.lm.load_state_dict(state["lm"])
        if (self.value_head is None) != (state["value_head"] is None):
            raise ValueError(
                f"value head mismatch: this policy has {'one' if self.value_head is not None else 'none'}"
            )
        if self.value_head is not None:
            self.value_head.load_state_dict(state["value_head"])


def observation_batch(
    observation: dict[str, Any], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(input_ids, attention_mask)`` int64 ``(B, L)`` on ``device`` from one observation or a batch.

    Takes NumPy arrays, tensors or lists; the bool says whether a single observation was given.
    """
    ids = torch.as_tensor(observation["input_ids"], device=device).long()
    mask = torch.as_tensor(observation["attention_mask"], device=device).long()
    single = ids.ndim == 1
    return (ids[None], mask[None], True) if single else (ids, mask, False)


def predicted_actions(
    logits: torch.Tensor, temperature: float, deterministic: bool, single: bool
) -> np.ndarray | np.int64:
    """What an SB3-style ``predict`` returns from next-token logits ``(B, V)``: the most likely tokens, or
    tokens sampled at ``temperature`` from torch's global generator; one token for a single observation."""
    if deterministic:
        actions = logits.argmax(-1)
    else:
        actions = torch.multinomial(torch.softmax(logits / temperature, -1), 1)[:, 0]
    actions = actions.cpu().numpy()
    return actions[0] if single else actions


def last_real_column(attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` index of each row's last column with mask 1."""
    return attention_mask.shape[1] - 1 - attention_mask.long().flip(-1).argmax(-1)


class AdapterView(nn.Module):
    """A causal LM with a LoRA adapter that is active only inside this view's calls.

    The adapter is added to ``model`` in place under a name of its own (several agents can share one
    model) and the model's adapters are switched off after every call, so holders of the plain module
    (the env's reference) compute with the base weights.
    """

    _count = 0

    def __init__(self, model: nn.Module, lora_config: Any) -> None:
        super().__init__()
        AdapterView._count += 1
        self.name = f"textgym-{AdapterView._count}"
        self.base = model
        model.add_adapter(lora_config, adapter_name=self.name)
        self._switch_off()

    def _switch_off(self) -> None:
        self.base.disable_adapters()
        # peft also freezes a disabled adapter; ours must stay trainable (its gradients come from
        # forward passes inside enabled(), and the optimizer holds its parameters).
        for p in self.adapter_parameters():
            p.requires_grad_(True)

    @contextlib.contextmanager
    def enabled(self):
        self.base.enable_adapters()
        self.base.set_adapter(self.name)
        try:
            yield
        finally:
            self._switch_off()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.enabled():
            return self.base(*args, **kwargs)

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.base.named_parameters() if f".{self.name}." in n]

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter's weights, named without this view's adapter name so that they reload anywhere."""
        return {
            n.replace(f".{self.name}.", ".{adapter}."): p.detach().clone()
            for n, p in self.base.named_parameters()
            if f".{self.name}." in n
        }

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.base.named_parameters())
        expected = {n.replace(f".{self.name}.", ".{adapter}.") for n in params if f".{self.name}." in n}
        if set(state) != expected:
            raise ValueError(
                f"adapter weights do not match: expected {len(expected)} tensors, got {len(state)}"
            )
        with torch.no_grad():
            for key, value in state.items():
                params[key.replace(".{adapter}.", f".{self.name}.")].copy_(value)
