"""Plot training curves of sft, grpo, dpo-shorten and distill runs: loss, reward, accuracy, length, KL.

Reads each run's metrics.jsonl (the library is r1kit/plots.py) and draws one PNG with a panel
per quantity that any run logged (loss; reward: grpo's total and per-function rewards,
dpo-shorten's implicit rewards; accuracy: grpo's success reward, sft's token accuracy,
dpo-shorten's preference accuracy; grpo's mean completion length and KL) and a line per run and
series, the curves R1-Zero's figures show.

Output (a stage output folder like every stage's, so a figure never replaces a user's file,
appears whole or not at all, and its manifest names the runs it shows): OUT/curves.png and
OUT/curves.json, the plotted per-step numbers ({run: {panel: {series: [[step, value], ...]}}},
raw, before --smooth).

Example:

    r1kit plot --run runs/sft --run runs/grpo --output runs/curves
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError


@dataclass
class Config(StageConfig):
    INPUTS = ("run",)  # checked against --output (r1kit.outputs)
    run: list[str] = option(
        [], "A training stage output (sft, grpo, dpo-shorten, distill) to plot; repeat for several."
    )
    smooth: int = option(1, "Moving average over N logged steps (1 = the raw values).")

    def validate(self) -> None:
        super().validate()
        if not self.run:
            raise R1kitError("--run is required: a training stage output to plot (repeat for several)")


def _name(run: str, runs: list[str]) -> str:
    """A run's label: its folder name, or the whole path where two runs share a folder name."""
    short = Path(run).name or run
    return run if [Path(r).name for r in runs].count(short) > 1 else short


def run(cfg: Config):
    from r1kit.outputs import stage_output
    from r1kit.plots import curves, plot_curves

    data = {
        _name(r, cfg.run): curves(r) for r in cfg.run
    }  # unreadable runs fail here, before anything is written
    with stage_output(cfg, "plot", {"run": list(cfg.run)}) as out:
        plot_curves(data, out.path / "curves.png", smooth=cfg.smooth)
        (out.path / "curves.json").write_text(json.dumps(data) + "\n")
        out.extra["panels"] = {name: list(panels) for name, panels in data.items()}
    print(f"wrote {out.final / 'curves.png'}")
    return out.final
