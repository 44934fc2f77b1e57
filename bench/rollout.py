"""Rollout speed of the vector env with KL shaping on, as ratios against yardsticks run in this process.

B episodes of exactly T sampled tokens (EOS suppressed, so every variant does the same work), the
policy sampling with a KV cache it keeps itself (:class:`textgym.models.CachedLM`):

- ``env/step``: the vector env with the reference run each step (KV-cached), log-probs announced.
- ``env/episode_end``: the vector env with the reference deferred to one teacher-forced pass.
- ``hand loop``: the same model calls as ``env/step`` (a policy step and a reference step, each with a
  KV cache) and the same reward call, with no environment around them. Overhead = env/step / this.
- ``generate+ref``: plain ``model.generate`` and one teacher-forced reference forward, what TRL pays.
  End to end = env / this.

Usage: ``python bench/rollout.py [--models tiny smollm2] [--batch 8] [--tokens 32] [--repeats 9]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gymnasium as gym
import torch
from gymnasium.vector import AutoresetMode
from transformers import GenerationConfig

import textgym  # noqa: F401  (registers the envs)
from textgym.models import CachedLM, ModelBundle, load_model
from textgym.models.cached_lm import token_logprobs
from textgym.rewards import score_completions
from textgym.rollout import sample_episodes
from textgym.tasks import CopyTask


def make_envs(bundle: ModelBundle, batch: int, tokens: int, ref_logprobs: str):
    return gym.make_vec(
        "textgym/Copy-v1",
        num_envs=batch,
        vectorization_mode="vector_entry_point",
        model=bundle,
        kl_coef=0.05,
        ref_logprobs=ref_logprobs,
        generation_budget=tokens,
        autoreset_mode=AutoresetMode.DISABLED,
        device=str(bundle.device),
    )


def prompts_of(envs, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """The left-padded prompts the env would start from with this seed."""
    obs, _ = envs.reset(seed=seed)
    P = envs.prompt_budget
    width = int(obs["attention_mask"][:, :P].sum(-1).max())
    examples = [dict(ex) for ex in envs.examples]
    return obs["input_ids"][:, P - width : P], obs["attention_mask"][:, P - width : P], examples


@torch.no_grad()
def hand_loop(bundle: ModelBundle, ids, mask, examples, tokens: int, seed: int) -> None:
    """Policy and reference stepped with their own KV caches, then the reward: no environment."""
    task = CopyTask()
    generator = torch.Generator(bundle.device).manual_seed(seed)
    eos = torch.tensor(bundle.eos_token_ids, device=bundle.device)
    policy, ref = CachedLM(bundle.model, bundle.pad_token_id), CachedLM(bundle.model, bundle.pad_token_id)
    policy.prefill(ids, mask)
    ref.prefill(ids, mask)
    out, kl = [], torch.zeros(ids.shape[0], device=bundle.device)
    for _ in range(tokens):
        logits = policy.next_logits.float()
        logits[:, eos] = -torch.inf
        logp = torch.log_softmax(logits, -1)
        actions = torch.multinomial(logp.exp(), 1, generator=generator)[:, 0]
        ref_logp = torch.log_softmax(ref.next_logits.float(), -1).gather(1, actions[:, None])[:, 0]
        kl += logp.gather(1, actions[:, None])[:, 0] - ref_logp
        out.append(actions)
        policy.step(actions)
        ref.step(actions)
    completions = bundle.tokenizer.batch_decode(torch.stack(out, 1).tolist(), skip_special_tokens=True)
    score_completions(
        task.reward,
        [ex["prompt"] for ex in examples],
        completions,
        target=[ex["target"] for ex in examples],
    )


@torch.no_grad()
def generate_then_ref(bundle: ModelBundle, ids, mask, examples, tokens: int, seed: int) -> None:
    """TRL's recipe: ``generate`` then one teacher-forced reference pass, then the reward."""
    task = CopyTask()
    torch.manual_seed(seed)
    config = GenerationConfig(
        do_sample=True,
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        top_k=0,
        top_p=1.0,
        pad_token_id=bundle.pad_token_id,
        eos_token_id=list(bundle.eos_token_ids),
    )
    sequences = bundle.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    full_mask = torch.cat([mask, torch.ones_like(sequences[:, ids.shape[1] :])], 1)
    token_logprobs(
        bundle.model, sequences, full_mask, last=sequences.shape[1] - ids.shape[1], share_prefixes=False
    )  # as TRL
    completions = bundle.tokenizer.batch_decode(sequences[:, ids.shape[1] :], skip_special_tokens=True)
    score_completions(
        task.reward,
        [ex["prompt"] for ex in examples],
        completions,
        target=[ex["target"] for ex in examples],
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # CUDA runs asynchronously: count the queued work too
    return time.perf_counter() - start


def bench_model(name: str, batch: int, tokens: int, repeats: int, device: str) -> dict[str, float]:
    bundle = CopyTask().build_model() if name == "tiny" else load_model(name, device=device)
    bundle.model.to(device)  # the tiny model is built on the CPU
    env_step, env_end = (
        make_envs(bundle, batch, tokens, "step"),
        make_envs(bundle, batch, tokens, "episode_end"),
    )
    ids, mask, examples = prompts_of(env_step, seed=0)
    variants: dict[str, Callable[[int], object]] = {
        "env/step": lambda s: sample_episodes(env_step, bundle.model, seed=s, suppress_eos=True),
        "env/episode_end": lambda s: sample_episodes(env_end, bundle.model, seed=s, suppress_eos=True),
        "hand loop": lambda s: hand_loop(bundle, ids, mask, examples, tokens, s),
        "generate+ref": lambda s: generate_then_ref(bundle, ids, mask, examples, tokens, s),
    }
    for fn in variants.values():  # warm-up: first calls pay for allocations and lazy imports
        fn(0)
    times: dict[str, list[float]] = {key: [] for key in variants}
    for repeat in range(repeats):  # interleaved, so that drifts in machine speed hit every variant alike
        for key, fn in variants.items():
            times[key].append(timed(lambda fn=fn, repeat=repeat: fn(repeat)))
    # The minimum is the least noisy estimate of a deterministic workload's cost on a shared machine.
    return {key: min(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    print(
        f"B={args.batch} episodes x T={args.tokens} tokens, KL shaping on, best of {args.repeats}, "
        + args.device
    )
    print(f"{'model':10} {'env/hand loop':>14} {'env/generate+ref':>17} {'deferred/generate+ref':>22}")
    for name in args.models:
        t = bench_model(name, args.batch, args.tokens, args.repeats, args.device)
        print(
            f"{name:10} {t['env/step'] / t['hand loop']:>13.3f}x {t['env/step'] / t['generate+ref']:>16.3f}x "
            f"{t['env/episode_end'] / t['generate+ref']:>21.3f}x"
        )
        print("           seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in t.items()))


if __name__ == "__main__":
    main()
