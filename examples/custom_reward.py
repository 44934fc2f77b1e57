"""Your own reward in a few lines: a Python function in TRL's ``fn(prompts, completions, **kwargs)``
convention, or a local Hugging Face sequence classifier, scores every finished episode of a textgym env.

    python examples/custom_reward.py --episodes 4
    python examples/custom_reward.py --classifier path/to/your/classifier  # a local folder, never fetched

Both go in through ``reward_fn=``, on any env: ``gym.make("textgym/Sentiment-v0",
reward_fn=SequenceClassifierReward("path/to/sentiment-model"))`` works the same way.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import gymnasium as gym
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

import textgym  # noqa: F401  (registers the envs)
from textgym.rewards import SequenceClassifierReward

ENV_ID = "textgym/Copy-v1"


def same_symbols(prompts: list[str], completions: list[str], **kwargs) -> list[float]:
    """Copy-v1 with order-free partial credit: the share of the prompt's symbols the completion holds.

    The task's own reward pays a symbol only in its place; this one pays the right symbols in any order,
    and an extra word costs as much as a missing one. ``kwargs`` holds the task's columns (``target``).
    """
    scores = []
    for prompt, completion in zip(prompts, completions, strict=True):
        symbols = prompt.removeprefix("Copy:").removesuffix("=").split()
        wanted, got = Counter(symbols), Counter(completion.split())
        scores.append((wanted & got).total() / max(wanted.total(), got.total()))
    return scores


def build_tiny_classifier(folder: str | Path) -> Path:
    """Save an untrained two-class classifier over Copy-v1's words to ``folder``, so the example runs offline.

    Its weights are random, so its scores are noise near 0.5: it shows the plumbing, not a judgement. A
    real user points ``--classifier`` at their own trained model's folder (``save_pretrained`` output).
    """
    tokenizer = gym.make(ENV_ID).unwrapped.tokenizer  # the tiny model's word tokenizer, built locally
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
    )
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def play(env: gym.Env, episodes: int, seed: int) -> list[dict]:
    """Sample ``episodes`` completions from the env's own LM; what the env paid at each episode's end."""
    lm = env.unwrapped.model.model
    played = []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        terminated = False
        while not terminated:
            ids = torch.as_tensor(obs["input_ids"][obs["attention_mask"] == 1])[None]  # (1, S) real tokens
            with torch.no_grad():
                probs = torch.softmax(lm(ids).logits[0, -1], -1)  # (V,)
            obs, reward, terminated, truncated, end = env.step(int(torch.multinomial(probs, 1)))
        played.append({"prompt": info["prompt"], "completion": end["completion"], "score": end["score"]})
    return played


def main(argv: list[str] | None = None) -> dict[str, list[dict]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4, help="episodes per reward")
    parser.add_argument("--seed", type=int, default=0, help="seeds the prompts and the sampling")
    parser.add_argument("--classifier", help="a local HF classifier folder (default: an untrained tiny one)")
    parser.add_argument("--label", help="the class scored (default: index 1 of a binary classifier)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    # 1. A function: the env calls it on every finished episode and pays its value as info["score"].
    rewards = {"same_symbols": same_symbols}
    results = {"same_symbols": play(gym.make(ENV_ID, reward_fn=same_symbols), args.episodes, args.seed)}

    # 2. A classifier: SequenceClassifierReward turns a local folder into a reward like any other.
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.classifier or build_tiny_classifier(tmp)
        classifier = SequenceClassifierReward(folder, label=args.label, score="probability")
        rewards["classifier"] = classifier
        results["classifier"] = play(gym.make(ENV_ID, reward_fn=classifier), args.episodes, args.seed)

        for name, played in results.items():
            print(f"reward_fn={name}: the score the env paid, then the reward called by hand")
            for ep in played:
                direct = rewards[name]([ep["prompt"]], [ep["completion"]])[0]
                print(f"  {ep['prompt']!r:16} -> {ep['completion']!r:14} {ep['score']:.4f}  {direct:.4f}")
    return results


if __name__ == "__main__":
    main()
