"""GRPO metrics: metrics.jsonl records, a rich live view, and two training-health warnings.

Every trainer log becomes one line of the stage's metrics.jsonl (via `out.log`), with
`tokens_per_s` (prompt + completion tokens processed per second of wall time since the last
log) added. Two warnings, each raised once, go to metrics.jsonl as {"event": "warning", ...}
records and to the live view:

- KL blow-up: the logged KL to the reference policy exceeds `kl_threshold`.
- Reward hacking: over the last `window` logs the format reward rose while accuracy fell (the
  pattern open-r1 users report when the policy learns the tags but not the task): the mean of
  the newer half of the window is at least `delta` above (format) / below (accuracy) the older
  half.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

from transformers import TrainerCallback

FORMAT_REWARDS = ("format", "think_format", "tag_count")
LIVE_KEYS = (
    ("reward", "reward"), ("accuracy", "accuracy"), ("kl", "kl"), ("entropy", "entropy"),
    ("clip_ratio/region_mean", "clip"), ("completions/mean_length", "length"),
    ("zero_std_fraction", "zero-std"), ("tokens_per_s", "tok/s"), ("loss", "loss"),
)


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
    """Mirror trainer logs into metrics.jsonl and a rich live table; raise the health warnings."""

    def __init__(self, out, *, kl_threshold: float = 1.0, window: int = 10, delta: float = 0.05,
                 live: bool = True, title: str = "grpo"):
        self.out = out
        self.kl_threshold = kl_threshold
        self.delta = delta
        self.format_hist: deque[float] = deque(maxlen=window)
        self.acc_hist: deque[float] = deque(maxlen=window)
        self.warned: dict[str, str] = {}
        self.title = title
        self.live_enabled = live
        self.live = None
        self.last: dict[str, Any] = {}
        self._tokens = None
        self._time = None

    # --- rich view -------------------------------------------------------------------------
    def _table(self, state):
        from rich.table import Table

        table = Table(title=f"r1kit {self.title}  step {state.global_step}/{state.max_steps}", expand=False)
        for _, label in LIVE_KEYS:
            table.add_column(label, justify="right")
        table.add_row(*[_fmt(self.last.get(key)) for key, _ in LIVE_KEYS])
        if not self.warned:
            return table
        from rich.console import Group
        from rich.text import Text

        return Group(table, *[Text(f"warning: {msg}", style="bold red") for msg in self.warned.values()])

    def on_train_begin(self, args, state, control, **kwargs):
        if hasattr(self.out, "training_started"):  # a StageOutput: after a resume, each step once in metrics.jsonl
            self.out.training_started(state.global_step)
        self._time = time.time()
        self._tokens = float(getattr(state, "num_input_tokens_seen", 0) or 0)  # nonzero on resume
        if self.live_enabled and state.is_world_process_zero:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self._table(state), console=Console(stderr=True), refresh_per_second=2, transient=False)
            self.live.start()

    def on_train_end(self, args, state, control, **kwargs):
        if self.live is not None:
            self.live.update(self._table(state))
            self.live.stop()
            self.live = None

    # --- records ---------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        record: dict[str, Any] = {"step": state.global_step}
        for key, value in logs.items():
            record[key] = value if not isinstance(value, float) or math.isfinite(value) else None
        now = time.time()
        tokens = _number(logs.get("num_tokens"))
        if tokens is not None and self._time is not None:
            record["tokens_per_s"] = (tokens - (self._tokens or 0.0)) / max(now - self._time, 1e-9)
            self._tokens, self._time = tokens, now
        self.out.log(record)
        self.last.update({k: v for k, v in record.items() if _number(v) is not None})
        for message in self._check(record, state.global_step):
            self.out.log({"event": "warning", "step": state.global_step, **message})
        if self.live is not None:
            self.live.update(self._table(state))

    def _check(self, record: dict[str, Any], step: int) -> list[dict[str, str]]:
        found = []
        kl = _number(record.get("kl"))
        if kl is not None and kl > self.kl_threshold and "kl" not in self.warned:
            self.warned["kl"] = (f"KL to the reference is {kl:.3g} at step {step}, above {self.kl_threshold:g}: "
                                 "lower the learning rate or raise --beta")
            found.append({"kind": "kl_blowup", "message": self.warned["kl"]})
        fmt = next((_number(record.get(f"rewards/{n}/mean")) for n in FORMAT_REWARDS
                    if _number(record.get(f"rewards/{n}/mean")) is not None), None)
        acc = _number(record.get("accuracy"))
        if fmt is not None and acc is not None:
            self.format_hist.append(fmt)
            self.acc_hist.append(acc)
            if "hacking" not in self.warned and format_rose_accuracy_fell(list(self.format_hist),
                                                                         list(self.acc_hist), self.delta):
                self.warned["hacking"] = (f"format reward rose while accuracy fell over the last "
                                          f"{len(self.acc_hist)} logs (step {step}): possible reward hacking")
                found.append({"kind": "reward_hacking", "message": self.warned["hacking"]})
        return found


def _fmt(value: Any) -> str:
    num = _number(value)
    return "-" if num is None else f"{num:.4g}"


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
