"""REINFORCE and PPO: estimators against hand computations, the SB3-like surface, checkpoints and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import textgym  # noqa: F401
from textgym.agents import PPO, REINFORCE, CheckpointError, PPOConfig, REINFORCEConfig
from textgym.agents.ppo import gae
from textgym.agents.reinforce import aggregate, group_advantages, rloo_advantages
from textgym.tasks import CopyTask

TINY = {"batch_size": 4, "learning_rate": 1e-3, "device": "cpu"}


def test_gae_matches_a_direct_computation():
    rewards = torch.tensor([[0.1, -0.2, 1.0, 0.0], [0.5, 0.3, 0.0, 0.0]])
    values = torch.tensor([[0.2, 0.4, 0.6, 9.0], [0.1, -0.3, 9.0, 9.0]])  # 9.0: past the end, must not leak
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    gamma, lam = 0.9, 0.8
    advantages, returns = gae(rewards, values * mask, mask, gamma, lam)
    for i, length in enumerate([3, 2]):
        v = [*values[i, :length].tolist(), 0.0]  # the value after the last token is 0: terminated
        deltas = [rewards[i, t].item() + gamma * v[t + 1] - v[t] for t in range(length)]
        for t in range(length):
            expected = sum((gamma * lam) ** k * deltas[t + k] for k in range(length - t))
            assert advantages[i, t].item() == pytest.approx(expected, abs=1e-6)
            assert returns[i, t].item() == pytest.approx(expected + v[t], abs=1e-6)
        assert (advantages[i, length:] == 0).all() and (returns[i, length:] == 0).all()


def test_rloo_and_grpo_advantages_match_their_formulas():
    returns = torch.tensor([1.0, 3.0, 2.0, 0.0, 4.0, 5.0])  # two prompts, three samples each
    rloo = rloo_advantages(returns, 3)
    expected = [
        1 - (3 + 2) / 2,
        3 - (1 + 2) / 2,
        2 - (1 + 3) / 2,
        0 - (4 + 5) / 2,
        4 - (0 + 5) / 2,
        5 - (0 + 4) / 2,
    ]
    assert rloo.tolist() == pytest.approx(expected)
    grpo = group_advantages(returns, 3, scale=True)
    for g in range(2):
        group = returns[3 * g : 3 * g + 3]
        assert grpo[3 * g : 3 * g + 3].tolist() == pytest.approx(
            ((group - group.mean()) / (group.std() + 1e-4)).tolist()
        )
    dr_grpo = group_advantages(returns, 3, scale=False)
    assert dr_grpo[:3].tolist() == pytest.approx([-1.0, 1.0, 0.0])


def test_loss_aggregations():
    loss = torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert aggregate(loss, mask, "sequence_mean").item() == pytest.approx((1.0 + 2.0) / 2)
    assert aggregate(loss, mask, "token_mean").item() == pytest.approx(4.0 / 3)
    assert aggregate(loss, mask, "token_sum").item() == pytest.approx(4.0 / 6)
    with pytest.raises(ValueError, match="loss_aggregation"):
        aggregate(loss, mask, "mean")


@pytest.mark.parametrize("num_minibatches", [1, 2])  # 1: the old log-probs come from the first pass itself
def test_ppo_ratio_is_exactly_one_on_the_first_minibatch(num_minibatches):
    agent = PPO("textgym/Copy-v1", **TINY, n_epochs=2, num_minibatches=num_minibatches)
    episodes = agent.collect(0)
    agent.train_mode()
    agent.update(episodes, 0)
    assert agent.last_ratios[0] == 1.0
    assert len(agent.last_ratios) == 2 * num_minibatches
    assert all(r != 1.0 for r in agent.last_ratios[num_minibatches:])  # the policy moved after epoch 1


def test_ppo_value_head_has_its_own_learning_rate():
    agent = PPO("textgym/Copy-v1", **TINY, value_learning_rate=5e-2, n_epochs=1)
    policy, value = agent.optimizer.param_groups
    assert policy["lr"] == TINY["learning_rate"] and value["lr"] == 5e-2
    assert {id(p) for p in value["params"]} == {id(p) for p in agent.policy.value_head.parameters()}
    assert len(policy["params"]) == len(list(agent.policy.lm.parameters()))
    bias = agent.policy.value_head.bias.item()
    agent.learn(4, progress_bar=False)  # one step: Adam's first moves each weight by its group's lr
    assert abs(agent.policy.value_head.bias.item() - bias) == pytest.approx(5e-2, rel=1e-3)
    default = PPO("textgym/Copy-v1", **TINY)
    assert [g["lr"] for g in default.optimizer.param_groups] == [TINY["learning_rate"]] * 2


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_teacher_forced_logprobs_equal_the_samplers(temperature):
    # The update's pass over prompt + completion must score exactly the tokens the KV-cached sampler drew,
    # at the same positions and temperature, for prompts of different lengths (left padding).
    agent = PPO("textgym/Copy-v1", **{**TINY, "batch_size": 8}, temperature=temperature)
    episodes = agent.collect(0)
    assert len(set(episodes.prompt_mask.sum(-1).tolist())) > 1  # prompts of several lengths
    with torch.no_grad():
        logprobs, entropy, values = agent.evaluate_tokens(episodes)
    mask = episodes.completion_mask
    torch.testing.assert_close(logprobs * mask, episodes.logprobs, atol=1e-4, rtol=0)
    assert entropy.shape == values.shape == mask.shape and (entropy >= 0).all()


def test_reinforce_returns_use_the_exact_kl_shaping():
    agent = REINFORCE("textgym/Copy-v1", **TINY, kl_coef=0.1, baseline="none")
    episodes = agent.collect(0)
    mask = episodes.completion_mask
    kl = ((episodes.logprobs - episodes.ref_logprobs) * mask).sum(-1).numpy()
    np.testing.assert_allclose(kl, episodes.kl, atol=1e-4)  # the env's figure equals the agent's
    np.testing.assert_allclose(episodes.returns, episodes.scores - 0.1 * kl, atol=1e-4)


def test_unknown_config_key_is_an_error():
    with pytest.raises(TypeError, match=r"unknown REINFORCEConfig field\(s\) \['learnig_rate'\]"):
        REINFORCE("textgym/Copy-v1", learnig_rate=1e-3)
    with pytest.raises(ValueError, match="num_generations >= 2 dividing batch_size"):
        REINFORCE("textgym/Copy-v1", batch_size=6, baseline="rloo", num_generations=4)


def test_predict_and_generate():
    agent = REINFORCE("textgym/Copy-v1", **TINY)
    obs, _ = agent.envs.reset(seed=0)
    actions, state = agent.predict({k: v.numpy() for k, v in obs.items()}, deterministic=True)
    assert actions.shape == (4,) and state is None
    assert ((actions >= 0) & (actions < agent.envs.single_action_space.n)).all()
    one, _ = agent.predict({k: v[0].numpy() for k, v in obs.items()}, deterministic=True)
    assert one == actions[0]
    texts = agent.generate([CopyTask().prompt("a b"), CopyTask().prompt("c d e")], deterministic=True)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


@pytest.mark.parametrize("cls", [REINFORCE, PPO])
def test_resume_continues_the_same_curve(cls, tmp_path):
    config = {**TINY, "kl_coef": 0.05, "kl_target": 1.0, "kl_horizon": 100, "checkpoint_every": 2}
    full = cls("textgym/Copy-v1", **config, checkpoint_dir=str(tmp_path / "a"), log_dir=str(tmp_path / "la"))
    full.learn(4 * 4, progress_bar=False)
    resumed = cls(
        "textgym/Copy-v1", **config, checkpoint_dir=str(tmp_path / "b"), log_dir=str(tmp_path / "lb")
    )
    resumed.learn(4 * 4, progress_bar=False, resume=tmp_path / "a" / "iteration-2.pt")

    def without_timing(row):
        return {k: v for k, v in row.items() if k != "perf/tokens_per_second"}

    assert [r["iteration"] for r in resumed.logger.rows] == [3.0, 4.0]
    assert [without_timing(r) for r in resumed.logger.rows] == [
        without_timing(r) for r in full.logger.rows[2:]
    ]
    for a, b in zip(full.policy.parameters(), resumed.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed.envs.kl_coef == full.envs.kl_coef != 0.05  # the adaptive coefficient moved, and resumed
    assert (tmp_path / "la" / "progress.csv").read_text().count("\n") == 5  # header + 4 iterations
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "la").iterdir())


def test_learn_counts_timesteps_like_sb3(tmp_path):
    agent = REINFORCE("textgym/Copy-v1", **TINY, checkpoint_dir=str(tmp_path))
    agent.learn(total_timesteps=30, progress_bar=False)
    generated = [r["time/total_timesteps"] for r in agent.logger.rows]
    assert generated[-1] == agent.num_timesteps >= 30 > generated[-2]  # stops at the first iteration past it
    assert len(generated) == agent.iteration and generated == sorted(generated)
    per_iteration = np.diff([0.0, *generated])
    expected = [r["completions/mean_length"] * TINY["batch_size"] for r in agent.logger.rows]
    np.testing.assert_allclose(per_iteration, expected)  # one timestep per generated token
    resumed = REINFORCE.load(tmp_path / "last.pt")
    assert resumed.num_timesteps == agent.num_timesteps
    with pytest.raises(TypeError, match="exactly one of total_episodes and total_timesteps"):
        agent.learn(8, total_timesteps=30)
    with pytest.raises(TypeError, match="exactly one of total_episodes and total_timesteps"):
        agent.learn()


def test_save_load_round_trip(tmp_path):
    agent = PPO("textgym/Copy-v1", **TINY)
    agent.learn(4, progress_bar=False)
    path = agent.save(tmp_path / "ppo.pt")
    loaded = PPO.load(path)
    assert loaded.iteration == 1 and loaded.config == agent.config
    for a, b in zip(agent.policy.parameters(), loaded.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_corrupt_or_foreign_checkpoints_get_clear_errors(tmp_path):
    agent = REINFORCE("textgym/Copy-v1", **TINY)
    path = agent.save(tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match="holds a REINFORCE checkpoint, not a PPO one"):
        PPO.load(path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or not a textgym checkpoint"):
        REINFORCE.load(truncated)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        REINFORCE.load(tmp_path / "missing.pt")
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary files


def test_lora_trains_only_the_adapter_and_the_reference_stays_the_base_model(tmp_path):
    import copy

    from conftest import independent_ref_logprobs

    from textgym.models import tiny_model

    bundle = tiny_model(CopyTask().corpus(), seed=11)  # a model of its own: the adapter goes into it
    base = copy.deepcopy(bundle.model)
    agent = REINFORCE(
        "textgym/Copy-v1",
        env_kwargs={"model": bundle, "kl_coef": 0.1},
        **{**TINY, "learning_rate": 1e-2},
        lora_r=4,
        baseline="batch_mean",
    )
    assert agent.policy.base_model is agent.envs.ref_model.model  # one copy of the weights
    adapter = agent.policy.lm_parameters()
    trained = {id(p) for p in adapter}
    assert trained and all(p.requires_grad for p in adapter)
    assert sum(p.numel() for p in adapter) < sum(p.numel() for p in base.parameters()) / 4
    agent.learn(4 * 5, progress_bar=False)

    before = dict(base.named_parameters())
    after = {
        n.replace(".base_layer", ""): p for n, p in bundle.model.named_parameters() if id(p) not in trained
    }
    assert set(after) == set(before)
    for name, p in after.items():
        torch.testing.assert_close(p, before[name], rtol=0, atol=0)  # the base weights never move
    episodes = agent.collect(99)
    assert np.abs(episodes.kl).max() > 1e-3  # the adapter changed the policy
    for i in range(2):  # the env's reference is the base model, adapter off
        prompt = episodes.prompt_ids[i][episodes.prompt_mask[i] == 1].tolist()
        completion = episodes.tokens[i, : episodes.lengths[i]].tolist()
        expected = independent_ref_logprobs(base, prompt, completion)
        torch.testing.assert_close(
            episodes.ref_logprobs[i, : episodes.lengths[i]], expected, atol=1e-4, rtol=0
        )

    path = agent.save(tmp_path / "lora.pt")
    state = torch.load(path, weights_only=True)
    assert all("{adapter}" in key for key in state["policy"]["lm"])  # only the adapter is saved
    other = REINFORCE("textgym/Copy-v1", env_kwargs={"model": bundle, "kl_coef": 0.1}, **TINY, lora_r=4)
    other._restore(state)
    for a, b in zip(agent.policy.lm_parameters(), other.policy.lm_parameters(), strict=True):
        torch.testing.assert_close(a, b)


class StepRecorder:
    """Wraps a vector env's step() and keeps the rewards it returned, one ``(N,)`` tensor per step."""

    def __init__(self, envs) -> None:
        self.rewards: list[torch.Tensor] = []
        self.betas: list[float] = []
        self._step = envs.step
        self.envs = envs
        envs.step = self

    def __call__(self, actions):
        self.betas.append(self.envs.kl_coef)
        out = self._step(actions)
        self.rewards.append(out[1].clone())
        return out

    def paid(self, T: int) -> torch.Tensor:
        """``(N, T)``: what step() paid, padded with zeros after the rollout's last step."""
        paid = torch.stack(self.rewards, dim=1)
        return torch.nn.functional.pad(paid, (0, T - paid.shape[1]))


