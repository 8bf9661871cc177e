"""Gemma 3 270M on the GPU: is the model healthy, is r1kit's fast loop right, and is it faster?

One process, sections chosen with --sections (default all), stopped before a step that would not
fit in --budget-s. Writes OUT/gemma3_gpu.json after every step (a killed run keeps what it
measured) and prints a short table last.

- check: `r1kit.models.sanity_check` (perplexity of two plain sentences, greedy continuation of
  "The capital of France is") in fp32 and bf16; a perplexity above 100 is flagged (bad load).
- equality: r1kit's decode loop (FastGenerator) against transformers' `generate` (dynamic
  cache), greedy, on N prompts: GSM8K test questions in the 4-shot "Question:/Answer:" format and
  R1-Zero-template arithmetic questions, in bf16 and fp32. Reports the fraction of prompts whose
  greedy token paths are identical, where the diverging ones first differ (min / median / mean
  position), and |log-prob gap| of the greedy token on the common prefix (max / mean): log softmax
  of the raw logits, the same quantity on both sides (transformers' via a logits processor).
- gsm8k: GSM8K test (default all 1,319) x 4 samples at T 0.6, top-p 0.95, 4-shot prompts, stop
  "Question:", answer = last number, with the fast backend and the transformers backend, same
  settings and the same problems: wall time, generated tokens/s, pass@1 +- standard error (over
  problems), pass@4, mean tokens, truncation. Uses r1kit's evaluation functions (load_eval_dataset
  builds the few-shot prompts, evaluate_model samples and scores). Problems go in chunks; when the
  budget runs short, the remaining chunks are skipped and both backends are compared on the
  problems each finished (`problems` in the JSON); pass@1 of fast on hf's subset is also given.

Exact commands (GPU machine, after installing the wheels and assembling the model, bench/README.md):

    python3 bench/real_model_check.py --model "$GGUF" --device cuda            # first, always
    python3 bench/gemma3_gpu.py --model "$GGUF" --budget-s 540                 # all sections
    python3 bench/gemma3_gpu.py --model "$GGUF" --sections check,equality --budget-s 200

On CPU, to check the script end to end (numbers mean little):

    python bench/gemma3_gpu.py --smoke --model /path/to/gemma-3-270m-q4_k_m.gguf --out /tmp/g3
    python bench/gemma3_gpu.py --smoke --model tiny --out /tmp/g3     # any model spec works
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SECTIONS = ("check", "equality", "gsm8k")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", default=os.environ.get("GEMMA3_GGUF", ""), help="model spec (the .gguf; env GEMMA3_GGUF)"
    )
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    p.add_argument(
        "--budget-s", type=float, default=540.0, help="stop starting new steps after this many seconds"
    )
    p.add_argument(
        "--out", default=os.environ.get("OUT", "."), help="folder for gemma3_gpu.json (default $OUT)"
    )
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--data", default=str(DATA), help="folder with gsm8k_test.jsonl and gsm8k_train.jsonl")
    p.add_argument("--smoke", action="store_true", help="a handful of prompts and few tokens (CPU check)")
    p.add_argument(
        "--equality-prompts", type=int, default=128, help="prompts per dtype (half GSM8K, half arithmetic)"
    )
    p.add_argument("--equality-tokens", type=int, default=128)
    p.add_argument("--equality-dtypes", default="bfloat16,float32")
    p.add_argument("--gsm8k-limit", type=int, default=0, help="GSM8K test problems (0 = all 1,319)")
    p.add_argument("--gsm8k-samples", type=int, default=4)
    p.add_argument("--gsm8k-tokens", type=int, default=256)
    p.add_argument("--gsm8k-dtype", default="bfloat16")
    p.add_argument("--batch-size", type=int, default=256, help="sequences per batch, both backends")
    p.add_argument(
        "--chunk-problems", type=int, default=330, help="GSM8K problems per chunk (budget granularity)"
    )
    p.add_argument("--backends", default="fast,hf", help="gsm8k backends, in this order")
    args = p.parse_args(argv)
    if args.smoke:
        args.equality_prompts, args.equality_tokens = 4, 12
        args.gsm8k_limit, args.gsm8k_samples, args.gsm8k_tokens = 4, 2, 16
        args.batch_size, args.chunk_problems = 8, 2
    if not args.model:
        raise SystemExit("--model is required (or set GEMMA3_GGUF)")
    bad = set(args.sections.split(",")) - set(SECTIONS)
    if bad:
        raise SystemExit(f"unknown section(s) {sorted(bad)}; choose from {SECTIONS}")
    return args


class Run:
    """Budget, results and the JSON file."""

    def __init__(self, args):
        import torch
        import transformers

        self.args, self.t0 = args, time.perf_counter()
        self.out = Path(args.out) / "gemma3_gpu.json"
        self.out.parent.mkdir(parents=True, exist_ok=True)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.results = {
            "model": args.model,
            "device": device,
            "smoke": args.smoke,
            "budget_s": args.budget_s,
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "sections": {},
        }
        self.device = device
        self.models: dict = {}
        self.tok = None

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def save(self) -> None:
        self.results["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        self.out.write_text(json.dumps(self.results, indent=1, default=str) + "\n")

    def model(self, dtype: str):
        """The model in `dtype` (loaded once in its stored dtype, converted copies cached)."""
        import torch

        from r1kit.models import load_model_and_tokenizer

        if not self.models:
            t = time.perf_counter()
            base, self.tok = load_model_and_tokenizer(self.args.model, device=self.device)
            base.eval()
            self.models[str(base.dtype).replace("torch.", "")] = base
            self.results["load_s"] = round(time.perf_counter() - t, 1)
            print(
                f"loaded {self.args.model} ({base.config.model_type}, {base.dtype}) in {self.results['load_s']} s",
                flush=True,
            )
        if dtype not in self.models:
            src = next(iter(self.models.values()))
            self.models[dtype] = copy.deepcopy(src).to(getattr(torch, dtype))
        return self.models[dtype]


# --------------------------------------------------------------------------------------- check


def section_check(run: Run) -> dict:
    from r1kit.models import sanity_check

    res = {}
    for dtype in ("float32", "bfloat16"):
        rep = sanity_check(run.model(dtype), run.tok)
        rep["ok"] = max(rep["perplexity"]) <= 100
        res[dtype] = rep
        print(
            f"check {dtype}: perplexity {[round(p, 2) for p in rep['perplexity']]}, "
            f"{rep['prompt']!r} -> {rep['continuation']!r}{'' if rep['ok'] else '  <-- ABSURD: bad load'}",
            flush=True,
        )
    return res


# --------------------------------------------------------------------------------------- equality


def gsm8k_rows(path: Path, n: int) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def equality_prompts(args, n: int) -> list[str]:
    from r1kit.data.arithmetic import make_arithmetic
    from r1kit.data.templates import few_shot_examples, render_few_shot, render_prompt

    data = Path(args.data)
    n_gsm = n // 2
    train = gsm8k_rows(data / "gsm8k_train.jsonl", 50)
    examples = few_shot_examples(train, 4)
    prompts = [render_few_shot(examples, r["question"]) for r in gsm8k_rows(data / "gsm8k_test.jsonl", n_gsm)]
    arith = make_arithmetic(n - n_gsm, digits=3, ops=("+",), max_checks=0, seed=1)
    return prompts + [render_prompt("r1-zero", r["question"]) for r in arith]


def hf_greedy_with_logprobs(model, tok, prompt_ids, max_new, eos, pad, batch):
    """transformers greedy tokens (cut after EOS) and the log-prob of each chosen token."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    class Record(LogitsProcessor):
        def __init__(self):
            self.steps = []

        def __call__(self, input_ids, scores):
            s = scores.float()
            self.steps.append(s.max(-1).values - s.logsumexp(-1))  # greedy: the argmax token's log-prob
            return scores

    tokens, logprobs = [], []
    for c0 in range(0, len(prompt_ids), batch):
        rows = prompt_ids[c0 : c0 + batch]
        width = max(map(len, rows))
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=model.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=model.device)
        rec = Record()
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=max_new,
                eos_token_id=eos,
                pad_token_id=pad,
                logits_processor=LogitsProcessorList([rec]),
                disable_compile=True,
                repetition_penalty=1.0,
            )
        lp = torch.stack(rec.steps, 1).cpu()
        for r, seq in enumerate(out[:, width:].tolist()):
            end = next((i for i, t in enumerate(seq) if t in eos), None)
            keep = len(seq) if end is None else end + 1
            tokens.append(seq[:keep])
            logprobs.append(lp[r, :keep].tolist())
    return tokens, logprobs


