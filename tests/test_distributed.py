"""`r1kit sft` and `r1kit grpo` under `accelerate launch` with two CPU processes (gloo).

Runs the shipped recipes/accelerate/ddp_cpu.yaml on the tiny model and the built-in
arithmetic task, and checks what data parallelism must keep true:

- both ranks exit 0, the output directory is published once (one manifest, no `.partial`
  directory left), metrics.jsonl has each step once, and the checkpoint loads;
- SFT with per-device batch 8 × 2 processes takes the same global batches as batch 16 × 1
  process (accelerate hands rank k the k-th slice of the sampler's batches), so the logged
  losses of the first steps match the single-process run;
- GRPO keeps each prompt's G completions in one step even when a group straddles the two
  processes (12 completions, 6 per process, G = 4), both ranks draw the same prompts from the
  prioritized sampler, the β > 0 reference model loads on both ranks, and the logged reward
  statistics are the ones of the gathered batch: a custom reward records what each rank scored, and the test
  recomputes the step's mean, std and zero-std fraction from those records.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DDP_CPU = REPO / "recipes" / "accelerate" / "ddp_cpu.yaml"

REWARD_MODULE = '''
import json, os

def ddp_logged_reward(prompts=None, completions=(), trainer_state=None, **kwargs):
    """(characters in the completion mod 3) / 2, recorded with the rank and step that scored it."""
    rank = os.environ.get("RANK", "0")
    out = []
    with open(os.path.join(os.environ["R1KIT_TEST_REWARD_LOG"], f"rank{rank}.jsonl"), "a") as fh:
        for prompt, completion in zip(prompts, completions):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            reward = (len(text) % 3) / 2
            fh.write(json.dumps({"step": trainer_state.global_step, "prompt": json.dumps(prompt, sort_keys=True),
                                 "reward": reward}) + "\\n")
            out.append(reward)
    return out
'''


def _env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        **extra,
    }
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "R1KIT_DEBUG"):
        env.pop(key, None)
    return env


def _run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, cwd=REPO, env=env or _env(), timeout=600
    )
    assert proc.returncode == 0, (
        f"{' '.join(cmd)}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    )
    return proc


def r1kit(*args) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "r1kit", *map(str, args)])


def launch(*args, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file ddp_cpu.yaml --num_processes 2 -m r1kit ...`."""
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(DDP_CPU),
        "--num_processes",
        "2",
        "-m",
        "r1kit",
        *map(str, args),
    ]
    return _run(cmd, env)


def metric_steps(out: Path) -> list[dict]:
    from r1kit.outputs import read_metrics

    return [r for r in read_metrics(out) if "loss" in r and "event" not in r]


def assert_published_once(root: Path, out: Path) -> None:
    manifests = sorted(p.relative_to(root) for p in root.rglob("manifest.json"))
    assert out.relative_to(root) / "manifest.json" in manifests
    assert not [p for p in root.rglob("*.partial")], "a .partial directory was left behind"
    assert not [p for p in root.rglob(f".{out.name}.old-*")]
    from r1kit.outputs import read_manifest

    on_disk = sorted(p.name for p in out.iterdir() if p.name != "manifest.json")
    assert read_manifest(out)["artifacts"] == on_disk
    assert {"metrics.jsonl", "model", "resolved_config.yaml"} <= set(on_disk)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "data"
    # digits 2: one-digit sums have only 100 distinct problems, fewer than 200 + 20
    r1kit("data", "arithmetic", "--output", path, "--train-size", 200, "--test-size", 20, "--digits", 2)
    return path


def test_sft_two_processes_match_one(data: Path, tmp_path: Path):
    common = [
        "--model",
        "tiny",
        "--data",
        data,
        "--max-steps",
        3,
        "--logging-steps",
        1,
        "--learning-rate",
        "1e-3",
        "--warmup-ratio",
        0,
        "--max-length",
        256,
        "--seed",
        0,
    ]
    one, two = tmp_path / "sft1", tmp_path / "sft2"
    r1kit("sft", *common, "--output", one, "--batch-size", 16)
    proc = launch("sft", *common, "--output", two, "--batch-size", 8, "--save-steps", 3, "--keep-checkpoints")

    assert proc.stdout.count(f"wrote {two}") == 1  # rank 1 stays quiet
    assert_published_once(tmp_path, two)
    # rank 1 writes its own rng state into the checkpoint; it must land in the published directory
    ckpt = two / "checkpoints" / "checkpoint-3"
    assert {"rng_state_0.pth", "rng_state_1.pth", "trainer_state.json"} <= {p.name for p in ckpt.iterdir()}

    ref, ddp = metric_steps(one), metric_steps(two)
    assert [r["step"] for r in ddp] == [1, 2, 3]  # logged once, by rank 0
    # same global batch: the token count seen so far is the same number
    assert [r["num_tokens"] for r in ddp] == [r["num_tokens"] for r in ref]
    for a, b in zip(ref, ddp):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), (a, b)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3), (a, b)

    import torch

    from r1kit.models import load_model

    m1, m2 = load_model(str(one)), load_model(str(two))
    for (name, p1), (_, p2) in zip(m1.named_parameters(), m2.named_parameters()):
        assert torch.allclose(p1, p2, atol=1e-5), name  # measured: 9e-7; the update moves weights by 2e-3


