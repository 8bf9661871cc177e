"""Peak memory of `r1kit merge` on two ~500M-parameter bfloat16 checkpoints.

Issue 5 asks that merging two checkpoints fits in about one model's memory (< 1.5x the size of
one checkpoint), not three. This script

1. writes two random-init Qwen2-shaped checkpoints (bfloat16, untied head, ~1.1 GB each) with
   safetensors.torch.save_file, one ~250 MB shard at a time, so the bench itself stays small;
2. runs `python -m r1kit merge --model A --model B --output M` in a subprocess and reads that
   child's own peak RSS from os.wait4 (ru_maxrss). Linux carries the parent's peak RSS over
   into a forked child's ru_maxrss, so the checkpoints are written by a separate subprocess
   and this process imports nothing heavy before the measurement (it stays at ~15 MB);
3. measures an idle `python -c "import torch, transformers"` the same way, because importing the
   stack alone costs a few hundred MB of the figure;
4. checks a few merged tensors against 0.5 * A + 0.5 * B, prints one JSON object and deletes
   everything it wrote.

Run:  .venv/bin/python bench/bench_merge_memory.py [--layers 18] [--keep-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = {
    "vocab_size": 32000,
    "hidden_size": 1536,
    "intermediate_size": 4096,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
}


def layer_tensors(i: int, h: int, inter: int, kv: int) -> dict[str, tuple[int, ...]]:
    p = f"model.layers.{i}."
    return {
        p + "input_layernorm.weight": (h,),
        p + "post_attention_layernorm.weight": (h,),
        p + "self_attn.q_proj.weight": (h, h),
        p + "self_attn.q_proj.bias": (h,),
        p + "self_attn.k_proj.weight": (kv, h),
        p + "self_attn.k_proj.bias": (kv,),
        p + "self_attn.v_proj.weight": (kv, h),
        p + "self_attn.v_proj.bias": (kv,),
        p + "self_attn.o_proj.weight": (h, h),
        p + "mlp.gate_proj.weight": (inter, h),
        p + "mlp.up_proj.weight": (inter, h),
        p + "mlp.down_proj.weight": (h, inter),
    }


def all_shapes(layers: int) -> dict[str, tuple[int, ...]]:
    h, v, inter = SHAPE["hidden_size"], SHAPE["vocab_size"], SHAPE["intermediate_size"]
    kv = h // SHAPE["num_attention_heads"] * SHAPE["num_key_value_heads"]
    shapes = {"model.embed_tokens.weight": (v, h)}
    for i in range(layers):
        shapes.update(layer_tensors(i, h, inter, kv))
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (v, h)
    return shapes


def write_checkpoint(folder: Path, layers: int, seed: int, shard_bytes: int = 250_000_000) -> int:
    """Random bfloat16 checkpoint written shard by shard; returns its weight bytes."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2Config

    folder.mkdir(parents=True)
    Qwen2Config(
        **SHAPE, num_hidden_layers=layers, tie_word_embeddings=False, dtype="bfloat16"
    ).save_pretrained(str(folder))
    gen = torch.Generator().manual_seed(seed)
    shapes = all_shapes(layers)
    groups: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        n = 2 * torch.Size(shape).numel()
        if groups[-1] and size + n > shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += n
    weight_map, total = {}, 0
    for k, names in enumerate(groups, start=1):
        fname = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
        shard = {n: (torch.randn(shapes[n], generator=gen) * 0.02).to(torch.bfloat16) for n in names}
        save_file(shard, str(folder / fname), metadata={"format": "pt"})
        total += sum(t.numel() * 2 for t in shard.values())
        weight_map.update({n: fname for n in names})
        del shard
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    return total


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[int, int, float]:
    """(exit status, peak RSS bytes of that child, wall seconds)."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024, time.time() - t0


def check_sample(a: Path, b: Path, merged: Path, names: list[str]) -> float:
    """Largest |merged - bf16(0.5 A + 0.5 B)| over a few tensors (0.0 expected)."""
    from safetensors import safe_open

    def get(folder: Path, name: str):
        index_file = folder / "model.safetensors.index.json"
        fname = (
            json.loads(index_file.read_text())["weight_map"][name]
            if index_file.exists()
            else "model.safetensors"
        )
        with safe_open(str(folder / fname), framework="pt") as fh:
            return fh.get_tensor(name)

    worst = 0.0
    for name in names:
        want = (0.5 * get(a, name).float() + 0.5 * get(b, name).float()).bfloat16()
        worst = max(worst, (get(merged, name).float() - want.float()).abs().max().item())
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=18, help="decoder layers (18 -> ~0.54B parameters)")
    ap.add_argument("--keep-dir", default="", help="work directory to use (default: a temp dir, deleted)")
    ap.add_argument("--write", nargs=2, metavar=("DIR", "SEED"), help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args()
    if args.write:
        print(write_checkpoint(Path(args.write[0]), args.layers, int(args.write[1])))
        return
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo)}
    work = Path(args.keep_dir or tempfile.mkdtemp(prefix="r1kit-bench-merge-"))
    free = shutil.disk_usage(work).free
    if free < 5e9:
        sys.exit(f"need ~4 GB free in {work}, have {free / 1e9:.1f} GB")
    try:
        t0 = time.time()
        size_a, size_b = (
            int(
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--layers",
                        str(args.layers),
                        "--write",
                        str(work / n),
                        str(seed),
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()[-1]
            )
            for n, seed in (("a", 1), ("b", 2))
        )
        gen_s = time.time() - t0
        own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        rc, peak, wall = run_measured(
            [
                sys.executable,
                "-m",
                "r1kit",
                "merge",
                "--model",
                str(work / "a"),
                "--model",
                str(work / "b"),
                "--output",
                str(work / "m"),
            ],
            env,
        )
        if rc != 0:
            sys.exit(f"r1kit merge failed with status {rc}")
        _, idle, _ = run_measured([sys.executable, "-c", "import torch, transformers, safetensors"], env)
        _, bare, _ = run_measured([sys.executable, "-c", "pass"], env)
        metrics = [json.loads(x) for x in (work / "m" / "metrics.jsonl").read_text().splitlines()]
        merged = metrics[-1]
        err = check_sample(
            work / "a",
            work / "b",
            work / "m" / "model",
            ["model.embed_tokens.weight", "model.layers.7.mlp.down_proj.weight", "model.norm.weight"],
        )
        result = {
            "dtype": "bfloat16",
            "parameters": merged["parameters"],
            "checkpoint_bytes": size_a,
            "checkpoint_bytes_b": size_b,
            "merged_bytes": merged["bytes"],
            "peak_rss_bytes": peak,
            "peak_rss_reported_by_merge": merged["peak_rss_bytes"],
            "idle_import_rss_bytes": idle,
            "bare_python_rss_bytes": bare,
            "bench_parent_rss_bytes_at_spawn": own_rss,
            "ratio_peak_to_checkpoint": round(peak / size_a, 3),
            "ratio_peak_minus_idle_to_checkpoint": round((peak - idle) / size_a, 3),
            "merge_wall_s": round(wall, 1),
            "generate_inputs_s": round(gen_s, 1),
            "max_abs_error_on_sample": err,
            "passes_1_5x": peak < 1.5 * size_a,
        }
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
