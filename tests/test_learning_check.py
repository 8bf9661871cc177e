"""Slow: GRPO learns from the verifier alone on the built-in arithmetic task (bench/learning_check.py).

Cold-start SFT of the tiny model stopped at 30-45% held-out greedy accuracy, then `r1kit grpo`
with the accuracy reward only; held-out greedy accuracy must rise by >= 20 points for each of
two seeds. About 10 minutes on 2 CPU cores (583 s measured; figures in bench/learning_check.py).
"""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "learning_check.py"


@pytest.mark.slow
def test_grpo_raises_heldout_accuracy_by_20_points(tmp_path):
    spec = importlib.util.spec_from_file_location("learning_check", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(
        ["--seeds", "0", "1", "--work", str(tmp_path), "--output", str(tmp_path / "lc.json")]
    )
    for seed, r in results["seeds"].items():
        assert 0.30 <= r["pre_accuracy"] <= 0.45, (seed, r["sft_history"])
        assert r["post_accuracy"] - r["pre_accuracy"] >= 0.20, (seed, r["pre_accuracy"], r["post_accuracy"])
        assert len(r["reward_curve"]) >= 5
