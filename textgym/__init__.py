"""textgym: language-model text generation as Gymnasium reinforcement-learning environments.

Importing the package registers its environments (``gym.make("textgym/Copy-v0")``). The agents install
as ``textgym.agents`` (``from textgym.agents import PPO, REINFORCE``).
"""

from textgym.evaluation import Evaluation, evaluate
from textgym.registration import ENVS, register_env, register_envs, task_info

register_envs()

__version__ = "0.1.0"
__all__ = ["ENVS", "Evaluation", "__version__", "evaluate", "register_env", "register_envs", "task_info"]
