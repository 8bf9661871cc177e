"""Progress lines: one unwrapped line per training log or generation chunk, in a log file as on a terminal.

Every training stage (sft, grpo, dpo-shorten, distill's student) and every sampling stage
(evaluate, rejection-sample, distill's teacher, dpo-shorten's samples) reports progress the same
way, so that `r1kit grpo ... > log 2>&1` shows what a terminal shows:

    grpo step 12/100 | elapsed 0:01:02 | ETA 0:07:35 | reward=0.4375 accuracy=0.375 kl=0.001234 ...
    generating 256/1024 sequences | elapsed 0:00:41 | ETA 0:02:03 | tok/s=1873

Numbers keep 4 significant digits (`fmt_value`): nothing is cut to fit a width. Lines are
written with print to stderr, where progress belongs (stdout keeps the results: tables and
"wrote OUT"), never through rich, which breaks a long line at the terminal width. On a terminal
GRPO shows a rich live view instead (r1kit/rl/callbacks.py) and generation a transient bar; both
use the same numbers.

ETA: the mean time per step (or row) since this run started, times what is left; with a time
limit (`grpo --max-minutes`) it is never later than the limit.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable
from typing import Any


def fmt_value(value: Any) -> str:
    """A metric for a human: integers as they are, floats with 4 significant digits ("-" if unknown)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-" if math.isnan(value) else str(value)
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def fmt_duration(seconds: float | None) -> str:
    """H:MM:SS ("?" when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Clock:
    """Elapsed time and ETA of work measured in units (steps, rows) from `start` towards `total`.

    `start`: units already done when the clock starts (a resumed run's steps), left out of the
    rate. `limit_s`: a wall-clock budget in seconds (the ETA never goes past it).
    """

    def __init__(self, total: int | None, start: int = 0, limit_s: float | None = None):
        self.total = total if total and total > 0 else None
        self.start = start
        self.limit_s = limit_s if limit_s and limit_s > 0 else None
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def eta(self, done: int) -> float | None:
        elapsed = self.elapsed()
        left_by_limit = max(self.limit_s - elapsed, 0.0) if self.limit_s else None
        if self.total is None or done <= self.start:
            return left_by_limit
        left = elapsed / (done - self.start) * max(self.total - done, 0)
        return left if left_by_limit is None else min(left, left_by_limit)

    def head(self, done: int) -> str:
        """'elapsed H:MM:SS | ETA H:MM:SS' for `done` units."""
        return f"elapsed {fmt_duration(self.elapsed())} | ETA {fmt_duration(self.eta(done))}"


def metrics_text(pairs: Iterable[tuple[str, Any]]) -> str:
    """'name=value ...' for the pairs whose value is known."""
    return " ".join(f"{name}={fmt_value(v)}" for name, v in pairs if v is not None)


def step_line(
    title: str, step: int, total: int | None, clock: Clock, pairs: Iterable[tuple[str, Any]]
) -> str:
    text = f"{title} step {step}/{total or '?'} | {clock.head(step)}"
    shown = metrics_text(pairs)
    return f"{text} | {shown}" if shown else text


def notice(text: str) -> None:
    """One line for the user on stderr, "r1kit: " first, from rank 0 only (every process of a launch
    would say the same)."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"r1kit: {text}", file=sys.stderr, flush=True)


def emit(line: str) -> None:
    """Write one progress line to stderr, whole (no wrapping), flushed at once."""
    print(line, file=sys.stderr, flush=True)


def interactive() -> bool:
    """True when stderr is a terminal: rich live views and bars go there; otherwise plain lines."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class TokenRate:
    """Tokens per second between two trainer logs, from trl's cumulative `num_tokens`."""

    def __init__(self) -> None:
        self.tokens: float | None = None
        self.time: float | None = None

    def start(self, tokens_seen: float = 0.0) -> None:
        self.tokens, self.time = float(tokens_seen or 0.0), time.monotonic()

    def update(self, num_tokens: Any) -> float | None:
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, (int, float)) or self.time is None:
            return None
        now = time.monotonic()
        rate = (float(num_tokens) - (self.tokens or 0.0)) / max(now - self.time, 1e-9)
        self.tokens, self.time = float(num_tokens), now
        return rate


# Warnings the user cannot act on: r1kit and trl call these names, not the user, and the message names
# no option of r1kit's. Filtered by category and message, one entry each (never a blanket ignore): a
# warning about the user's data or options still shows. Add an entry only for a warning seen in a run.
QUIET_WARNINGS = (
    # transformers 5 renamed gradient checkpointing to activation checkpointing; trl and r1kit's trainer
    # arguments still use the old names (transformers 5.0 has no new ones), e.g. "`is_gradient_checkpointing`
    # is deprecated and will be removed in v6. Use `is_activation_checkpointing` instead."
    (
        FutureWarning,
        r"`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated and will be removed in v6",
    ),
)


def quiet_library_warnings() -> None:
    """Called by the CLI's main(): filter QUIET_WARNINGS and, in a log file (stderr not a terminal),
    the hub libraries' per-file bars ("Loading weights", "Writing model shards"), which write
    carriage-return animations there. r1kit's own progress lines are not affected."""
    import os
    import warnings

    for category, message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    if not interactive():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
