"""GPU speed: r1kit's generation (FastGenerator) and GRPO rollouts (FastRolloutMixin) against
transformers' `generate` and trl's GRPOTrainer defaults, side by side, in one run.

Random-init Qwen2.5-shaped models (bf16) over a synthetic word-level tokenizer of the same
vocabulary size; random weights do not change throughput. Lengths are forced with
min_new_tokens, except in the mixed-length cases, where a set of K token ids counts as EOS so
each row stops after a roughly geometric number of steps (mean ~V/K), as real rollouts do.

Sections (each guarded by the remaining time budget; every variant in try/except, its error
recorded, the run continues; JSON rewritten after every variant so a killed run keeps results):
  gen     0.5B: generate(static cache) vs FastGenerator eager / graph, 512 x 512 forced;
          mixed lengths with and without compaction (and generate, if time remains)
  grpo    0.5B: trl GRPOTrainer defaults vs the same trainer + FastRolloutMixin,
          8 prompts x 8 generations x 512 tokens per step, bf16, gradient checkpointing
  gen15 / grpo15   the same for the Qwen2.5-1.5B shape (fewer variants and steps)
  compile FastGenerator with the torch.compile'd step (slow to build: last)

Run on the GPU machine from the repo root:   python3 bench/gpu_speed.py            (writes $OUT/gpu_speed.json)
Run here on CPU (tiny shapes, 2 steps):       python3 bench/gpu_speed.py --smoke --out /tmp/bench
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHAPES = {
    "0.5b": {
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "intermediate_size": 4864,
        "vocab_size": 151936,
    },
    "1.5b": {
        "hidden_size": 1536,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "intermediate_size": 8960,
        "vocab_size": 151936,
    },
    "smoke": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 1024,
    },
}
T0 = time.time()


def log(*args) -> None:
    print(f"[{time.time() - T0:6.1f}s]", *args, flush=True)


class Bench:
    def __init__(self, args):
        import torch

        self.args, self.torch = args, torch
        self.cuda = torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        self.out = Path(args.out or os.environ.get("OUT") or ".")
        self.out.mkdir(parents=True, exist_ok=True)
        self.deadline = T0 + args.budget
        self.results: dict = {"meta": self.meta(), "sections": {}}
        self.tokenizers: dict = {}

    # -------------------------------------------------------------------- plumbing

    def meta(self) -> dict:
        import torch
        import transformers

        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": sys.version.split()[0],
            "smoke": self.args.smoke,
            "budget_s": self.args.budget,
        }
        try:
            import trl

            meta["trl"] = trl.__version__
        except Exception as err:  # noqa: BLE001
            meta["trl"] = f"missing: {err}"
        if torch.cuda.is_available():
            meta["device"] = torch.cuda.get_device_name(0)
            meta["gpu_mem_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        else:
            meta["device"] = "cpu"
        return meta

    def left(self) -> float:
        return self.deadline - time.time()

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def reset_mem(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def alloc_gib(self):
        return round(self.torch.cuda.memory_allocated() / 2**30, 2) if self.cuda else None

    def peak_gib(self):
        return round(self.torch.cuda.max_memory_allocated() / 2**30, 2) if self.cuda else None

    def save(self) -> None:
        path = self.out / "gpu_speed.json"
        path.write_text(json.dumps(self.results, indent=1, default=str))

    def variant(self, section: str, name: str, need_s: float, fn) -> dict | None:
        """Run one measurement; never raises. Skipped when less than need_s seconds remain."""
        rows = self.results["sections"].setdefault(section, {})
        if self.args.only and name not in self.args.only.split(","):
            return None
        if self.left() < need_s:
            rows[name] = {"skipped": f"budget: {self.left():.0f}s left, needs ~{need_s:.0f}s"}
            log(f"{section}/{name}: skipped ({rows[name]['skipped']})")
            self.save()
            return None
        log(f"{section}/{name}: start")
        self.reset_mem()
        start = self.alloc_gib()  # what earlier variants left allocated (a leak shows here)
        try:
            res = fn()
            res.setdefault("peak_gib", self.peak_gib())
            res["start_gib"] = start
            if start is not None and res.get("peak_gib") is not None:
                res["net_peak_gib"] = round(res["peak_gib"] - start, 2)
        except Exception as err:  # noqa: BLE001 - record and carry on
            res = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
            log(f"{section}/{name}: FAILED {res['error']}")
        rows[name] = res
        log(
            f"{section}/{name}: "
            + json.dumps({k: v for k, v in res.items() if k != "traceback"}, default=str)
        )
        self.reset_mem()
        self.save()
        return res

    # -------------------------------------------------------------------- model and data

    def tokenizer(self, vocab: int):
        """Word-level tokenizer "t0".."t{V-4}" + <|endoftext|>, <|pad|>, <|unk|>: exactly V ids."""
        if vocab in self.tokenizers:
            return self.tokenizers[vocab]
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        words = {f"t{i}": i for i in range(vocab - 3)}
        words.update({"<|endoftext|>": vocab - 3, "<|pad|>": vocab - 2, "<|unk|>": vocab - 1})
        core = Tokenizer(models.WordLevel(vocab=words, unk_token="<|unk|>"))
        core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
        tok = PreTrainedTokenizerFast(
            tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|pad|>", unk_token="<|unk|>"
        )
        assert len(tok) == vocab, (len(tok), vocab)
        self.tokenizers[vocab] = tok
        return tok

    def model(self, shape: str, seed: int = 0):
        torch = self.torch
        from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

        dims = SHAPES[shape]
        tok = self.tokenizer(dims["vocab_size"])
        ids = {"eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id, "bos_token_id": None}
        cfg = Qwen2Config(
            **dims, tie_word_embeddings=True, max_position_embeddings=4096, rope_theta=1e6, **ids
        )
        torch.manual_seed(seed)
        with torch.device(self.device):
            model = Qwen2ForCausalLM(cfg)
        model = model.to(torch.bfloat16 if self.cuda else torch.float32)
        model.generation_config = GenerationConfig(**ids)
        return model.eval(), tok

    def prompts(self, n: int, lo: int, hi: int, vocab: int, seed: int = 0) -> list[list[int]]:
        g = self.torch.Generator().manual_seed(seed)
        lengths = self.torch.randint(lo, hi + 1, (n,), generator=g).tolist()
        return [self.torch.randint(0, vocab - 3, (k,), generator=g).tolist() for k in lengths]

    def eos_set(self, vocab: int, mean_len: int) -> list[int]:
        """K ids counted as EOS, K ~ V / mean_len: a near-uniform random model then stops a row
        with probability ~1/mean_len per step."""
        g = self.torch.Generator().manual_seed(123)
        k = max(1, (vocab - 3) // mean_len)
        return sorted(self.torch.randperm(vocab - 3, generator=g)[:k].tolist())

    # -------------------------------------------------------------------- generation

    def hf_generate(self, model, tok, prompts, max_new, min_new, eos):
        torch = self.torch
        width = max(map(len, prompts))
        ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        self.sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                max_new_tokens=max_new,
                min_new_tokens=min_new,
                eos_token_id=eos,
                pad_token_id=tok.pad_token_id,
                cache_implementation="static",
            )
        self.sync()
        seconds = time.perf_counter() - t0
        gen = out[:, width:]
        eos_t = torch.tensor(eos, device=gen.device)
        hit = torch.isin(gen, eos_t)
        first = torch.where(
            hit.any(1), hit.int().argmax(1) + 1, torch.full_like(hit[:, 0], gen.shape[1], dtype=torch.long)
        )
        return seconds, int(first.sum())

    def gen_section(self, section: str, shape: str, n: int, max_new: int, variants: list[str]) -> None:
        from r1kit.generation.fast import FastGenerator

        model, tok = self.model(shape)
        vocab = SHAPES[shape]["vocab_size"]
        prompts = self.prompts(n, 16, 64, vocab)
        width = max(map(len, prompts))
        mixed_eos = self.eos_set(vocab, max(2, max_new // 4))
        eos = [tok.eos_token_id]
        sec = self.results["sections"].setdefault(section, {})
        sec["config"] = {
            "shape": shape,
            "rows": n,
            "max_new_tokens": max_new,
            "prompt_lengths": "16-64",
            "mixed_eos_ids": len(mixed_eos),
        }

        def hf(min_new, eos_ids, runs):
            def run():
                res = {}
                for r in range(runs):
                    seconds, toks = self.hf_generate(model, tok, prompts, max_new, min_new, eos_ids)
                    res[f"run{r + 1}_s"] = round(seconds, 2)
                    res["tokens"] = toks
                    if r + 1 < runs and self.left() < seconds * 1.2 + 60:
                        break
                res["wall_s"] = res[f"run{r + 1}_s"]
                res["tok_per_s"] = round(res["tokens"] / res["wall_s"])
                res["note"] = "run1 includes torch.compile; wall_s is the last run"
                return res

            return run

        def fast(mode, min_new, eos_ids, compaction, runs=2):
            def run():
                gen = FastGenerator(
                    model,
                    max_batch=n,
                    max_len=width + max_new,
                    compile=mode,
                    eos_token_ids=eos_ids,
                    pad_token_id=tok.pad_token_id,
                    compaction=compaction,
                    min_bucket=4 if self.args.smoke else 16,
                )
                res = {}
                for r in range(runs):
                    self.sync()
                    t0 = time.perf_counter()
                    outs = gen.generate(
                        prompts, max_new_tokens=max_new, min_new_tokens=min_new, temperature=1.0, seed=r
                    )
                    self.sync()
                    seconds = time.perf_counter() - t0
                    s = gen.stats
                    toks = sum(len(o.token_ids) for o in outs)
                    res[f"run{r + 1}"] = {
                        "s": round(seconds, 2),
                        "tokens": toks,
                        "captures": s.captures,
                        "capture_s": round(s.capture_s, 2),
                        "prefill_s": round(s.prefill_s, 3),
                        "decode_steps": s.decode_steps,
                        "row_steps": s.row_steps,
                        "compactions": len(s.compactions),
                    }
                    if r + 1 < runs and self.left() < seconds * 1.2 + 30:
                        break
                last = res[f"run{r + 1}"]
                res.update(
                    wall_s=last["s"],
                    tokens=last["tokens"],
                    tok_per_s=round(last["tokens"] / last["s"]),
                    mode=gen.mode,
                    fallback=gen.fallback,
                    mean_len=round(last["tokens"] / n, 1),
                )
                gen.release()
                return res

            return run

        plan = {
            "hf_static_forced": (90, hf(max_new, eos, 2)),
            "fast_eager_forced": (40, fast("eager", max_new, eos, True)),
            "fast_graph_forced": (30, fast("graph", max_new, eos, True)),
            "fast_graph_mixed_compaction": (30, fast("graph", 0, mixed_eos, True)),
            "fast_graph_mixed_no_compaction": (30, fast("graph", 0, mixed_eos, False)),
            "fast_eager_mixed_compaction": (40, fast("eager", 0, mixed_eos, True)),
            "hf_static_mixed": (60, hf(0, mixed_eos, 1)),
            "fast_compile_forced": (150, fast("compile", max_new, eos, True)),
        }
        for name in variants:
            need, fn = plan[name]
            self.variant(section, name, need, fn)
        model = None  # free it before the next section (closures above hold the name)
        self.reset_mem()

    # -------------------------------------------------------------------- GRPO

    def grpo_section(self, section: str, shape: str, steps: int, variants: list[str]) -> None:
        torch = self.torch
        from datasets import Dataset
        from transformers import TrainerCallback
        from trl import GRPOConfig, GRPOTrainer

        from r1kit.rl.fast_rollout import FastRolloutMixin

        smoke = self.args.smoke
        prompts_per_step, gens, max_new = (2, 4, 16) if smoke else (8, 8, 512)
        vocab = SHAPES[shape]["vocab_size"]
        sec = self.results["sections"].setdefault(section, {})
        sec["config"] = {
            "shape": shape,
            "prompts_per_step": prompts_per_step,
            "generations": gens,
            "max_completion_length": max_new,
            "steps": steps,
            "per_device_train_batch_size": gens,
            "gradient_accumulation_steps": prompts_per_step,
            "forced_length": "min_new_tokens",
        }
        texts = [
            " ".join(f"t{i}" for i in p)
            # Equal-length prompts: with left-padded prompts of 32-64 tokens trl's own bf16 step gave a
            # NaN gradient norm on the H200 (run 1, gpu_speed_run1.json), so both sides get 48 tokens.
            for p in self.prompts(prompts_per_step * (steps + 1), 48, 48, vocab, 7)
        ]
        data = Dataset.from_dict({"prompt": texts})
        bench = self

        class Timer(TrainerCallback):
            def __init__(self):
                self.steps, self.t = [], None

            def on_step_begin(self, args, state, control, **kw):
                bench.sync()
                self.t = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                bench.sync()
                self.steps.append(time.perf_counter() - self.t)

        def timed(base):
            class Timed(base):
                gen_times: list

                def _generate_single_turn(self, *a, **kw):
                    bench.sync()
                    # Memory by phase: the peak since the last rollout is the training phase's.
                    phases = self.__dict__.setdefault("mem_phases", [])
                    if bench.cuda:
                        train_peak, before = bench.peak_gib(), bench.alloc_gib()
                        torch.cuda.reset_peak_memory_stats()
                    t0 = time.perf_counter()
                    out = super()._generate_single_turn(*a, **kw)
                    bench.sync()
                    self.__dict__.setdefault("gen_times", []).append(time.perf_counter() - t0)
                    if bench.cuda:
                        phases.append(
                            {
                                "train_peak_before": train_peak,
                                "gen_start": before,
                                "gen_peak": bench.peak_gib(),
                                "gen_end": bench.alloc_gib(),
                            }
                        )
                        torch.cuda.reset_peak_memory_stats()
                    return out

            return Timed

        def reward(completions, **kw):
            return [float(len(c) % 5) for c in completions]

        def run_variant(kind: str, **over):
            def run():
                model, tok = self.model(shape)
                cfg = {
                    "output_dir": tempfile.mkdtemp(prefix="r1kit-bench-"),
                    "per_device_train_batch_size": gens,
                    "gradient_accumulation_steps": prompts_per_step,
                    "num_generations": gens,
                    "max_completion_length": max_new,
                    "max_steps": steps,
                    "learning_rate": 1e-6,
                    "logging_steps": 1,
                    "report_to": [],
                    "save_strategy": "no",
                    "seed": 0,
                    "disable_tqdm": True,
                    "generation_kwargs": {"min_new_tokens": max_new},
                    "bf16": self.cuda,
                    "use_cpu": not self.cuda,
                }
                cfg.update(over)
                base_name = "trl.GRPOTrainer"
                if kind == "trl":
                    cls = timed(GRPOTrainer)
                else:
                    # R1GRPOTrainer (what `r1kit grpo` builds) already mixes FastRolloutMixin in.
                    try:
                        from r1kit.rl.trainer import R1GRPOTrainer

                        base, base_name = R1GRPOTrainer, "r1kit.rl.trainer.R1GRPOTrainer"
                    except Exception as err:  # noqa: BLE001
                        base_name = f"trl.GRPOTrainer + FastRolloutMixin (R1GRPOTrainer import failed: {err})"

                        class base(FastRolloutMixin, GRPOTrainer):
                            pass

                    class Fast(base):
                        fast_rollout = "on"

                    if kind == "fast_keep":  # otherwise the defaults: `r1kit grpo --rollout-cache release`
                        Fast.fast_rollout_keep_cache = True
                    if kind == "fast_one_graph":  # release, one decode graph over the whole cache
                        Fast.fast_rollout_kv_block = 0

                    cls = timed(Fast)
                timer = Timer()
                trainer = cls(
                    model=model,
                    reward_funcs=reward,
                    args=GRPOConfig(**cfg),
                    train_dataset=data,
                    processing_class=tok,
                    callbacks=[timer],
                )
                if self.cuda:
                    torch.cuda.reset_peak_memory_stats()
                trainer.train()
                steps_s = timer.steps
                gen_s = trainer.__dict__.get("gen_times", [])
                later = steps_s[1:] or steps_s
                med = statistics.median(later)
                res = {
                    "trainer": base_name if kind != "trl" else "trl.GRPOTrainer",
                    "step_s": [round(x, 2) for x in steps_s],
                    "gen_s": [round(x, 2) for x in gen_s],
                    "median_step_s": round(med, 2),
                    "median_gen_s": round(statistics.median(gen_s[1:] or gen_s), 2) if gen_s else None,
                    "completion_tok_per_s": round(prompts_per_step * gens * max_new / med),
                }
                res["median_train_s"] = round(med - res["median_gen_s"], 2) if gen_s else None
                phases = trainer.__dict__.get("mem_phases", [])
                if self.cuda and phases:
                    res["mem_phases_gib"] = phases
                    res["peak_gen_gib"] = max(p["gen_peak"] for p in phases)
                    res["peak_train_gib"] = max(
                        [p["train_peak_before"] for p in phases[1:]] + [self.peak_gib()]
                    )
                    res["peak_gib"] = max(res["peak_gen_gib"], res["peak_train_gib"])
                if kind != "trl":
                    flog = trainer.__dict__.get("fast_rollout_log", [])
                    res["fast_rollout"] = flog[-1] if flog else "not used"
                del trainer, model
                return res

            return run

        per_step = 12 if not smoke else 5
        plan = {
            "trl_default": (per_step * (steps + 1) + 30, run_variant("trl")),
            "r1kit_fast": (per_step / 2 * (steps + 1) + 30, run_variant("fast")),
            "r1kit_fast_keep_cache": (per_step / 2 * (steps + 1) + 30, run_variant("fast_keep")),
            "r1kit_fast_one_graph": (per_step / 2 * (steps + 1) + 30, run_variant("fast_one_graph")),
            "r1kit_fast_no_checkpointing": (
                per_step / 2 * (steps + 1) + 30,
                run_variant("fast", gradient_checkpointing=False),
            ),
        }
        for name in variants:
            need, fn = plan[name]
            self.variant(section, name, need * (1.5 if shape == "1.5b" else 1), fn)
        base = sec.get("trl_default", {})
        for name, row in sec.items():
            if isinstance(row, dict) and "median_step_s" in row and "median_step_s" in base:
                row["speedup_vs_trl"] = round(base["median_step_s"] / row["median_step_s"], 2)
        self.save()

    # -------------------------------------------------------------------- report

    def table(self) -> str:
        lines = [
            "| section | variant | wall / median step (s) | tok/s | peak GiB | note |",
            "|---|---|---|---|---|---|",
        ]
        for section, rows in self.results["sections"].items():
            for name, row in rows.items():
                if name == "config" or not isinstance(row, dict):
                    continue
                if "error" in row or "skipped" in row:
                    lines.append(
                        f"| {section} | {name} | - | - | - | {row.get('error') or row.get('skipped')} |"
                    )
                    continue
                wall = row.get("wall_s", row.get("median_step_s"))
                tps = row.get("tok_per_s", row.get("completion_tok_per_s"))
                note = []
                if "speedup_vs_trl" in row:
                    note.append(f"x{row['speedup_vs_trl']} vs trl")
                if row.get("median_gen_s") is not None:
                    note.append(f"gen {row['median_gen_s']}s + train {row['median_train_s']}s")
                if "mean_len" in row:
                    note.append(f"mean len {row['mean_len']}")
                if row.get("fallback"):
                    note.append(str(row["fallback"])[:80])
                if row.get("run1") and isinstance(row["run1"], dict):
                    note.append(f"run1 {row['run1']['s']}s ({row['run1']['captures']} graphs)")
                lines.append(
                    f"| {section} | {name} | {wall} | {tps} | {row.get('peak_gib')} "
                    f"(net {row.get('net_peak_gib')}) | {'; '.join(note)} |"
                )
        return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny shapes, few steps; runs on CPU")
    p.add_argument("--out", default=None, help="output folder (default: $OUT, else .)")
    p.add_argument(
        "--budget", type=float, default=None, help="seconds for the whole run (default 450; smoke 600)"
    )
    p.add_argument(
        "--sections",
        default="gen,grpo,gen15,grpo15,compile",
        help="comma-separated subset of gen,grpo,gen15,grpo15,compile",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="GRPO steps per variant (default 5; 1.5B: 3; smoke 2)"
    )
    p.add_argument(
        "--only", default="", help="comma-separated variant names to run, in any section (default: all)"
    )
    args = p.parse_args()
    args.budget = args.budget or (600 if args.smoke else 450)
    bench = Bench(args)
    log("meta", json.dumps(bench.results["meta"]))
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    smoke = args.smoke
    n, max_new = (16, 48) if smoke else (512, 512)
    big = "smoke" if smoke else "0.5b"
    huge = "smoke" if smoke else "1.5b"
    if "gen" in sections:
        bench.gen_section(
            "gen_0.5b",
            big,
            n,
            max_new,
            [
                "fast_graph_forced",
                "hf_static_forced",
                "fast_eager_forced",
                "fast_graph_mixed_compaction",
                "fast_graph_mixed_no_compaction",
                "fast_eager_mixed_compaction",
            ],
        )
    if "grpo" in sections:
        bench.grpo_section(
            "grpo_0.5b",
            big,
            args.steps or (2 if smoke else 5),
            ["trl_default", "r1kit_fast", "r1kit_fast_keep_cache"],
        )
    if "gen15" in sections:
        bench.gen_section("gen_1.5b", huge, n, max_new, ["fast_graph_forced", "fast_graph_mixed_compaction"])
    if "grpo15" in sections:
        bench.grpo_section(
            "grpo_1.5b",
            huge,
            args.steps or (2 if smoke else 3),
            ["trl_default", "r1kit_fast", "r1kit_fast_keep_cache"],
        )
    if "grpo" in sections:
        bench.grpo_section(
            "grpo_0.5b", big, args.steps or (2 if smoke else 5), ["r1kit_fast_no_checkpointing"]
        )
    if "gen" in sections:
        bench.gen_section("gen_0.5b", big, n, max_new, ["hf_static_mixed"])
    if "compile" in sections:
        bench.gen_section("gen_0.5b", big, n, max_new, ["fast_compile_forced"])
    bench.results["meta"]["total_s"] = round(time.time() - T0, 1)
    bench.save()
    table = bench.table()
    (bench.out / "gpu_speed.md").write_text(table + "\n")
    print("\n" + table, flush=True)
    log(f"wrote {bench.out / 'gpu_speed.json'}")


if __name__ == "__main__":
    main()
