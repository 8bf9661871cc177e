"""The README runs as written: every command of its walkthrough is run through the real CLI with
only size flags added (fewer rows, steps and tokens), and every r1kit command anywhere in the README
(code blocks, indented blocks, inline code) names only flags its stage has. A README edit that
renames or invents a flag (the walkthrough once gave `rejection-sample --policy`, a flag of
`distill`) fails here."""

import dataclasses
import json
import re
import shlex

import pytest
import yaml
from conftest import REPO, run_cli
from test_options import configs, flags_of

from r1kit.cli import STAGES
from r1kit.config import flag_name
from r1kit.rl.presets import PRESETS
from r1kit.trl_names import flag_types

README = REPO / "README.md"

# What the walkthrough's commands get on top of what the README says, keyed by their --output: sizes only.
# The student's SFT data is what rejection sampling kept, so the SFT before it must learn its 16 training
# problems by heart (120 passes) for some of the 8 samples per prompt to be correct.
SIZES = {
    "runs/data": ["--train-size", "16", "--test-size", "8"],
    "runs/sft": ["--max-steps", "120"],
    "runs/grpo": [
        "--max-steps",
        "1",
        "--prompts-per-step",
        "1",
        "--num-generations",
        "2",
        "--max-completion-length",
        "32",
    ],
    "runs/rs": ["--max-new-tokens", "128"],
    "runs/student": ["--max-steps", "2"],
    "runs/eval": ["--max-new-tokens", "96"],
}
SIZE_FLAGS = {
    "--train-size",
    "--test-size",
    "--max-steps",
    "--limit",
    "--prompts-per-step",
    "--num-generations",
    "--max-completion-length",
    "--max-new-tokens",
}


def section(text: str, title: str) -> str:
    """The README's text under `## title`, up to the next heading of that level."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def words(line: str) -> list[str]:
    """A shell line's words, comments dropped (split on blanks when its quotes do not close: prose)."""
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split("#")[0].split()


def commands(block: str) -> list[list[str]]:
    """A shell block's commands as argument lists: continuation lines joined, comments dropped."""
    return [words(line) for line in block.replace("\\\n", " ").splitlines() if words(line)]


def walkthrough() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", section(README.read_text(), "A recipe walkthrough"), re.DOTALL)
    assert blocks, "the README's walkthrough has no ```bash block"
    return [cmd for block in blocks for cmd in commands(block)]


def option(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_the_readme_walkthrough_runs_as_written(tmp_path):
    """Each command exactly as the README gives it, plus SIZES, in one folder, in order; then what
    each stage wrote is checked against what the walkthrough says it does."""
    cmds = walkthrough()
    assert len(cmds) >= 6 and all(cmd[0] == "r1kit" for cmd in cmds), cmds
    assert sorted(option(cmd, "--output") for cmd in cmds) == sorted(SIZES), (
        "a new walkthrough command needs SIZES"
    )
    assert {w for extra in SIZES.values() for w in extra if w.startswith("--")} <= SIZE_FLAGS
    for cmd in cmds:
        out = option(cmd, "--output")
        res = run_cli(*cmd[1:], *SIZES[out], cwd=tmp_path)
        assert res.returncode == 0, f"README command failed: {shlex.join(cmd)}\n{res.stderr[-3000:]}"
        assert (tmp_path / out / "manifest.json").is_file(), out
    runs = tmp_path / "runs"

    from datasets import load_from_disk

    data = load_from_disk(str(runs / "data" / "data"))
    assert (data["train"].num_rows, data["test"].num_rows) == (16, 8)
    assert json.loads((runs / "sft" / "manifest.json").read_text())["global_step"] == 120
    resolved = yaml.safe_load((runs / "grpo" / "resolved_config.yaml").read_text())
    r1_zero = PRESETS["r1-zero"]
    assert (
        resolved["preset"],
        resolved["template"],
        resolved["reward"],
        resolved["updates_per_rollout"],
    ) == (
        "r1-zero",
        "chat",
        r1_zero["reward"],
        r1_zero["updates_per_rollout"],
    )  # --template chat beats the preset

    # rejection sampling kept, per prompt with a correct sample, its shortest correct one
    kept, samples = load_from_disk(str(runs / "rs" / "data")), load_from_disk(str(runs / "rs" / "samples"))
    assert kept.num_rows > 0 and all(kept["correct"])
    assert len(set(kept["prompt_index"])) == kept.num_rows
    shortest = {}
    for row in samples:
        if row["correct"]:
            shortest[row["prompt_index"]] = min(row["num_tokens"], shortest.get(row["prompt_index"], 1 << 30))
    assert {i: n for i, n in zip(kept["prompt_index"], kept["num_tokens"])} == shortest

    student = json.loads((runs / "student" / "model" / "config.json").read_text())
    assert student["architectures"] == ["LlamaForCausalLM"]  # tiny-llama: another architecture than tiny
    results = json.loads((runs / "eval" / "results.json").read_text())
    assert list(results) == ["runs/sft", "runs/grpo", "runs/student"]
    assert all(r["num_prompts"] == 8 and 0.0 <= r["pass@1"] <= 1.0 for r in results.values())


# ---------------------------------------------------------------------------------------------
# Every r1kit command in the README names only flags its stage has


def readme_commands(text: str) -> list[list[str]]:
    """Every r1kit command in the README: in ``` blocks, in 4-space indented blocks and in inline code
    (`r1kit grpo --use-vllm on`, or without r1kit: `sft --batch-size`); `accelerate launch ... -m r1kit
    STAGE ...` counts from STAGE on. Placeholders (`r1kit <stage>`) are not commands."""
    fenced = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.DOTALL)
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    indented = [re.sub(r"(?m)^ {4}", "", block) for block in re.findall(r"(?m)((?:^ {4}.*\n?)+)", prose)]
    found = []
    for cmd in [c for block in fenced + indented for c in commands(block)]:
        for i, word in enumerate(cmd):
            if word == "r1kit" and (i == 0 or cmd[i - 1] == "-m") and i + 1 < len(cmd):
                found.append(cmd[i + 1 :])
                break
    for span in re.findall(r"`([^`\n]+)`", prose):
        cmd = words(span)
        cmd = cmd[1:] if cmd[:1] == ["r1kit"] else cmd
        stage = stage_and_flags(cmd)[0] if cmd else ""
        rest = cmd[len(stage.split()) :]
        if span.startswith("r1kit ") or (stage in STAGES and rest and rest[0].startswith("--")):
            found.append(cmd)
    return [cmd for cmd in found if cmd and not cmd[0].startswith("<")]


