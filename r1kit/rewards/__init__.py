"""Rule-based rewards with trl's reward signature, and the registry that picks them by name.

Every reward is ``f(prompts, completions, completion_ids=None, **columns) -> list[float | None]``.
Importing this package is cheap: torch, transformers, math_verify and py3langid load on first use.
"""

from r1kit.rewards._text import completion_text, detect_think_prefill
from r1kit.rewards.accuracy import accuracy_reward, make_accuracy_reward
from r1kit.rewards.format import format_reward, tag_count_reward, think_format_reward
from r1kit.rewards.language import cot_text, language_reward, language_share, make_language_reward
from r1kit.rewards.length import kimi_length_rewards, make_length_reward
from r1kit.rewards.overlong import make_overlong_reward, overlong_penalty
from r1kit.rewards.registry import (
    REWARDS,
    RewardSpec,
    required_columns,
    resolve_reward,
)
from r1kit.rewards.repetition import make_repetition_reward, repetition_rate
from r1kit.rewards.reward_model import make_reward_model_reward

__all__ = [
    "REWARDS",
    "RewardSpec",
    "accuracy_reward",
    "completion_text",
    "cot_text",
    "detect_think_prefill",
    "format_reward",
    "kimi_length_rewards",
    "language_reward",
    "language_share",
    "make_accuracy_reward",
    "make_language_reward",
    "make_length_reward",
    "make_overlong_reward",
    "make_repetition_reward",
    "make_reward_model_reward",
    "overlong_penalty",
    "repetition_rate",
    "required_columns",
    "resolve_reward",
    "tag_count_reward",
    "think_format_reward",
]
