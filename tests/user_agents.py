"""A user's agent that is not textgym's, named by import string ``"user_agents:PositionAgent"`` in tests.

A softmax table of token preferences per generated position, trained with REINFORCE (batch-mean
baseline) on the raw Gymnasium API: enough to find Pattern-v0's secret pattern, and nothing of textgym's
agents in it.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np

import textgym  # noqa: F401


class PositionAgent:
    def __init__(
        self, env_id: str, *, model=None, seed: int = 0, learning_rate: float = 20.0, batch: int = 16
    ):
        self.env = gym.make(env_id)
        self.rng = np.random.default_rng(seed)
        self.seed, self.learning_rate, self.batch = seed, learning_rate, batch
        self.prompt_budget = self.env.unwrapped.prompt_budget
        length, vocab = self.env.unwrapped.generation_budget, self.env.unwrapped.vocab_size
        self.logits = np.zeros((length, vocab))  # (T, V)
        self.num_timesteps, self.episodes = 0, 0

    def _probs(self, t: np.ndarray) -> np.ndarray:
        z = self.logits[t] - self.logits[t].max(-1, keepdims=True)
        return np.exp(z) / np.exp(z).sum(-1, keepdims=True)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        mask = np.asarray(observation["attention_mask"])
        single = mask.ndim == 1
        t = np.atleast_2d(mask)[:, self.prompt_budget :].sum(-1)  # (B,) tokens generated so far
        probs = self._probs(np.minimum(t, len(self.logits) - 1))
        actions = (
            probs.argmax(-1) if deterministic else np.array([self.rng.choice(len(p), p=p) for p in probs])
        )
        return (actions[0] if single else actions), state

    def learn(self, total_timesteps: int, **kwargs):
        while self.num_timesteps < total_timesteps:  # the protocol's count: steps since the run's start
            episodes = []
            for _ in range(self.batch):
                obs, _ = self.env.reset(seed=self.seed + self.episodes)
                self.episodes += 1
                actions, terminated = [], False
                while not terminated:
                    action, _ = self.predict(obs)
                    obs, _, terminated, _, info = self.env.step(action)
                    actions.append(int(action))
                episodes.append((actions, info["score"]))
                self.num_timesteps += len(actions)
            baseline = np.mean([score for _, score in episodes])
            for actions, score in episodes:
                t = np.arange(len(actions))
                grad = -self._probs(t)
                grad[t, actions] += 1.0  # d log pi(a_t) / d logits[t]
                self.logits[t] += self.learning_rate * (score - baseline) * grad / self.batch
        return self

    def save(self, path):
        state = {
            "env": self.env.spec.id,
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "batch": self.batch,
            "logits": self.logits.tolist(),
            "num_timesteps": self.num_timesteps,
            "episodes": self.episodes,
            "rng": self.rng.bit_generator.state,
        }
        with open(path, "w") as f:
            json.dump(state, f)

    @classmethod
    def load(cls, path, **kwargs):
        with open(path) as f:
            state = json.load(f)
        settings = {"seed": state["seed"], "learning_rate": state["learning_rate"], "batch": state["batch"]}
        agent = cls(state["env"], **{**settings, **kwargs})
        agent.logits = np.array(state["logits"])
        agent.num_timesteps, agent.episodes = state["num_timesteps"], state["episodes"]
        agent.rng.bit_generator.state = state["rng"]
        return agent