def stage_and_flags(cmd: list[str]) -> tuple[str, list[str]]:
    stage = " ".join(cmd[:2]) if cmd[0] == "data" and len(cmd) > 1 else cmd[0]
    flags = [w.split("=", 1)[0] for w in cmd if w.startswith("--")]
    return stage, flags


def unknown_flags(text: str) -> list[str]:
    """'r1kit CMD: STAGE has no --FLAG' for every flag of a README command that its stage lacks (the
    CLI takes underscores as dashes, and --no-X for a switch --X)."""
    problems = []
    for cmd in readme_commands(text):
        stage, flags = stage_and_flags(cmd)
        if stage not in STAGES:
            problems.append(f"r1kit {stage}: no such stage")
            continue
        known = flags_of(stage) | {flag_name(k) for k in flag_types(set(fields(stage)))}
        for flag in flags:
            name = flag[2:].replace("_", "-")
            if name not in known and name.removeprefix("no-") not in known:
                problems.append(f"r1kit {shlex.join(cmd)}: {stage} has no {flag}")
    return problems


def fields(stage: str) -> list[str]:
    return [f.name for f in dataclasses.fields(configs()[stage])]


def test_every_readme_command_names_flags_its_stage_has():
    cmds = readme_commands(README.read_text())
    assert len(cmds) >= 10, cmds  # the walkthrough, the scaling example, the Gemma example, inline ones
    assert not unknown_flags(README.read_text())


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            "```bash\nr1kit rejection-sample --model m --data d --policy shortest-correct --output o\n```\n",
            "rejection-sample has no --policy",
        ),
        (
            "Run\n\n    accelerate launch --num_processes 8 \\\n        -m r1kit grpo --data d --polciy x ...\n",
            "grpo has no --polciy",
        ),
        ("Pass `r1kit evaluate --temprature 0.6` to ...\n", "evaluate has no --temprature"),
        (
            "Kimi's shortest rejection sampling (`rejection-sample --policy shortest-correct`)\n",
            "rejection-sample has no --policy",
        ),
        ("```bash\nr1kit distil --teacher m\n```\n", "r1kit distil: no such stage"),
    ],
)
def test_the_readme_check_finds_a_wrong_flag(text, problem):
    assert any(problem in p for p in unknown_flags(text)), unknown_flags(text)
    fixed = (
        text.replace("--policy", "--keep")
        .replace("--polciy", "--prompts-per-step")
        .replace("--temprature", "--temperature")
        .replace("distil ", "distill ")
    )
    assert not unknown_flags(fixed)
