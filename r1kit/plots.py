"""Training curves from stage outputs' metrics.jsonl: the library under `r1kit plot`.

`curves(run_dir)` reads one sft, grpo, dpo-shorten or distill output (distill: its student's
SFT, logged in OUT/sft) and returns, per panel, the per-step series it logged:

    loss       the training loss (every trainer)
    reward     grpo: total reward and each reward function's mean; dpo-shorten: reward margin
               and chosen/rejected rewards (the implicit DPO rewards)
    accuracy   grpo: the success reward's mean; sft: token accuracy; dpo-shorten: preference
               accuracy (chosen reward above rejected)
    length     grpo: mean completion length in tokens
    kl         grpo: KL to the reference (logged when β > 0)

R1-Zero's figures show the reward and the length against the step; the others show whether
training went where it should (loss down, KL bounded). Panels nobody logged are left out.
`plot_curves` draws one panel per quantity and one line per (run, series).
"""

from __future__ import annotations

import json
from pathlib import Path

from r1kit.errors import R1kitError

PANELS = {
    "loss": ("loss",),
    "reward": ("reward", "rewards/margins", "rewards/chosen", "rewards/rejected"),
    "accuracy": ("accuracy", "mean_token_accuracy", "rewards/accuracies"),
    "length": ("completions/mean_length",),
    "kl": ("kl",),
}
YLABELS = {
    "loss": "loss",
    "reward": "reward",
    "accuracy": "accuracy",
    "length": "mean completion length (tokens)",
    "kl": "KL to the reference",
}
TRAINING_STAGES = ("sft", "grpo", "dpo-shorten", "distill")


def _panel_of(key: str) -> str | None:
    for panel, keys in PANELS.items():
        if key in keys:
            return panel
    if key.startswith("rewards/") and key.endswith("/mean"):
        return "reward"  # grpo: one series per reward function
    return None


def _step_records(run_dir: Path) -> list[dict]:
    from r1kit.outputs import read_metrics

    return [
        r
        for r in read_metrics(run_dir)
        if isinstance(r.get("step"), int) and "event" not in r and "train_runtime" not in r
    ]


def curves(run_dir: str | Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{panel: {series: [(step, value), ...]}} of one training stage output; R1kitError if it has none."""
    run = Path(run_dir)
    stage = None
    try:
        stage = json.loads((run / "manifest.json").read_text()).get("stage")
    except (OSError, ValueError, AttributeError):
        pass
    if stage is not None and stage not in TRAINING_STAGES:
        raise R1kitError(
            f"{run_dir} is an r1kit {stage} output: it has no training curves; give an "
            f"{', '.join(TRAINING_STAGES[:-1])} or {TRAINING_STAGES[-1]} output"
        )
    records = _step_records(run) or _step_records(run / "sft")  # distill: the student's SFT
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for r in records:
        for key, value in r.items():
            panel = _panel_of(key)
            if panel and isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(panel, {}).setdefault(key, []).append((r["step"], float(value)))
    if not out:
        raise R1kitError(
            f"{run_dir}: no per-step training metrics (metrics.jsonl with step records); give an sft, "
            "grpo, dpo-shorten or distill output"
        )
    return {panel: out[panel] for panel in PANELS if panel in out}


def plot_curves(
    runs: dict[str, dict[str, dict[str, list[tuple[int, float]]]]], png: str | Path, *, smooth: int = 1
) -> Path:
    """One PNG: a panel per quantity any run logged, a line per (run, series), moving average of `smooth`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in PANELS if any(p in c for c in runs.values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    styles = ("-", "--", ":", "-.")
    for ax, panel in zip(axes[0], panels):
        for color, (name, run) in enumerate(runs.items()):
            for n, (key, points) in enumerate(run.get(panel, {}).items()):
                steps, values = zip(*points)
                label = key if len(runs) == 1 else f"{name}: {key}"
                # one colour per run (several runs compare at a glance), one line style per series
                ax.plot(
                    steps,
                    moving_average(values, smooth),
                    label=label,
                    color=f"C{n if len(runs) == 1 else color}",
                    linestyle="-" if len(runs) == 1 else styles[n % 4],
                )
        ax.set_xlabel("step")
        ax.set_ylabel(YLABELS[panel] + (f" (moving average of {smooth})" if smooth > 1 else ""))
        ax.legend(fontsize=7)
    fig.suptitle("training curves: " + ", ".join(runs))
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def moving_average(values, window: int) -> list[float]:
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > window:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out
