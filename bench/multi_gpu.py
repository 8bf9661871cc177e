"""Data-parallel scaling and loss equality of `r1kit sft` and `r1kit grpo` on two GPUs, plus GRPO under
FSDP and DeepSpeed ZeRO-2/3, in one budgeted run.

Every run is launched as a user would launch it, from the repo root:

    [CUDA_VISIBLE_DEVICES=0] accelerate launch --config_file recipes/accelerate/ddp.yaml \\
        --num_processes 1|2 --main_process_port P -m r1kit sft|grpo ...

on a random-init Qwen2.5-0.5B-shaped model in bf16 (saved once as a checkpoint folder, with a
word-level tokenizer of Qwen's vocabulary size: random weights do not change throughput), and the
numbers are read back from the run's metrics.jsonl. The only additions are probes in
bench/multi_gpu_site/ (first on PYTHONPATH; see its sitecustomize.py): each rank's allocator peak
per GPU at exit (torch.cuda.max_memory_allocated; no r1kit code changed), a timer around each GRPO
rollout that also records the rollout path (r1kit's CUDA-graph loop or trl's generate), and the
GRPO reward bench/multi_gpu_site/r1kit_bench_reward.py, which logs what each rank scored.
nvidia-smi's view (NVML memory used per GPU, sampled every 0.2 s) is recorded beside it.

Runs, in this order (each starts only if its estimated time is left of --budget-s and is stopped at
the deadline; errors recorded, the next run goes on; the JSON rewritten after every run, so a killed
run keeps what was measured):
  grpo_1gpu | sft_1gpu, sft_1gpu_b2x
                         one process each (ddp.yaml --num_processes 1): grpo on GPU 0 while the two sft
                         runs take GPU 1 one after the other. sft_1gpu_b2x is sft_1gpu with one micro-batch
                         of twice the size: the noise floor of a change of micro-batching alone, to read
                         the 1- vs 2-GPU differences against
  grpo_2gpu, sft_2gpu    ddp.yaml --num_processes 2, same global batch
  shard_ddp, shard_fsdp, shard_zero2, shard_zero3
                         GRPO with a reference model (beta 0.04) on 2 GPUs under ddp.yaml, fsdp.yaml,
                         zero2.yaml, zero3.yaml (ZeRO only if `import deepspeed` works; else its error)
  grpo_2gpu_sampled      grpo_2gpu with the model's own completions (no fixed rollouts)

Same global batch: sft uses --batch-size B --grad-accum 2 on one GPU and --batch-size B on two (same
micro-batch shape per device; accelerate gives rank k the k-th micro-batch); grpo uses the same
--prompts-per-step × G completions and --batch-size (per device) on both, so one GPU accumulates twice
as many micro-batches.

Loss equality, what is compared and why:
- sft: loss and grad_norm of steps 1-5. Tolerance: relative 2e-3 on the loss (bf16 unit roundoff
  2^-9 ≈ 2e-3: the weights are bf16 (the checkpoint's dtype, as `--dtype auto` loads it), so after a
  step the two runs may round an update differently, which moves a logit by ~1 ulp; step 1 sees
  identical weights and identical micro-batches and should agree to ~1e-6), relative 1e-2 on
  grad_norm (gradients accumulate in bf16 on one GPU and are all-reduced on two: ~1 ulp per element).
  A wrong split (a rank seeing the wrong rows, a doubled normaliser) shows up at O(1).
- grpo: rollouts are sampled, and each rank's sampler has its own RNG stream, so one and two GPUs
  would train on different completions. With R1KIT_BENCH_FIXED_ROLLOUTS the real rollout still runs
  (and is timed), then its completions are replaced by ones drawn from (seed, step, global row):
  identical however rows are split over ranks, and shaped like a random model's (full length, ids
  uniform over the vocabulary). Trained on identical data, the runs must agree on: reward and
  reward_std (same completions, same reward: atol 1e-5), grad_norm (relative 1e-2, as sft), entropy
  (relative 1e-3: per-row forward passes are identical, only the mean's order differs), and the
  loss (absolute 1e-3: with beta 0 and one iteration the GRPO surrogate's value is -mean(advantage),
  zero by construction; its gradient is not, which is why grad_norm is the sharp check here).
  grpo_2gpu_sampled then shows the same step time with the model's own samples.
- shard_*: GRPO under FSDP / ZeRO against shard_ddp on the same fixed rollouts, beta 0.04 (so the
  reference model is sharded too and the loss carries a KL term after step 1). Judged on steps 1-2:
  grad_norm relative 2e-2 (both reduce bf16 gradients, in another order; FSDP 2 and ZeRO keep fp32
  gradient shards, whose norm skips DDP's last bf16 rounding), entropy 1e-3, reward,
  and the step-1 loss (absolute 1e-3); kl and later steps are listed, not judged: DDP trains the bf16
  weights with bf16 Adam state, while FSDP 2 and ZeRO keep fp32 master weights (accelerate and
  DeepSpeed upcast). With Adam's first steps moving every weight by ~lr = 1e-4, both runs round to the
  same bf16 weights for step 2; from step 3 the fp32 masters have accumulated updates under half a
  bf16 ulp that DDP drops, so the runs part by design, not by a bug. A sharding bug (a gradient not
  averaged, an optimizer shard not applied) shows at step 1 or 2 at O(1).
Every comparison lists the measured differences; tolerances are a priori, to be read against the
measured sft_1gpu_b2x noise floor.

Scaling efficiency = throughput on 2 GPUs / throughput on 1 (target >= 1.8 for grpo). GRPO sizes
default to 64 prompts × G 16 × 256 tokens per step (1024 completions; each GPU decodes 512 rows on two
GPUs): a decode step costs nearly the same at half the batch, so small steps cannot scale.

Run on the 2-GPU machine (kind nvidia-h200-x2), from the repo root, after installing the wheels:
    python3 bench/multi_gpu.py --budget-s 450           (writes $OUT/multi_gpu.json and multi_gpu.md)
Here on CPU (tiny model, gloo, recipes/accelerate/ddp_cpu.yaml, 2 processes, 3 steps):
    .venv/bin/python bench/multi_gpu.py --smoke --out /tmp/multi_gpu
On a CPU, accelerate runs fsdp.yaml with use_cpu as plain data parallelism (the run's `note` says so),
and ZeRO-3 with beta > 0 fails (accelerate's CPU path leaves deepspeed.comm uninitialised when trl
loads the reference model under zero.Init); ZeRO-2 runs once DeepSpeed has JIT-compiled its CPU
shared-memory comm op (minutes, cached in ~/.cache/torch_extensions).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "bench" / "multi_gpu_site"
RECIPES = REPO / "recipes" / "accelerate"
sys.path.insert(0, str(REPO))
T0 = time.time()

SHAPES = {
    "0.5b": {
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "intermediate_size": 4864,
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


@dataclass
class Sizes:
    """Per-run sizes. sft: prompt + completion tokens per row; grpo/shard: prompts × G per step."""

    shape: str = "0.5b"
    sft_batch: int = 16  # per device; 1 GPU: × grad-accum 2
    sft_prompt: int = 64
    sft_completion: int = 447  # + EOS = 512 tokens per row
    sft_steps: int = 10
    sft_lr: float = 1e-4  # large enough that bf16 weights move (1e-5 updates round away)
    grpo_prompts: int = 64
    grpo_g: int = 16
    grpo_len: int = 256
    grpo_batch: int = 64  # completions per device per forward/backward
    grpo_steps: int = 6
    grpo_lr: float = 1e-4
    grpo_prompt_len: int = 32
    shard_prompts: int = 15  # 15 × 8 = 120 completions, 60 per rank: a group straddles the ranks
    shard_g: int = 8
    shard_len: int = 48
    shard_batch: int = 30
    shard_steps: int = 4
    shard_beta: float = 0.04
    warmup_steps: int = 2  # step durations left out of the median (graph capture, allocator)


SMOKE = Sizes(
    shape="smoke",
    sft_batch=4,
    sft_prompt=16,
    sft_completion=47,
    sft_steps=3,
    sft_lr=1e-3,
    grpo_prompts=3,
    grpo_g=4,
    grpo_len=16,
    grpo_batch=6,
    grpo_steps=3,
    grpo_lr=1e-3,
    grpo_prompt_len=8,
    shard_prompts=3,
    shard_g=4,
    shard_len=16,
    shard_batch=6,
    shard_steps=3,
    warmup_steps=1,
)

# metrics compared step by step: key -> (relative tolerance, absolute tolerance)
TOL_SFT = {"loss": (2e-3, 0.0), "grad_norm": (1e-2, 0.0)}
TOL_GRPO = {
    "reward": (0.0, 1e-5),
    "reward_std": (0.0, 1e-5),
    "grad_norm": (1e-2, 0.0),
    "entropy": (1e-3, 0.0),
    "loss": (0.0, 1e-3),
}
# shard: judged on steps 1-2 only (both runs still compute with the same bf16 weights there; see the
# module docstring), the loss on step 1 only (afterwards it is beta x KL, a small difference of noisy terms)
TOL_SHARD = {"reward": (0.0, 1e-5), "grad_norm": (2e-2, 0.0), "entropy": (1e-3, 0.0), "loss": (0.0, 1e-3, 1)}
METRIC_KEYS = (
    "loss",
    "grad_norm",
    "entropy",
    "reward",
    "reward_std",
    "kl",
    "mean_token_accuracy",
    "num_tokens",
    "completions/mean_length",
    "rollout/fast_path",
    "rollout/tokens_per_s",
    "tokens_per_s",
    "frac_reward_zero_std",
    "learning_rate",
    "step_time",
)


def log(*args) -> None:
    print(f"[{time.time() - T0:6.1f}s]", *args, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, chars: int = 3000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:]


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def count_gpus() -> int:
    """GPUs visible, without creating a CUDA context in this process (NVML's fallback)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], check=False, capture_output=True, text=True, timeout=60
        ).stdout
        return sum(line.startswith("GPU ") for line in out.splitlines())
    except (OSError, subprocess.TimeoutExpired):
        pass
    code = "import torch; print(torch.cuda.device_count())"
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    return int(out.stdout.strip() or 0)


