"""A trl / open-r1 user's vocabulary (r1kit/trl_names.py): open-r1 recipe YAMLs run as they are,
trl's flag names and underscores work, keys with no r1kit meaning are named in one notice, and
what r1kit cannot honour is refused in one line."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import chats, cli_config, run_cli

from r1kit.config import build_config
from r1kit.errors import R1kitError
from r1kit.stages import dpo_shorten, evaluate, grpo, sft

FIXTURES = Path(__file__).parent / "fixtures" / "open-r1"


def sums(path: Path, n: int = 8) -> None:
    path.write_text(
        "".join(
            json.dumps({"question": f"What is {a}+{a + 1}?", "answer": str(2 * a + 1)}) + "\n"
            for a in range(1, n + 1)
        )
    )


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("r1kit: ")]


def test_an_open_r1_grpo_recipe_runs_as_it_is(tmp_path):
    """The keys of open-r1's GRPO demo recipes, read by `r1kit grpo --config` and trained for two steps."""
    shutil.copy(FIXTURES / "grpo.yaml", tmp_path / "grpo.yaml")
    sums(tmp_path / "sums.jsonl")
    res = run_cli("grpo", "--config", "grpo.yaml", "--no-live", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "data" / "tiny-Open-R1-GRPO"  # output_dir, relative to where the command ran
    resolved = yaml.safe_load((out / "resolved_config.yaml").read_text())
    expected = {
        "model": "tiny",
        "dtype": "float32",
        "data": "sums.jsonl",
        "prompt_field": "question",
        "seed": 42,
        "system_prompt": "Think step by step inside <think> </think>, then give the answer inside <answer> </answer>.",
        # reward_funcs + reward_weights -> NAME=WEIGHT
        "reward": ["accuracy=1", "format=0.5", "tag_count=0.25"],
        # trl's cosine decays to 0: r1kit's cosine with a floor of 0
        "learning_rate": 2e-05,
        "lr_scheduler": "cosine",
        "min_lr_ratio": 0.0,
        "warmup_ratio": 0.1,
        # per_device_train_batch_size 4 x 1 process x gradient_accumulation_steps 2 = 8 completions a step
        "batch_size": 4,
        "generation_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 24,
        "epochs": 1.0,
        "max_steps": 2,
        "logging_steps": 1,
        "gradient_checkpointing": True,
        "report_to": "none",
        "loss": "dapo",
        "scale_rewards": "none",
        "beta": 0.001,
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "mask_truncated": True,
        "use_vllm": "off",
        "vllm_gpu_memory": 0.7,
        "temperature": 0.9,
        "top_p": 0.95,
        "lora": True,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        "lora_target": "q_proj,v_proj",
        "push_to_hub": "",
    }
    assert {k: resolved[k] for k in expected} == expected
    assert json.loads((out / "manifest.json").read_text())["global_step"] == 2
    said = notices(res.stderr)
    ignored = next(line for line in said if line.startswith("r1kit: ignoring trl/open-r1 keys in grpo.yaml"))
    assert ignored.split(": ", 2)[2].split(", ") == [
        "model_revision",
        "attn_implementation",
        "bf16",
        "vllm_device",
        "do_eval",
        "eval_strategy",
        "eval_steps",
        "gradient_checkpointing_kwargs",
        "hub_strategy",
        "log_completions",
        "log_level",
        "logging_first_step",
        "logging_strategy",
        "max_prompt_length",
        "overwrite_output_dir",
        "per_device_eval_batch_size",
        "save_strategy",
        "save_total_limit",
    ]
    assert (
        "r1kit: dataset_config 'all' ignored: sums.jsonl is a local dataset (it has no configurations)"
        in said
    )


def test_an_open_r1_sft_recipe_runs_and_trl_flags_with_underscores_win_over_it(tmp_path):
    shutil.copy(FIXTURES / "sft.yaml", tmp_path / "sft.yaml")
    chats(tmp_path / "chats.jsonl")
    res = run_cli(
        "sft",
        "--config",
        "sft.yaml",
        "--learning_rate",
        "2e-3",
        "--max_steps=2",
        "--per_device_train_batch_size",
        "4",
        "--output_dir",
        "out",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    resolved = yaml.safe_load((tmp_path / "out" / "resolved_config.yaml").read_text())
    expected = {
        "model": "tiny",
        "dtype": "float32",
        "data": "chats.jsonl",
        "seed": 42,
        "epochs": 15.0,
        "learning_rate": 2e-3,
        "max_steps": 2,
        "batch_size": 4,  # the flags, over the YAML's 1e-5, 3, 2
        "grad_accum": 2,
        "max_length": 256,
        "packing": False,
        "warmup_ratio": 0.05,
        "logging_steps": 1,
        # cosine_with_min_lr + lr_scheduler_kwargs {min_lr_rate: 0.1}
        "lr_scheduler": "cosine",
        "min_lr_ratio": 0.1,
        "gradient_checkpointing": True,
        "report_to": "none",
        "output": "out",
        "push_to_hub": "",
        "lora": True,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_target": "all-linear",  # use_peft, lora_target_modules
    }
    assert {k: resolved[k] for k in expected} == expected
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["global_step"] == 2
    assert not (tmp_path / "data").exists()  # --output_dir replaced the YAML's output_dir


def test_what_r1kit_cannot_honour_is_refused_in_one_line_before_anything_runs(tmp_path):
    """open-r1's SFT demo carries a Jinja chat_template: one line saying what to do, exit 2, nothing written."""
    recipe = yaml.safe_load((FIXTURES / "sft.yaml").read_text())
    recipe["chat_template"] = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(recipe))
    chats(tmp_path / "chats.jsonl")
    cfg, res = cli_config("sft", "--config", "sft.yaml", cwd=tmp_path)
    assert cfg is None and res.exit_code == 2
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "r1kit: error: chat_template is not supported: r1kit renders prompts with the tokenizer's own chat template"
        )
    )
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "model_revision",
            "v2",
            "model_revision: 'v2' is not supported: r1kit loads a hub model's main revision",
        ),
        ("lr_scheduler_kwargs", {"min_lr": 1e-6}, "r1kit takes only min_lr_rate"),
        (
            "num_train_epoch",
            2,
            "unknown key 'num_train_epoch' in .* \\(did you mean 'num_train_epochs'\\?\\)",
        ),
        ("reward_funcs", ["accuracy", "cosine"], "open-r1's 'cosine' reward has no r1kit counterpart"),
        ("reward_weights", [1.0, 2.0], "reward_weights needs reward_funcs beside it"),
    ],
)
def test_refusals_name_the_key(tmp_path, key, value, message):
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {key: value, "lr_scheduler_type": "cosine_with_min_lr"}
            if key == "lr_scheduler_kwargs"
            else {key: value}
        )
    )
    with pytest.raises(R1kitError, match=message):
        build_config(grpo.Config, str(tmp_path / "c.yaml"), {"output": "o", "data": "d.jsonl"})


