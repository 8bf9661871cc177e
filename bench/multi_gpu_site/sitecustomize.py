"""Probes for bench/multi_gpu.py, loaded into every process that bench launches (and no other).

bench/multi_gpu.py starts `accelerate launch ... -m r1kit sft|grpo ...` exactly as a user would,
with this folder first on PYTHONPATH. Python imports `sitecustomize` at start-up, so every rank
gets these probes without a line of r1kit changed. Each probe is off unless its variable is set:

R1KIT_BENCH_MEM_LOG=DIR       at exit of an r1kit process, write DIR/mem-<RANK>-<PID>.json:
                              torch.cuda.max_memory_allocated / max_memory_reserved of every CUDA
                              device of the process (a rank that allocated on another rank's GPU
                              shows up there), and the peak RSS.
R1KIT_BENCH_ROLLOUT_LOG=DIR   time each GRPO rollout (R1GRPOTrainer._generate_single_turn, the call
                              FastRolloutMixin routes to r1kit's CUDA-graph loop or to trl's path) and
                              append {rank, step, seconds, rows, tokens, fast, mode, fallback, wrapper} to
                              DIR/rollout-<RANK>.jsonl.
R1KIT_BENCH_FIXED_ROLLOUTS=1  after the real rollout ran (and was timed), replace its completions by
                              ones drawn from a generator seeded with (seed, step, global row), where
                              global row = rank × rows per rank + row. Every row of the step's global
                              batch then gets the same completion however the rows are split across
                              ranks, so one and two GPUs (or DDP and FSDP) train on identical data and
                              their losses and gradient norms can be compared step by step. Each
                              completion is R1KIT_BENCH_FIXED_LEN tokens long (default: the run's
                              --max-completion-length), ids drawn uniformly from the non-special ids, as
                              a random-init model samples them.

The sitecustomize that this file shadows (if any) is run afterwards, so the image's own start-up
behaviour is kept.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_TRAINER_MODULE = "r1kit.rl.trainer"


def _rank() -> str:
    return os.environ.get("RANK", "0")


def _append(path: str, record: dict) -> None:
    import json

    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


# ------------------------------------------------------------------------------------- memory


def _record_memory(folder: str) -> None:
    if "r1kit.cli" not in sys.modules:  # the launcher and torchrun's agent: not a rank
        return
    import json
    import resource

    record: dict = {
        "rank": int(_rank()),
        "local_rank": os.environ.get("LOCAL_RANK"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "max_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            record["current_device"] = torch.cuda.current_device()
            record["devices"] = [
                {
                    "device": d,
                    "max_allocated_gib": round(torch.cuda.max_memory_allocated(d) / 2**30, 3),
                    "max_reserved_gib": round(torch.cuda.max_memory_reserved(d) / 2**30, 3),
                }
                for d in range(torch.cuda.device_count())
            ]
    except Exception as err:  # noqa: BLE001 - a probe must never change the exit status
        record["error"] = f"{type(err).__name__}: {err}"
    with open(os.path.join(folder, f"mem-{_rank()}-{os.getpid()}.json"), "w") as fh:
        json.dump(record, fh)


# ------------------------------------------------------------------------------------- rollouts


def _fixed_completions(trainer, n_rows: int, length: int) -> list[list[int]]:
    import torch

    tok = trainer.processing_class
    tok = getattr(tok, "tokenizer", tok)
    special = set(getattr(tok, "all_special_ids", []) or [])
    allowed = torch.tensor([i for i in range(len(tok)) if i not in special])
    rank = int(trainer.accelerator.process_index)
    step = int(trainer.state.global_step)
    seed = int(trainer.args.seed)
    out = []
    for i in range(n_rows):
        row = rank * n_rows + i  # the row's index in the step's global batch (ranks hold equal slices)
        g = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1_000_003 + row) % 2**62)
        out.append(allowed[torch.randint(len(allowed), (length,), generator=g)].tolist())
    return out


def _patch_trainer(cls) -> None:
    import time

    original = cls._generate_single_turn
    folder = os.environ["R1KIT_BENCH_ROLLOUT_LOG"]
    fixed = os.environ.get("R1KIT_BENCH_FIXED_ROLLOUTS") == "1"

    def _generate_single_turn(self, prompt_ids, *args, **kwargs):
        before = len(self.__dict__.get("fast_rollout_log", []))
        t0 = time.perf_counter()
        ids, logprobs = original(self, prompt_ids, *args, **kwargs)  # returns host lists: synchronised
        seconds = time.perf_counter() - t0
        flog = self.__dict__.get("fast_rollout_log", [])
        fast = len(flog) > before
        record = {
            "rank": int(self.accelerator.process_index),
            "step": int(self.state.global_step),
            "seconds": round(seconds, 4),
            "rows": len(ids),
            "tokens": sum(len(x) for x in ids),
            "fast": fast,
            "fixed": fixed,
            "wrapper": type(self.model_wrapped).__name__,
            "distributed_type": str(self.accelerator.distributed_type),
        }
        state = self.accelerator.state
        if getattr(state, "deepspeed_plugin", None) is not None:
            record["zero_stage"] = state.deepspeed_plugin.zero_stage
        if getattr(state, "fsdp_plugin", None) is not None:
            record["fsdp_version"] = state.fsdp_plugin.fsdp_version
        if fast:
            last = flog[-1]
            record.update(
                mode=last.get("mode"),
                captures=last.get("captures"),
                capture_s=round(last.get("capture_s", 0.0), 3),
                fallback=last.get("fallback"),
            )
        if fixed:
            length = int(os.environ.get("R1KIT_BENCH_FIXED_LEN") or self.max_completion_length)
            ids, logprobs = _fixed_completions(self, len(ids), length), None
        _append(os.path.join(folder, f"rollout-{_rank()}.jsonl"), record)
        return ids, logprobs

    cls._generate_single_turn = _generate_single_turn


def _install_trainer_hook() -> None:
    """Patch R1GRPOTrainer as soon as r1kit.rl.trainer is imported (a one-shot meta-path finder)."""
    import importlib.abc
    import importlib.machinery

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname != _TRAINER_MODULE:
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_and_patch(module):
                exec_module(module)
                _patch_trainer(module.R1GRPOTrainer)

            spec.loader.exec_module = exec_and_patch
            return spec

    sys.meta_path.insert(0, _Finder())


# ------------------------------------------------------------------------------------- start-up


def _chain_shadowed() -> None:
    import importlib.util

    for entry in sys.path:
        if not entry or os.path.abspath(entry) == _HERE:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", candidate)
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as err:  # noqa: BLE001 - as Python itself does for sitecustomize
                print(f"Error in {candidate}: {type(err).__name__}: {err}", file=sys.stderr)
            return


if os.environ.get("R1KIT_BENCH_MEM_LOG"):
    import atexit

    atexit.register(_record_memory, os.environ["R1KIT_BENCH_MEM_LOG"])
if os.environ.get("R1KIT_BENCH_ROLLOUT_LOG"):
    _install_trainer_hook()
_chain_shadowed()
