"""Kimi k1.5 partial rollouts on a GPU: GRPO step time with and without a per-iteration token
budget (`r1kit grpo --rollout-token-budget`), same settings, one run.

Set-up (the shapes and tokenizer of bench/gpu_speed.py): a random-init Qwen2.5-0.5B-shaped
model in bf16, R1GRPOTrainer (what `r1kit grpo` builds) with r1kit's decode loop, 16 prompts x
G=8 = 128 rollouts per step, rollouts of at most 2048 tokens. Lengths come from EOS-based
stopping: K token ids count as EOS (K ~ V / 128), so a near-uniform random model stops each row
with probability ~1/128 per token: geometric lengths, mean ~128, and a long tail (the longest of
128 rows is typically 4-6 times the mean), which is what a synchronous step waits for.

Variants, identical but for the budget: `no_budget` (every trajectory generated to its end in
the step that starts it) and `budget_T` (at most T new tokens per trajectory per step, the rest
continued in later steps). Each reports per step: wall time (`step_s`), generation time
(`gen_s`), tokens generated, groups trained, and the lengths trained; the summary compares the
median step time after the first step and the trained-token throughput (tokens of the trained
trajectories per second of training wall time) - with a budget a step trains fewer groups, since
groups with a long member finish in later steps.

Run on the GPU machine from the repo root (about 2-3 minutes on one H200; writes
$OUT/partial_rollouts.json, rewritten after every variant):
    python3 bench/partial_rollouts.py
Run here on CPU (tiny shapes, a few steps; the same code path):
    python3 bench/partial_rollouts.py --smoke --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from gpu_speed import SHAPES, Bench, log  # bench/gpu_speed.py: shapes, tokenizer, model

T0 = time.time()


def run_variant(bench: Bench, cfg: dict, budget: int) -> dict:
    """One GRPO run; returns per-step timings and partial-rollout counts."""
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig

    from r1kit.rl.trainer import R1GRPOTrainer, R1Options

    model, tok = bench.model(cfg["shape"])
    vocab = SHAPES[cfg["shape"]]["vocab_size"]
    eos = bench.eos_set(vocab, cfg["mean_len"])
    model.generation_config.eos_token_id = (
        eos  # trl stops a completion at any of them (and so does r1kit's loop)
    )
    texts = [
        " ".join(f"t{i}" for i in p)
        for p in bench.prompts(cfg["prompts"] * (cfg["steps"] + 2), 48, 48, vocab, 7)
    ]
    data = Dataset.from_dict({"prompt": texts})

    class Timer(TrainerCallback):
        def __init__(self):
            self.steps, self.logs, self.t = [], [], None

        def on_step_begin(self, args, state, control, **kw):
            bench.sync()
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            bench.sync()
            self.steps.append(time.perf_counter() - self.t)

        def on_log(self, args, state, control, logs=None, **kw):
            self.logs.append(dict(logs or {}))

    class Timed(R1GRPOTrainer):
        def _r1_timed_generate(self, *a, **kw):
            bench.sync()
            t0 = time.perf_counter()
            out = super()._r1_timed_generate(*a, **kw)
            bench.sync()
            self.__dict__.setdefault("gen_times", []).append(time.perf_counter() - t0)
            return out

    def reward(completions, completion_ids=None, **kw):
        return [float(len(ids) % 5) for ids in completion_ids]

    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="r1kit-partial-"),
        per_device_train_batch_size=cfg["gens"],
        gradient_accumulation_steps=cfg["prompts"],
        num_generations=cfg["gens"],
        max_completion_length=cfg["max_len"],
        max_steps=cfg["steps"],
        learning_rate=1e-6,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
        bf16=bench.cuda,
        use_cpu=not bench.cuda,
        gradient_checkpointing=bench.cuda,
        temperature=1.0,
        beta=0.0,
        loss_type="grpo",
    )
    timer = Timer()
    trainer = Timed(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=data,
        processing_class=tok,
        callbacks=[timer],
        r1=R1Options(fast_rollout="on", rollout_token_budget=budget),
    )
    trainer.remove_callback(PrinterCallback)
    if bench.cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    steps = [log_ for log_ in timer.logs if "loss" in log_]
    gen = trainer.__dict__.get("gen_times", [])
    res = {
        "budget": budget or None,
        "step_s": [round(x, 3) for x in timer.steps],
        "gen_s": [round(x, 3) for x in gen],
        "new_tokens": [r.get("partial/new_tokens") for r in steps],
        "trained_groups": [r.get("partial/trained_groups") for r in steps],
        "mean_length": [r.get("completions/mean_length") for r in steps],
        "max_length": [r.get("completions/max_length") for r in steps],
        "clipped_ratio": [r.get("completions/clipped_ratio") for r in steps],
    }
    if not budget:  # every group is trained in the step that starts it
        res["trained_groups"] = [float(cfg["prompts"])] * len(steps)
    later = timer.steps[1:] or timer.steps
    res["median_step_s"] = round(statistics.median(later), 3)
    res["median_gen_s"] = round(statistics.median(gen[1:] or gen), 3) if gen else None
    # tokens of the trajectories trained per second of wall time, after the first step
    trained_tokens = [
        (g or 0) * cfg["gens"] * (m or 0) for g, m in zip(res["trained_groups"], res["mean_length"])
    ]
    res["trained_tokens_per_s"] = round(sum(trained_tokens[1:]) / max(sum(later), 1e-9), 1)
    res["trained_groups_per_s"] = round(
        sum(g or 0 for g in res["trained_groups"][1:]) / max(sum(later), 1e-9), 3
    )
    flog = trainer.__dict__.get("fast_rollout_log", [])
    res["fast_rollout_calls"] = len(flog)
    res["decode_steps"] = [f["decode_steps"] for f in flog]
    del trainer, model
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny shapes, few steps; runs on CPU")
    p.add_argument("--out", default=None, help="output folder (default: $OUT, else .)")
    p.add_argument(
        "--budget", type=float, default=None, help="seconds for the whole run (default 240; smoke 600)"
    )
    p.add_argument(
        "--token-budget",
        type=int,
        nargs="+",
        default=None,
        help="T of the budget variants, run in this order after the first (default 256 512; smoke 16 32)",
    )
    p.add_argument("--steps", type=int, default=None, help="GRPO steps per variant (default 10; smoke 4)")
    args = p.parse_args()
    args.budget = args.budget or (600 if args.smoke else 240)
    # gpu_speed.Bench wants these fields too
    args.only, args.sections = "", ""
    bench = Bench(args)
    cfg = (
        {"shape": "smoke", "prompts": 2, "gens": 4, "max_len": 96, "mean_len": 12, "steps": 4}
        if args.smoke
        else {"shape": "0.5b", "prompts": 16, "gens": 8, "max_len": 2048, "mean_len": 128, "steps": 10}
    )
    if args.steps:
        cfg["steps"] = args.steps
    budgets = args.token_budget or ([16, 32] if args.smoke else [256, 512])
    results = {"meta": bench.results["meta"], "config": {**cfg, "token_budgets": budgets}, "variants": {}}
    path = bench.out / "partial_rollouts.json"
    log("meta", json.dumps(results["meta"]))
    # the first budget, then the reference, then the other budgets: an overrun still leaves a comparison
    plan = [(f"budget_{budgets[0]}", budgets[0], 50), ("no_budget", 0, 80)]
    plan += [(f"budget_{b}", b, 50) for b in budgets[1:]]
    for name, budget, need in plan:
        if bench.left() < need:
            results["variants"][name] = {"skipped": f"{bench.left():.0f}s left, needs ~{need}s"}
            log(f"{name}: skipped")
            continue
        log(f"{name}: start")
        bench.reset_mem()
        try:
            res = run_variant(bench, cfg, budget)
            res["peak_gib"] = bench.peak_gib()
        except Exception as err:  # noqa: BLE001 - record and carry on
            res = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
        results["variants"][name] = res
        log(f"{name}: " + json.dumps({k: v for k, v in res.items() if k != "traceback"}))
        path.write_text(json.dumps(results, indent=1))
        bench.reset_mem()
    base = results["variants"].get("no_budget", {})
    if "median_step_s" in base:
        results["summary"] = {
            name: {
                "median_step_s": row["median_step_s"],
                "step_speedup": round(base["median_step_s"] / row["median_step_s"], 2),
                "trained_tokens_per_s": row["trained_tokens_per_s"],
                "throughput_ratio": round(
                    row["trained_tokens_per_s"] / max(base["trained_tokens_per_s"], 1e-9), 2
                ),
            }
            for name, row in results["variants"].items()
            if "median_step_s" in row
        }
        log("summary " + json.dumps(results["summary"]))
    results["meta"]["total_s"] = round(time.time() - T0, 1)
    path.write_text(json.dumps(results, indent=1))
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
