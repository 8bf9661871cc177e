"""The shape of every stage's options: composed from r1kit/options.py's groups, one meaning and one
default per name, validated however a Config is built, old names kept with a notice, stages that use
only library modules, and error hints that name only flags the stage has."""

import ast
import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from r1kit import options
from r1kit.cli import STAGES, app
from r1kit.config import build_config, flag_name, other_names
from r1kit.errors import R1kitError
from r1kit.trl_names import flag_types

ROOT = Path(__file__).resolve().parents[1]
GROUP_FIELDS = {f.name: (g, f) for g in reversed(options.GROUPS) for f in dataclasses.fields(g)}

# Stage fields that carry a group's name without being that group's field, and why.
OWN_MEANING = {
    ("merge", "model"): "the checkpoints to average: folders only (no 'tiny', .gguf or hub id)",
    ("data think", "template"): "the format written into the data; there is no tokenizer, hence no 'auto'",
    ("data think", "answer_field"): "the final-answer column of worked solutions, else read after '####'",
}
# Names that several stages have outside the groups: one meaning each, stated here.
SHARED_OUTSIDE_GROUPS = {
    "beta": "the KL coefficient to the reference model (grpo's k3 term, DPO's beta)",
    "samples": "a saved samples table used instead of generating (evaluate, dpo-shorten)",
    "loss": "the loss function (grpo: grpo/dapo/dr_grpo/kimi; dpo-shorten: trl's DPO loss types)",
    "stop": "stop strings: a completion ends where it first writes one (grpo's rollouts, evaluate's samples)",
}


def configs():
    return {stage: importlib.import_module(module).Config for stage, module in STAGES.items()}


def field_default(f):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_group_field_keeps_the_groups_meaning_and_default(stage):
    cls = configs()[stage]
    for f in dataclasses.fields(cls):
        if f.name not in GROUP_FIELDS or (stage, f.name) in OWN_MEANING:
            continue
        group, base = GROUP_FIELDS[f.name]
        restated = f.metadata.get("restated_from")
        if restated is None:
            # inherited as it is: the group must be composed, and the field is the group's own
            assert issubclass(cls, group), f"{stage}: --{flag_name(f.name)} is not from {group.__name__}"
            assert f.metadata == base.metadata and field_default(f) == field_default(base), (
                f"{stage}: {f.name}"
            )
        else:
            # restated for another default: same meaning (the group's help leads), a note says why
            assert restated in {g.__name__ for g in options.GROUPS}
            origin = dataclasses.fields(getattr(options, restated))
            base = next(b for b in origin if b.name == f.name)
            assert f.metadata["help"].startswith(base.metadata["help"]), f"{stage}: {f.name}"
            assert {k: v for k, v in f.metadata.items() if k not in ("help", "restated_from", "choices")} == {
                k: v for k, v in base.metadata.items() if k not in ("help", "choices")
            }
            if f.metadata.get("choices") != base.metadata.get("choices"):  # may only narrow them
                assert set(f.metadata["choices"]) < set(base.metadata["choices"])


def test_names_outside_the_groups_are_one_stages_own_or_listed():
    seen: dict[str, list[str]] = {}
    for stage, cls in configs().items():
        for f in dataclasses.fields(cls):
            if f.name not in GROUP_FIELDS and f.name not in ("output", "overwrite", "seed"):
                seen.setdefault(f.name, []).append(stage)
    shared = {name for name, stages in seen.items() if len(stages) > 1}
    assert shared <= set(SHARED_OUTSIDE_GROUPS), sorted(shared - set(SHARED_OUTSIDE_GROUPS))


def test_the_leads_naming_decisions():
    cls = configs()
    trainers = {"sft", "grpo", "dpo-shorten", "distill"}
    samplers = {"evaluate", "rejection-sample", "distill", "dpo-shorten"}
    for stage, c in cls.items():
        names = {f.name: f for f in dataclasses.fields(c)}
        # --batch-size is only ever the training micro-batch; decoding batches are --sample-batch-size
        assert ("batch_size" in names) == (stage in trainers), stage
        assert ("sample_batch_size" in names) == (stage in samplers), stage
        if "batch_size" in names:
            assert names["batch_size"].metadata["help"].startswith("Training micro-batch")
        if "limit" in names:
            assert "seeded random subset" in names["limit"].metadata["help"], stage
        if "template" in names and (stage, "template") not in OWN_MEANING:
            assert field_default(names["template"]) == "auto", stage
        if "lora_dropout" in names:
            assert field_default(names["lora_dropout"]) == 0.05, stage
    assert "keep" in {f.name for f in dataclasses.fields(cls["distill"])}
    assert "policy" not in {f.name for f in dataclasses.fields(cls["distill"])}


