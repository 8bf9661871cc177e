"""The valid range of every numeric option, checked for every stage in one place.

A value outside its range used to run anyway and fail later with a traceback (`--seed -1` in
numpy, `--lora-r 0` in peft), or worse, run silently with another meaning: transformers reads
`--warmup-ratio 2` as two warm-up *steps*, `--save-steps -1` as "never save" and `--top-p 0`
as greedy decoding. Options are keyed by field name, so one name means one range in every
stage; a stage whose semantics are narrower (sft's `--batch-size` must be >= 1, grpo's may be
0 = the whole step) keeps that check in its own `validate`. tests/test_bad_inputs.py checks
that every numeric field of every stage has an entry here (or in CHECKED_BY_STAGE).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from r1kit.errors import R1kitError


@dataclass(frozen=True)
class Range:
    """low <= value <= high (either end open or absent); `also` lists special values outside it (-1)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple[float, ...] = ()

    def holds(self, value: float) -> bool:
        if value in self.also:
            return True
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            if not self.low_open and not self.high_open:
                text = f"between {_num(self.low)} and {_num(self.high)}"
            else:
                text = (
                    f"in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}"
                    f"{')' if self.high_open else ']'}"
                )
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {_num(self.low)}"
        else:
            text = f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return " or ".join([*(_num(v) for v in self.also), text])


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


SHARE = Range(0, 1)
SHARE_BELOW_ONE = Range(0, 1, high_open=True)
POSITIVE_SHARE = Range(0, 1, low_open=True)
COUNT = Range(0)  # 0 means off, all or automatic, as each option's help says
AT_LEAST_ONE = Range(1)
POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)

RANGES: dict[str, Range] = {
    # counts where 0 means off / all / automatic
    "seed": Range(0, 2**32 - 1),  # numpy's seed range (transformers.set_seed seeds numpy too)
    "limit": COUNT,
    "top_k": COUNT,
    "max_pairs_per_prompt": COUNT,
    "few_shot": COUNT,
    "overlong_cache": COUNT,
    "length_warmup_steps": COUNT,
    "ref_reset_steps": COUNT,
    "generation_batch_size": COUNT,
    "save_steps": COUNT,
    "max_checks": COUNT,
    "refill_tries": COUNT,
    "rollout_token_budget": COUNT,
    "rollout_max_age": COUNT,
    "repeat_stop": COUNT,  # grpo: 0 = off, else a window of >= 2 tokens (checked in its validate)
    "batch_size": COUNT,  # grpo: 0 = the whole step; the other stages require >= 1 in their validate
    # sizes and periods: at least one
    "train_size": AT_LEAST_ONE,
    "test_size": AT_LEAST_ONE,
    "prompts_per_step": AT_LEAST_ONE,
    "num_iterations": AT_LEAST_ONE,
    "updates_per_rollout": AT_LEAST_ONE,
    "max_completion_length": AT_LEAST_ONE,
    "max_new_tokens": AT_LEAST_ONE,
    "max_length": AT_LEAST_ONE,
    "num_samples": AT_LEAST_ONE,
    "sample_batch_size": AT_LEAST_ONE,
    "grad_accum": AT_LEAST_ONE,
    "logging_steps": AT_LEAST_ONE,
    "lora_r": AT_LEAST_ONE,
    "lora_alpha": AT_LEAST_ONE,
    "hacking_window": AT_LEAST_ONE,
    "max_paragraph": AT_LEAST_ONE,
    "pass_k": AT_LEAST_ONE,
    "smooth": AT_LEAST_ONE,  # plot: moving-average window
    "digits": Range(1, 9),
    "max_steps": Range(1, also=(-1,)),  # -1 = run the epochs; transformers reads 0 and -5 as -1 too
    "epochs": NON_NEGATIVE,  # 0 only together with --max-steps (each training stage checks)
    # shares
    "warmup_ratio": SHARE_BELOW_ONE,  # transformers reads a value >= 1 as a number of steps
    "lora_dropout": SHARE_BELOW_ONE,
    "mix_ratio": SHARE_BELOW_ONE,
    "min_lr_ratio": SHARE,
    "min_language_share": SHARE,
    "top_p": POSITIVE_SHARE,
    "priority_floor": POSITIVE_SHARE,
    "vllm_gpu_memory": POSITIVE_SHARE,
    "epsilon": Range(0, 1, low_open=True, high_open=True),
    # rates, coefficients and limits
    "learning_rate": POSITIVE,
    "tau": POSITIVE,
    "epsilon_high": POSITIVE,
    "kl_warn": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "max_grad_norm": NON_NEGATIVE,
    "beta": NON_NEGATIVE,
    "sft_weight": NON_NEGATIVE,
    "max_minutes": NON_NEGATIVE,
    "temperature": NON_NEGATIVE,  # > 0 when sampling: each sampling stage checks (evaluate allows 0 with --greedy)
    "length_ratio": Range(1),
    "min_repetition_reward": Range(-1, 0),  # the repetition reward is a penalty in [-1, 0]
    "weight": NON_NEGATIVE,
    "repeat_penalty": NON_NEGATIVE,
    "sigmas": POSITIVE,  # report: standard errors a pass@1 difference must exceed
}

# Numeric options whose range only their stage can state; its validate checks them.
CHECKED_BY_STAGE = {
    "num_generations": "grpo: >= 2, a group needs two completions to compare",
}


def check_ranges(cfg: Any) -> None:
    """Raise R1kitError for the first numeric field of `cfg` outside its range, or not finite."""
    from r1kit.config import flag_name

    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            flag = f"--{flag_name(f.name)}"
            if isinstance(item, float) and not math.isfinite(item):
                raise R1kitError(f"{flag} ({item}) must be a finite number")
            allowed = RANGES.get(f.name)
            if allowed is not None and not allowed.holds(item):
                raise R1kitError(f"{flag} ({item}) must be {allowed.describe()}")