def compare_paths(hf_tok, hf_lp, fast_tok, fast_lp) -> dict:
    identical, firsts, gaps = 0, [], []
    for a, la, b, lb in zip(hf_tok, hf_lp, fast_tok, fast_lp):
        if a == b:
            identical += 1
            common = len(a)
        else:
            common = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            firsts.append(common)
        gaps += [abs(x - y) for x, y in zip(la[:common], lb[:common])]
    n = len(hf_tok)
    return {
        "prompts": n,
        "identical": identical,
        "identical_frac": identical / n if n else None,
        "first_divergence": {
            "min": min(firsts),
            "median": statistics.median(firsts),
            "mean": round(statistics.fmean(firsts), 1),
            "all": firsts,
        }
        if firsts
        else None,
        "logprob_gap_max": max(gaps) if gaps else None,
        "logprob_gap_mean": statistics.fmean(gaps) if gaps else None,
        "positions_compared": len(gaps),
    }


def section_equality(run: Run) -> dict:
    from r1kit.generation import encode_prompts
    from r1kit.generation.base import generation_ids
    from r1kit.generation.fast import FastGenerator

    args, res = run.args, {}
    prompts = None
    for dtype in args.equality_dtypes.split(","):
        if run.left() < 30:
            res[dtype] = {"skipped": "budget"}
            continue
        model = run.model(dtype)
        prompts = prompts or equality_prompts(args, args.equality_prompts)
        ids = encode_prompts(run.tok, prompts)
        eos, pad = generation_ids(model, run.tok)
        t = time.perf_counter()
        hf_tok, hf_lp = hf_greedy_with_logprobs(model, run.tok, ids, args.equality_tokens, eos, pad, 64)
        hf_s = time.perf_counter() - t
        gen = FastGenerator(
            model,
            max_batch=min(len(ids), 256),
            max_len=max(map(len, ids)) + args.equality_tokens,
            eos_token_ids=eos,
            pad_token_id=pad,
        )
        t = time.perf_counter()
        outs = gen.generate(
            ids, max_new_tokens=args.equality_tokens, greedy=True, temperature=1.0, return_logprobs=True
        )
        fast_s = time.perf_counter() - t
        gen.release()
        r = compare_paths(hf_tok, hf_lp, [o.token_ids for o in outs], [o.logprobs for o in outs])
        n_gsm = len(prompts) // 2
        r["gsm8k_identical"] = sum(a == o.token_ids for a, o in zip(hf_tok[:n_gsm], outs[:n_gsm]))
        r["arithmetic_identical"] = sum(a == o.token_ids for a, o in zip(hf_tok[n_gsm:], outs[n_gsm:]))
        r.update(
            hf_s=round(hf_s, 2),
            fast_s=round(fast_s, 2),
            fast_mode=gen.stats.mode,
            fast_fallback=gen.fallback,
            max_new_tokens=args.equality_tokens,
            example=run.tok.decode(outs[0].token_ids[:60]),
        )
        res[dtype] = r
        print(
            f"equality {dtype}: identical {r['identical']}/{r['prompts']}, first divergence "
            f"{r['first_divergence'] and {k: v for k, v in r['first_divergence'].items() if k != 'all'}}, "
            f"max |logprob gap| {r['logprob_gap_max']}",
            flush=True,
        )
        run.save()
    return res