@pytest.mark.parametrize("cls", [REINFORCE, PPO])
@pytest.mark.parametrize("kl", [{"kl_coef": 0.1}, {"kl_coef": 0.1, "kl_target": 0.5, "kl_horizon": 40}])
def test_agents_train_on_exactly_the_rewards_the_env_paid(cls, kl, monkeypatch):
    """With per-step reference delivery, what step() paid token by token is what the agent trains on."""
    import textgym.agents.ppo as ppo_module

    kl = {**kl, "ref_logprobs": "step"}
    agent = (
        cls("textgym/Copy-v1", **TINY, **kl, baseline="none")
        if cls is REINFORCE
        else cls("textgym/Copy-v1", **TINY, **kl)
    )
    recorder = StepRecorder(agent.envs)
    trained_on: list[torch.Tensor] = []
    if cls is REINFORCE:  # the returns its advantages come from
        advantages = agent.advantages
        monkeypatch.setattr(agent, "advantages", lambda r: (trained_on.append(r.clone()), advantages(r))[1])
    else:  # the per-token rewards that enter GAE
        monkeypatch.setattr(ppo_module, "gae", lambda r, *a: (trained_on.append(r.clone()), gae(r, *a))[1])
    betas = []
    for iteration in range(3):
        recorder.rewards, recorder.betas = [], []
        betas.append(agent.envs.kl_coef)
        agent.learn((iteration + 1) * TINY["batch_size"], progress_bar=False)
        paid = recorder.paid(agent.envs.generation_budget)
        expected = paid.sum(-1) if cls is REINFORCE else paid
        assert torch.equal(trained_on[-1], expected)  # exactly, not approximately
        assert set(recorder.betas) == {betas[-1]}  # one beta for the whole rollout
    if "kl_target" in kl:
        assert len(set(betas)) == 3  # the trainer moved it once per iteration


