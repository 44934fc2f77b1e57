"""Gymnasium environments over text generation: the single and the vector face of one engine.

The engine (``generation_batch``) is private to this package; callers use the faces' public attributes.
"""

from textgym.envs.text_env import TextEnv
from textgym.envs.text_vector_env import TextVectorEnv, make_vector_env

__all__ = ["TextEnv", "TextVectorEnv", "make_vector_env"]
