"""Training half-precision weights directly: a learning rate below half a weight's bf16 spacing
changes nothing, and r1kit says so before training (r1kit.training.lost_update_fraction)."""

import json

import pytest
import torch

from r1kit.training import lost_update_fraction
from tests.conftest import run_cli


def test_lost_fraction_matches_hand_values_and_real_bf16_addition():
    # bf16 spacing: 1.0 -> 2^-7, 0.5 -> 2^-8, 0.01 -> 2^-14 (floor(log2 0.01) = -7); half of each:
    # 3.9e-3, 1.95e-3, 3.05e-5. A step of 1e-3 is lost on 1.0 and 0.5, kept on 0.01.
    w = torch.nn.Parameter(torch.tensor([1.0, 0.5, 0.01], dtype=torch.bfloat16))
    fraction, dtype = lost_update_fraction([w], 1e-3)
    assert fraction == pytest.approx(2 / 3) and dtype == "bfloat16"
    moved = (w.detach() + torch.tensor(1e-3, dtype=torch.bfloat16)) != w.detach()
    assert moved.tolist() == [False, False, True]
    assert lost_update_fraction([w], 1e-2)[0] == 0.0
    assert lost_update_fraction([torch.nn.Parameter(torch.ones(3))], 1e-9) == (
        0.0,
        None,
    )  # fp32: nothing lost
    frozen = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16), requires_grad=False)
    assert lost_update_fraction([frozen], 1e-9) == (0.0, None)


def _sft(tmp_path, name, *flags):
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": f"{i}+{i}=", "completion": f" {2 * i}"}) + "\n" for i in range(4))
    )
    return run_cli(
        "sft",
        "--model",
        "tiny",
        "--data",
        data,
        "--max-steps",
        1,
        "--batch-size",
        2,
        *flags,
        "--output",
        tmp_path / name,
    )


def test_sft_warns_when_bf16_weights_cannot_move_at_this_learning_rate(tmp_path):
    res = _sft(tmp_path, "bf16", "--dtype", "bfloat16", "--learning-rate", "1e-6")
    assert res.returncode == 0, res.stderr[-2000:]
    line = [x for x in res.stderr.splitlines() if "cannot change" in x]
    assert len(line) == 1 and "bfloat16" in line[0] and "--dtype float32" in line[0] and "1e-06" in line[0]
    events = [json.loads(x) for x in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    lost = [e for e in events if e.get("event") == "lost_updates"]
    assert len(lost) == 1 and lost[0]["fraction"] > 0.9 and lost[0]["dtype"] == "bfloat16"


def test_sft_in_float32_or_at_a_large_learning_rate_does_not_warn(tmp_path):
    for name, flags in (
        ("fp32", ("--dtype", "float32", "--learning-rate", "1e-6")),
        ("big_lr", ("--dtype", "bfloat16", "--learning-rate", "0.5")),
    ):
        res = _sft(tmp_path, name, *flags)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "cannot change" not in res.stderr