@pytest.mark.parametrize("cls", [REINFORCE, PPO])
def test_both_reference_timings_give_the_same_rewards_and_the_same_first_update(
    cls, copy_bundle, sharp_bundle, monkeypatch
):
    """Deferred delivery (the default) pays an episode's summed KL at its end; the rollout puts each term
    back at its token, so the agents train on the per-step rewards, up to the rounding of a teacher-forced
    pass against a cached one."""
    import textgym.agents.ppo as ppo_module

    runs = {}
    for timing in ("step", "episode_end"):
        trained_on: list[torch.Tensor] = []
        if cls is PPO:  # the per-token rewards that enter GAE
            monkeypatch.setattr(
                ppo_module, "gae", lambda r, *a, got=trained_on: (got.append(r.clone()), gae(r, *a))[1]
            )
        # The policy starts from the plain tiny model and the reference is a sharpened one, so every token
        # carries a KL term (a policy equal to its reference has none).
        agent = cls(
            "textgym/Copy-v1",
            env_kwargs={"model": copy_bundle, "ref_model": sharp_bundle},
            kl_coef=0.2,
            ref_logprobs=timing,
            **TINY,
            seed=3,
        )
        if cls is REINFORCE:  # each episode's return
            advantages = agent.advantages
            monkeypatch.setattr(
                agent, "advantages", lambda r, f=advantages, got=trained_on: (got.append(r.clone()), f(r))[1]
            )
        gradients: list[torch.Tensor] = []
        step = agent.optimizer.step

        def record(*args, step=step, agent=agent, gradients=gradients, **kwargs):
            grads = [p.grad.flatten() for p in agent.policy.parameters() if p.grad is not None]
            gradients.append(torch.cat(grads).clone())
            return step(*args, **kwargs)

        agent.optimizer.step = record
        agent.learn(TINY["batch_size"], progress_bar=False)  # one iteration
        runs[timing] = (trained_on[0], gradients[0])
    (step_rewards, step_grad), (deferred_rewards, deferred_grad) = runs["step"], runs["episode_end"]
    assert step_rewards.abs().sum() > 0
    torch.testing.assert_close(deferred_rewards, step_rewards, atol=1e-5, rtol=0)
    # The update's direction: Adam's first step is lr * sign(gradient), so compare the gradients.
    assert float((deferred_grad - step_grad).norm() / step_grad.norm()) < 1e-4


