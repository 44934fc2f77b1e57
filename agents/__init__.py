"""RL algorithms and adapters for textgym environments (REINFORCE, PPO and the SB3 adapter come next)."""