def test_open_r1_reward_names_map_to_r1kit_rewards_with_their_weights(tmp_path):
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "reward_funcs": ["accuracy", "repetition_penalty", "soft_overlong_punishment", "length"],
                "reward_weights": [1, 0.5, 0.25, 2],
            }
        )
    )
    cfg = build_config(grpo.Config, str(tmp_path / "c.yaml"), {"output": "o", "data": "d.jsonl"})
    assert cfg.reward == ["accuracy=1", "repetition=0.5", "overlong=0.25", "length=2"]
    with pytest.raises(
        R1kitError, match=r"number of reward_weights \(1\) must match number of reward_funcs \(2"
    ):
        build_config(
            grpo.Config,
            None,
            {
                "output": "o",
                "data": "d.jsonl",
                "reward_funcs": ["accuracy", "format"],
                "reward_weights": [1.0],
            },
        )
    with pytest.raises(R1kitError, match="--reward is given twice, as reward and as reward-funcs"):
        build_config(
            grpo.Config,
            None,
            {"output": "o", "data": "d.jsonl", "reward": ["format"], "reward_funcs": ["accuracy"]},
        )


def test_trl_flags_through_the_real_cli(tmp_path):
    """Hidden flags for trl's keys: repeated like r1kit's list flags, in underscores or dashes."""
    cfg, res = cli_config(
        "grpo",
        "--data",
        "d.jsonl",
        "--output_dir",
        tmp_path / "o",
        "--reward_funcs",
        "accuracy",
        "--reward-funcs",
        "format",
        "--reward_weights",
        "1",
        "--reward_weights",
        "0.5",
        "--lr_scheduler_type",
        "cosine",
        "--loss_type",
        "dr_grpo",
        "--use_vllm",
        "false",
        "--scale_rewards",
        "true",
        "--use_peft",
        "--lora_target_modules",
        "q_proj",
        "--mask_truncated_completions",
        "--num_generations",
        "4",
        "--max_completion_length",
        "16",
    )
    assert res.exit_code == 0, res.stderr
    assert (cfg.reward, cfg.lr_scheduler, cfg.min_lr_ratio, cfg.loss, cfg.use_vllm, cfg.scale_rewards) == (
        ["accuracy=1", "format=0.5"],
        "cosine",
        0.0,
        "dr_grpo",
        "off",
        "group",
    )
    assert (cfg.lora, cfg.lora_target, cfg.mask_truncated, cfg.num_generations, cfg.output) == (
        True,
        "q_proj",
        True,
        4,
        str(tmp_path / "o"),
    )
    shown = cli_config("grpo", "--help")[1].stdout
    assert "--reward " in shown and "--reward-funcs" not in shown and "--loss-type" not in shown  # hidden