# --------------------------------------------------------------------------------------- gsm8k


def evaluate_model_function():
    """r1kit's `evaluate_model` (sample + score + summarize), from the evaluate stage or the library
    module it may have moved to."""
    import importlib

    for name in ("r1kit.stages.evaluate", "r1kit.evaluation", "r1kit.eval"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "evaluate_model"):
            return mod.evaluate_model
    raise ImportError("r1kit's evaluate_model was not found")


def pass1_se(rows: list[dict]) -> tuple[float, float, int]:
    """pass@1 over problems and its standard error (sd of per-problem means / sqrt(problems))."""
    per: dict[int, list[bool]] = {}
    for r in rows:
        if r["correct"] is not None:
            per.setdefault(r["prompt_index"], []).append(bool(r["correct"]))
    means = [sum(v) / len(v) for v in per.values()]
    if not means:
        return float("nan"), float("nan"), 0
    sd = statistics.stdev(means) if len(means) > 1 else 0.0
    return statistics.fmean(means), sd / math.sqrt(len(means)), len(means)


def section_gsm8k(run: Run) -> dict:
    from r1kit.evaluation import load_eval_dataset
    from r1kit.generation import get_backend
    from r1kit.stages.evaluate import Config

    args = run.args
    evaluate_model = evaluate_model_function()
    data = Path(args.data)
    cfg = Config(
        model=[args.model],
        data=str(data / "gsm8k_test.jsonl"),
        task="gsm8k",
        few_shot=4,
        few_shot_data=str(data / "gsm8k_train.jsonl"),
        stop=["Question:"],
        extract="last_number",
        num_samples=args.gsm8k_samples,
        temperature=0.6,
        top_p=0.95,
        max_new_tokens=args.gsm8k_tokens,
        sample_batch_size=args.batch_size,
        output=str(Path(args.out) / "unused"),
    )
    dataset = load_eval_dataset(cfg, "raw")  # few-shot prompts are plain text
    if args.gsm8k_limit:
        dataset = dataset.select(range(min(args.gsm8k_limit, len(dataset))))
    params = cfg.sampling_params()
    model = run.model(args.gsm8k_dtype)
    res = {
        "settings": {
            "problems": len(dataset),
            "samples": args.gsm8k_samples,
            "temperature": 0.6,
            "top_p": 0.95,
            "max_new_tokens": args.gsm8k_tokens,
            "batch_size": args.batch_size,
            "dtype": args.gsm8k_dtype,
            "shots": 4,
            "stop": ["Question:"],
            "extract": "last_number",
        }
    }
    all_rows: dict[str, list[dict]] = {}
    for name in args.backends.split(","):
        backend = get_backend(name, model, run.tok)
        rows, wall, done = [], 0.0, 0
        for c0 in range(0, len(dataset), args.chunk_problems):
            chunk = dataset.select(range(c0, min(len(dataset), c0 + args.chunk_problems)))
            if done and wall / done * len(chunk) > run.left():  # the next chunk would not fit
                break
            t = time.perf_counter()
            _, chunk_rows = evaluate_model(
                model,
                run.tok,
                chunk,
                params,
                pass_k=(1,),
                extract="last_number",
                backend=backend,
                model_name=name,
            )
            wall += time.perf_counter() - t
            for r in chunk_rows:
                r["prompt_index"] += c0
            rows += chunk_rows
            done += len(chunk)
        if getattr(backend, "generator", None) is not None:
            backend.generator.release()
        del backend
        all_rows[name] = rows
        p1, se, n = pass1_se(rows)
        tokens = sum(r["num_tokens"] for r in rows)
        res[name] = {
            "problems": done,
            "samples": len(rows),
            "wall_s": round(wall, 1),
            "tokens": tokens,
            "tok_per_s": round(tokens / wall, 1) if wall else None,
            "pass@1": p1,
            "pass@1_se": se,
            "scored": n,
            "pass@k_any": _any_correct(rows),
            "mean_tokens": tokens / len(rows) if rows else None,
            "truncation_rate": sum(r["truncated"] for r in rows) / len(rows) if rows else None,
            "examples": [r["completion"][:300] for r in rows[:2]],
        }
        print(
            f"gsm8k {name}: {done} problems x {args.gsm8k_samples} in {wall:.1f} s, "
            f"{res[name]['tok_per_s']} tok/s, pass@1 {100 * p1:.2f} +- {100 * se:.2f} %",
            flush=True,
        )
        run.save()
    names = list(all_rows)
    if len(names) == 2:  # like for like: the first backend on the problems the second finished
        a, b = names
        shared = res[b]["problems"]
        sub = [r for r in all_rows[a] if r["prompt_index"] < shared]
        p1, se, _ = pass1_se(sub)
        res[f"{a}_on_{b}_problems"] = {"problems": shared, "pass@1": p1, "pass@1_se": se}
        if res[a]["tok_per_s"] and res[b]["tok_per_s"]:
            res["speedup_tok_per_s"] = round(res[a]["tok_per_s"] / res[b]["tok_per_s"], 2)
    return res