def test_literal_choices_agree_with_the_modules_they_copy():
    from r1kit.filters import PARAGRAPH_UNITS
    from r1kit.generation import BACKEND_CHOICES
    from r1kit.models import DTYPES
    from r1kit.sampling import KEEP_POLICIES

    assert options.DTYPES == DTYPES and options.BACKENDS == BACKEND_CHOICES
    assert options.KEEP_POLICIES == KEEP_POLICIES and options.PARAGRAPH_UNITS == PARAGRAPH_UNITS


# ---------------------------------------------------------------------------------------------
# Validation whenever a Config is built


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_config_built_in_python_is_validated(stage, tmp_path):
    cls = configs()[stage]
    with pytest.raises(R1kitError, match=r"--seed \(-1\) must be between 0 and"):
        cls(output=str(tmp_path / "out"), seed=-1)
    with pytest.raises(R1kitError, match="--output is required"):
        cls()


def test_python_configs_check_group_and_stage_rules(tmp_path):
    from r1kit.stages import dpo_shorten, evaluate, rejection_sample, sft

    out = str(tmp_path / "out")
    with pytest.raises(R1kitError, match="--data is required: the training dataset"):
        sft.Config(output=out)
    with pytest.raises(R1kitError, match="unknown reward 'acuracy'. Did you mean 'accuracy'"):
        rejection_sample.Config(output=out, data="d.jsonl", reward=["acuracy"])
    with pytest.raises(R1kitError, match=r"--keep 'longest' is not one of"):
        rejection_sample.Config(output=out, data="d.jsonl", keep="longest")
    with pytest.raises(R1kitError, match="unknown template 'chatt'. Did you mean 'chat'"):
        rejection_sample.Config(output=out, data="d.jsonl", template="chatt")
    with pytest.raises(R1kitError, match="--greedy"):
        evaluate.Config(output=out, data="d.jsonl", temperature=0.0)
    assert evaluate.Config(output=out, data="d.jsonl", temperature=0.0, greedy=True).argmax()
    with pytest.raises(R1kitError, match="or --samples"):
        dpo_shorten.Config(output=out)
    with pytest.raises(R1kitError, match="--batch-size \\(0\\) must be >= 1"):
        sft.Config(output=out, data="d.jsonl", batch_size=0)
    # nothing on disk is read to build a config: the data file need not exist
    cfg = sft.Config(output=out, data=str(tmp_path / "not-yet.jsonl"))
    assert cfg.data.endswith("not-yet.jsonl") and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# Renamed options: old names work for one release, with a notice

RENAMED = [
    ("evaluate", "batch_size", "sample_batch_size", 7),
    ("rejection-sample", "batch_size", "sample_batch_size", 7),
    ("distill", "policy", "keep", "shortest-correct"),
]


@pytest.mark.parametrize("stage, old, new, value", RENAMED)
def test_deprecated_names_work_with_a_notice(stage, old, new, value, tmp_path, capsys):
    cls = configs()[stage]
    assert other_names(cls)[old] == new
    base = {
        "output": str(tmp_path / "out"),
        "data": "d.jsonl",
        **({"teacher": "tiny"} if stage == "distill" else {}),
    }
    cfg = build_config(cls, None, {**base, old: value})
    assert getattr(cfg, new) == value
    err = capsys.readouterr().err
    assert err.strip() == (
        f"r1kit: --{flag_name(old)} is deprecated; use --{flag_name(new)} (the old name goes in "
        "the next release)"
    )
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({old: value}))
    cfg = build_config(cls, str(config), base)
    assert getattr(cfg, new) == value
    assert f"key '{old}' in {config} is deprecated; use '{new}'" in capsys.readouterr().err
    with pytest.raises(R1kitError, match="given twice"):
        build_config(cls, None, {**base, old: value, new: value})