def test_grpo_batches_follow_trls_arithmetic(monkeypatch):
    """A step is per_device_train_batch_size x processes x gradient_accumulation_steps completions."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    base = {"output": "o", "data": "d.jsonl", "num_generations": 4}
    cfg = build_config(
        grpo.Config, None, {**base, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 3}
    )
    assert (cfg.batch_size, cfg.generation_batch_size, cfg.completions_per_step) == (2, 12, 12)
    cfg = build_config(
        grpo.Config, None, {**base, "gradient_accumulation_steps": 1}
    )  # trl's default batch: 8
    assert (cfg.batch_size, cfg.generation_batch_size) == (8, 16)
    with pytest.raises(
        R1kitError,
        match=r"generation batch of 6 completions \(from per_device_train_batch_size "
        r"\(3\) x 2 processes \(WORLD_SIZE\) x gradient_accumulation_steps \(1\) = 6\) "
        r"must be divisible by num_generations \(4\)",
    ):
        build_config(
            grpo.Config, None, {**base, "per_device_train_batch_size": 3, "gradient_accumulation_steps": 1}
        )
    # steps_per_generation: a generation batch of 2 x 2 x 6 = 24 completions, trained in 24 / 12 = 2 steps
    cfg = build_config(
        grpo.Config,
        None,
        {
            **base,
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 3,
            "steps_per_generation": 6,
        },
    )
    assert (cfg.generation_batch_size, cfg.updates_per_rollout, cfg.completions_per_step) == (24, 2, 12)
    with pytest.raises(
        R1kitError,
        match=r"a generation batch of 16 completions is not a whole number of optimizer "
        r"steps of per_device_train_batch_size \(2\) x 2 processes",
    ):
        build_config(
            grpo.Config,
            None,
            {
                **base,
                "per_device_train_batch_size": 2,
                "gradient_accumulation_steps": 3,
                "steps_per_generation": 4,
            },
        )
    with pytest.raises(R1kitError, match="both size GRPO's step; keep one"):
        build_config(grpo.Config, None, {**base, "gradient_accumulation_steps": 2, "prompts_per_step": 4})


def test_gradient_accumulation_is_an_alias_where_r1kit_has_it():
    cfg = build_config(sft.Config, None, {"output": "o", "data": "d.jsonl", "gradient_accumulation_steps": 4})
    assert cfg.grad_accum == 4
    cfg = build_config(
        dpo_shorten.Config,
        None,
        {"output": "o", "data": "d.jsonl", "gradient_accumulation_steps": 3, "loss_type": "ipo"},
    )
    assert (cfg.grad_accum, cfg.loss) == (3, "ipo")


def test_splits_push_to_hub_and_value_forms(tmp_path, monkeypatch, capsys):
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump({"dataset_train_split": "tr", "dataset_test_split": "te"})
    )
    assert (
        build_config(grpo.Config, str(tmp_path / "c.yaml"), {"output": "o", "data": "d.jsonl"}).split == "tr"
    )
    assert (
        build_config(evaluate.Config, str(tmp_path / "c.yaml"), {"output": "o", "data": "d.jsonl"}).split
        == "te"
    )
    assert "dataset_test_split" in capsys.readouterr().err  # grpo's notice names the split it does not read
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")  # the checks read no network
    (tmp_path / "h.yaml").write_text(
        "push_to_hub: true\nhub_model_id: me/tiny-grpo\nhub_private_repo: true\n"
    )
    cfg = build_config(sft.Config, str(tmp_path / "h.yaml"), {"output": "runs/x", "data": "d.jsonl"})
    assert (cfg.push_to_hub, cfg.hub_private) == ("me/tiny-grpo", True)
    (tmp_path / "h.yaml").write_text("push_to_hub: true\noutput_dir: runs/tiny-sft\n")
    assert build_config(sft.Config, str(tmp_path / "h.yaml"), {"data": "d.jsonl"}).push_to_hub == "tiny-sft"
    with pytest.raises(R1kitError, match="name two repos"):
        build_config(
            sft.Config, None, {"output": "o", "data": "d.jsonl", "push_to_hub": "me/a", "hub_model_id": "b"}
        )
    cfg = build_config(
        sft.Config,
        None,
        {
            "output": "o",
            "data": "d.jsonl",
            "report_to": ["none"],
            "lora_target_modules": ["q_proj", "k_proj"],
            "torch_dtype": "bfloat16",
        },
    )
    assert (cfg.report_to, cfg.lora_target, cfg.dtype) == ("none", "q_proj,k_proj", "bfloat16")
    with pytest.raises(
        R1kitError, match="dataset_config 'en': r1kit reads a hub dataset's default configuration"
    ):
        build_config(grpo.Config, None, {"output": "o", "data": "org/set", "dataset_config": "en"})