def test_adaptive_beta_moves_once_per_iteration_from_the_batch_kl():
    from textgym.kl import AdaptiveKLController

    agent = REINFORCE("textgym/Copy-v1", **TINY, kl_coef=0.1, kl_target=0.5, kl_horizon=40)
    assert agent.envs.kl_update == "caller"
    seen = []
    agent.learn(2 * TINY["batch_size"], progress_bar=False, callback=lambda a, m: seen.append(m))
    expected = AdaptiveKLController(0.1, 0.5, 40)
    for metrics in seen:
        assert metrics["objective/kl_coef"] == pytest.approx(expected.value)  # the beta of that rollout
        expected.update(metrics["objective/kl"], TINY["batch_size"])
    assert agent.envs.kl_coef == pytest.approx(expected.value)


def test_a_callback_returning_a_falsy_verdict_stops_learn():
    calls = []

    def stop_after_two(agent, metrics):
        calls.append(metrics)
        return np.mean([m["objective/scores"] for m in calls]) < -1 if len(calls) == 2 else None

    agent = REINFORCE("textgym/Copy-v1", **TINY)
    agent.learn(5 * TINY["batch_size"], progress_bar=False, callback=stop_after_two)
    assert len(calls) == 2 and agent.iteration == 2  # np.False_ stops as False does; None goes on


