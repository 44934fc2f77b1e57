"""A user's own agent in a few lines: sample from an LM, announce each token's log-prob, and the env
pays the exact KL-shaped reward ``-beta * (log pi - log pi_ref)`` per token plus the score at the end.

    python examples/custom_agent.py
"""

from __future__ import annotations

import gymnasium as gym
import torch

import textgym  # noqa: F401  (registers the envs)


def run(env_id: str = "textgym/Copy-v1", seed: int = 0, temperature: float = 0.7) -> list[dict]:
    env = gym.make(env_id, kl_coef=0.1)
    model = env.unwrapped.model.model  # the env's own LM; any causal LM sharing its tokenizer will do
    obs, info = env.reset(seed=seed)
    steps, terminated = [], False
    while not terminated:
        ids = torch.as_tensor(obs["input_ids"][obs["attention_mask"] == 1])[None]  # (1, S) real tokens
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, -1] / temperature, -1)  # (V,)
        action = int(torch.multinomial(logp.exp(), 1))
        env.unwrapped.set_action_logprobs(float(logp[action]))  # the one line that makes shaping exact
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append({"action": action, "logprob": float(logp[action]), "reward": reward, **info})
    return steps


if __name__ == "__main__":
    torch.manual_seed(0)
    for step in run():
        print(
            f"token {step['action']:3d}  reward {step['reward']:+.4f}  kl {step['kl']:+.4f}"
            + (f"  score {step['score']:.2f}  completion {step['completion']!r}" if "score" in step else "")
        )
