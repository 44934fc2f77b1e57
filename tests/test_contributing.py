"""CONTRIBUTING.md's walkthrough, run exactly as written: a new task in one file plus one registry line."""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import textgym
from textgym.envs import TextVectorEnv
from textgym.rollout import sample_episodes

GUIDE = Path(__file__).resolve().parent.parent / "CONTRIBUTING.md"


def walkthrough_blocks() -> list[str]:
    section = GUIDE.read_text().split("## Adding a task", 1)[1]
    return re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)


@pytest.fixture(scope="module")
def antonyms(tmp_path_factory):
    """The guide's task file written to disk as ``antonyms.py`` and its registration block run."""
    task_file, registration = walkthrough_blocks()[:2]
    folder = tmp_path_factory.mktemp("walkthrough")
    (folder / "antonyms.py").write_text(task_file)
    sys.path.insert(0, str(folder))
    try:
        exec(registration, {})
        yield "antonyms/Antonym-v0"
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("antonyms", None)
        gym.registry.pop("antonyms/Antonym-v0", None)


def test_the_guide_has_the_task_file_and_its_registration():
    task_file, registration, *_ = walkthrough_blocks()
    assert "class AntonymTask(Task)" in task_file and "class AntonymEnv(TextEnv)" in task_file
    assert registration.strip().splitlines()[-1].startswith("textgym.register_env(")


def test_the_walkthrough_task_passes_both_checkers(antonyms):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make(antonyms).unwrapped, skip_render_check=True)
        gym_check_env(gym.make(antonyms, kl_coef=0.1).unwrapped, skip_render_check=True)
        sb3_check_env(gym.make(antonyms, kl_coef=0.1).unwrapped, warn=True, skip_render_check=True)


def test_the_walkthrough_task_rolls_out_in_its_vector_env(antonyms):
    envs = gym.make_vec(
        antonyms, num_envs=8, vectorization_mode="vector_entry_point", autoreset_mode=AutoresetMode.DISABLED
    )
    assert isinstance(envs, TextVectorEnv) and envs.env_class.__name__ == "AntonymEnv"
    episodes = sample_episodes(envs, envs.model.model, seed=0)
    assert len(episodes.completions) == 8 and (episodes.lengths >= 1).all()
    assert all(p.startswith("Opposite of ") for p in episodes.prompts)
    pool = envs.pool  # its examples(): one epoch of prompt_order="epochs" goes through each once
    in_order = sample_episodes(envs, envs.model.model, seed=0, example_index=list(range(8)))
    assert in_order.prompts == [ex["prompt"] for ex in pool[:8]]
    # The oracle answer scores the optimum through the same env.
    env = gym.make(antonyms)
    obs, info = env.reset(seed=0)
    answer = env.unwrapped.examples[0]["target"]
    ids = env.unwrapped.tokenizer(answer, add_special_tokens=False)["input_ids"]
    for action in [*ids, env.unwrapped.eos_token_ids[0]]:
        obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and info["score"] == 1.0 == reward


def test_the_walkthrough_task_declares_its_metadata(antonyms):
    info = textgym.task_info(antonyms)
    assert (info.name, info.default_model, info.prompt_budget, info.generation_budget) == (
        "antonym",
        "tiny",
        8,
        3,
    )
    assert info.score_range == (0.0, 1.0) and info.optimal_score == 1.0
    test_prompts = {gym.make(antonyms, split="test").reset(seed=s)[1]["prompt"] for s in range(30)}
    train_prompts = {gym.make(antonyms).reset(seed=s)[1]["prompt"] for s in range(30)}
    assert test_prompts and train_prompts and not test_prompts & train_prompts
