"""Logged GRPO losses of a few real `r1kit grpo` steps, per loss type: the before/after check of issue 16.

Issue 16 moved the grpo / dapo / dr_grpo losses, clip-higher, reward scaling, truncation masking,
reference sync and the advantages onto trl's own GRPOConfig switches; the maths must not move. This
script runs the real CLI (a subprocess per run, `python -m r1kit` with PYTHONPATH=--repo, so the
same script measures any checkout) and prints the `loss` of every logged step from metrics.jsonl.
Run it on the code before and after a change and compare the two JSON files.

Set-up (all CPU, one torch thread, fixed seeds): `r1kit data arithmetic` (2-digit additions), a
short SFT cold start of the tiny model (so that completions end, answers are sometimes right and
the accuracy reward varies within groups), then each case below for 3 GRPO steps of 4 prompts x 4
completions, micro-batches of 8 (gradient accumulation 2), two policy updates per rollout batch
(--num-iterations 2: the second pass has ratios != 1, so the clip acts), accuracy + format +
repetition rewards. The data and the SFT model are built once in --work and reused, so two
checkouts are compared on the same start.

Usage (about 4 minutes on the 2-core dev machine):
    python bench/grpo_loss_equality.py --repo /path/to/old/checkout --work /tmp/eq --json before.json
    python bench/grpo_loss_equality.py --repo . --work /tmp/eq --json after.json
    python bench/grpo_loss_equality.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # determinism and speed on 2 shared cores
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COMMON = [
    "--num-generations",
    "4",
    "--prompts-per-step",
    "4",
    "--batch-size",
    "8",
    "--max-completion-length",
    "48",
    "--learning-rate",
    "1e-4",
    "--temperature",
    "1.0",
    "--num-iterations",
    "2",
    "--max-steps",
    "3",
    "--template",
    "chat",
    "--reward",
    "accuracy=1",
    "--reward",
    "format=0.25",
    "--reward",
    "repetition=0.5",
    "--seed",
    "0",
    "--no-live",
]
# case -> extra flags; every loss type, with beta > 0 and reference reset for grpo and the DAPO switches
CASES: dict[str, list[str]] = {
    "grpo": ["--loss", "grpo"],
    "grpo_beta_reset": ["--loss", "grpo", "--beta", "0.04", "--ref-reset-steps", "2"],
    "grpo_batch_mask": ["--loss", "grpo", "--scale-rewards", "batch", "--dynamic-sampling", "mask"],
    "dapo": ["--loss", "dapo", "--epsilon-high", "0.28", "--mask-truncated"],
    "dapo_mask": ["--loss", "dapo", "--epsilon-high", "0.28", "--dynamic-sampling", "mask"],
    "dapo_refill": ["--loss", "dapo", "--dynamic-sampling", "refill"],
    "dr_grpo": ["--loss", "dr_grpo", "--scale-rewards", "none"],
    "kimi": ["--loss", "kimi", "--tau", "0.5"],
    "kimi_mask": ["--loss", "kimi", "--tau", "0.5", "--dynamic-sampling", "mask"],
}
# the logged loss, and the gradient norm: a wrong normaliser can hide in a loss near 0 (at ratio 1 the
# grpo loss is -Σ advantages = 0), never in the gradient
KEYS = ("loss", "grad_norm")


def r1kit(repo: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    res = subprocess.run(
        [sys.executable, "-m", "r1kit", *map(str, args)],
        cwd=repo,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if res.returncode:
        raise SystemExit(f"r1kit {' '.join(map(str, args[:2]))} failed:\n{res.stderr[-3000:]}")


def prepare(repo: Path, work: Path) -> tuple[Path, Path]:
    data, sft = work / "data", work / "sft"
    if not (data / "manifest.json").exists():
        r1kit(
            repo,
            "data",
            "arithmetic",
            "--output",
            data,
            "--train-size",
            "400",
            "--test-size",
            "8",
            "--digits",
            "2",
            "--max-checks",
            "0",
            "--seed",
            "0",
        )
    if not (sft / "manifest.json").exists():
        r1kit(
            repo,
            "sft",
            "--model",
            "tiny",
            "--data",
            data,
            "--output",
            sft,
            "--max-steps",
            "300",
            "--learning-rate",
            "2e-3",
            "--lr-scheduler",
            "constant",
            "--warmup-ratio",
            "0",
            "--batch-size",
            "32",
            "--logging-steps",
            "50",
            "--seed",
            "0",
        )
    return data, sft


def logged(repo: Path, work: Path, cases: list[str]) -> dict[str, dict[str, list[float]]]:
    """{case: {"loss": [per step], "grad_norm": [per step]}} from each run's metrics.jsonl."""
    data, sft = prepare(repo, work)
    found = {}
    for case in cases:
        out = work / f"run-{case}"
        r1kit(
            repo,
            "grpo",
            "--model",
            sft,
            "--data",
            data,
            "--output",
            out,
            "--overwrite",
            *COMMON,
            *CASES[case],
        )
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in records if "loss" in r and "grad_norm" in r]
        found[case] = {key: [r[key] for r in steps] for key in KEYS}
        print(f"{case:16s} " + "  ".join(f"{k} {found[case][k]}" for k in KEYS), flush=True)
    return found


def compare(before: dict, after: dict, atol: float, rtol: float) -> bool:
    """Print the two side by side; equal when |a − b| <= atol + rtol·|b| everywhere."""
    ok = True
    print(f"| case | step | {' | '.join(f'{k} before | {k} after' for k in KEYS)} |")
    print("|---|---|" + "---|---|" * len(KEYS))
    for case, old in before.items():
        new = after.get(case, {k: [] for k in KEYS})
        for key in KEYS:
            if len(old[key]) != len(new[key]):
                ok = False
                print(f"{case}: {len(old[key])} logged steps before, {len(new[key])} after")
        for step in range(min(len(old["loss"]), len(new["loss"]))):
            cells = []
            for key in KEYS:
                b, a = old[key][step], new[key][step]
                ok &= abs(a - b) <= atol + rtol * abs(b)
                cells += [f"{b:.8g}", f"{a:.8g}"]
            print(f"| {case} | {step + 1} | {' | '.join(cells)} |")
    return ok


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", default=".", help="Checkout whose r1kit runs (PYTHONPATH).")
    p.add_argument(
        "--work", default="/tmp/r1kit-loss-equality", help="Folder for the data, SFT model and runs."
    )
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--json", default="", help="Write {case: [loss per step]} here.")
    p.add_argument(
        "--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="Compare two --json files and exit."
    )
    p.add_argument(
        "--atol", type=float, default=1e-6, help="Absolute part of the tolerance (see RESULTS.md)."
    )
    p.add_argument("--rtol", type=float, default=1e-5, help="Relative part of the tolerance.")
    args = p.parse_args(argv)
    if args.compare:
        before, after = (json.loads(Path(f).read_text()) for f in args.compare)
        same = compare(before, after, args.atol, args.rtol)
        print("equal within tolerance" if same else "DIFFERENT")
        raise SystemExit(0 if same else 1)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    found = logged(Path(args.repo).resolve(), work, args.cases)
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
