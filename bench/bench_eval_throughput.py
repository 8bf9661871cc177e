"""Evaluation throughput: the batched transformers backend vs one prompt at a time.

The tiny model on CPU, greedy, every sample forced to exactly --new-tokens tokens
(min_new_tokens = max_new_tokens, so EOS cannot end a sample early and both runs
generate the same number of tokens). The batched run generates all --prompts
prompts in one call (batch size = --prompts); the one-at-a-time run calls the
same backend with batch_size=1 on the first --sequential-prompts prompts (a
rate, so a subset is enough and keeps the run short). Each run is timed after one
warm-up call. Prints one JSON object; exits 1 when the speed-up is below --min-ratio.

    .venv/bin/python bench/bench_eval_throughput.py
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--sequential-prompts", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--min-ratio", type=float, default=4.0)
    args = ap.parse_args()

    import torch

    from r1kit.generation import SamplingParams, get_backend
    from r1kit.models import load_model_and_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = load_model_and_tokenizer("tiny", device="cpu")
    rng = random.Random(0)
    # arithmetic questions of varied length, so the batched run pays for its left padding
    prompts = [
        f"{rng.randint(1, 10 ** rng.randint(1, 6))}+{rng.randint(1, 10 ** rng.randint(1, 6))}="
        for _ in range(args.prompts)
    ]
    backend = get_backend("hf", model, tok)

    def timed(batch: list[str], batch_size: int) -> tuple[float, int]:
        params = SamplingParams(
            greedy=True, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, batch_size=batch_size
        )
        backend.generate(batch[:2], params)  # warm-up
        t0 = time.perf_counter()
        out = backend.generate(batch, params)
        seconds = time.perf_counter() - t0
        tokens = sum(c.num_tokens for s in out for c in s)
        assert tokens == len(batch) * args.new_tokens, tokens
        return seconds, tokens

    b_s, b_tok = timed(prompts, batch_size=args.prompts)
    s_s, s_tok = timed(prompts[: args.sequential_prompts], batch_size=1)
    result = {
        "model": "tiny (Qwen2, %.2fM params)" % (sum(p.numel() for p in model.parameters()) / 1e6),
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "prompts": args.prompts,
        "new_tokens": args.new_tokens,
        "batched_tokens": b_tok,
        "batched_s": round(b_s, 3),
        "batched_tok_s": round(b_tok / b_s, 1),
        "sequential_prompts": args.sequential_prompts,
        "sequential_tokens": s_tok,
        "sequential_s": round(s_s, 3),
        "sequential_tok_s": round(s_tok / s_s, 1),
    }
    result["ratio"] = round(result["batched_tok_s"] / result["sequential_tok_s"], 2)
    result["ok"] = result["ratio"] >= args.min_ratio
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