def root_error(text: str) -> str | None:
    """The first exception line a rank printed ("[rank0]: ValueError: ..." and its continuation), not
    the launcher's ChildFailedError summary."""
    lines = text.splitlines()
    pattern = re.compile(r"^(\[rank\d+\]: )?([\w.]+(Error|Exception|Interrupt)|R1kitError|r1kit): ")
    for i, line in enumerate(lines):
        m = pattern.match(line)
        if m and "ChildFailedError" not in line:
            prefix = m.group(1) or ""
            out = line[len(prefix) :]
            for nxt in lines[i + 1 : i + 3]:
                if prefix and nxt.startswith(prefix) and not pattern.match(nxt) and "│" not in nxt:
                    out += " " + nxt[len(prefix) :].strip()
            return out[:600]
    return None


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-30)


# ------------------------------------------------------------------------------------- GPU memory


class NvmlSampler(threading.Thread):
    """Memory used per GPU (NVML, what nvidia-smi shows), sampled every `interval` seconds."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        import pynvml

        self.nvml = pynvml
        pynvml.nvmlInit()
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        self.names = [pynvml.nvmlDeviceGetName(h) for h in self.handles]
        self.interval = interval
        self.samples: list[tuple[float, list[float]]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def read(self) -> list[float]:
        return [self.nvml.nvmlDeviceGetMemoryInfo(h).used / 2**30 for h in self.handles]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append((time.time(), self.read()))
            except Exception as err:  # noqa: BLE001 - a failed read is a missing sample
                if len(self.errors) < 100:
                    self.errors.append(f"{type(err).__name__}: {err}")
            self.stop.wait(self.interval)

    def peak(self, t0: float, t1: float) -> list[float] | None:
        window = [used for t, used in self.samples if t0 <= t <= t1]
        if not window:
            return None
        return [round(max(col), 2) for col in zip(*window)]


# ------------------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.smoke = args.smoke
        self.sizes = SMOKE if args.smoke else Sizes()
        for field in (
            "grpo_prompts",
            "grpo_g",
            "grpo_len",
            "grpo_batch",
            "grpo_steps",
            "sft_steps",
            "sft_batch",
        ):
            value = getattr(args, field, None)
            if value:
                setattr(self.sizes, field, value)
        self.out = Path(args.out or os.environ.get("OUT") or ".")
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(args.work or tempfile.mkdtemp(prefix="r1kit-multigpu-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.deadline = T0 + args.budget_s
        self.only = {s for s in args.only.split(",") if s} if args.only else set()
        self.results: dict = {
            "meta": self.meta(),
            "sizes": asdict(self.sizes),
            "setup": {},
            "runs": {},
            "comparisons": {},
            "scaling": {},
        }
        self.sampler: NvmlSampler | None = None
        self.gpus = 0
        if not self.smoke:
            try:
                self.sampler = NvmlSampler()
                self.gpus = len(self.sampler.handles)
                self.results["meta"]["gpus"] = self.sampler.names
                self.results["meta"]["nvml_idle_gib"] = [round(x, 2) for x in self.sampler.read()]
                self.sampler.start()
            except Exception as err:  # noqa: BLE001
                self.results["meta"]["nvml"] = f"unavailable: {type(err).__name__}: {err}"
                self.sampler = None
                self.gpus = count_gpus()
                self.results["meta"]["gpus"] = self.gpus
        self.save()

    # ---- plumbing ----------------------------------------------------------------------------

    def meta(self) -> dict:
        from importlib import metadata

        versions = {}
        for name in ("torch", "transformers", "trl", "accelerate", "deepspeed", "datasets", "peft"):
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = None
        return {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "python": sys.version.split()[0],
            "smoke": self.smoke,
            "budget_s": self.args.budget_s,
            "versions": versions,
            "work": str(self.work),
        }

    def left(self) -> float:
        return self.deadline - time.time()

    def save(self) -> None:
        (self.out / "multi_gpu.json").write_text(json.dumps(self.results, indent=1, default=str))

    def wanted(self, name: str) -> bool:
        return not self.only or name in self.only

    # ---- setup: model, tokenizer, data -------------------------------------------------------

    def build_model(self) -> Path:
        """Random-init Qwen2 of the chosen shape + a word-level tokenizer "t0".."t{V-4}" with
        <|endoftext|>, <|pad|>, <|unk|> as the last three ids, saved with r1kit's save_model."""
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

        from r1kit.models import load_tokenizer, save_model

        dims = SHAPES[self.sizes.shape]
        vocab = dims["vocab_size"]
        words = {f"t{i}": i for i in range(vocab - 3)}
        words.update({"<|endoftext|>": vocab - 3, "<|pad|>": vocab - 2, "<|unk|>": vocab - 1})
        core = Tokenizer(models.WordLevel(vocab=words, unk_token="<|unk|>"))
        core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
        tok = PreTrainedTokenizerFast(
            tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|pad|>", unk_token="<|unk|>"
        )
        ids = {"eos_token_id": vocab - 3, "pad_token_id": vocab - 2, "bos_token_id": None}
        cfg = Qwen2Config(
            **dims, tie_word_embeddings=True, max_position_embeddings=4096, rope_theta=1e6, **ids
        )
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(cfg)  # on the CPU: this process never creates a CUDA context
        model = model.to(torch.float32 if self.smoke else torch.bfloat16)
        model.generation_config = GenerationConfig(**ids)
        path = self.work / "model"
        save_model(model, tok, path)
        params = sum(p.numel() for p in model.parameters())
        del model
        back = load_tokenizer(str(path))
        probe = "t5 t17 t1000<|endoftext|>" if vocab > 1001 else "t5 t17 t100<|endoftext|>"
        self.results["setup"]["model"] = {
            "path": str(path),
            "shape": self.sizes.shape,
            "params": params,
            "dtype": "float32" if self.smoke else "bfloat16",
            "tokenizer_roundtrip": back(probe)["input_ids"],
            "tokenizer_class": type(back).__name__,
            "eos": back.eos_token_id,
            "pad": back.pad_token_id,
        }
        return path

    def write_data(self) -> dict[str, Path]:
        import random

        s, vocab = self.sizes, SHAPES[self.sizes.shape]["vocab_size"]
        rng = random.Random(0)

        def words(n: int, pool: int, weights=None) -> str:
            return " ".join(f"t{i}" for i in rng.choices(range(pool), weights=weights, k=n))

        # SFT completions come from a Zipf law over 256 ids: a random model learns that unigram within a
        # few steps, so the losses move and the comparison is not between constants.
        zipf = [1.0 / (k + 1) for k in range(256)]
        sft = self.work / "sft.jsonl"
        with sft.open("w") as fh:
            for _ in range(max(256, 2 * 2 * s.sft_batch * s.sft_steps)):  # two epochs' worth of steps
                fh.write(
                    json.dumps(
                        {
                            "prompt": words(s.sft_prompt, vocab - 3),
                            "completion": " " + words(s.sft_completion, 256, zipf),
                        }
                    )
                    + "\n"
                )
        grpo = self.work / "grpo.jsonl"
        with grpo.open("w") as fh:
            for _ in range(max(64, 2 * max(s.grpo_prompts * s.grpo_steps, s.shard_prompts * s.shard_steps))):
                fh.write(json.dumps({"question": words(s.grpo_prompt_len, vocab - 3), "answer": "0"}) + "\n")
        self.results["setup"]["data"] = {"sft": str(sft), "grpo": str(grpo)}
        return {"sft": sft, "grpo": grpo}

    def accelerate_config(self, name: str) -> Path:
        """The shipped config; in smoke mode its CPU form (use_cpu, no mixed precision, any port)."""
        if not self.smoke:
            return RECIPES / f"{name}.yaml"
        if name == "ddp":
            return RECIPES / "ddp_cpu.yaml"
        import yaml

        cfg = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
        cfg.update(use_cpu=True, mixed_precision="no", main_process_port=0)
        path = self.work / f"{name}_cpu.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def deepspeed_check(self) -> dict:
        proc = subprocess.run(
            [sys.executable, "-c", "import deepspeed, sys; print(deepspeed.__version__)"],
            check=False,
            capture_output=True,
            text=True,
            env=self.env(self.work / "ds_check"),
            timeout=180,
            cwd=REPO,
        )
        res = {"rc": proc.returncode, "stdout": proc.stdout[-500:], "stderr": proc.stderr[-3000:]}
        self.results["setup"]["deepspeed_import"] = res
        return res

    # ---- launching ---------------------------------------------------------------------------

    def env(self, logs: Path, visible: str | None = None, fixed: bool = False) -> dict[str, str]:
        for sub in ("mem", "rollout", "reward"):
            (logs / sub).mkdir(parents=True, exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")
        }
        env.update(
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            PYTHONUNBUFFERED="1",
            R1KIT_DEBUG="1",
            CUDA_DEVICE_ORDER="PCI_BUS_ID",
            OMP_NUM_THREADS="1" if self.smoke else "8",
            PYTHONPATH=os.pathsep.join([str(SITE), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
            R1KIT_BENCH_MEM_LOG=str(logs / "mem"),
            R1KIT_BENCH_ROLLOUT_LOG=str(logs / "rollout"),
            R1KIT_BENCH_REWARD_LOG=str(logs / "reward"),
        )
        # NVLink multicast stays off on the lent machines (and is harmless elsewhere)
        env.setdefault("NCCL_NVLS_ENABLE", "0")
        env.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
        env.setdefault("NVSHMEM_DISABLE_NVLS", "1")
        if fixed:
            env["R1KIT_BENCH_FIXED_ROLLOUTS"] = "1"
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        return env

    def spec(
        self,
        name: str,
        stage: str,
        config: str,
        nproc: int,
        stage_args: list,
        *,
        need: float,
        visible: str | None = None,
        fixed: bool = False,
        kind: str = "",
        pair: str = "",
    ) -> dict:
        run_dir = self.work / name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        output = run_dir / "out"
        cfg = self.accelerate_config(config)
        args = [str(a) for a in stage_args] + ["--output", str(output)]
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(cfg),
            "--num_processes",
            str(nproc),
            "--main_process_port",
            "PORT",
            "-m",
            "r1kit",
            stage,
            *args,
        ]
        shown_cfg = os.path.relpath(cfg, REPO) if cfg.is_relative_to(REPO) else str(cfg)
        user = (f"CUDA_VISIBLE_DEVICES={visible} " if visible is not None else "") + shlex.join(
            [
                "accelerate",
                "launch",
                "--config_file",
                shown_cfg,
                "--num_processes",
                str(nproc),
                "-m",
                "r1kit",
                stage,
                *args,
            ]
        )
        return {
            "name": name,
            "stage": stage,
            "config": config,
            "nproc": nproc,
            "cmd": cmd,
            "user_command": user,
            "env": self.env(run_dir / "logs", visible, fixed),
            "dir": run_dir,
            "output": output,
            "need": need,
            "visible": visible,
            "fixed_rollouts": fixed,
            "kind": kind or stage,
            "pair": pair,
        }

    def run_group(self, specs: list[dict]) -> None:
        self.run_lanes([[spec] for spec in specs])

    def run_lanes(self, lanes: list[list[dict]]) -> None:
        """Run the lanes side by side (each on its own GPUs), the specs of a lane one after another."""
        lanes = [[spec for spec in lane if self.wanted(spec["name"])] for lane in lanes]
        live: list[dict] = []
        while live or any(lanes):
            for lane in lanes:
                while lane and not any(x is lane[0] for x in live):
                    if "proc" in lane[0]:  # finished: the next one may start
                        lane.pop(0)
                    elif self.start(lane[0]):
                        live.append(lane[0])
                    else:  # skipped
                        lane.pop(0)
            time.sleep(0.5)
            for spec in list(live):
                proc = spec["proc"]
                if proc.poll() is None and time.time() - spec["t0"] > spec["timeout"]:
                    self.keep_partial_metrics(spec)
                    self.stop(proc)
                    spec["timed_out"] = True
                if proc.poll() is not None:
                    spec["t1"] = time.time()
                    live.remove(spec)
                    try:
                        res = self.collect(spec)
                    except Exception as err:  # noqa: BLE001 - record and carry on
                        res = {
                            "error": f"collect: {type(err).__name__}: {err}",
                            "traceback": traceback.format_exc(),
                        }
                    self.results["runs"][spec["name"]] = res
                    log(f"{spec['name']}: " + self.one_line(res))
                    self.save()
                    if not self.args.keep:
                        shutil.rmtree(spec["output"], ignore_errors=True)

    def start(self, spec: dict) -> bool:
        """Launch one run if the budget allows; False (and a 'skipped' record) if not."""
        if self.left() < spec["need"]:
            self.results["runs"][spec["name"]] = {
                "skipped": f"budget: {self.left():.0f}s left, needs ~{spec['need']:.0f}s",
                "user_command": spec["user_command"],
            }
            log(f"{spec['name']}: skipped ({self.results['runs'][spec['name']]['skipped']})")
            self.save()
            return False
        spec["timeout"] = max(30.0, min(3 * spec["need"], self.left()))
        spec["stdout"], spec["stderr"] = spec["dir"] / "stdout.log", spec["dir"] / "stderr.log"
        cmd = [str(free_port()) if part == "PORT" else part for part in spec["cmd"]]
        log(f"{spec['name']}: start ({spec['user_command']})")
        spec["t0"] = time.time()
        with spec["stdout"].open("w") as out, spec["stderr"].open("w") as err:
            spec["proc"] = subprocess.Popen(
                cmd, cwd=REPO, env=spec["env"], stdout=out, stderr=err, start_new_session=True
            )
        return True

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        """End the launcher and the ranks it started (they share its process group)."""
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def keep_partial_metrics(self, spec: dict) -> None:
        from r1kit.outputs import partial_dir

        src = partial_dir(spec["output"]) / "metrics.jsonl"
        if src.is_file():
            shutil.copy(src, spec["dir"] / "partial_metrics.jsonl")

    # ---- reading a run back ------------------------------------------------------------------

    def collect(self, spec: dict) -> dict:
        s = self.sizes
        rc = spec["proc"].returncode
        res: dict = {
            "rc": rc,
            "wall_s": round(spec["t1"] - spec["t0"], 1),
            "user_command": spec["user_command"],
            "config": spec["config"],
            "processes": spec["nproc"],
            "fixed_rollouts": spec["fixed_rollouts"],
            "cuda_visible_devices": spec["visible"],
        }
        if spec.get("pair"):
            res["ran_beside"] = spec["pair"]
        if spec.get("timed_out"):
            res["error"] = f"timed out after {spec['timeout']:.0f}s (killed; metrics so far kept)"
        err_text = tail(spec["stderr"], 200_000)
        if rc != 0 and "error" not in res:
            res["error"] = root_error(err_text) or f"exit status {rc}"
        res["stderr_tail"] = err_text[-4000:]
        res["stdout_tail"] = tail(spec["stdout"], 1500)
        notes = [ln.strip() for ln in err_text.splitlines() if "fast rollouts not used" in ln]
        if notes:
            res["fast_rollout_warning"] = notes[0][-300:]
        metrics = read_jsonl(spec["output"] / "metrics.jsonl") or read_jsonl(
            spec["dir"] / "partial_metrics.jsonl"
        )
        steps = [r for r in metrics if "loss" in r and "event" not in r]
        res["steps"] = [{k: r[k] for k in ("step", "time", *METRIC_KEYS) if k in r} for r in steps]
        res["first5_loss"] = [r.get("loss") for r in steps[:5]]
        times = [r["time"] for r in steps]
        durations = [round(b - a, 3) for a, b in itertools.pairwise(times)]  # step 2 onwards
        res["step_s"] = durations
        steady = durations[max(0, s.warmup_steps - 1) :] or durations
        if steady:
            res["median_step_s"] = round(statistics.median(steady), 3)
        logs = spec["dir"] / "logs"
        if spec["stage"] == "grpo":
            self.grpo_figures(res, spec, steps, logs)
        elif steps and "median_step_s" in res:
            tokens = [r.get("num_tokens") for r in steps]
            diffs = [b - a for a, b in itertools.pairwise(tokens) if a is not None and b is not None]
            per_step = statistics.median(diffs) if diffs else None
            res["tokens_per_step"] = per_step
            if per_step:
                res["tokens_per_s"] = round(per_step / res["median_step_s"])
        res["memory"] = self.memory(spec, logs)
        return res

    def grpo_figures(self, res: dict, spec: dict, steps: list[dict], logs: Path) -> None:
        kind = spec["kind"]
        prompts, G = (
            (self.sizes.shard_prompts, self.sizes.shard_g)
            if kind == "shard"
            else (self.sizes.grpo_prompts, self.sizes.grpo_g)
        )
        res["completions_per_step"] = prompts * G
        if steps and "median_step_s" in res:
            mean_len = statistics.fmean(r.get("completions/mean_length") or 0 for r in steps)
            res["mean_completion_len"] = round(mean_len, 1)
            res["completions_per_s"] = round(prompts * G / res["median_step_s"], 1)
            res["completion_tokens_per_s"] = round(prompts * G * mean_len / res["median_step_s"])
        rollouts = []
        for path in sorted((logs / "rollout").glob("rollout-*.jsonl")):
            rollouts += read_jsonl(path)
        if rollouts:
            by_step: dict[int, list[dict]] = {}
            for r in rollouts:
                by_step.setdefault(r["step"], []).append(r)
            gen = [max(x["seconds"] for x in rs) for _, rs in sorted(by_step.items())]  # the slowest rank
            steady = gen[self.sizes.warmup_steps :] or gen
            res["gen_s"] = [round(g, 3) for g in gen]
            res["median_gen_s"] = round(statistics.median(steady), 3)
            if "median_step_s" in res:
                res["median_train_s"] = round(res["median_step_s"] - res["median_gen_s"], 3)
            fast = {r["fast"] for r in rollouts}
            modes = sorted({str(r.get("mode")) for r in rollouts if r["fast"]})
            res["rollout_path"] = (
                "r1kit fast loop (" + ",".join(modes) + ")"
                if fast == {True}
                else "trl generate"
                if fast == {False}
                else "mixed"
            )
            res["rollout_ranks"] = sorted({r["rank"] for r in rollouts})
            res["wrapper"] = sorted(
                {
                    f"{r.get('wrapper')} ({r.get('distributed_type')}"
                    + (f", ZeRO-{r['zero_stage']}" if r.get("zero_stage") is not None else "")
                    + (f", FSDP v{r['fsdp_version']}" if r.get("fsdp_version") is not None else "")
                    + ")"
                    for r in rollouts
                }
            )
            expected = {
                "ddp": "DistributedDataParallel",
                "fsdp": "FSDP",
                "zero2": "DeepSpeedEngine",
                "zero3": "DeepSpeedEngine",
            }[spec["config"]]
            stage = {"zero2": 2, "zero3": 3}.get(spec["config"])
            res["sharded_as_configured"] = spec["nproc"] == 1 or all(
                expected in str(r.get("wrapper")) and (stage is None or r.get("zero_stage") == stage)
                for r in rollouts
            )
            if not res["sharded_as_configured"]:
                res["note"] = f"{spec['config']} asked for, but the trainer ran {', '.join(res['wrapper'])}"
                if self.smoke:
                    res["note"] += (
                        " (accelerate runs FSDP configs with use_cpu as plain CPU data parallelism)"
                    )
            fallbacks = sorted({str(r["fallback"]) for r in rollouts if r.get("fallback")})
            if fallbacks:
                res["rollout_fallbacks"] = fallbacks
            res["real_rollout_tokens_per_rank_step"] = statistics.median(r["tokens"] for r in rollouts)
        fwd_bwd = [
            r["step_time"]
            for r in steps[self.sizes.warmup_steps :] or steps
            if r.get("step_time") is not None
        ]
        if (
            fwd_bwd
        ):  # trl's step_time: rank 0's forward + backward passes of the step (no rollout, no optimizer)
            res["median_fwd_bwd_s"] = round(statistics.median(fwd_bwd), 3)
        fast_metric = [r.get("rollout/fast_path") for r in steps if r.get("rollout/fast_path") is not None]
        if fast_metric:
            res["metric_rollout_fast_path"] = statistics.fmean(fast_metric)
        res["groups"] = self.check_groups(logs / "reward", steps, G)

    def check_groups(self, folder: Path, steps: list[dict], G: int) -> dict:
        """Every prompt's G completions side by side in the gathered batch (rank 0's rows, then rank
        1's), and the logged reward / reward_std equal to those of all ranks' scores."""
        records: dict[int, dict[int, list[dict]]] = {}
        for path in sorted(folder.glob("reward-*.jsonl")):
            for r in read_jsonl(path):
                records.setdefault(r["step"], {}).setdefault(r["rank"], []).append(r)
        logged = {r["step"]: r for r in steps}
        out = {
            "steps": 0,
            "whole": True,
            "straddling": 0,
            "max_reward_diff": 0.0,
            "max_reward_std_diff": 0.0,
            "ranks": sorted({k for v in records.values() for k in v}),
        }
        for step, ranks in sorted(records.items()):
            batch = [r for rank in sorted(ranks) for r in ranks[rank]]
            groups = [batch[i : i + G] for i in range(0, len(batch), G)]
            out["steps"] += 1
            out["whole"] &= all(len(g) == G and len({r["prompt"] for r in g}) == 1 for g in groups)
            out["straddling"] += sum(len({r["rank"] for r in g}) > 1 for g in groups)
            rewards = [r["reward"] for r in batch]
            metrics = logged.get(step + 1)
            if metrics and metrics.get("reward") is not None and len(rewards) > 1:
                out["max_reward_diff"] = max(
                    out["max_reward_diff"], abs(metrics["reward"] - statistics.fmean(rewards))
                )
                if metrics.get("reward_std") is not None:
                    out["max_reward_std_diff"] = max(
                        out["max_reward_std_diff"], abs(metrics["reward_std"] - statistics.stdev(rewards))
                    )
        out["gathered"] = (
            out["steps"] > 0 and out["max_reward_diff"] < 1e-5 and out["max_reward_std_diff"] < 1e-4
        )
        return out

    def memory(self, spec: dict, logs: Path) -> dict:
        ranks = []
        for path in sorted((logs / "mem").glob("mem-*.json")):
            try:
                ranks.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError) as err:
                ranks.append({"file": path.name, "error": str(err)})
        out: dict = {"per_rank": ranks}
        for r in ranks:
            own = r.get("current_device")
            for d in r.get("devices", []):
                if d["device"] == own:
                    r["peak_allocated_gib"] = d["max_allocated_gib"]
                elif d["max_allocated_gib"] > 0 or d["max_reserved_gib"] > 0:
                    r.setdefault("on_other_devices", []).append(d)
        if self.sampler is not None and "t0" in spec:
            peak = self.sampler.peak(spec["t0"], spec.get("t1", time.time()))
            if peak is not None:
                if spec["visible"] is not None:
                    visible = [int(x) for x in spec["visible"].split(",")]
                    out["nvml_peak_gib"] = {str(i): peak[i] for i in visible if i < len(peak)}
                else:
                    out["nvml_peak_gib"] = {str(i): p for i, p in enumerate(peak)}
                if spec.get("pair"):
                    out["nvml_note"] = (
                        "per GPU: only this run used the GPUs listed (the paired run had the other)"
                    )
        return out

    @staticmethod
    def one_line(res: dict) -> str:
        keep = (
            "rc",
            "error",
            "wall_s",
            "median_step_s",
            "median_gen_s",
            "tokens_per_s",
            "completions_per_s",
            "rollout_path",
            "first5_loss",
        )
        return json.dumps({k: res[k] for k in keep if k in res}, default=str)

    # ---- the runs ----------------------------------------------------------------------------

    def sft_args(self, model: Path, data: Path, batch: int, accum: int) -> list:
        s = self.sizes
        return [
            "--model",
            model,
            "--data",
            data,
            "--max-steps",
            s.sft_steps,
            "--batch-size",
            batch,
            "--grad-accum",
            accum,
            "--learning-rate",
            s.sft_lr,
            "--lr-scheduler",
            "constant",
            "--warmup-ratio",
            0,
            "--logging-steps",
            1,
            "--max-length",
            s.sft_prompt + s.sft_completion + 8,
            "--seed",
            0,
        ]

    def grpo_args(self, model: Path, data: Path, kind: str) -> list:
        s = self.sizes
        prompts, G, length, batch, steps, beta = (
            (s.shard_prompts, s.shard_g, s.shard_len, s.shard_batch, s.shard_steps, s.shard_beta)
            if kind == "shard"
            else (s.grpo_prompts, s.grpo_g, s.grpo_len, s.grpo_batch, s.grpo_steps, 0.0)
        )
        return [
            "--model",
            model,
            "--data",
            data,
            "--prompt-field",
            "question",
            "--answer-field",
            "answer",
            "--template",
            "raw",
            "--reward",
            "r1kit_bench_reward:score=1",
            "--num-generations",
            G,
            "--prompts-per-step",
            prompts,
            "--batch-size",
            batch,
            "--max-completion-length",
            length,
            "--max-steps",
            steps,
            "--learning-rate",
            s.grpo_lr,
            "--beta",
            beta,
            "--logging-steps",
            1,
            "--no-live",
            "--seed",
            0,
        ]

    def run_all(self) -> None:
        t = time.time()
        model = self.build_model()
        data = self.write_data()
        self.results["setup"]["seconds"] = round(time.time() - t, 1)
        torch = sys.modules.get("torch")
        # this process must hold no GPU memory: NVML's per-GPU figures would include it
        self.results["setup"]["driver_cuda_initialized"] = bool(torch and torch.cuda.is_initialized())
        if self.sampler is not None:
            self.results["setup"]["nvml_before_runs_gib"] = [round(x, 2) for x in self.sampler.read()]
        log("setup:", json.dumps(self.results["setup"]["model"]))
        self.save()
        s, smoke = self.sizes, self.smoke
        two = smoke or self.gpus >= 2
        scale = 0.35 if smoke else 1.0  # ~seconds each run needs, for the budget guard
        lane_two = None if smoke else ("1" if two and not self.args.no_concurrent else "0")
        g1 = self.spec(
            "grpo_1gpu",
            "grpo",
            "ddp",
            1,
            self.grpo_args(model, data["grpo"], "grpo"),
            need=75 * scale,
            visible=None if smoke else "0",
            fixed=True,
        )
        f1 = self.spec(
            "sft_1gpu",
            "sft",
            "ddp",
            1,
            self.sft_args(model, data["sft"], s.sft_batch, 2),
            need=40 * scale,
            visible=lane_two,
        )
        b2x = self.spec(
            "sft_1gpu_b2x",
            "sft",
            "ddp",
            1,
            self.sft_args(model, data["sft"], 2 * s.sft_batch, 1),
            need=40 * scale,
            visible=lane_two,
        )
        if self.args.no_concurrent or not two:
            self.run_lanes([[g1, f1, b2x]])
        else:  # one GPU each: grpo on GPU 0 while the two sft runs take GPU 1
            g1["pair"], f1["pair"], b2x["pair"] = "sft_1gpu, sft_1gpu_b2x", "grpo_1gpu", "grpo_1gpu"
            self.run_lanes([[g1], [f1, b2x]])
        if not two:
            for name in ("grpo_2gpu", "sft_2gpu", "shard_ddp", "shard_fsdp", "shard_zero2", "shard_zero3"):
                self.results["runs"][name] = {"skipped": f"needs 2 GPUs, {self.gpus} visible"}
        else:
            self.run_group(
                [
                    self.spec(
                        "grpo_2gpu",
                        "grpo",
                        "ddp",
                        2,
                        self.grpo_args(model, data["grpo"], "grpo"),
                        need=60 * scale,
                        fixed=True,
                    )
                ]
            )
            self.run_group(
                [
                    self.spec(
                        "sft_2gpu",
                        "sft",
                        "ddp",
                        2,
                        self.sft_args(model, data["sft"], s.sft_batch, 1),
                        need=40 * scale,
                    )
                ]
            )
            shard = self.grpo_args(model, data["grpo"], "shard")
            for config, need in (("ddp", 45), ("fsdp", 60), ("zero2", 60), ("zero3", 70)):
                name = f"shard_{config}"
                if not self.wanted(name):
                    continue
                if config.startswith("zero"):
                    check = self.results["setup"].get("deepspeed_import") or self.deepspeed_check()
                    if check["rc"] != 0:
                        self.results["runs"][name] = {
                            "error": "deepspeed cannot be imported: "
                            + (check["stderr"].strip().splitlines() or ["?"])[-1],
                            "stderr_tail": check["stderr"],
                        }
                        self.save()
                        continue
                if smoke and config.startswith("zero"):
                    need = 150  # on a CPU DeepSpeed first JIT-compiles its shared-memory comm op (minutes)
                else:
                    need *= scale
                self.run_group(
                    [self.spec(name, "grpo", config, 2, shard, need=need, fixed=True, kind="shard")]
                )
            self.run_group(
                [
                    self.spec(
                        "grpo_2gpu_sampled",
                        "grpo",
                        "ddp",
                        2,
                        self.grpo_args(model, data["grpo"], "grpo"),
                        need=60 * scale,
                    )
                ]
            )
        self.analyse()

    # ---- analysis ----------------------------------------------------------------------------

    def compare(
        self, ref: str, other: str, tol: dict, judged: int = 5, shown: tuple = (), n: int = 5
    ) -> dict:
        """Steps 1..n of two runs side by side. tol: key -> (rtol, atol[, last judged step]); a key is
        judged (ok / not ok) up to step min(judged, last), and listed, unjudged, after that; keys in
        `shown` are only listed."""
        a, b = self.results["runs"].get(ref, {}), self.results["runs"].get(other, {})
        if not a.get("steps") or not b.get("steps"):
            return {
                "not_compared": f"{ref}: {len(a.get('steps') or [])} steps, {other}: {len(b.get('steps') or [])}"
            }
        rows, ok, worst = [], True, {}
        keys = list(tol) + [k for k in shown if k not in tol]
        for i, (x, y) in enumerate(zip(a["steps"][:n], b["steps"][:n])):
            row = {"step": x.get("step")}
            for key in keys:
                if x.get(key) is None or y.get(key) is None:
                    continue
                diff = abs(x[key] - y[key])
                row[key] = {
                    ref: x[key],
                    other: y[key],
                    "abs": float(f"{diff:.3g}"),
                    "rel": float(f"{rel_diff(x[key], y[key]):.3g}"),
                    "ok": None,
                }
                if key in tol and i < min([judged, *tol[key][2:3]]):
                    rtol, atol = tol[key][:2]
                    good = diff <= atol + rtol * max(abs(x[key]), abs(y[key]))
                    row[key]["ok"] = good
                    ok &= good
                    label = f"{key} ({'rel' if rtol else 'abs'})"
                    worst[label] = max(worst.get(label, 0.0), row[key]["rel" if rtol else "abs"])
            rows.append(row)
        caveat = [
            name for name in (ref, other) if self.results["runs"][name].get("sharded_as_configured") is False
        ]
        return {
            "ref": ref,
            "other": other,
            "steps": rows,
            "max_diff": worst,
            "all_ok": ok,
            "judged_steps": judged,
            "tolerance": {k: list(v) for k, v in tol.items()},
            "not_as_configured": caveat,
        }

    def throughput(self, name: str, key: str) -> float | None:
        return self.results["runs"].get(name, {}).get(key)

    def analyse(self) -> None:
        c = self.results["comparisons"]
        c["sft_1gpu_vs_2gpu"] = self.compare("sft_1gpu", "sft_2gpu", TOL_SFT)
        c["sft_noise_floor_1gpu_vs_b2x"] = self.compare("sft_1gpu", "sft_1gpu_b2x", TOL_SFT)
        c["grpo_1gpu_vs_2gpu"] = self.compare("grpo_1gpu", "grpo_2gpu", TOL_GRPO)
        for config in ("fsdp", "zero2", "zero3"):
            c[f"shard_ddp_vs_{config}"] = self.compare(
                "shard_ddp", f"shard_{config}", TOL_SHARD, judged=2, shown=("kl",)
            )
        sc = self.results["scaling"]
        for stage, key in (("sft", "tokens_per_s"), ("grpo", "completions_per_s")):
            one, two = self.throughput(f"{stage}_1gpu", key), self.throughput(f"{stage}_2gpu", key)
            if one and two:
                sc[stage] = {"metric": key, "1gpu": one, "2gpu": two, "efficiency": round(two / one, 3)}
        g1, g2 = self.results["runs"].get("grpo_1gpu", {}), self.results["runs"].get("grpo_2gpu", {})
        if "grpo" in sc:
            sc["grpo"]["target"] = 1.8
            sc["grpo"]["meets_target"] = sc["grpo"]["efficiency"] >= 1.8
            for part in ("median_gen_s", "median_train_s"):
                if g1.get(part) and g2.get(part):
                    sc["grpo"][f"{part}_ratio_1gpu_over_2gpu"] = round(g1[part] / g2[part], 3)
        if self.smoke:
            sc["note"] = (
                "smoke: CPU processes sharing two cores, the 1-process runs side by side: not a measurement"
            )
        sampled = self.results["runs"].get("grpo_2gpu_sampled", {})
        if sampled.get("median_step_s") and g2.get("median_step_s"):
            sc["grpo_sampled_vs_fixed_step_ratio"] = round(sampled["median_step_s"] / g2["median_step_s"], 3)
        self.save()

    # ---- report ------------------------------------------------------------------------------

    def table(self) -> str:
        head = (
            "| run | procs | rc | rollout path | median step s | gen s | throughput | peak alloc GiB/rank | "
            "NVML peak GiB/GPU | first 5 losses |"
        )
        lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in self.results["runs"].items():
            if "skipped" in r or ("rc" not in r and "error" in r):
                lines.append(f"| {name} | | | | | | | | | {r.get('skipped') or r.get('error')} |")
                continue
            mem = r.get("memory", {})
            peaks = ",".join(
                str(x.get("peak_allocated_gib", x.get("max_rss_gib"))) for x in mem.get("per_rank", [])
            )
            nvml = ",".join(f"{k}:{v}" for k, v in (mem.get("nvml_peak_gib") or {}).items())
            tput = (
                f"{r['completions_per_s']} compl/s, {r.get('completion_tokens_per_s')} tok/s"
                if "completions_per_s" in r
                else f"{r['tokens_per_s']} tok/s"
                if "tokens_per_s" in r
                else ""
            )
            losses = ", ".join(f"{x:.5g}" for x in r.get("first5_loss", []) if x is not None)
            err = f" ERROR {r['error'][:120]}" if r.get("error") else ""
            if r.get("note"):
                err += f" NOTE {r['note'][:160]}"
            lines.append(
                f"| {name} | {r.get('processes')} | {r.get('rc')} | {r.get('rollout_path', '')} | "
                f"{r.get('median_step_s', '')} | {r.get('median_gen_s', '')} | {tput} | {peaks} | {nvml} | "
                f"{losses}{err} |"
            )
        lines.append("")
        for name, comp in self.results["comparisons"].items():
            if "not_compared" in comp:
                lines.append(f"- {name}: not compared ({comp['not_compared']})")
            else:
                worst = ", ".join(f"{k} {v:.2g}" for k, v in comp["max_diff"].items())
                caveat = (
                    f"; {', '.join(comp['not_as_configured'])} did not run as configured"
                    if comp.get("not_as_configured")
                    else ""
                )
                judged = min(comp["judged_steps"], len(comp["steps"]))
                lines.append(
                    f"- {name}: {'OK' if comp['all_ok'] else 'DIFFERS'} over {judged} steps "
                    f"(largest difference: {worst}){caveat}"
                )
        for name, r in self.results["runs"].items():
            if r.get("groups", {}).get("steps"):
                g = r["groups"]
                lines.append(
                    f"- {name}: groups whole {g['whole']}, straddling groups {g['straddling']}, rewards "
                    f"gathered {g['gathered']} (ranks {g['ranks']}, |reward - mean of all ranks| "
                    f"<= {g['max_reward_diff']:.2g})"
                )
        for stage, sc in self.results["scaling"].items():
            if isinstance(sc, dict):
                lines.append(
                    f"- scaling {stage}: {sc['1gpu']} -> {sc['2gpu']} {sc['metric']} = x{sc['efficiency']}"
                    + (
                        f" (target x{sc['target']}: {'met' if sc['meets_target'] else 'NOT met'})"
                        if "target" in sc
                        else ""
                    )
                )
        return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny model on CPU (gloo, ddp_cpu.yaml), 3 steps")
    p.add_argument("--out", default=None, help="folder for multi_gpu.json / .md (default: $OUT, else .)")
    p.add_argument(
        "--work",
        default=None,
        help="scratch folder for the model, data and run outputs (default: a temp dir)",
    )
    p.add_argument(
        "--budget-s", type=float, default=None, help="seconds for the whole run (default 450; smoke 1500)"
    )
    p.add_argument("--only", default="", help="comma-separated run names (default: all)")
    p.add_argument("--no-concurrent", action="store_true", help="run the two 1-GPU runs one after the other")
    p.add_argument(
        "--keep", action="store_true", help="keep each run's output folder (checkpoints) in --work"
    )
    for field, what in (
        ("grpo_prompts", "prompts per GRPO step"),
        ("grpo_g", "GRPO G"),
        ("grpo_len", "GRPO completion tokens"),
        ("grpo_batch", "GRPO completions per device per pass"),
        ("grpo_steps", "GRPO steps"),
        ("sft_steps", "SFT steps"),
        ("sft_batch", "SFT rows per device"),
    ):
        p.add_argument("--" + field.replace("_", "-"), type=int, default=None, help=what)
    args = p.parse_args()
    args.budget_s = args.budget_s or (1500 if args.smoke else 450)
    bench = Bench(args)
    log("meta", json.dumps(bench.results["meta"]))
    try:
        bench.run_all()
    except Exception as err:  # noqa: BLE001 - keep what was measured
        bench.results["error"] = f"{type(err).__name__}: {err}"
        bench.results["traceback"] = traceback.format_exc()
        log("FAILED", bench.results["error"])
        bench.analyse()
    finally:
        if bench.sampler is not None:
            bench.sampler.stop.set()
            bench.results["meta"]["nvml_samples"] = len(bench.sampler.samples)
            bench.results["meta"]["nvml_errors"] = bench.sampler.errors[:5]
        bench.results["meta"]["total_s"] = round(time.time() - T0, 1)
        bench.save()
    table = bench.table()
    (bench.out / "multi_gpu.md").write_text(table + "\n")
    print("\n" + table, flush=True)
    log(f"wrote {bench.out / 'multi_gpu.json'}")


if __name__ == "__main__":
    main()
