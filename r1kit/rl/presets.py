"""`r1kit grpo --preset NAME`: the papers' choices in one flag.

A preset fills the options the user did not set: defaults < preset < --config file < flags
(applied by `r1kit.config.build_config`; `r1kit grpo`'s Config declares PRESETS = this table).
`--reward` replaces the preset's reward list as a whole. Sources are ../shared/PAPERS.md
(DeepSeek-R1, DeepSeekMath, DAPO, Dr. GRPO, Kimi k1.5); where a paper's value cannot run on
a small machine (R1's 32768-token rollouts, 512 samples per step) the preset keeps r1kit's
default and says so. No preset changes the model, data or step count.

Updates per rollout batch (`--updates-per-rollout`): R1 states them (8192 outputs per rollout
split in 16 minibatches, 512 samples per step), so its presets set 16; a rollout batch then
holds 16 steps' prompts (--prompts-per-step × 16 distinct prompts). DeepSeekMath (no preset;
PAPERS.md lists batch 1024 and no minibatch count) describes a single update per exploration
stage, r1kit's default of 1. DAPO and Dr. GRPO's entries in PAPERS.md give none, so their presets
keep 1. Kimi k1.5 does not report it either: its presets keep 1, and note that with the optimizer
reset (each rollout batch) every step is then Adam's first step.
"""

from __future__ import annotations

from typing import Any

# DeepSeek-R1's RL settings, the same for R1-Zero and R1: β 0.001, G 16, temperature 1.0, lr 3e-6,
# reference model reset every 400 steps; GRPO loss with per-sequence mean (DeepSeekMath eq. 3).
# Each rollout batch is split into 16 minibatches, one optimizer step each (R1: 8192 outputs per
# rollout, 16 minibatches). Not copied: 32 prompts/step (512 samples) and 32768-token rollouts;
# the clip ε reported as 10 is unverified, so ε stays at 0.2.
R1_RL_SETTINGS: dict[str, Any] = {
    "loss": "grpo",
    "scale_rewards": "group",
    "beta": 0.001,
    "ref_reset_steps": 400,
    "num_generations": 16,
    "temperature": 1.0,
    "learning_rate": 3e-6,
    "updates_per_rollout": 16,
}

PRESETS: dict[str, dict[str, Any]] = {
    # DeepSeek-R1-Zero: pure RL from the base model with the R1-Zero template and two rule
    # rewards of equal weight, R1's settings.
    "r1-zero": {
        "template": "r1-zero",
        "reward": ["accuracy=1", "format=1"],
        **R1_RL_SETTINGS,
    },
    # DeepSeek-R1 reasoning RL: chat template with the reply forced to open with "<think>\n",
    # accuracy + format (think tags) + language consistency (R1: share of target-language
    # words in the CoT, summed into the reward). Same settings as R1-Zero.
    "r1": {
        "template": "chat-think",
        "reward": ["accuracy=1", "think_format=1", "language=1"],
        **R1_RL_SETTINGS,
    },
    # DAPO: token-level loss, clip-higher ε_low 0.2 / ε_high 0.28, no KL, dynamic sampling
    # (drop all-correct / all-wrong groups and refill), soft overlong punishment, truncated
    # samples masked; 16 samples per prompt, lr 1e-6.
    "dapo": {
        "loss": "dapo",
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "beta": 0.0,
        "dynamic_sampling": "refill",
        "reward": ["accuracy=1", "overlong=1"],
        "mask_truncated": True,
        "num_generations": 16,
        "temperature": 1.0,
        "learning_rate": 1e-6,
    },
    # Dr. GRPO: no 1/|o_i| and no std normalisation (Â = R − mean R, loss / (B × MAX_TOKENS)),
    # β 0, ε 0.2, 8 samples at temperature 1.0, lr 1e-6.
    "dr-grpo": {
        "loss": "dr_grpo",
        "scale_rewards": "none",
        "beta": 0.0,
        "epsilon": 0.2,
        "num_generations": 8,
        "temperature": 1.0,
        "learning_rate": 1e-6,
    },
    # Kimi k1.5 long2short RL: the length reward (λ = 0.5 − (len − min)/(max − min) per group;
    # correct → λ, wrong → min(0, λ)) added to accuracy, warmed up (Kimi: the length penalty
    # slows early training, so it starts later), and a much smaller rollout budget — half
    # of r1kit's default 1024. Kimi's own loss is available as --loss kimi (τ is unreported).
    # The optimizer state is reset at each iteration (each rollout batch), as in all Kimi RL.
    "kimi-long2short": {
        "reward": ["accuracy=1", "length=1"],
        "length_warmup_steps": 20,
        "max_completion_length": 512,
        "temperature": 1.0,
        "reset_optimizer": True,
    },
    # Kimi k1.5 long-CoT RL: the mirror-descent loss (τ log Z ≈ the group's mean reward; τ is
    # unreported, r1kit's default 0.1 stays), no KL to a reference, prioritized sampling
    # (p ∝ 1 − success rate), the length reward warmed up, the optimizer reset at each iteration,
    # partial rollouts and repeat detection (§2.6.2). The token budget and the repeat window are
    # unreported: 256 new tokens per iteration (a quarter of r1kit's default 1024-token rollouts)
    # and a 64-token window are r1kit's choices. Kimi reuses earlier segments in training ("certain
    # segments can be excluded from loss computation"), so the whole trajectory is in the loss
    # (--partial-loss trajectory); with the newest segment only, a budget below the typical length
    # lost accuracy on the CPU learning check (bench/RESULTS.md).
    "kimi": {
        "loss": "kimi",
        "sampler": "prioritized",
        "reward": ["accuracy=1", "length=1"],
        "length_warmup_steps": 20,
        "temperature": 1.0,
        "reset_optimizer": True,
        "rollout_token_budget": 256,
        "partial_loss": "trajectory",
        "repeat_stop": 64,
    },
}
