"""RL algorithms for textgym environments: REINFORCE and PPO for language models (SB3-like surface).

Installed as ``textgym.agents`` (the folder is ``agents/`` at the top of the repository):
``from textgym.agents import PPO, REINFORCE``.
"""

from textgym.agents.base import LMAgent
from textgym.agents.checkpoint import CheckpointError
from textgym.agents.config import AgentConfig
from textgym.agents.policy import LMPolicy
from textgym.agents.ppo import PPO, PPOConfig
from textgym.agents.reinforce import REINFORCE, REINFORCEConfig

__all__ = [
    "PPO",
    "REINFORCE",
    "AgentConfig",
    "CheckpointError",
    "LMAgent",
    "LMPolicy",
    "PPOConfig",
    "REINFORCEConfig",
]
