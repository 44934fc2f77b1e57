"""Sample a batch of whole episodes from a causal LM through a textgym vector env.

The policy keeps its own KV cache (:class:`textgym.models.CachedLM`), announces the log-prob of each
sampled token to the env (exact KL shaping), and stops when every env has finished one episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from transformers import PreTrainedModel

from textgym.envs.text_vector_env import TextVectorEnv
from textgym.models import CachedLM


@dataclass
class Episodes:
    """One finished episode per env. Arrays have a leading ``num_envs`` axis."""

    prompts: list[str]
    completions: list[str]
    scores: np.ndarray  # (N,) float32 task score
    returns: np.ndarray  # (N,) float32 sum of env rewards (score + shaping)
    lengths: np.ndarray  # (N,) int64 generated tokens
    stopped: np.ndarray  # (N,) bool: ended by EOS or a stop sequence (not by the budget)
    kl: np.ndarray  # (N,) float32 sum over tokens of log pi - log pi_ref (k1); 0 without shaping
    tokens: torch.Tensor  # (N, T) int64 generated tokens, padded with the pad id
    logprobs: torch.Tensor  # (N, T) float32 log pi of the sampled tokens, 0 past the end


@torch.no_grad()
def sample_episodes(
    envs: TextVectorEnv,
    model: PreTrainedModel,
    *,
    seed: int | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    suppress_eos: bool = False,
) -> Episodes:
    """Reset ``envs`` and run one episode in every env, sampling tokens from ``model``.

    Args:
        envs: a textgym vector env with ``autoreset_mode=DISABLED`` (finished envs sit out).
        model: the policy, sharing the env's tokenizer; it may be the env's reference model.
        seed: passed to ``envs.reset``; also seeds the sampling generator when ``generator`` is None.
        temperature: sampling temperature; the announced log-probs use the same one.
        generator: torch generator on the env's device for sampling.
        suppress_eos: never sample EOS, so that every episode runs the whole budget (benchmarks).
    """
    if envs.metadata["autoreset_mode"] != AutoresetMode.DISABLED:
        raise ValueError("sample_episodes needs a vector env made with autoreset_mode=AutoresetMode.DISABLED")
    batch = envs.batch
    if generator is None:
        generator = torch.Generator(device=envs.device)
        generator.manual_seed(seed if seed is not None else int(torch.seed()))
    obs, infos = envs.reset(seed=seed)
    N, P, T = envs.num_envs, batch.prompt_budget, batch.generation_budget
    width = int(obs["attention_mask"][:, :P].sum(-1).max())
    policy = CachedLM(model, batch.pad_token_id)
    policy.prefill(obs["input_ids"][:, P - width : P], obs["attention_mask"][:, P - width : P])

    tokens = torch.full((N, T), batch.pad_token_id, dtype=torch.long, device=envs.device)
    logprobs = torch.zeros((N, T), dtype=torch.float32, device=envs.device)
    returns = torch.zeros(N, dtype=torch.float32, device=envs.device)
    scores = torch.zeros(N, dtype=torch.float32, device=envs.device)
    lengths = torch.zeros(N, dtype=torch.long, device=envs.device)
    stopped = torch.zeros(N, dtype=torch.bool, device=envs.device)
    kl = torch.zeros(N, dtype=torch.float32, device=envs.device)
    completions = [""] * N
    running = torch.ones(N, dtype=torch.bool, device=envs.device)
    for t in range(T):
        logits = policy.next_logits[:, : batch.vocab_size].float() / temperature  # (N, V)
        if suppress_eos:
            logits[:, batch.eos] = -torch.inf
        logp = torch.log_softmax(logits, -1)
        actions = torch.multinomial(logp.exp(), 1, generator=generator)[:, 0]  # (N,)
        action_logp = logp.gather(1, actions[:, None])[:, 0]
        envs.set_action_logprobs(action_logp)  # entries of envs that already ended are ignored
        _, reward, terminated, _, info = envs.step(actions)
        tokens[:, t] = torch.where(running, actions, tokens[:, t])
        logprobs[:, t] = torch.where(running, action_logp, 0.0)
        returns += reward
        if "score" in info:  # some episode ended this step
            scores[terminated] = info["score"][terminated]
            lengths[terminated] = info["completion_length"][terminated]
            stopped[terminated] = info["stopped"][terminated]
            if "episode_kl" in info:
                kl[terminated] = info["episode_kl"][terminated]
            for i in terminated.nonzero()[:, 0].tolist():
                completions[i] = info["completion"][i]
            running &= ~terminated
        if not batch.num_running:
            break
        policy.step(actions, None if batch.num_running == N else running)
    return Episodes(
        prompts=list(infos["prompt"]),
        completions=completions,
        scores=scores.cpu().numpy(),
        returns=returns.cpu().numpy(),
        lengths=lengths.cpu().numpy(),
        stopped=stopped.cpu().numpy(),
        kl=kl.cpu().numpy(),
        tokens=tokens,
        logprobs=logprobs,
    )