def test_trls_name_is_not_deprecated(tmp_path, capsys):
    """dpo-shorten's --loss was --loss-type, which is trl's DPOConfig name: accepted for good, silently."""
    cls = configs()["dpo-shorten"]
    cfg = build_config(cls, None, {"output": str(tmp_path / "out"), "data": "d.jsonl", "loss_type": "ipo"})
    assert cfg.loss == "ipo" and capsys.readouterr().err == ""


def test_deprecated_flag_through_the_real_cli(tmp_path):
    """The hidden old flag reaches the config: --batch-size 3 on evaluate is --sample-batch-size 3, which
    the error below quotes; --help lists only the new name."""
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            str(tmp_path / "none.jsonl"),
            "--batch-size",
            "0",
            "--output",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 2
    assert "--batch-size is deprecated; use --sample-batch-size" in res.stderr
    assert "--sample-batch-size (0) must be >= 1" in res.stderr
    shown = runner.invoke(app, ["evaluate", "--help"]).stdout
    assert "--sample-batch-size" in shown and "--batch-size" not in shown


# ---------------------------------------------------------------------------------------------
# Stages use library modules only


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against r1kit.stages
                base = "r1kit.stages" if node.level == 1 else "r1kit"
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def test_no_stage_imports_another_stage():
    stage_files = sorted((ROOT / "r1kit" / "stages").glob("*.py"))
    stage_modules = {f"r1kit.stages.{p.stem}" for p in stage_files if p.stem != "__init__"}
    assert len(stage_modules) == len(STAGES)
    for path in stage_files:
        own = f"r1kit.stages.{path.stem}"
        others = {m for m in imported_modules(path) if m in stage_modules and m != own}
        assert not others, (
            f"{path.name} imports the stage module(s) {sorted(others)}: move what it needs to a library"
        )


def test_the_import_check_sees_every_form(tmp_path):
    src = tmp_path / "x.py"
    src.write_text(
        "import r1kit.stages.sft\nfrom r1kit.stages import evaluate\nfrom .distill import run\n"
        "def f():\n    from r1kit.stages.grpo import Config\n"
    )
    assert {"r1kit.stages.sft", "r1kit.stages.evaluate", "r1kit.stages.distill", "r1kit.stages.grpo"} <= (
        imported_modules(src)
    )


# ---------------------------------------------------------------------------------------------
# Every hint names only flags the stage has

FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9_-]*)")  # a hint may spell a flag trl's way: --learning_rate
COMMON_FLAGS = {"help", "config", "version"}
# Library modules and the stages that run their code (whole module, or module::function).
LIBRARY_USERS = {
    "r1kit/finetuning.py": ("sft", "distill"),
    "r1kit/finetuning.py::to_prompt_completion": ("sft",),  # distill's traces always hold messages
    "r1kit/rejection.py": ("rejection-sample", "distill"),
    "r1kit/data/prompts.py": ("grpo", "rejection-sample", "distill", "dpo-shorten", "evaluate"),
    "r1kit/data/prompts.py::load_prompts": ("rejection-sample", "distill", "dpo-shorten"),
    "r1kit/data/tasks.py": ("grpo", "rejection-sample", "distill", "dpo-shorten", "evaluate"),
    "r1kit/data/loading.py": (
        "sft",
        "grpo",
        "rejection-sample",
        "distill",
        "dpo-shorten",
        "evaluate",
        "data think",
    ),
    "r1kit/data/templates.py::few_shot_examples": ("evaluate",),
    "r1kit/sampling.py": ("rejection-sample", "distill", "dpo-shorten"),
    "r1kit/sampling.py::build_pairs": ("dpo-shorten",),
    "r1kit/evaluation.py": ("evaluate",),
    "r1kit/filters.py": ("rejection-sample", "distill"),
    "r1kit/training.py": ("sft", "grpo", "dpo-shorten"),
    "r1kit/training.py::lora_config": ("sft", "grpo", "dpo-shorten", "distill"),
    "r1kit/generation/base.py": ("rejection-sample", "distill", "dpo-shorten", "evaluate"),
    "r1kit/generation/fast_backend.py": ("rejection-sample", "distill", "dpo-shorten", "evaluate"),
    "r1kit/merging.py": ("merge",),
    **{f"r1kit/rl/{p.name}": ("grpo",) for p in (ROOT / "r1kit" / "rl").glob("*.py")},
    "r1kit/data/arithmetic.py": ("data arithmetic",),
    "r1kit/data/think.py": ("data think",),
    "r1kit/data/templates.py": (
        "grpo",
        "rejection-sample",
        "distill",
        "dpo-shorten",
        "evaluate",
        "data think",
    ),
    "r1kit/data/__init__.py": tuple(STAGES),
    "r1kit/report.py": ("report",),
    "r1kit/rewards/registry.py": ("grpo", "rejection-sample", "distill", "dpo-shorten"),
    "r1kit/config.py": tuple(STAGES),
    "r1kit/model_card.py": ("sft", "grpo", "dpo-shorten", "distill", "merge"),
    "r1kit/outputs.py": tuple(STAGES),
    "r1kit/outputs.py::_check_partial": ("sft", "grpo", "dpo-shorten"),  # only trainer checkpoints are kept
    "r1kit/outputs.py::resume_command": ("sft", "grpo", "dpo-shorten"),
    "r1kit/outputs.py::_push": ("sft", "grpo", "dpo-shorten", "distill", "merge"),
    "r1kit/outputs.py::git_state": (),  # git's own flags (--porcelain), not a hint
    "r1kit/hub.py": ("sft", "grpo", "dpo-shorten", "distill", "merge"),
    "r1kit/trl_names.py": tuple(STAGES),
    "r1kit/trl_names.py::_rewards": ("grpo", "rejection-sample", "distill", "dpo-shorten"),
    "r1kit/trl_names.py::_scheduler": ("sft", "grpo", "dpo-shorten", "distill"),
    "r1kit/trl_names.py::_hub_repo": ("sft", "grpo", "dpo-shorten", "distill", "merge"),
    "r1kit/trl_names.py::_grpo_batches": ("grpo",),
    "r1kit/trl_names.py::_dataset_config": (
        "sft",
        "grpo",
        "rejection-sample",
        "distill",
        "dpo-shorten",
        "evaluate",
        "data think",
    ),
}
# Modules whose hints are checked by another test, or that hold none a user reads.
HINTS_CHECKED_ELSEWHERE = {
    "r1kit/cli.py": "its own flags (--config, --help, --version); unknown_flag's hints: "
    "test_cli.py::test_every_unknown_flag_hint_names_flags_the_stage_has",
    "r1kit/options.py": "test_group_hints_name_only_flags_of_every_stage_composing_the_group",
}


def flags_of(stage: str) -> set[str]:
    cls = configs()[stage]
    fields = [f.name for f in dataclasses.fields(cls)]
    names = (
        fields + list(other_names(cls)) + list(flag_types(set(fields)))
    )  # r1kit's, trl's aliases, trl's rules
    return {flag_name(n) for n in names} | COMMON_FLAGS


def hint_strings(path: Path):
    """(top-level name, string) for every string literal outside docstrings and option help texts."""
    return strings_of(ast.parse(path.read_text()))


def strings_of(tree: ast.Module):
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    for top in tree.body:
        name = getattr(top, "name", "")
        for node in ast.walk(top):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if isinstance(top, ast.ClassDef) and _in_option_default(top, node):
                    continue  # help texts describe the option; what a user is told to do is checked
                yield name, node.value


def _in_option_default(cls_node: ast.ClassDef, const: ast.Constant) -> bool:
    return any(
        isinstance(stmt, ast.AnnAssign)
        and stmt.value is not None
        and any(n is const for n in ast.walk(stmt.value))
        for stmt in cls_node.body
    )


def mentioned(strings) -> set[str]:
    found = set()
    for _, text in strings:
        for flag in FLAG.findall(text):
            found.add(flag_name(flag).removeprefix("no-"))
    return found


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_module_names_only_its_own_flags(stage):
    path = ROOT / (STAGES[stage].replace(".", "/") + ".py")
    unknown = mentioned(hint_strings(path)) - flags_of(stage)
    assert not unknown, (
        f"{path.name} tells the user about --{', --'.join(sorted(unknown))}, which {stage} lacks"
    )


