"""R1 / DeepSeekMath minibatch updates per rollout batch and Kimi k1.5's optimizer reset (issue 18).

Real `r1kit grpo` runs on the tiny model through the CLI entry point, in process, with a probe
subclass of R1GRPOTrainer patched in: it recomputes, at every micro-step and before trl's loss,
the policy's log-probabilities, and so sees the importance ratio π_θ/π_old the loss uses; it also
recomputes the loss with r1kit.rl.losses (tested against hand values in test_losses.py).
"""

import json
import math
from typing import ClassVar

import pytest
import torch
from conftest import arith_jsonl

from r1kit.config import build_config
from r1kit.errors import R1kitError
from r1kit.rl import trainer as trainer_module
from r1kit.stages.grpo import Config

PROBLEMS = [(12, 7), (33, 41), (5, 5), (60, 19), (71, 8), (24, 24), (9, 90), (48, 13)]
REWARDS = (
    "def len_reward(prompts=None, completions=(), completion_ids=None, **kw):\n"
    "    return [len(ids) / 12 + (ids[0] % 3 if ids else 0) for ids in completion_ids]\n"
)
BASE = [
    "--model",
    "tiny",
    "--num-generations",
    "4",
    "--prompts-per-step",
    "2",
    "--batch-size",
    "4",
    "--max-completion-length",
    "12",
    "--reward",
    "pol_rewards:len_reward",
    "--seed",
    "0",
    "--no-live",
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("iterations")
    arith_jsonl(root / "arith.jsonl", PROBLEMS)
    (root / "pol_rewards.py").write_text(REWARDS)
    return root


class Probe(trainer_module.R1GRPOTrainer):
    """Records, per micro-step: the optimizer step, the largest |ratio − 1| over the loss tokens,
    the clipped fraction, trl's loss and the reference loss; and the optimizer state before each
    optimizer step."""

    records: ClassVar[list] = []
    states: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

        class StateProbe(trainer_module.TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kw):
                inner = getattr(optimizer, "optimizer", optimizer)
                steps = {int(s["step"]) for s in inner.state.values() if "step" in s}
                Probe.states.append((state.global_step, len(inner.state), sorted(steps)))

        self.add_callback(StateProbe())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        from r1kit.rl.losses import policy_loss

        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        with torch.no_grad():
            logp, _, _ = self._get_per_token_logps_and_entropies(
                model, ids, att, inputs["completion_ids"].size(1)
            )
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        old = inputs.get("old_per_token_logps")
        old = logp if old is None else old
        mask = inputs["completion_mask"] * inputs.get("tool_mask", torch.ones_like(inputs["completion_mask"]))
        ref, stats = policy_loss(
            logp,
            old,
            None,
            inputs["advantages"],
            mask,
            loss_type="grpo",
            epsilon_low=self.epsilon_low,
            epsilon_high=self.epsilon_high,
        )
        scale = float(inputs["r1_loss_scale"]) if "r1_loss_scale" in inputs else 1.0
        ref = ref / self.current_gradient_accumulation_steps * scale
        dev = (torch.exp(logp - old) - 1).abs()[mask.bool()]
        Probe.records.append(
            {
                "step": self.state.global_step,
                "loss": loss.item(),
                "ref": ref.item(),
                "ratio_dev": dev.max().item() if dev.numel() else 0.0,
                "clip": stats["clip_region"].item(),
                "has_old": "old_per_token_logps" in inputs,
            }
        )
        return loss


def run(work, monkeypatch, name, *args):
    from typer.testing import CliRunner

    from r1kit.cli import app

    monkeypatch.syspath_prepend(str(work))
    monkeypatch.setattr(trainer_module, "R1GRPOTrainer", Probe)
    Probe.records, Probe.states = [], []
    out = work / name
    res = CliRunner().invoke(
        app, ["grpo", "--data", str(work / "arith.jsonl"), *BASE, "--output", str(out), "--overwrite", *args]
    )
    assert res.exit_code == 0, res.output[-3000:]
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]


def test_minibatch_updates_move_the_ratio_and_clip_from_the_second_step(work, monkeypatch):
    # 4 updates per rollout: one rollout of 2 prompts x 4 steps x G=4 = 32 completions feeds 4 optimizer
    # steps of 8 (2 micro-batches each); 8 steps = 2 rollouts. lr 0.05 moves the policy past ε = 0.2.
    logged = run(
        work, monkeypatch, "upr", "--updates-per-rollout", "4", "--max-steps", "8", "--learning-rate", "5e-2"
    )
    assert [r["step"] for r in logged] == list(range(1, 9))
    # rollouts (and so rewards) happen at steps 1 and 5 only
    assert [r["step"] for r in logged if r.get("reward") is not None] == [1, 5]
    assert all(rec["has_old"] for rec in Probe.records)  # trl kept π_old: the sampling policy's log-probs
    assert len(Probe.records) == 16
    for rec in Probe.records:
        assert rec["loss"] == pytest.approx(rec["ref"], rel=1e-4, abs=1e-6)  # trl's loss = the formula
        if rec["step"] % 4 == 0:  # first minibatch of a rollout: π_θ = π_old
            assert rec["ratio_dev"] < 1e-5 and rec["clip"] == 0.0
        else:
            assert rec["ratio_dev"] > 1e-2
    later = [rec for rec in Probe.records if rec["step"] % 4]
    assert max(rec["clip"] for rec in later) > 0
    clip = {r["step"]: r["clip_ratio/region_mean"] for r in logged}
    assert clip[1] == 0.0 and clip[5] == 0.0 and max(clip[s] for s in (2, 3, 4, 6, 7, 8)) > 0


