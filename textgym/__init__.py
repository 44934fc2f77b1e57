"""textgym: language-model text generation as Gymnasium reinforcement-learning environments.

Importing the package registers its environments (``gym.make("textgym/Copy-v1")``). The agents install
as ``textgym.agents`` (``from textgym.agents import PPO, REINFORCE``).
"""

from textgym.agent import AGENTS, Agent, make_agent
from textgym.evaluation import Evaluation, evaluate
from textgym.registration import ENVS, register_env, register_envs, task_info

register_envs()

__version__ = "0.1.0"
__all__ = [
    "AGENTS",
    "ENVS",
    "Agent",
    "Evaluation",
    "__version__",
    "evaluate",
    "make_agent",
    "register_env",
    "register_envs",
    "task_info",
]