def test_library_hints_name_only_flags_of_every_stage_that_runs_them():
    problems = []
    for key, stages in LIBRARY_USERS.items():
        module, _, function = key.partition("::")
        strings = [(n, s) for n, s in hint_strings(ROOT / module) if not function or n == function]
        if not function:  # functions with their own entry are checked against their own users
            strings = [(n, s) for n, s in strings if f"{module}::{n}" not in LIBRARY_USERS]
        for stage in stages:
            for flag in sorted(mentioned(strings) - flags_of(stage)):
                problems.append(f"{key} names --{flag}, which {stage} lacks")
    assert not problems, problems


def test_group_hints_name_only_flags_of_every_stage_composing_the_group():
    problems = []
    for group in options.GROUPS:
        strings = list(strings_of(ast.parse(inspect.getsource(group))))
        for stage, cls in configs().items():
            if issubclass(cls, group):
                problems += [
                    f"{group.__name__} names --{flag}, which {stage} lacks"
                    for flag in sorted(mentioned(strings) - flags_of(stage))
                ]
    assert not problems, problems


def test_every_module_that_names_a_flag_is_checked():
    """A library module that tells the user about a flag is listed in LIBRARY_USERS with the stages that run
    it, so that a new module's hints (or a new hint in an unlisted one) cannot go unchecked; the packages a
    stage is built from (r1kit/rl, r1kit/data) are listed whole."""
    listed = {key.partition("::")[0] for key in LIBRARY_USERS}
    unchecked = []
    for path in sorted((ROOT / "r1kit").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("r1kit/stages/") or rel in HINTS_CHECKED_ELSEWHERE or rel in listed:
            continue
        if mentioned(hint_strings(path)) or rel.startswith(("r1kit/rl/", "r1kit/data/")):
            unchecked.append(rel)
    assert not unchecked, f"add these modules to LIBRARY_USERS with the stages that run them: {unchecked}"
    for key, stages in LIBRARY_USERS.items():
        assert set(stages) <= set(STAGES), key
        assert (ROOT / key.partition("::")[0]).is_file(), key


def test_the_hint_check_finds_a_foreign_flag(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        '"""--not-checked in a docstring"""\n'
        'def f():\n    raise ValueError("use --backend hf or --no-filters")\n'
    )
    assert mentioned(hint_strings(src)) == {"backend", "filters"}
    assert "backend" not in flags_of("sft") and "backend" in flags_of("evaluate")
    # trl's names: a hint may spell them with underscores; an alias or a rule key is a flag only where it applies
    src.write_text(
        'def f():\n    raise ValueError("lower --per_device_train_batch_size or --reward_funcs")\n'
    )
    assert mentioned(hint_strings(src)) == {"per-device-train-batch-size", "reward-funcs"}
    assert {"per-device-train-batch-size", "reward-funcs", "num-train-epochs"} <= flags_of("grpo")
    assert "reward-funcs" not in flags_of("sft") and "per-device-train-batch-size" not in flags_of("merge")


# ---------------------------------------------------------------------------------------------
# One default template, one meaning of --limit


def test_template_auto_follows_the_tokenizer():
    from r1kit.data.prompts import resolve_template
    from r1kit.models import build_tiny_tokenizer

    chat = build_tiny_tokenizer()
    bare = build_tiny_tokenizer()
    bare.chat_template = None
    assert resolve_template("auto", chat, "tiny", "--model") == "chat"
    assert resolve_template("auto", bare, "base", "--model") == "raw"
    assert resolve_template("r1-zero", bare, "base", "--model") == "r1-zero"
    with pytest.raises(
        R1kitError,
        match="--template chat-think renders chat messages, but the tokenizer of "
        "--teacher base has no chat template",
    ):
        resolve_template("chat-think", bare, "base", "--teacher")


def test_sft_limit_is_a_seeded_random_subset(tmp_path):
    from r1kit.finetuning import load_training_data
    from r1kit.stages.sft import Config

    data = tmp_path / "d.jsonl"
    data.write_text("".join(f'{{"prompt": "p{i}", "completion": "c{i}"}}\n' for i in range(40)))

    def rows(seed):
        cfg = Config(output=str(tmp_path / "out"), data=str(data), limit=5, seed=seed)
        return load_training_data(cfg)["prompt"]

    first = rows(0)
    assert len(first) == 5 and first == rows(0)  # the same seed, the same rows
    assert first != [f"p{i}" for i in range(5)]  # not the first rows
    assert first != rows(1)
