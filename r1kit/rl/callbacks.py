"""GRPO metrics: metrics.jsonl records, progress lines or a rich live view, and training-health warnings.

Every trainer log becomes one line of the stage's metrics.jsonl (via `out.log`), with
`tokens_per_s` (prompt + completion tokens processed per second of wall time since the last
log) added, and one progress line on stderr (r1kit/progress.py: step/total, elapsed, ETA and
LIVE_KEYS at 4 significant digits), so a log file (`r1kit grpo ... > log 2>&1`) shows the run as
it goes. On a terminal with `--live` (the default) a rich live view replaces the lines: one
metric per row, so no number is ever cut to fit the width.

Three warnings, each raised once, go to metrics.jsonl as {"event": "warning", ...} records and
to the screen (one line, or the live view):

- KL blow-up: the logged KL to the reference policy exceeds `kl_threshold`.
- Reward hacking: over the last `window` logs the format reward rose while accuracy fell (the
  pattern open-r1 users report when the policy learns the tags but not the task): the mean of
  the newer half of the window is at least `delta` above (format) / below (accuracy) the older
  half.
- No learning signal: `zero_std_fraction` (the share of prompts whose G completions all got the
  same reward) stayed at 1 for `zero_std_steps` consecutive logs (default ZERO_STD_STEPS, or the
  environment variable R1KIT_ZERO_STD_STEPS). Every advantage (r - mean r)/std r is then 0, the
  loss is 0 and the policy does not move: trl users lose whole runs to this.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from typing import Any

from transformers import TrainerCallback

from r1kit.progress import (
    Clock,
    TokenRate,
    emit,
    fmt_duration,
    fmt_value,
    interactive,
    metrics_text,
    step_line,
)

FORMAT_REWARDS = ("format", "think_format", "tag_count")
# (metrics.jsonl key, label), in the order of the progress line and the live view
LIVE_KEYS = (
    ("reward", "reward"),
    ("accuracy", "accuracy"),
    ("kl", "kl"),
    ("entropy", "entropy"),
    ("clip_ratio/region_mean", "clip"),
    ("completions/mean_length", "length"),
    ("zero_std_fraction", "zero_std"),
    ("tokens_per_s", "tok/s"),
    ("loss", "loss"),
    ("learning_rate", "lr"),
)
ZERO_STD_STEPS = 10  # consecutive logs with zero_std_fraction = 1 before the warning (R1KIT_ZERO_STD_STEPS)


def zero_std_steps_setting() -> int:
    """How many consecutive all-zero-variance logs raise the warning: R1KIT_ZERO_STD_STEPS, else ZERO_STD_STEPS."""
    try:
        return max(1, int(os.environ.get("R1KIT_ZERO_STD_STEPS", ZERO_STD_STEPS)))
    except ValueError:
        return ZERO_STD_STEPS


def format_rose_accuracy_fell(format_hist: list[float], acc_hist: list[float], delta: float = 0.05) -> bool:
    """True when the newer half of the window has format ≥ delta higher and accuracy ≥ delta lower."""
    n = min(len(format_hist), len(acc_hist))
    if n < 4:
        return False
    f, a = format_hist[-n:], acc_hist[-n:]
    half = n // 2

    def gain(x: list[float]) -> float:
        return sum(x[half:]) / (n - half) - sum(x[:half]) / half

    return gain(f) >= delta and gain(a) <= -delta


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class GRPOMetricsCallback(TrainerCallback):
    """Mirror trainer logs into metrics.jsonl and progress lines (or a rich live view on a terminal);
    raise the health warnings. `max_minutes` (grpo --max-minutes) caps the ETA."""

    def __init__(
        self,
        out,
        *,
        kl_threshold: float = 1.0,
        window: int = 10,
        delta: float = 0.05,
        live: bool = True,
        title: str = "grpo",
        max_minutes: float = 0.0,
        zero_std_steps: int | None = None,
    ):
        self.out = out
        self.kl_threshold = kl_threshold
        self.delta = delta
        self.format_hist: deque[float] = deque(maxlen=window)
        self.acc_hist: deque[float] = deque(maxlen=window)
        self.zero_std_steps = zero_std_steps or zero_std_steps_setting()
        self.zero_std_run = 0  # consecutive logs with zero_std_fraction = 1
        self.warned: dict[str, str] = {}
        self.title = title
        self.live_enabled = live
        self.max_minutes = max_minutes
        self.live = None
        self.last: dict[str, Any] = {}
        self.rate = TokenRate()
        self.clock: Clock | None = None
        self.step, self.total = 0, None

    # --- screen ------------------------------------------------------------------------------
    def header(self) -> str:
        clock = self.clock or Clock(self.total)
        return f"r1kit {self.title}  step {self.step}/{self.total or '?'} | {clock.head(self.step)}"

    def render(self):
        """The live view: a header line, then one metric per row (never truncated), then warnings."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=False, expand=False, pad_edge=False, box=None, padding=(0, 2))
        table.add_column("metric", no_wrap=True)
        table.add_column("value", justify="right", no_wrap=True, overflow="fold")
        for key, label in LIVE_KEYS:
            table.add_row(label, fmt_value(self.last.get(key)))
        warnings = [Text(f"warning: {msg}", style="bold red") for msg in self.warned.values()]
        return Group(Text(self.header(), style="bold"), table, *warnings)

    def on_train_begin(self, args, state, control, **kwargs):
        if hasattr(
            self.out, "training_started"
        ):  # a StageOutput: after a resume, each step once in metrics.jsonl
            self.out.training_started(state.global_step)
        self.step, self.total = state.global_step, state.max_steps
        self.clock = Clock(state.max_steps, start=state.global_step, limit_s=self.max_minutes * 60 or None)
        self.rate.start(getattr(state, "num_input_tokens_seen", 0) or 0)  # nonzero on resume
        if self.live_enabled and state.is_world_process_zero and interactive():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(
                self.render(), console=Console(stderr=True), refresh_per_second=2, transient=False
            )
            self.live.start()

    def on_train_end(self, args, state, control, **kwargs):
        if self.live is not None:
            self.live.update(self.render())
            self.live.stop()
            self.live = None

    # --- records ---------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        record: dict[str, Any] = {"step": state.global_step}
        for key, value in logs.items():
            record[key] = value if not isinstance(value, float) or math.isfinite(value) else None
        rate = self.rate.update(logs.get("num_tokens"))
        if rate is not None:
            record["tokens_per_s"] = rate
        self.out.log(record)
        self.step, self.total = state.global_step, state.max_steps or self.total
        if "train_runtime" in record:  # the trainer's closing summary
            if self.live is None:
                finals = [
                    (k, record.get(k)) for k in ("train_loss", "train_runtime", "train_steps_per_second")
                ]
                elapsed = fmt_duration(self.clock.elapsed()) if self.clock else "?"
                emit(
                    f"{self.title} done: step {self.step}/{self.total or '?'} | elapsed {elapsed} | "
                    f"{metrics_text(finals)}"
                )
            return
        self.last.update({k: v for k, v in record.items() if _number(v) is not None})
        found = self._check(record, state.global_step)
        for message in found:
            self.out.log({"event": "warning", "step": state.global_step, **message})
        if self.live is not None:
            self.live.update(self.render())
            return
        clock = self.clock or Clock(self.total)
        emit(
            step_line(
                self.title,
                self.step,
                self.total,
                clock,
                [(label, record.get(key)) for key, label in LIVE_KEYS],
            )
        )
        for message in found:
            emit(f"{self.title} warning: {message['message']}")

    def _check(self, record: dict[str, Any], step: int) -> list[dict[str, str]]:
        found = []
        kl = _number(record.get("kl"))
        if kl is not None and kl > self.kl_threshold and "kl" not in self.warned:
            self.warned["kl"] = (
                f"KL to the reference is {kl:.3g} at step {step}, above {self.kl_threshold:g}: "
                "lower the learning rate or raise --beta"
            )
            found.append({"kind": "kl_blowup", "message": self.warned["kl"]})
        fmt = next(
            (
                _number(record.get(f"rewards/{n}/mean"))
                for n in FORMAT_REWARDS
                if _number(record.get(f"rewards/{n}/mean")) is not None
            ),
            None,
        )
        acc = _number(record.get("accuracy"))
        if fmt is not None and acc is not None:
            self.format_hist.append(fmt)
            self.acc_hist.append(acc)
            if "hacking" not in self.warned and format_rose_accuracy_fell(
                list(self.format_hist), list(self.acc_hist), self.delta
            ):
                self.warned["hacking"] = (
                    f"format reward rose while accuracy fell over the last "
                    f"{len(self.acc_hist)} logs (step {step}): possible reward hacking"
                )
                found.append({"kind": "reward_hacking", "message": self.warned["hacking"]})
        zero = _number(record.get("zero_std_fraction"))
        if zero is not None:
            self.zero_std_run = self.zero_std_run + 1 if zero >= 1.0 else 0
            if self.zero_std_run >= self.zero_std_steps and "zero_std" not in self.warned:
                reward = _number(record.get("reward"))
                self.warned["zero_std"] = (
                    f"no learning signal: every prompt's completions got the same reward (zero_std_fraction = 1) "
                    f"for {self.zero_std_run} logged steps in a row (step {step}, mean reward "
                    f"{fmt_value(reward)}), so every advantage and the loss are 0; raise --num-generations or "
                    "--temperature, use easier data or an SFT'd model, or check the reward with `r1kit evaluate` "
                    "on this model and data (set R1KIT_ZERO_STD_STEPS to change when this warns)"
                )
                found.append({"kind": "zero_std", "message": self.warned["zero_std"]})
        return found


class TimeLimit(TrainerCallback):
    """Stop training (and save, if checkpoints are on) once `minutes` of training have passed."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60.0
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()

    def on_step_end(self, args, state, control, **kwargs):
        stop = self.start is not None and time.time() - self.start >= self.seconds
        # Every rank must stop at the same step, or one enters a collective the others left: rank 0's
        # clock decides.
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            from accelerate.utils import broadcast_object_list

            flag = [stop]
            broadcast_object_list(flag, from_process=0)
            stop = flag[0]
        if stop:
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
        return control
