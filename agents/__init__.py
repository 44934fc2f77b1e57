"""RL algorithms for textgym environments: REINFORCE and PPO for language models (SB3-like surface)."""

from agents.base import AgentConfig, CheckpointError, LMAgent
from agents.ppo import PPO, PPOConfig
from agents.reinforce import REINFORCE, REINFORCEConfig

__all__ = ["PPO", "REINFORCE", "AgentConfig", "CheckpointError", "LMAgent", "PPOConfig", "REINFORCEConfig"]
