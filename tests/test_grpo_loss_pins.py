"""The logged loss of short real `r1kit grpo` runs, pinned per loss type (issue 16).

The grpo / dapo / dr_grpo losses run through trl's own GRPOConfig switches (loss_type,
epsilon_high, scale_rewards, ...) and the kimi loss through r1kit's code. These pins were
recorded on the code before that move (commit e6051ce, where r1kit computed every loss itself)
and hold unchanged after it, so a change in trl or in r1kit that moves the trained maths fails
here. bench/grpo_loss_equality.py is the longer version of this check (bench/RESULTS.md).

Each run: the random tiny model, 8 built-in arithmetic prompts, 4 prompts x G=4 completions of
at most 12 tokens per step, micro-batches of 8 (gradient accumulation 2), 2 steps, seed 0. The
rewards are functions of the sampled token ids, so every group but the ones built to be flat has
reward variance. Runs are bitwise repeatable on one machine; the tolerance (relative 1e-4) leaves
room for another CPU's float32 summation order (~1e-7 relative per operation, grown over two
optimizer steps) and is far below any change of normaliser (a factor of 2 or more) or of formula.
"""

import json
import math

import pytest

REWARDS = (
    "def digit_share(prompts=None, completions=(), completion_ids=None, **kw):\n"
    "    return [sum(1 for t in ids if 20 <= t < 30) / max(len(ids), 1) for ids in completion_ids]\n"
    # varies within the groups of odd-numbered prompts only: even prompts' groups are flat (DAPO drops them)
    "def odd_reward(prompts=None, completions=(), completion_ids=None, r1kit_index=(), **kw):\n"
    "    return [(i % 2) * (j % 4 + ids.count(25) / 4) for j, (i, ids) in enumerate(zip(r1kit_index, completion_ids))]\n"
)
COMMON = [
    "--model",
    "tiny",
    "--num-generations",
    "4",
    "--prompts-per-step",
    "4",
    "--batch-size",
    "8",
    "--max-completion-length",
    "12",
    "--learning-rate",
    "1e-3",
    "--max-steps",
    "2",
    "--seed",
    "0",
    "--no-live",
]
# loss type -> (flags, [(loss, grad_norm) per step] recorded on e6051ce)
PINS = {
    "grpo": (
        ["--loss", "grpo", "--beta", "0.04", "--num-iterations", "2", "--reward", "pin_rewards:digit_share"],
        [(-5.21540641784668e-08, 3.802628517150879), (-0.0662066712975502, 0.9664290547370911)],
    ),
    "dapo": (
        [
            "--loss",
            "dapo",
            "--epsilon-high",
            "0.28",
            "--num-iterations",
            "2",
            "--dynamic-sampling",
            "mask",
            "--reward",
            "pin_rewards:odd_reward",
        ],
        [(0.02098066359758377, 3.4682955741882324), (-0.05929727852344513, 1.1551828384399414)],
    ),
    "dr_grpo": (
        ["--loss", "dr_grpo", "--scale-rewards", "none", "--reward", "pin_rewards:digit_share"],
        [(0.0011718720197677612, 0.3882647752761841), (2.7939677238464355e-09, 0.12409837543964386)],
    ),
    "kimi": (
        ["--loss", "kimi", "--tau", "0.5", "--num-iterations", "2", "--reward", "pin_rewards:digit_share"],
        [(0.011992188170552254, 4.659177303314209), (1.5585941076278687, 24.645198822021484)],
    ),
}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from r1kit.config import build_config
    from r1kit.stages import data

    root = tmp_path_factory.mktemp("pins")
    (root / "pin_rewards.py").write_text(REWARDS)
    data.run(
        build_config(
            data.Config,
            flags={"output": str(root / "data"), "train_size": 8, "test_size": 2, "digits": 1, "seed": 0},
        )
    )
    return root


@pytest.mark.parametrize("loss", sorted(PINS))
def test_logged_loss_matches_the_pinned_run(work, loss, monkeypatch):
    from typer.testing import CliRunner

    from r1kit.cli import app

    monkeypatch.syspath_prepend(str(work))
    flags, pinned = PINS[loss]
    out = work / f"run-{loss}"
    res = CliRunner().invoke(
        app, ["grpo", "--data", str(work / "data"), *COMMON, *flags, "--output", str(out)]
    )
    assert res.exit_code == 0, res.output[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    got = [(r["loss"], r["grad_norm"]) for r in records if "loss" in r and "grad_norm" in r]
    assert len(got) == 2 and all(math.isfinite(x) for pair in got for x in pair)
    for (loss_value, grad_norm), (want_loss, want_norm) in zip(got, pinned, strict=True):
        assert loss_value == pytest.approx(want_loss, rel=1e-4, abs=1e-7)
        assert grad_norm == pytest.approx(want_norm, rel=1e-4)
