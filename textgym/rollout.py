"""Sample a batch of whole episodes through a textgym vector env.

The policy is either a causal LM, sampled token by token with its own KV cache
(:class:`textgym.models.CachedLM`) and announcing each token's log-prob to the env (exact KL shaping),
or any object with an SB3-style ``predict(obs, deterministic=False) -> (actions, state)``. Sampling stops
when every env has finished one episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from transformers import PreTrainedModel

from textgym.envs.text_vector_env import TextVectorEnv
from textgym.models import CachedLM


@runtime_checkable
class PredictPolicy(Protocol):
    """Anything with SB3's ``predict``: a batch of observations in, a batch of token ids out."""

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ): ...


@dataclass
class Episodes:
    """One finished episode per env. Arrays have a leading ``num_envs`` axis."""

    prompts: list[str]
    completions: list[str]
    scores: np.ndarray  # (N,) float32 task score
    lengths: np.ndarray  # (N,) int64 generated tokens
    stopped: np.ndarray  # (N,) bool: ended by EOS or a stop sequence (not by the budget)
    kl: np.ndarray  # (N,) float32 sum over tokens of log pi - log pi_ref (k1); NaN when unknown
    prompt_ids: torch.Tensor  # (N, P) int64 prompts as the model saw them, left-padded
    prompt_mask: torch.Tensor  # (N, P) int64, 1 on real prompt tokens
    tokens: torch.Tensor  # (N, T) int64 generated tokens, padded with the pad id
    logprobs: torch.Tensor  # (N, T) float32 log pi of the sampled tokens, 0 past the end (LM policies)
    ref_logprobs: torch.Tensor  # (N, T) float32 log pi_ref of the sampled tokens, 0 past the end
    # (N, T) float32: what the env paid for each token (KL shaping, plus the score on the last one), 0 past
    # the end. With deferred reference delivery (ref_logprobs="episode_end") the env pays the summed
    # shaping on the last step; here it stands at the tokens it belongs to (info["non_score_rewards"]).
    rewards: torch.Tensor

    @property
    def returns(self) -> torch.Tensor:
        """``(N,)`` each episode's total reward, the sum of what the env paid over its steps."""
        return self.rewards.sum(-1)

    @property
    def completion_mask(self) -> torch.Tensor:
        """``(N, T)`` float32, 1 on generated tokens."""
        T = self.tokens.shape[1]
        lengths = torch.as_tensor(self.lengths, device=self.tokens.device)
        return (torch.arange(T, device=self.tokens.device)[None, :] < lengths[:, None]).float()


