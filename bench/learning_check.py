"""GRPO learning check: does `r1kit grpo` learn from the verifier alone on the built-in task?

Recipe, per seed:
1. `r1kit data arithmetic`: 3-digit addition with a digit-by-digit <think> trace (no self-checks).
2. Cold start: `r1kit sft` on the tiny model (~1M-parameter Qwen2, character vocabulary),
   lr 2e-3, batch 32, first evaluated after 270 steps and then every 20 (each chunk resumes the
   previous chunk's checkpoint), stopped as soon as held-out greedy accuracy is in
   [--low, --high] (default 30-45%). Accuracy jumps from ~0 to 30%+ within 40-60 steps
   somewhere between steps 300 and 420 depending on the seed; a chunk that overshoots the
   window is redone from the previous checkpoint at half the length.
3. `r1kit grpo` (the real CLI) on the prompts only (no traces), accuracy reward only,
   8 prompts x 8 completions per step, temperature 1.0, lr 1e-4, beta 0, for --grpo-minutes.
4. Held-out greedy accuracy again (`r1kit.evaluation.evaluate_model`, 200 test prompts).

Pass: accuracy rises by at least --min-gain (20 points) for every seed.

Measured (held-out greedy accuracy on 200 test prompts):
- 2 CPU cores of an otherwise idle host (taskset -c 0,1, 1 torch thread), --grpo-minutes 2.25:
  seed 0 34.0% -> 75.0% (+41.0, 92 GRPO steps), seed 1 36.0% -> 60.0% (+24.0, 71 steps);
  whole check 710 s (SFT cold start 150 s + 244 s, GRPO 153 s + 156 s, evaluations the rest).
- the shared 2-core dev machine, --grpo-minutes 3 (lr 2e-3 SFT evaluated every 30 steps from
  150): seed 0 34.0% -> 72.5% (+38.5, 133 steps), seed 1 37.0% -> 82.0% (+45.0, 87 steps); 727 s.
- the dev machine, quiet, this script's defaults (--grpo-minutes 2.5, first evaluation at 270
  steps, then every 20): seed 0 34.0% -> 73.0% (+39.0, 130 steps; SFT 330 steps 116 s, seed
  275 s), seed 1 36.0% -> 61.5% (+25.5, 125 steps; SFT 410 steps 148 s, seed 307 s); whole
  check 583 s. Repeats on the same machine: 633 s (other jobs ran beside it part of the time;
  +41.0 / +25.0); with --rollout fast (55 GRPO steps per minute against 41): 2.0 min 558 s
  (+36.5 / +22.0), 2.25 min 588 s (+37.0 / +20.5).

What this shows is that RL learns from a verifier's 0/1 signal; it does not show that RL beats
more SFT (on this task more SFT learns faster).

Partial rollouts (`--compare-budget T`, issue 18): each seed's GRPO runs twice from the same
cold start, for the same time, once as above and once with `--rollout-token-budget T` (Kimi
k1.5's partial rollouts: at most T new tokens per trajectory per step, the rest continued in later
steps, the loss on each trajectory's newest segment only); both end with the held-out greedy
accuracy. bench/RESULTS.md has the measured pairs.

Usage:
    python bench/learning_check.py --seeds 0 1 --output learning_check.json
    python bench/learning_check.py --seeds 0 1 --compare-budget 48 --output partial_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One torch thread: on the shared 2-core test machine, 2 threads made a forward+backward of the
# tiny model ~10x slower (3.5 s vs 0.37 s for 32 x 100 tokens), the threads stalling on each
# other and on other processes. Set OMP_NUM_THREADS yourself to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument(
        "--work", default="", help="Working folder (default: a temporary one, removed at the end)."
    )
    p.add_argument("--output", default="", help="Write the results as JSON here.")
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--test-size", type=int, default=200)
    p.add_argument("--digits", type=int, default=3)
    p.add_argument("--sft-first", type=int, default=270, help="SFT steps before the first evaluation.")
    p.add_argument("--sft-chunk", type=int, default=20, help="SFT steps between later evaluations.")
    p.add_argument("--sft-max-steps", type=int, default=600)
    p.add_argument("--sft-lr", type=float, default=2e-3)
    p.add_argument("--sft-batch", type=int, default=32)
    p.add_argument("--low", type=float, default=0.30)
    p.add_argument("--high", type=float, default=0.45)
    p.add_argument("--grpo-minutes", type=float, default=2.5)
    p.add_argument(
        "--rollout",
        default="hf",
        choices=("fast", "hf"),
        help="GRPO rollouts: transformers generate (hf) or r1kit's decode loop (fast; "
        "~1.3x the steps per minute here, but no larger gains in two runs).",
    )
    p.add_argument(
        "--grpo-steps",
        type=int,
        default=0,
        help="Run GRPO for this many steps instead of --grpo-minutes (the same for every run compared).",
    )
    p.add_argument("--grpo-lr", type=float, default=1e-4)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--max-completion-length", type=int, default=96)
    p.add_argument("--min-gain", type=float, default=0.20)
    p.add_argument(
        "--cold-start",
        default="",
        help="Reuse cold-start checkpoints instead of running SFT: a path with {seed}, e.g. "
        "work/sft-s{seed}-435 (their held-out accuracy is measured again).",
    )
    p.add_argument(
        "--partial-loss",
        default="segment",
        choices=("segment", "trajectory"),
        help="--partial-loss of the --compare-budget runs.",
    )
    p.add_argument(
        "--compare-budget",
        type=int,
        default=0,
        help="Also run each seed's GRPO with --rollout-token-budget T (partial rollouts) from the same "
        "cold start, for the same time, and report both accuracies (0 = off).",
    )
    return p.parse_args(argv)


def greedy_accuracy(model_dir: Path, test, max_new_tokens: int) -> float:
    from r1kit.evaluation import evaluate_model
    from r1kit.generation import SamplingParams
    from r1kit.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(model_dir), device="cpu")
    metrics, _ = evaluate_model(model, tok, test, SamplingParams(greedy=True, max_new_tokens=max_new_tokens))
    return float(metrics["pass@1"])


def cold_start(args, data: Path, work: Path, seed: int, test) -> tuple[Path, float, int, list]:
    """SFT in chunks until held-out greedy accuracy lands in [low, high]."""
    from r1kit.config import build_config
    from r1kit.stages import sft

    done, chunk, prev, history = 0, args.sft_first, None, []
    while done < args.sft_max_steps:
        target = done + chunk
        out = work / f"sft-s{seed}-{target}"
        shutil.rmtree(out, ignore_errors=True)
        flags = {
            "model": "tiny",
            "data": str(data),
            "output": str(out),
            "seed": seed,
            "max_steps": target,
            "batch_size": args.sft_batch,
            "learning_rate": args.sft_lr,
            "lr_scheduler": "constant",
            "warmup_ratio": 0.0,
            "keep_checkpoints": True,
            "save_steps": target,
            "logging_steps": 1000,
            "resume": str(prev / "checkpoints") if prev else "",
        }
        sft.run(build_config(sft.Config, None, flags))
        acc = greedy_accuracy(out, test, args.max_completion_length)
        history.append({"sft_steps": target, "accuracy": acc})
        print(f"[seed {seed}] sft {target} steps: held-out greedy accuracy {acc:.3f}", flush=True)
        if args.low <= acc <= args.high:
            return out, acc, target, history
        if acc > args.high:
            if chunk <= 2:
                return out, acc, target, history  # cannot land inside the window: report as is
            chunk //= 2
            continue
        prev, done, chunk = out, target, args.sft_chunk
    raise RuntimeError(f"SFT did not reach {args.low:.0%} held-out accuracy in {args.sft_max_steps} steps")


def grpo(args, sft_dir: Path, data: Path, out: Path, seed: int, extra: tuple[str, ...] = ()) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "r1kit",
        "grpo",
        "--model",
        str(sft_dir),
        "--data",
        str(data),
        "--output",
        str(out),
        "--overwrite",
        "--seed",
        str(seed),
        "--reward",
        "accuracy=1",
        "--num-generations",
        str(args.generations),
        "--prompts-per-step",
        str(args.prompts),
        "--max-completion-length",
        str(args.max_completion_length),
        "--temperature",
        "1.0",
        "--learning-rate",
        str(args.grpo_lr),
        "--beta",
        "0",
        "--rollout",
        args.rollout,
        "--no-live",
        *extra,
    ]
    if args.grpo_steps:
        cmd += ["--max-steps", str(args.grpo_steps)]
    else:
        cmd += ["--max-steps", "100000", "--max-minutes", str(args.grpo_minutes)]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"r1kit grpo failed:\n{res.stderr[-4000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss" in r and "step" in r]
    steps = [r for r in logged if r.get("reward") is not None]  # steps that trained groups
    run = {
        "wall_s": round(time.time() - t0, 1),
        "steps": len(logged),
        "reward_curve": [[r["step"], round(r["reward"], 4)] for r in steps],
    }
    if any("partial/trained_groups" in r for r in logged):
        run["trained_groups"] = int(sum(r["partial/trained_groups"] for r in logged))
        run["generated_tokens"] = int(sum(r["partial/new_tokens"] for r in logged))
        run["continued"] = int(sum(r["partial/continued"] for r in logged))
        run["stale_rows"] = int(sum(r["partial/stale_rows"] for r in logged))
        run["trained_rows"] = int(sum(r["partial/trained_rows"] for r in logged))
    else:
        run["trained_groups"] = len(logged) * args.prompts
    return run


def main(argv=None) -> dict:
    args = parse(argv)
    t_start = time.time()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="r1kit-learning-check-"))
    work.mkdir(parents=True, exist_ok=True)
    from r1kit.data import prepare_dataset, write_arithmetic

    data = work / "data"
    if not data.exists():
        write_arithmetic(data, args.train_size, args.test_size, digits=args.digits, max_checks=0, seed=1234)
    test = prepare_dataset(str(data), split="test", template="chat")
    results = {"config": vars(args), "seeds": {}}
    for seed in args.seeds:
        t0 = time.time()
        if args.cold_start:
            sft_dir = Path(args.cold_start.format(seed=seed))
            pre, sft_steps, history = greedy_accuracy(sft_dir, test, args.max_completion_length), None, []
        else:
            sft_dir, pre, sft_steps, history = cold_start(args, data, work, seed, test)
        t_sft = time.time() - t0
        run = grpo(args, sft_dir, data, work / f"grpo-s{seed}", seed)
        post = greedy_accuracy(work / f"grpo-s{seed}", test, args.max_completion_length)
        results["seeds"][str(seed)] = {
            "pre_accuracy": pre,
            "post_accuracy": post,
            "gain": round(post - pre, 4),
            "sft_steps": sft_steps,
            "sft_history": history,
            "sft_wall_s": round(t_sft, 1),
            "grpo_steps": run["steps"],
            "grpo_wall_s": run["wall_s"],
            "trained_groups": run["trained_groups"],
            "seed_wall_s": round(time.time() - t0, 1),
            "reward_curve": run["reward_curve"],
        }
        print(
            f"[seed {seed}] held-out greedy accuracy {pre:.3f} -> {post:.3f} ({post - pre:+.3f}) "
            f"after {run['steps']} GRPO steps",
            flush=True,
        )
        if args.compare_budget:
            out = work / f"grpo-s{seed}-budget{args.compare_budget}"
            part = grpo(
                args,
                sft_dir,
                data,
                out,
                seed,
                ("--rollout-token-budget", str(args.compare_budget), "--partial-loss", args.partial_loss),
            )
            post_p = greedy_accuracy(out, test, args.max_completion_length)
            results["seeds"][str(seed)]["partial"] = {
                "budget": args.compare_budget,
                "partial_loss": args.partial_loss,
                "post_accuracy": post_p,
                "gain": round(post_p - pre, 4),
                "grpo_steps": part["steps"],
                "grpo_wall_s": part["wall_s"],
                **{
                    k: part[k]
                    for k in ("trained_groups", "trained_rows", "stale_rows", "continued", "generated_tokens")
                },
                "reward_curve": part["reward_curve"],
            }
            print(
                f"[seed {seed}] with --rollout-token-budget {args.compare_budget}: {pre:.3f} -> {post_p:.3f} "
                f"({post_p - pre:+.3f}) after {part['steps']} GRPO steps, {part['trained_groups']} groups trained "
                f"(without: {run['trained_groups']})",
                flush=True,
            )
        if args.output:  # after every seed, so an interrupted run keeps what it measured
            Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    results["total_wall_s"] = round(time.time() - t_start, 1)
    results["passed"] = all(
        s["gain"] >= args.min_gain and s.get("partial", s)["gain"] >= args.min_gain
        for s in results["seeds"].values()
    )
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {k: v for k, v in results.items() if k != "config"}
            | {
                "seeds": {
                    k: {
                        kk: ({a: b for a, b in vv.items() if a != "reward_curve"} if kk == "partial" else vv)
                        for kk, vv in v.items()
                        if kk != "reward_curve"
                    }
                    for k, v in results["seeds"].items()
                }
            },
            indent=1,
        )
    )
    return results


if __name__ == "__main__":
    sys.exit(0 if main()["passed"] else 1)