def test_one_update_per_rollout_keeps_the_ratio_at_one(work, monkeypatch):
    logged = run(work, monkeypatch, "upr1", "--max-steps", "3", "--learning-rate", "5e-2")
    assert [r["step"] for r in logged if r.get("reward") is not None] == [1, 2, 3]  # a rollout per step
    assert all(rec["ratio_dev"] < 1e-5 and rec["clip"] == 0.0 for rec in Probe.records)
    assert all(r["clip_ratio/region_mean"] == 0.0 for r in logged)


def test_reset_optimizer_empties_the_state_at_each_rollout(work, monkeypatch):
    flags = ["--updates-per-rollout", "2", "--max-steps", "4", "--learning-rate", "1e-2"]
    plain = run(work, monkeypatch, "noreset", *flags)
    assert [(n > 0, steps) for _, n, steps in Probe.states] == [
        (False, []),
        (True, [1]),
        (True, [2]),
        (True, [3]),
    ]
    reset = run(work, monkeypatch, "reset", *flags, "--reset-optimizer")
    # before each optimizer step: empty at the first step of each rollout batch, Adam's step 1 at the second
    assert [(n > 0, steps) for _, n, steps in Probe.states] == [
        (False, []),
        (True, [1]),
        (False, []),
        (True, [1]),
    ]
    assert [r.get("optimizer/resets") for r in reset] == [1.0, None, 1.0, None]
    # same weights through step 3 (the reset first acts on step 3's update), different from step 4 on
    for a, b in zip(plain[:3], reset[:3]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-9)
    assert math.isfinite(reset[3]["loss"]) and abs(reset[3]["loss"] - plain[3]["loss"]) > 1e-6


def build(**flags):
    return build_config(Config, None, {"output": "o", "data": "d", **flags})


def test_rollout_batch_shape_and_presets():
    cfg = build(prompts_per_step=32, num_generations=16, updates_per_rollout=16)
    assert (cfg.completions_per_step, cfg.completions_per_rollout) == (512, 8192)  # R1's numbers
    cfg = build(generation_batch_size=64, num_generations=4, updates_per_rollout=4)
    assert (cfg.completions_per_step, cfg.completions_per_rollout) == (16, 64)
    with pytest.raises(
        R1kitError, match=r"--generation-batch-size \(24\) must be divisible by --updates-per-rollout \(5\)"
    ):
        build(generation_batch_size=24, num_generations=4, updates_per_rollout=5)
    with pytest.raises(R1kitError, match=r"--updates-per-rollout \(0\) must be >= 1"):
        build(updates_per_rollout=0)
    from r1kit.rl.trl_args import grpo_args

    args = grpo_args(
        build(prompts_per_step=2, num_generations=4, batch_size=4, updates_per_rollout=3),
        "/tmp/x",
        False,
        [1.0],
    )
    assert (args.gradient_accumulation_steps, args.steps_per_generation, args.generation_batch_size) == (
        2,
        6,
        24,
    )
    for preset in ("r1-zero", "r1"):
        assert build(preset=preset).updates_per_rollout == 16
    for preset in ("kimi", "kimi-long2short"):
        cfg = build(preset=preset)
        assert cfg.reset_optimizer and cfg.updates_per_rollout == 1  # Kimi does not report it
    assert (build(preset="kimi").partial_loss, build(preset="kimi-long2short").partial_loss) == (
        "trajectory",
        "segment",
    )
    assert build(preset="kimi-long2short", reset_optimizer=False).reset_optimizer is False
    assert not build(preset="dapo").reset_optimizer and build(preset="dapo").updates_per_rollout == 1


def test_preset_rollout_batch_larger_than_the_data_is_one_line(work):
    from conftest import run_cli

    res = run_cli(
        "grpo",
        "--data",
        work / "arith.jsonl",
        "--model",
        "tiny",
        "--preset",
        "r1-zero",
        "--prompts-per-step",
        "2",
        "--output",
        work / "toolarge",
        cwd=work,
    )
    assert res.returncode == 2 and not (work / "toolarge").exists()
    assert (
        "has 8 prompts but one rollout batch needs 32 distinct prompts (--prompts-per-step 2 × "
        "--updates-per-rollout 16 (from --preset r1-zero)); lower either"
    ) in res.stderr
