"""stable-baselines3's PPO trains a causal LM on a textgym env, with the exact KL-shaped reward.

    python examples/sb3_ppo.py --total-timesteps 8192
    python examples/sb3_ppo.py --env textgym/Sentiment-v0 --model default --total-timesteps 12800 \\
        --n-envs 8 --n-steps 32 --batch-size 256 --lr 1e-5 --kl-coef 0.05  # README row

The four pieces of the adapter, wired by hand as an SB3 user would (``textgym.agents.sb3.SB3PPO`` does
the same in one line): the LM policy, the VecEnv over textgym's native vector env, the rollout buffer
that completes the KL shaping and groups whole episodes, and the callback that hands it the env's beta.
"""

from __future__ import annotations

import argparse

from stable_baselines3 import PPO

import textgym
from textgym.agents.sb3 import (
    LM_DEFAULTS,
    LMActorCriticPolicy,
    LMRolloutBuffer,
    TextgymCallback,
    TextgymVecEnv,
)
from textgym.evaluation import markdown_table


def main(argv: list[str] | None = None) -> dict[str, textgym.Evaluation]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="textgym/Pattern-v0")
    parser.add_argument("--model", default=None, help="a name or folder; default: the env's own model")
    parser.add_argument("--total-timesteps", type=int, default=8192, help="env steps (generated tokens)")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--n-steps", type=int, default=16, help="steps per env per rollout")
    parser.add_argument("--batch-size", type=int, default=64, help="steps per minibatch (whole episodes)")
    parser.add_argument("--lr", type=float, default=1e-3, help="a tiny model takes a large one; LMs ~1e-5")
    parser.add_argument("--kl-coef", type=float, default=0.02)
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    env = TextgymVecEnv(args.env, num_envs=args.n_envs, kl_coef=args.kl_coef)
    model = PPO(
        LMActorCriticPolicy,
        env,
        policy_kwargs={"model": args.model or env.envs.model},
        rollout_buffer_class=LMRolloutBuffer,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=4,
        seed=args.seed,
        **{**LM_DEFAULTS, "learning_rate": args.lr},  # gamma 1, GAE lambda 1
    )

    def held_out() -> textgym.Evaluation:  # the LM sampled on the test split, with a KV cache
        lm = model.policy.lm_policy.lm
        return textgym.evaluate(lm, args.env, args.eval_episodes, num_envs=8, kl_coef=args.kl_coef)

    before = held_out()
    model.learn(args.total_timesteps, callback=TextgymCallback(), progress_bar=True)
    after = held_out()
    print(markdown_table({"before": before, f"after {args.total_timesteps} steps": after}))
    return {"before": before, "after": after}


if __name__ == "__main__":
    main()