def test_grpo_two_processes_groups_and_rewards(data: Path, tmp_path: Path):
    (tmp_path / "ddp_reward.py").write_text(REWARD_MODULE)
    log = tmp_path / "rewards"
    log.mkdir()
    out = tmp_path / "grpo"
    G, prompts_per_step = 4, 3  # 12 completions, 6 per process: the second group straddles the ranks
    proc = launch(
        "grpo",
        "--model",
        "tiny",
        "--data",
        data,
        "--output",
        out,
        "--reward",
        "ddp_reward:ddp_logged_reward=1",
        "--num-generations",
        G,
        "--prompts-per-step",
        prompts_per_step,
        "--max-steps",
        2,
        "--max-completion-length",
        12,
        "--learning-rate",
        "1e-4",
        "--no-live",
        "--seed",
        0,
        # β > 0: each rank loads the reference model; prioritized: each rank must draw the same prompts
        "--beta",
        "0.04",
        "--sampler",
        "prioritized",
        "--success-reward",
        "ddp_logged_reward",
        "--keep-checkpoints",
        "--save-steps",
        2,
        env=_env(
            PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            R1KIT_TEST_REWARD_LOG=str(log),
        ),
    )
    assert proc.stdout.count(f"wrote {out}") == 1
    assert_published_once(tmp_path, out)
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert {"rng_state_0.pth", "rng_state_1.pth", "r1kit_sampler.json"} <= {p.name for p in ckpt.iterdir()}

    rows = {
        rank: [json.loads(line) for line in (log / f"rank{rank}.jsonl").read_text().splitlines()]
        for rank in (0, 1)
    }
    by_step = defaultdict(dict)
    for rank, records in rows.items():
        for r in records:
            by_step[r["step"]].setdefault(rank, []).append(r)
    assert sorted(by_step) == [0, 1]

    logged = {r["step"]: r for r in metric_steps(out)}
    assert sorted(logged) == [1, 2]
    for step, ranks in by_step.items():
        assert [len(ranks[0]), len(ranks[1])] == [6, 6]
        batch = ranks[0] + ranks[1]  # trl gathers in rank order
        groups = [batch[i : i + G] for i in range(0, len(batch), G)]
        assert all(len({r["prompt"] for r in g}) == 1 for g in groups), "a prompt's G completions were split"
        assert len({g[0]["prompt"] for g in groups}) == prompts_per_step
        assert ranks[0][-1]["prompt"] == ranks[1][0]["prompt"]  # the straddling group really straddles

        rewards = [r["reward"] for r in batch]
        zero = sum(len({r["reward"] for r in g}) == 1 for g in groups) / len(groups)
        metrics = logged[step + 1]
        assert metrics["reward"] == pytest.approx(statistics.fmean(rewards), abs=1e-6)
        assert metrics["reward_std"] == pytest.approx(statistics.stdev(rewards), abs=1e-5)
        assert metrics["frac_reward_zero_std"] == pytest.approx(zero, abs=1e-6)
        assert metrics["zero_std_fraction"] == pytest.approx(zero, abs=1e-6)
        assert metrics["kl"] >= 0

    # the published checkpoint is a model r1kit evaluate loads
    ev = tmp_path / "eval"
    r1kit(
        "evaluate",
        "--model",
        out,
        "--data",
        data,
        "--split",
        "test",
        "--limit",
        4,
        "--greedy",
        "--max-new-tokens",
        8,
        "--output",
        ev,
    )
    (metrics,) = json.loads((ev / "results.json").read_text()).values()
    assert metrics["num_prompts"] == 4 and metrics["num_samples"] == 1
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0 < metrics["mean_tokens"] <= 8