class _LMSampler:
    """Samples from a causal LM with a KV cache; knows the log-prob of what it samples."""

    def __init__(
        self,
        envs: TextVectorEnv,
        model: PreTrainedModel,
        obs: dict,
        temperature: float,
        deterministic: bool,
        suppress_eos: bool,
        generator: torch.Generator,
    ) -> None:
        P = envs.prompt_budget
        width = int(obs["attention_mask"][:, :P].sum(-1).max())
        self.lm = CachedLM(model, envs.pad_token_id)
        self.lm.prefill(obs["input_ids"][:, P - width : P], obs["attention_mask"][:, P - width : P])
        self.vocab_size = envs.vocab_size
        self.eos = torch.tensor(envs.eos_token_ids, device=envs.device)
        self.temperature, self.deterministic, self.suppress_eos = temperature, deterministic, suppress_eos
        self.generator = generator

    def act(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.lm.next_logits[:, : self.vocab_size].float() / self.temperature  # (N, V)
        if self.suppress_eos:
            logits[:, self.eos] = -torch.inf
        logp = torch.log_softmax(logits, -1)
        if self.deterministic:
            actions = logp.argmax(-1)
        else:
            actions = torch.multinomial(logp.exp(), 1, generator=self.generator)[:, 0]  # (N,)
        return actions, logp.gather(1, actions[:, None])[:, 0]

    def advance(self, actions: torch.Tensor, running: torch.Tensor | None) -> None:
        self.lm.step(actions, running)


class _PredictSampler:
    """Asks an SB3-style ``predict`` for each step's tokens; their log-probs are unknown."""

    def __init__(self, policy: PredictPolicy, deterministic: bool) -> None:
        self.policy, self.deterministic = policy, deterministic

    def act(self, obs: dict) -> tuple[Any, None]:
        numpy_obs = {key: value.cpu().numpy() for key, value in obs.items()}
        actions, _ = self.policy.predict(numpy_obs, deterministic=self.deterministic)
        return actions, None

    def advance(self, actions: Any, running: torch.Tensor | None) -> None:
        pass


@torch.no_grad()
def sample_episodes(
    envs: TextVectorEnv,
    policy: torch.nn.Module | PredictPolicy,
    *,
    seed: int | list[int] | None = None,
    temperature: float = 1.0,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    suppress_eos: bool = False,
    example_index: list[int] | None = None,
) -> Episodes:
    """Reset ``envs`` and run one episode in every env.

    Args:
        envs: a textgym vector env with ``autoreset_mode=DISABLED`` (finished envs sit out) and the
            default torch array backend.
        policy: a causal LM sharing the env's tokenizer (it may be the env's own reference model), or an
            object with an SB3-style ``predict`` taking a NumPy observation batch.
        seed: passed to ``envs.reset`` (a list gives one seed per env: equal seeds, equal prompts); an int
            also seeds the sampling generator when ``generator`` is None.
        temperature: LM sampling temperature; the announced log-probs use the same one.
        deterministic: greedy decoding (LM) or ``predict(..., deterministic=True)``.
        generator: torch generator on the env's device for LM sampling.
        suppress_eos: never sample EOS, so that every episode runs the whole budget (benchmarks).
        example_index: one pool index per env (the env's ``reset(options={"example_index": ...})``)
            instead of prompts drawn from the seeds.
    """
    if envs.metadata["autoreset_mode"] != AutoresetMode.DISABLED:
        raise ValueError("sample_episodes needs a vector env made with autoreset_mode=AutoresetMode.DISABLED")
    if getattr(envs, "array_backend", "torch") != "torch":
        raise ValueError("sample_episodes needs a vector env with array_backend='torch'")
    device = envs.device
    obs, infos = envs.reset(
        seed=seed, options=None if example_index is None else {"example_index": example_index}
    )
    P = envs.prompt_budget
    prompt_ids, prompt_mask = obs["input_ids"][:, :P].clone(), obs["attention_mask"][:, :P].clone()
    if isinstance(policy, torch.nn.Module):  # a causal LM, or a module that calls one (a LoRA view)
        if generator is None:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed if isinstance(seed, int) else int(torch.seed()))
        sampler = _LMSampler(envs, policy, obs, temperature, deterministic, suppress_eos, generator)
    elif isinstance(policy, PredictPolicy):
        sampler = _PredictSampler(policy, deterministic)
    else:
        raise TypeError(
            f"policy must be a causal LM (torch.nn.Module) or have predict(obs, deterministic=...), "
            f"got {type(policy).__name__}"
        )

    N, T = envs.num_envs, envs.generation_budget
    tokens = torch.full((N, T), envs.pad_token_id, dtype=torch.long, device=device)
    logprobs = torch.zeros((N, T), dtype=torch.float32, device=device)
    ref_logprobs = torch.zeros((N, T), dtype=torch.float32, device=device)
    rewards = torch.zeros((N, T), dtype=torch.float32, device=device)
    scores = torch.zeros(N, dtype=torch.float32, device=device)
    lengths = torch.zeros(N, dtype=torch.long, device=device)
    stopped = torch.zeros(N, dtype=torch.bool, device=device)
    kl = torch.full(
        (N,), torch.nan, dtype=torch.float32, device=device
    )  # known only with announced log-probs
    completions = [""] * N
    running = torch.ones(N, dtype=torch.bool, device=device)
    num_running = N
    for t in range(T):
        actions, action_logp = sampler.act(obs)
        if action_logp is not None:
            envs.set_action_logprobs(action_logp)  # entries of envs that already ended are ignored
        obs, reward, terminated, _, info = envs.step(actions)
        actions = torch.as_tensor(actions, device=device)
        tokens[:, t] = torch.where(running, actions, tokens[:, t])
        if action_logp is not None:
            logprobs[:, t] = torch.where(running, action_logp, 0.0)
        if "ref_logprob" in info:
            ref_logprobs[:, t] = torch.where(running, info["ref_logprob"], 0.0)
        rewards[:, t] = reward  # 0 for envs that already ended
        if "score" in info:  # some episode ended this step
            scores[terminated] = info["score"][terminated]
            lengths[terminated] = info["completion_length"][terminated]
            stopped[terminated] = info["stopped"][terminated]
            if "episode_kl" in info:
                kl[terminated] = info["episode_kl"][terminated]
            if "ref_logprobs" in info:  # deferred reference: all of an episode's log-probs at its end
                ref_logprobs[terminated] = info["ref_logprobs"][terminated]
            ended_rows = terminated.nonzero()[:, 0].tolist()
            if "non_score_rewards" in info:
                # Deferred reference: the last step paid the summed shaping; each token gets its own share.
                rewards[ended_rows] = info["non_score_rewards"][ended_rows]
                rewards[ended_rows, t] += info["score"][ended_rows]
            for i in ended_rows:
                completions[i] = info["completion"][i]
            running &= ~terminated
            num_running -= len(ended_rows)
        if not num_running:
            break
        sampler.advance(actions, None if num_running == N else running)
    return Episodes(
        prompts=list(infos["prompt"]),
        completions=completions,
        scores=scores.cpu().numpy(),
        lengths=lengths.cpu().numpy(),
        stopped=stopped.cpu().numpy(),
        kl=kl.cpu().numpy(),
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        tokens=tokens,
        logprobs=logprobs,
        ref_logprobs=ref_logprobs,
        rewards=rewards,
    )