def _any_correct(rows: list[dict]) -> float | None:
    per: dict[int, bool] = {}
    for r in rows:
        if r["correct"] is not None:
            per[r["prompt_index"]] = per.get(r["prompt_index"], False) or bool(r["correct"])
    return sum(per.values()) / len(per) if per else None


# --------------------------------------------------------------------------------------- main


def table(results: dict) -> str:
    lines = ["| section | what | result |", "|---|---|---|"]
    s = results["sections"]
    for dtype, r in (s.get("check") or {}).items():
        if isinstance(r, dict) and "perplexity" in r:
            lines.append(
                f"| check | {dtype} perplexity / continuation | "
                f"{', '.join(f'{p:.2f}' for p in r['perplexity'])} / {r['continuation']!r} |"
            )
    for dtype, r in (s.get("equality") or {}).items():
        if isinstance(r, dict) and "identical" in r:
            fd = r["first_divergence"]
            lines.append(
                f"| equality | {dtype}: identical greedy paths; first divergence median; max/mean lp gap | "
                f"{r['identical']}/{r['prompts']}; {fd['median'] if fd else '-'}; "
                f"{r['logprob_gap_max']:.3g}/{r['logprob_gap_mean']:.3g} |"
            )
    g = s.get("gsm8k") or {}
    for name in ("fast", "hf"):
        r = g.get(name)
        if isinstance(r, dict) and "wall_s" in r:
            lines.append(
                f"| gsm8k | {name}: problems, wall s, tok/s, pass@1 % +- se | {r['problems']}, {r['wall_s']}, "
                f"{r['tok_per_s']}, {100 * r['pass@1']:.2f} +- {100 * r['pass@1_se']:.2f} |"
            )
    if "speedup_tok_per_s" in g:
        lines.append(f"| gsm8k | fast / hf tokens per second | {g['speedup_tok_per_s']}x |")
    for name, r in s.items():
        if isinstance(r, dict) and "error" in r:
            lines.append(f"| {name} | ERROR | {r['error'][:120]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run = Run(args)
    print(f"gemma3_gpu: {run.results['versions']} on {run.device} ({run.results['gpu']})", flush=True)
    funcs = {"check": section_check, "equality": section_equality, "gsm8k": section_gsm8k}
    for name in args.sections.split(","):
        if run.left() <= 0:
            run.results["sections"][name] = {"skipped": "budget"}
            continue
        t = time.perf_counter()
        try:
            run.results["sections"][name] = funcs[name](run)
        except Exception as err:  # noqa: BLE001 - record it and go on with the next section
            import traceback

            run.results["sections"][name] = {
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc()[-3000:],
            }
            print(f"section {name} failed: {type(err).__name__}: {err}", flush=True)
        run.results["sections"][name + "_s"] = round(time.perf_counter() - t, 1)
        run.save()
    print(f"wrote {run.out}")
    print(table(run.results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