def test_renamed_config_fields_are_accepted_with_a_warning():
    with pytest.warns(FutureWarning, match="'lam' is now 'gae_lambda'"):
        agent = PPO("textgym/Copy-v1", **TINY, lam=0.9, ppo_epochs=2, entropy_coef=0.01)
    assert (agent.config.gae_lambda, agent.config.n_epochs, agent.config.ent_coef) == (0.9, 2, 0.01)
    with pytest.raises(TypeError, match="both 'lam' and its new name 'gae_lambda'"):
        PPO("textgym/Copy-v1", **TINY, lam=1.0, gae_lambda=0.9)


@pytest.mark.parametrize("config_class", [PPOConfig, REINFORCEConfig])
def test_every_config_field_has_help_text_for_the_command_line(config_class):
    import dataclasses

    from textgym.agents.config import config_help

    fields = dataclasses.fields(config_class)
    assert all(f.metadata.get("help") for f in fields)
    text = config_help(config_class)
    assert len(text.splitlines()) == len(fields)
    assert "learning_rate (float, default 1e-05): AdamW step size" in text


def test_the_policy_is_one_module_that_ddp_wraps(tmp_path):
    """DDP (gloo, one rank) wraps the policy; the teacher-forced pass through the wrapper reaches the value
    head, so data-parallel training would keep it synchronised with the LM."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    agent = PPO("textgym/Copy-v1", **TINY)
    assert isinstance(agent.policy, torch.nn.Module) and agent.policy.value_head is not None
    trained = {id(p) for g in agent.optimizer.param_groups for p in g["params"]}
    assert trained == {id(p) for p in agent.policy.parameters() if p.requires_grad}
    episodes = agent.collect(0)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(agent.policy)
        out = ddp(episodes.prompt_ids, episodes.prompt_mask, episodes.tokens, episodes.completion_mask)
        (out.logprobs.sum() + out.values.sum()).backward()
    finally:
        dist.destroy_process_group()
    assert agent.policy.value_head.weight.grad is not None
    assert all(p.grad is not None for p in agent.policy.lm_parameters())


def test_a_checkpoint_of_the_previous_format_still_loads(tmp_path):
    agent = PPO("textgym/Copy-v1", **TINY)
    agent.learn(4, progress_bar=False)
    state = agent.state_dict()
    policy = state.pop("policy")
    old = {**state, "format": "textgym-agent-v1", "model": policy["lm"], "value_head": policy["value_head"]}
    old["config"] = {("lam" if k == "gae_lambda" else k): v for k, v in old["config"].items()}
    torch.save(old, tmp_path / "v1.pt")
    with pytest.warns(FutureWarning, match="'lam' is now 'gae_lambda'"):
        loaded = PPO.load(tmp_path / "v1.pt")
    for a, b in zip(agent.policy.parameters(), loaded.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_agents_take_an_env_id_a_single_env_or_a_vector_env():
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    from textgym.envs import make_vector_env
    from textgym.tasks import CopyEnv

    from_single = REINFORCE(gym.make("textgym/Copy-v1", kl_coef=0.1), **TINY)
    assert from_single.env_id == "textgym/Copy-v1" and from_single.envs.kl_coef == 0.1
    envs = make_vector_env(CopyEnv, num_envs=4, kl_coef=0.1, autoreset_mode=AutoresetMode.DISABLED)
    agent = REINFORCE(envs, **TINY)
    assert agent.envs is envs and envs.kl_update == "env"  # a beta it moves itself is left alone
    agent.learn(4, progress_bar=False)
    with pytest.raises(ValueError, match=r"autoreset_mode=DISABLED and num_envs=4 \(batch_size / ranks\)"):
        REINFORCE(make_vector_env(CopyEnv, num_envs=4), **TINY)


def test_a_model_with_another_vocabulary_is_refused():
    from gymnasium.vector import AutoresetMode

    from textgym.envs import make_vector_env
    from textgym.models import tiny_model
    from textgym.tasks import CopyEnv

    other = tiny_model(["one two three four five six seven eight nine ten eleven twelve thirteen"])
    envs = make_vector_env(CopyEnv, num_envs=4, autoreset_mode=AutoresetMode.DISABLED)  # its own model
    with pytest.raises(ValueError, match=r"logits but the env's actions are Discrete\(\d+\): they must"):
        REINFORCE(envs, model=other, **TINY)


@pytest.mark.parametrize("cls", [REINFORCE, PPO])
def test_the_starting_model_is_the_kl_reference_also_after_a_reload(cls, tmp_path):
    """As InstructGPT's SFT policy and TRL's default ref_model: RL from a folder holds KL to that folder."""
    from conftest import independent_ref_logprobs

    from textgym.models import tiny_model

    folder = tmp_path / "start"
    bundle = tiny_model(CopyTask().corpus(), seed=21)  # not Copy-v1's own, nor one a LoRA test wraps
    bundle.model.save_pretrained(folder)
    bundle.tokenizer.save_pretrained(folder)
    agent = cls("textgym/Copy-v1", model=str(folder), kl_coef=0.1, **TINY)
    episodes = agent.collect(0)
    assert np.abs(episodes.kl).max() < 1e-4  # policy and reference are the same model before an update
    agent.learn(4 * 3, progress_bar=False)

    loaded = cls.load(agent.save(tmp_path / "agent.pt"))
    episodes = loaded.collect(1)
    assert np.abs(episodes.kl).max() > 1e-3  # the updates moved the policy away from it
    for i in range(2):  # and the reloaded run's reference is still the starting folder's model
        prompt = episodes.prompt_ids[i][episodes.prompt_mask[i] == 1].tolist()
        completion = episodes.tokens[i, : episodes.lengths[i]].tolist()
        expected = independent_ref_logprobs(bundle.model, prompt, completion)
        torch.testing.assert_close(
            episodes.ref_logprobs[i, : episodes.lengths[i]], expected, atol=1e-4, rtol=0
        )


def test_prompt_order_epochs_goes_through_the_pool_without_replacement(monkeypatch):
    config = {**TINY, "baseline": "rloo", "num_generations": 2, "prompt_order": "epochs"}
    agent = REINFORCE("textgym/Copy-v1", **config)
    episodes = agent.collect(0)
    pool = agent.envs.pool
    assert [pool[i]["prompt"] for i in agent.episode_examples(0)] == episodes.prompts  # what was collected
    other_seed = REINFORCE("textgym/Copy-v1", **{**config, "seed": 1})
    assert agent.episode_examples(0) != other_seed.episode_examples(0)
    # On a pool of 5, two prompts (groups of 2 episodes) per iteration:
    monkeypatch.setattr(type(agent.envs), "pool", property(lambda self: self._engine.pool()[:5]))
    drawn = [agent.episode_examples(i) for i in range(5)]
    assert all(d[0] == d[1] and d[2] == d[3] for d in drawn)  # a group shares its prompt
    prompts = [index for d in drawn for index in d[::2]]  # the run's prompts, in order
    assert sorted(prompts[:5]) == sorted(prompts[5:]) == list(range(5))  # each epoch: every example once
    assert prompts[:5] != prompts[5:]  # a fresh shuffle each epoch
    assert drawn == [agent.episode_examples(i) for i in range(5)]  # a function of seed and iteration


def test_prompt_order_is_checked_and_random_draws_from_the_seeds(copy_bundle):
    with pytest.raises(ValueError, match="prompt_order must be 'random' or 'epochs', got 'epoch'"):
        REINFORCE("textgym/Copy-v1", **TINY, prompt_order="epoch")
    with pytest.raises(NotImplementedError, match="unbounded space"):
        REINFORCE("textgym/Arithmetic-v0", copy_bundle, **TINY, prompt_order="epochs")
    assert REINFORCE("textgym/Copy-v1", **TINY).episode_examples(0) is None
