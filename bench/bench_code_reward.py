"""Sandboxed code reward on real benchmark data: throughput and canonical pass rates.

Every HumanEval record's canonical solution (prompt + canonical_solution, in a
```python fence) is scored with `code_reward` against its tests, once with one
worker and once with two; throughput is sandboxed test runs (one subprocess per
completion) per second of wall time. Then every MBPP test-split record
(task_id 11-510) is scored with its reference `code`, with two workers. The
pass rates should be 164/164 and 500/500: a miss is a sandbox problem (a limit
too tight, an import that fails after the privilege drop), not a wrong solution.
`mean_run_s` is the mean wall time of one sandboxed run (process start,
isolation set-up, the tests) measured inside `run_sandboxed`, up to the moment
the harness exits. `overhead_ms` is the per-completion cost of the sandbox
itself: the median time of a whole `run_completion` call (set-up, run,
killing every process of the run and releasing its resources) for a
one-line function with three asserts, one worker, 60 calls. The script runs
against older checkouts too (for before/after figures): fields that an older
sandbox lacks are left out.

Run:  .venv/bin/python bench/bench_code_reward.py [--data ../shared/data] [--limit N]
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def load(path: Path, limit: int | None) -> list[dict]:
    with path.open() as f:
        rows = [json.loads(line) for line in f]
    return rows[:limit] if limit else rows


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


def timed_runs(items: list[tuple[str, str, str | None, str | None]], workers: int) -> tuple[list, float]:
    """Score (completion, tests, entry_point, prompt) items; returns per-item SandboxResults and wall time."""
    from concurrent.futures import ThreadPoolExecutor

    from r1kit.rewards.code import run_completion

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda it: run_completion(it[0], it[1], it[2], it[3]), items))
    return results, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()

    from r1kit.rewards import sandbox
    from r1kit.rewards.code import code_reward, run_completion
    from r1kit.rewards.sandbox import network_isolation_mode, privilege_drop_available

    he = load(args.data / "humaneval.jsonl", args.limit)
    he_items = [
        (
            fenced(r["prompt"] + r["canonical_solution"]),
            r["test"] + f"\ncheck({r['entry_point']})\n",
            r["entry_point"],
            r["prompt"],
        )
        for r in he
    ]
    code_reward(["q"], [fenced("def f():\n    return 1")], tests=["assert f() == 1"])  # warm the probe
    out: dict = {"network": network_isolation_mode(), "own_uid": privilege_drop_available()}
    if hasattr(sandbox, "describe_isolation"):
        out["isolation"] = sandbox.describe_isolation()
    trivial = (
        fenced("def f(x):\n    return x + 1"),
        "assert f(1) == 2\nassert f(2) == 3\nassert f(3) == 4",
        None,
        None,
    )
    times = []
    for _ in range(60):
        start = time.perf_counter()
        assert run_completion(*trivial[:2]).passed
        times.append(time.perf_counter() - start)
    out["overhead_ms"] = round(1000 * sorted(times)[len(times) // 2], 1)
    for workers in (1, 2):
        results, wall = timed_runs(he_items, workers)
        out[f"humaneval_tests_per_s_w{workers}"] = round(len(he_items) / wall, 2)
        out[f"humaneval_passed_w{workers}"] = f"{sum(r.passed for r in results)}/{len(results)}"
        out[f"humaneval_mean_run_s_w{workers}"] = round(sum(r.wall_s for r in results) / len(results), 4)
    out["humaneval_failed"] = [r["task_id"] for r, res in zip(he, results) if not res.passed]

    mb = [r for r in load(args.data / "mbpp.jsonl", None) if 11 <= r["task_id"] <= 510][: args.limit]
    mb_items = [
        (
            fenced(r["code"]),
            (r["test_setup_code"] + "\n" if r["test_setup_code"] else "") + "\n".join(r["test_list"]),
            None,
            r["text"],
        )
        for r in mb
    ]
    results, wall = timed_runs(mb_items, 2)
    out["mbpp_passed_w2"] = f"{sum(r.passed for r in results)}/{len(results)}"
    out["mbpp_asserts_passed"] = f"{sum(r.n_passed for r in results)}/{sum(r.n_tests for r in results)}"
    out["mbpp_tests_per_s_w2"] = round(len(mb_items) / wall, 2)
    out["mbpp_mean_run_s_w2"] = round(sum(r.wall_s for r in results) / len(results), 4)
    slowest = sorted(zip(mb, results), key=lambda p: -p[1].wall_s)[:3]
    out["mbpp_slowest"] = {r["task_id"]: round(res.wall_s, 3) for r, res in slowest}
    out["mbpp_failed"] = [r["task_id"] for r, res in zip(mb, results) if not res.passed]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
