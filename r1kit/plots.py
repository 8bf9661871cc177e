"""Training curves from a stage's metrics.jsonl, as a PNG.

    python -m r1kit.plots runs/grpo runs/grpo_curves.png

Plots the reward (total and per reward function) and the mean completion
length against the step, the two curves R1-Zero's figures show.
"""

from __future__ import annotations

import sys
from pathlib import Path

from r1kit.errors import R1kitError
from r1kit.outputs import read_metrics


def training_curves(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Per-step series of reward, per-function rewards and mean completion length."""
    series: dict[str, list[tuple[int, float]]] = {}
    for rec in read_metrics(run_dir):
        step = rec.get("step")
        if not isinstance(step, int) or "reward" not in rec:
            continue
        for key, value in rec.items():
            wanted = key == "reward" or key == "completions/mean_length" or (
                key.startswith("rewards/") and key.endswith("/mean")
            )
            if wanted and isinstance(value, (int, float)):
                series.setdefault(key, []).append((step, float(value)))
    if not series:
        raise R1kitError(f"{run_dir}: metrics.jsonl has no per-step reward records (is it a grpo output?)")
    return series


def plot_training_curves(run_dir: str | Path, png: str | Path, *, smooth: int = 5) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = training_curves(run_dir)
    fig, (ax_r, ax_l) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, points in series.items():
        if key == "completions/mean_length":
            continue
        steps, values = zip(*points)
        label = "total reward" if key == "reward" else key.split("/")[1]
        ax_r.plot(steps, _moving_average(values, smooth), label=label)
    ax_r.set_xlabel("step")
    ax_r.set_ylabel(f"reward (moving average of {smooth})")
    ax_r.legend()
    if "completions/mean_length" in series:
        steps, values = zip(*series["completions/mean_length"])
        ax_l.plot(steps, _moving_average(values, smooth), color="tab:green")
    ax_l.set_xlabel("step")
    ax_l.set_ylabel("mean completion length (tokens)")
    fig.suptitle(f"GRPO training curves: {Path(run_dir).name}")
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def _moving_average(values, window: int) -> list[float]:
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > window:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m r1kit.plots RUN_DIR OUT.png")
    try:
        print(plot_training_curves(sys.argv[1], sys.argv[2]))
    except R1kitError as exc:
        print(f"r1kit: error: {exc}", file=sys.stderr)
        sys.exit(2)
