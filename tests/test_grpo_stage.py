"""`r1kit grpo` end to end on the tiny model, resume, presets/precedence, and bad input (exit 2)."""

import json
import math
import re

import pytest
from conftest import run_cli

from r1kit.config import build_config
from r1kit.errors import R1kitError
from r1kit.stages.grpo import Config

PROBLEMS = [(12, 7), (33, 41), (5, 5), (60, 19), (71, 8), (24, 24), (9, 90), (48, 13)]
# rewards/len_reward gives every group reward variance, so the loss has a gradient
REWARD_MODULE = (
    "def len_reward(prompts=None, completions=(), completion_ids=None, **kw):\n"
    "    return [len(ids) / 12 for ids in completion_ids]\n"
    # varies within the groups of odd-numbered prompts only: even prompts' groups have zero variance
    "def odd_reward(prompts=None, completions=(), completion_ids=None, r1kit_index=(), **kw):\n"
    "    return [(i % 2) * (j % 4) for j, i in enumerate(r1kit_index)]\n"
    # records which prompts each step trained on (in-process runs read rw.SEEN)
    "SEEN = []\n"
    "def seen_reward(prompts=None, completions=(), completion_ids=None, r1kit_index=(), **kw):\n"
    "    SEEN.extend(r1kit_index)\n"
    "    return [float(len(ids) % 3) for ids in completion_ids]\n"
)
SMALL = [
    "--model",
    "tiny",
    "--num-generations",
    "4",
    "--prompts-per-step",
    "2",
    "--max-completion-length",
    "12",
    "--learning-rate",
    "1e-3",
    "--no-live",
]
EXPECTED_KEYS = (
    "rewards/accuracy/mean",
    "rewards/len_reward/mean",
    "accuracy",
    "kl",
    "entropy",
    "clip_ratio/low_mean",
    "clip_ratio/high_mean",
    "clip_ratio/region_mean",
    "completions/mean_length",
    "zero_std_fraction",
    "tokens_per_s",
    "loss",
)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo")
    rows = [
        {"question": f"What is {a}+{b}?", "answer": str(a + b), "difficulty": (a + b) // 30}
        for a, b in PROBLEMS
    ]
    (root / "arith.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "questions.jsonl").write_text(
        "".join(json.dumps({"question": r["question"]}) + "\n" for r in rows)
    )
    (root / "rw.py").write_text(REWARD_MODULE)
    return root


def grpo(work, *args):
    # cwd = work: `python -m r1kit` puts it on sys.path, so the reward "rw:len_reward" imports
    return run_cli("grpo", "--data", work / "arith.jsonl", *SMALL, *args, cwd=work)


def steps_logged(out):
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_run_writes_checkpoint_and_metrics_then_resumes(work):
    out1, out2 = work / "run1", work / "run2"
    common = [
        "--reward",
        "accuracy=1",
        "--reward",
        "rw:len_reward=0.5",
        "--beta",
        "0.04",
        "--dynamic-sampling",
        "mask",
        "--sampler",
        "curriculum",
        "--keep-checkpoints",
    ]
    res = grpo(work, "--output", out1, "--max-steps", "2", *common)
    assert res.returncode == 0, res.stderr[-3000:]
    records = steps_logged(out1)
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        for key in EXPECTED_KEYS:
            assert isinstance(r[key], (int, float)) and math.isfinite(r[key]), (key, r.get(key))
        assert r["kl"] >= 0 and 0 <= r["zero_std_fraction"] <= 1 and r["tokens_per_s"] > 0
    manifest = json.loads((out1 / "manifest.json").read_text())
    assert manifest["global_step"] == 2 and manifest["inputs"]["template"] == "chat"

    import torch

    from r1kit.models import load_model

    trained, initial = load_model(str(out1), device="cpu"), load_model("tiny", device="cpu", seed=0)
    moved = sum((a - b).abs().sum().item() for a, b in zip(trained.parameters(), initial.parameters()))
    assert moved > 0  # the saved checkpoint is the trained policy
    assert isinstance(trained(torch.tensor([[1, 2, 3]])).logits, torch.Tensor)

    res = grpo(work, "--output", out2, "--max-steps", "3", "--resume", out1 / "checkpoints", *common)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["step"] for r in steps_logged(out2)] == [3]  # continues at step 3, does not redo 1-2
    state = json.loads((out2 / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3


def test_kimi_loss_refill_and_prioritized_sampling_run(work, monkeypatch):
    # in-process through the same CLI entry point (saves a second interpreter start-up)
    from typer.testing import CliRunner

    from r1kit.cli import app

    monkeypatch.syspath_prepend(str(work))
    out = work / "kimi"
    res = CliRunner().invoke(
        app,
        [
            "grpo",
            "--data",
            str(work / "arith.jsonl"),
            *SMALL,
            "--output",
            str(out),
            "--max-steps",
            "1",
            "--reward",
            "accuracy",
            "--reward",
            "rw:odd_reward",
            "--loss",
            "kimi",
            "--tau",
            "0.5",
            "--dynamic-sampling",
            "refill",
            "--sampler",
            "prioritized",
        ],
    )
    assert res.exit_code == 0, res.output[-3000:]
    (record,) = steps_logged(out)
    assert math.isfinite(record["loss"]) and math.isfinite(record["kimi/log_ratio"])
    # even-numbered prompts' groups had zero variance and were replaced by refilled groups with signal
    assert record["zero_std_fraction"] > 0 and record["dynamic/refill_groups"] >= 1
    assert record["dynamic/kept_fraction"] == 1.0
    assert (out / "model" / "model.safetensors").is_file()


def test_sorted_curriculum_trains_on_the_hardest_prompts_too(work, monkeypatch):
    # 5 prompts, 2 per step: an epoch is 2 steps and one prompt sits out. Over 5 epochs the
    # hardest prompt (difficulty 4) must be drawn; cutting the sorted list's tail never drew it.
    from typer.testing import CliRunner

    from r1kit.cli import app

    monkeypatch.syspath_prepend(str(work))
    rows = [
        {"question": f"What is {a}+{b}?", "answer": str(a + b), "difficulty": d}
        for d, (a, b) in zip([2, 4, 0, 3, 1], PROBLEMS)
    ]
    (work / "five.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    import rw

    rw.SEEN.clear()
    res = CliRunner().invoke(
        app,
        [
            "grpo",
            "--data",
            str(work / "five.jsonl"),
            *SMALL,
            "--output",
            str(work / "cur"),
            "--max-steps",
            "10",
            "--reward",
            "rw:seen_reward",
            "--sampler",
            "curriculum",
            "--max-completion-length",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output[-3000:]
    groups = [rw.SEEN[i] for i in range(0, len(rw.SEEN), 4)]  # one index per group of G = 4
    assert len(groups) == 20 and set(groups) == {0, 1, 2, 3, 4}
    for epoch in range(5):  # each epoch: 4 distinct prompts, easiest first
        drawn = groups[epoch * 4 : (epoch + 1) * 4]
        assert len(set(drawn)) == 4 and [rows[i]["difficulty"] for i in drawn] == sorted(
            rows[i]["difficulty"] for i in drawn
        )


def test_prioritized_success_rates_are_saved_and_resumed(work, monkeypatch):
    # the sampler's counts go into each checkpoint and come back on --resume: after the resumed
    # second step, the checkpoint holds both steps' 8 + 8 outcomes
    from typer.testing import CliRunner

    from r1kit.cli import app

    monkeypatch.syspath_prepend(str(work))
    common = [
        "grpo",
        "--data",
        str(work / "arith.jsonl"),
        *SMALL,
        "--reward",
        "accuracy",
        "--reward",
        "rw:odd_reward",
        "--sampler",
        "prioritized",
        "--keep-checkpoints",
        "--save-steps",
        "1",
        "--max-completion-length",
        "4",
    ]
    first, second = work / "prio1", work / "prio2"
    assert CliRunner().invoke(app, [*common, "--output", str(first), "--max-steps", "1"]).exit_code == 0
    state = json.loads((first / "checkpoints" / "checkpoint-1" / "r1kit_sampler.json").read_text())
    assert sum(state["counts"]) == 8 and len(state["counts"]) == len(PROBLEMS)
    res = CliRunner().invoke(
        app, [*common, "--output", str(second), "--max-steps", "2", "--resume", str(first / "checkpoints")]
    )
    assert res.exit_code == 0, res.output[-3000:]
    resumed = json.loads((second / "checkpoints" / "checkpoint-2" / "r1kit_sampler.json").read_text())
    assert sum(resumed["counts"]) == 16
    assert all(b >= a for a, b in zip(state["counts"], resumed["counts"]))


@pytest.fixture(scope="module")
def no_chat_model(work):
    from r1kit.models import build_tiny_model, build_tiny_tokenizer, save_model

    tok = build_tiny_tokenizer()
    path = work / "nochat"
    save_model(build_tiny_model(tok), tok, path)
    (path / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((path / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (path / "tokenizer_config.json").write_text(json.dumps(cfg))
    return path


BAD = {
    "g1": (["--num-generations", "1"], "--num-generations (G=1) must be >= 2"),
    "not_div_g": (
        ["--generation-batch-size", "10"],
        "--generation-batch-size (10) must be divisible by --num-generations (4)",
    ),
    "micro": (
        ["--batch-size", "3"],
        "a step's batch of 8 completions (2 prompts × G=4) must be divisible by --batch-size (3)",
    ),
    "reward": (["--reward", "acuracy"], "unknown reward 'acuracy'. Did you mean 'accuracy'?"),
    "preset": (["--preset", "r1zero"], "unknown preset 'r1zero'. Did you mean 'r1-zero'?"),
    "columns": (["--reward", "code"], "reward 'code' needs column(s) tests"),
    "answer": (["--data", "QUESTIONS"], "reward 'accuracy' needs a gold answer column"),
    "too_few": (["--prompts-per-step", "9"], "has 8 prompts but one step needs 9 distinct prompts"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_before_loading(work, case):
    from typer.testing import CliRunner

    from r1kit.cli import app

    args, message = BAD[case]
    out = work / f"bad_{case}"
    args = [str(work / "questions.jsonl") if a == "QUESTIONS" else a for a in args]
    res = CliRunner().invoke(
        app, ["grpo", "--data", str(work / "arith.jsonl"), *SMALL, "--output", str(out), *args]
    )
    assert res.exit_code == 2, res.output
    assert message in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("r1kit: error:")  # one line (after progress bars)
    assert not out.exists() and not (work / f".bad_{case}.partial").exists()


def test_chat_preset_needs_a_chat_template(work, no_chat_model):
    from typer.testing import CliRunner

    from r1kit.cli import app

    out = work / "bad_chat"
    res = CliRunner().invoke(
        app,
        [
            "grpo",
            "--data",
            str(work / "arith.jsonl"),
            "--model",
            str(no_chat_model),
            "--preset",
            "r1",
            "--lang",
            "en",
            "--output",
            str(out),
        ],
    )
    assert res.exit_code == 2
    assert "--template chat-think (from --preset r1) renders chat messages, but the tokenizer" in res.stderr
    assert not out.exists()


def build(config_file=None, **flags):
    return build_config(Config, config_file, {"output": "o", "data": "d", **flags})


def test_preset_precedence(tmp_path):
    # defaults < preset < --config file < flags; a flag equal to the default still beats the preset
    cfg = build(preset="r1-zero")
    assert (cfg.beta, cfg.ref_reset_steps, cfg.template, cfg.reward) == (
        0.001,
        400,
        "r1-zero",
        ["accuracy=1", "format=1"],
    )
    assert cfg.num_generations == 16 and cfg.loss == "grpo" and cfg.epsilon_high == 0.2
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("beta: 0.01\nnum_generations: 4\n")
    cfg = build(str(yaml_file), preset="r1-zero", num_generations=8)
    assert cfg.beta == 0.01 and cfg.num_generations == 8 and cfg.ref_reset_steps == 400
    assert build(preset="r1-zero", num_generations=8).num_generations == 8
    assert build(preset="r1-zero", beta=0.0).beta == 0.0  # the built-in default, given as a flag, wins
    cfg = build(preset="dapo")
    assert (cfg.loss, cfg.epsilon, cfg.epsilon_high, cfg.beta, cfg.dynamic_sampling, cfg.mask_truncated) == (
        "dapo",
        0.2,
        0.28,
        0.0,
        "refill",
        True,
    )
    cfg = build(preset="dr-grpo", scale_rewards="group")
    assert cfg.loss == "dr_grpo" and cfg.scale_rewards == "group"
    cfg = build(preset="kimi-long2short")
    assert "length=1" in cfg.reward and cfg.max_completion_length == 512 and cfg.length_warmup_steps == 20
    # the preset may come from the YAML file too
    yaml_file.write_text("preset: dapo\nepsilon_high: 0.3\n")
    cfg = build(str(yaml_file))
    assert (cfg.loss, cfg.epsilon_high, cfg.mask_truncated) == ("dapo", 0.3, True)
    # preset values that cannot apply step aside; the same values given explicitly are errors
    assert build(preset="r1-zero", lora=True).ref_reset_steps == 0
    cfg = build(preset="r1-zero", loss="kimi")
    assert (cfg.beta, cfg.ref_reset_steps) == (0.0, 0)
    assert build(preset="r1-zero", beta=0.0).ref_reset_steps == 0
    with pytest.raises(R1kitError, match="--loss kimi carries its own KL"):
        build(loss="kimi", beta=0.01)
    with pytest.raises(R1kitError, match="needs --beta > 0"):
        build(ref_reset_steps=400)
    with pytest.raises(R1kitError, match="needs --beta > 0"):
        build(preset="r1-zero", beta=0.0, ref_reset_steps=400)
    with pytest.raises(R1kitError, match=r"--loss 'ppo' is not one of grpo, dapo, dr_grpo, kimi"):
        build(loss="ppo")


def test_help_shows_the_true_defaults():
    # one source of defaults: the dataclass; --help prints them, the preset list comes from presets.py
    from typer.testing import CliRunner

    from r1kit.cli import app

    res = CliRunner().invoke(app, ["grpo", "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert res.exit_code == 0
    text = " ".join(res.output.split()).split(" Options: ", 1)[1]  # past the docstring's example
    for flag, default in (
        ("--num-generations", "8"),
        ("--learning-rate", "1e-06"),
        ("--loss", "grpo"),
        ("--max-completion-length", "1024"),
        ("--tau", "0.1"),
        ("--scale-rewards", "group"),
        ("--dynamic-sampling", "off"),
        ("--template", "auto"),
    ):
        # the option's own entry ("--flag TYPE help"), not a mention of it in another option's help
        after = re.split(re.escape(flag) + r" (?=INT|FLOAT|TEXT|PATH)", text, maxsplit=1)[1]
        assert after.split("[default: ", 1)[1].startswith(default + "]"), (flag, after[:300])
    assert "r1-zero, r1, dapo, dr-grpo, kimi-long2short" in text
    # every field's declared default is the value a run without flags gets (no second source)
    import dataclasses

    built = build()
    for f in dataclasses.fields(Config):
        declared = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.name not in ("output", "data", "epsilon_high"):  # given above; epsilon_high: unset = --epsilon
            assert getattr(built, f.name) == declared, f.name


def test_health_warnings():
    from r1kit.rl.callbacks import GRPOMetricsCallback, format_rose_accuracy_fell

    assert format_rose_accuracy_fell([0.1, 0.2, 0.6, 0.8], [0.5, 0.5, 0.3, 0.2])
    assert not format_rose_accuracy_fell([0.1, 0.2, 0.6, 0.8], [0.5, 0.5, 0.6, 0.7])  # both rise: fine
    assert not format_rose_accuracy_fell([0.1, 0.8], [0.5, 0.1])  # too few points

    class Out:
        def __init__(self):
            self.records = []

        def log(self, r):
            self.records.append(r)

    class State:
        is_world_process_zero, global_step, max_steps, num_input_tokens_seen = True, 0, 9, 0

    out, state = Out(), State()
    cb = GRPOMetricsCallback(out, kl_threshold=0.5, window=4, live=False)
    cb.on_train_begin(None, state, None)
    logs = [(0.1, 0.5, 0.1), (0.2, 0.5, 0.2), (0.6, 0.3, 0.9), (0.8, 0.2, 2.0), (0.9, 0.1, 3.0)]
    for step, (fmt, acc, kl) in enumerate(logs, 1):
        state.global_step = step
        cb.on_log(
            None,
            state,
            None,
            logs={"rewards/format/mean": fmt, "accuracy": acc, "kl": kl, "num_tokens": 100.0 * step},
        )
    warnings = [r for r in out.records if r.get("event") == "warning"]
    assert [(w["kind"], w["step"]) for w in warnings] == [
        ("kl_blowup", 3),
        ("reward_hacking", 4),
    ]  # once each
    assert all(r["tokens_per_s"] > 0 for r in out.records if "tokens_per_s" in r)


def test_fast_rollout_and_reward_model_flag(work):
    """--rollout fast routes rollouts through r1kit's decode loop (also on a CPU), and
    --reward-model feeds the reward-model reward (R1's all-scenario stage)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    from r1kit.models import build_tiny_tokenizer

    rm = work / "rm"
    tok = build_tiny_tokenizer()
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForSequenceClassification(cfg).save_pretrained(rm)
    tok.save_pretrained(rm)
    out = work / "fast"
    res = grpo(
        work,
        "--output",
        out,
        "--max-steps",
        "1",
        "--rollout",
        "fast",
        "--reward",
        "accuracy=1",
        "--reward",
        "reward_model=0.5",
        "--reward-model",
        rm,
        "--rollout-cache",
        "keep",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rollout_cache: keep" in (out / "resolved_config.yaml").read_text()
    (record,) = steps_logged(out)
    assert record["rollout/fast_path"] == 1.0
    assert math.isfinite(record["rewards/reward_model/mean"]) and record["rewards/reward_model/std"] > 0
    # without a checkpoint the reward-model reward is refused before any model loads
    res = grpo(work, "--output", work / "fast2", "--max-steps", "1", "--reward", "reward_model=0.5")
    assert res.returncode == 2 and "checkpoint" in res.stderr and not (work / "fast2").exists()
