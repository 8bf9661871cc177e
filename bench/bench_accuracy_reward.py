"""Accuracy reward on real benchmark data: agreement with the gold, and throughput on CPU.

For every GSM8K test record (1319) the reference solution's final number, and for every MATH-500
record (500) the reference solution with its answer, is written as an R1-Zero completion
"<think>{solution}</think><answer>{answer}</answer>" and scored against
  * its own gold      -> should be 1.0 for all rows (the rate shows checker misses),
  * a shuffled gold   -> should be ~0 (the rate shows false positives; a derangement, so no row
                         keeps its own gold, but distinct rows may share an answer).
Throughput is accuracy-reward calls per second, one completion per call (math-verify helper
already started): own gold and shuffled gold from cold caches (every gold parsed once), and
shuffled gold again with the golds already parsed but no verdict cached, which is the GRPO case
(G samples per gold; wrong answers make math-verify run to the end), and that same pass as one
reward call over the whole batch (parallel when R1KIT_MATH_WORKERS > 1).

Run:  .venv/bin/python bench/bench_accuracy_reward.py [--data ../shared/data] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path


def load(path: Path, limit: int | None) -> list[dict]:
    with path.open() as f:
        rows = [json.loads(line) for line in f]
    return rows[:limit] if limit else rows


def gsm8k_items(rows: list[dict]) -> list[tuple[str, str]]:
    items = []
    for r in rows:
        solution, final = r["answer"].rsplit("####", 1)
        gold = final.strip().replace(",", "")
        items.append((f"<think>{solution.strip()}</think><answer>{gold}</answer>", gold))
    return items


def math500_items(rows: list[dict]) -> list[tuple[str, str]]:
    return [(f"<think>{r['solution']}</think><answer>{r['answer']}</answer>", r["answer"]) for r in rows]


def derangement(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def score(items: list[tuple[str, str]], golds: list[str]) -> tuple[list, float]:
    from r1kit.rewards import accuracy_reward

    start = time.perf_counter()
    out = [accuracy_reward(prompts=["q"], completions=[c], answer=[g])[0] for (c, _), g in zip(items, golds)]
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()

    from r1kit.answers import _math_equal as _math_verdict
    from r1kit.answers import check_answer, math_gold_ok, math_workers
    from r1kit.judge import _read_gold
    from r1kit.rewards import accuracy_reward

    check_answer("<answer>\\frac{1}{2}</answer>", "\\sqrt{2}")  # start the math-verify helper
    results = {"math_workers": math_workers()}
    for name, items in (
        ("gsm8k_test", gsm8k_items(load(args.data / "gsm8k_test.jsonl", args.limit))),
        ("math500_test", math500_items(load(args.data / "math500_test.jsonl", args.limit))),
    ):
        golds = [g for _, g in items]
        math_gold_ok.cache_clear()
        _read_gold.cache_clear()
        _math_verdict.cache_clear()
        own, t_own = score(items, golds)
        perm = derangement(len(items))
        shuffled = [golds[p] for p in perm]
        _math_verdict.cache_clear()
        wrong, t_wrong = score(items, shuffled)
        same_gold = sum(golds[i] == shuffled[i] for i in range(len(items)))
        _math_verdict.cache_clear()  # golds stay parsed: the GRPO case, G samples per gold
        _, t_warm = score(items, shuffled)
        _math_verdict.cache_clear()
        start = time.perf_counter()
        batch = accuracy_reward(
            prompts=["q"] * len(items), completions=[c for c, _ in items], answer=shuffled
        )
        t_batch = time.perf_counter() - start
        assert batch == wrong
        odd_hits = [
            (golds[i], shuffled[i]) for i, v in enumerate(wrong) if v == 1.0 and golds[i] != shuffled[i]
        ]
        misses = [golds[i] for i, v in enumerate(own) if v != 1.0]
        results[name] = {
            "rows": len(items),
            "own_gold_rate": sum(v == 1.0 for v in own) / len(items),
            "own_gold_none": sum(v is None for v in own),
            "own_gold_misses": misses[:20],
            "shuffled_gold_rate": sum(v == 1.0 for v in wrong) / len(items),
            "shuffled_rows_with_identical_gold_string": same_gold,
            "calls_per_s_own_gold": len(items) / t_own,
            "shuffled_hits_with_different_gold_string": odd_hits,
            "calls_per_s_shuffled_gold": len(items) / t_wrong,
            "calls_per_s_shuffled_gold_parsed": len(items) / t_warm,
            "completions_per_s_shuffled_gold_one_batch": len(items) / t_batch,
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
