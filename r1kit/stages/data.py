"""Write the built-in arithmetic reasoning task (train/test) as a dataset.

The task: add (or subtract) multi-digit numbers with a worked, digit-by-digit
chain of thought in the R1-Zero format `<think>...</think><answer>...</answer>`.
Traces carry a random number (0..--max-checks) of redundant lines, so their
lengths vary and the long2short stages have something real to shorten:
re-verification equations (--check-style verify, like R1's "wait, let me
verify") or hesitation sentences without numbers (--check-style filler), both
after the result. `--digits` is the difficulty knob.

Example:

    r1kit data arithmetic --output runs/data --train-size 4000 --test-size 200 --digits 3
"""

from __future__ import annotations

from dataclasses import dataclass

from r1kit.config import StageConfig, option
from r1kit.data.arithmetic import CHECK_STYLES
from r1kit.errors import R1kitError


@dataclass
class Config(StageConfig):
    train_size: int = option(4000, "Number of training problems.")
    test_size: int = option(200, "Number of held-out test problems (never seen in train).")
    digits: int = option(3, "Difficulty: operands have up to this many digits.")
    ops: str = option("+", "Operations to draw from, e.g. '+' or '+-'.")
    max_checks: int = option(
        3, "Most redundant lines per trace, drawn uniformly from 0..N (0 = fixed-length traces)."
    )
    check_style: str = option(
        "verify",
        "Redundant lines: 'verify' (re-verification equations after the result) or "
        "'filler' (hesitation sentences), both after the result.",
        choices=CHECK_STYLES,
    )

    def validate(self) -> None:
        super().validate()
        if self.train_size < 1 or self.test_size < 1:
            raise R1kitError(
                f"--train-size ({self.train_size}) and --test-size ({self.test_size}) must be >= 1"
            )
        if not 1 <= self.digits <= 9:
            raise R1kitError(f"--digits ({self.digits}) must be between 1 and 9")
        if not self.ops or set(self.ops) - set("+-"):
            raise R1kitError(f"--ops {self.ops!r} may only hold '+' and '-'")
        if self.max_checks < 0:
            raise R1kitError(f"--max-checks ({self.max_checks}) must be >= 0")


def run(cfg: Config):
    from r1kit.data.arithmetic import write_arithmetic
    from r1kit.outputs import stage_output

    with stage_output(cfg, "data arithmetic") as out:
        sizes = write_arithmetic(
            out.data_dir,
            cfg.train_size,
            cfg.test_size,
            digits=cfg.digits,
            ops=tuple(cfg.ops),
            max_checks=cfg.max_checks,
            check_style=cfg.check_style,
            seed=cfg.seed,
        )
        out.log({"event": "written", **(sizes or {})})
    print(f"wrote {out.final}")
    return out.final
