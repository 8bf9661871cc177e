"""The command line: help without torch, one-line errors with exit status 2."""

import subprocess
import sys

from conftest import run_cli


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from r1kit.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "for cmd in ('sft', 'data'):\n"
        "    try:\n        app([cmd, '--help'])\n    except SystemExit:\n        pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "sft" in out and "Example:" in out


def test_every_command_help_has_an_example():
    from r1kit.cli import STAGES

    for name in STAGES:
        res = run_cli(*name.split(), "--help")
        assert res.returncode == 0, res.stderr
        assert "Example:" in res.stdout and f"r1kit {name}" in res.stdout


def test_user_error_is_one_line_and_exit_2(tmp_path):
    res = run_cli("data", "arithmetic", "--output", tmp_path / "d", "--digits", "0")
    assert res.returncode == 2
    assert res.stderr.strip() == "r1kit: error: --digits (0) must be between 1 and 9"
    assert not (tmp_path / "d").exists()


def test_unknown_yaml_key_through_cli(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("digitz: 3\n")
    res = run_cli("data", "arithmetic", "--config", cfg, "--output", tmp_path / "d")
    assert res.returncode == 2
    assert "unknown key 'digitz'" in res.stderr and "did you mean 'digits'" in res.stderr


def test_a_flag_the_stage_lacks_is_one_line_naming_the_flag_meant(tmp_path):
    """click's usage block suggested --split for `rejection-sample --policy` (the nearest string); r1kit
    answers in one line with the flag meant: distill's old --policy is --keep everywhere."""
    cases = [
        (
            [
                "rejection-sample",
                "--model",
                "tiny",
                "--data",
                "d",
                "--policy",
                "shortest-correct",
                "--output",
                "o",
            ],
            (
                "rejection-sample has no option --policy (did you mean --keep? --policy is distill's old name for it); "
                "`r1kit rejection-sample --help` lists its options"
            ),
        ),
        (
            ["sft", "--learning_rat", "1e-3"],
            "sft has no option --learning-rat (did you mean --learning-rate?); `r1kit sft --help` lists its options",
        ),
        (
            ["sft", "--num_generations", "4"],
            "sft has no option --num-generations (an option of grpo); `r1kit sft --help` lists its options",
        ),
        (
            ["data", "arithmetic", "--zzz"],
            ("data arithmetic has no option --zzz; `r1kit data arithmetic --help` lists its options"),
        ),
        (
            ["grpo", "--max-steps", "x"],
            (
                "Invalid value for '--max-steps': Input should be a valid integer, unable to "
                "parse string as an integer; `r1kit grpo --help` lists its options"
            ),
        ),
        (
            ["evaluate", "--model"],
            "Option '--model' requires an argument; `r1kit evaluate --help` lists its options",
        ),
    ]
    for args, line in cases:
        res = run_cli(*args, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip().splitlines() == [f"r1kit: error: {line}"]
    assert list(tmp_path.iterdir()) == []


def test_every_unknown_flag_hint_names_flags_the_stage_has():
    """For every stage and every flag of every other stage: the flag suggested is one of this stage's
    own (visible) flags, and the stages named as having it do have it."""
    import dataclasses
    import importlib
    import re

    from r1kit.cli import STAGES, _flags, unknown_flag

    configs = {s: importlib.import_module(m).Config for s, m in STAGES.items()}
    every = {flag for cls in configs.values() for flag in _flags(cls)}
    for stage, cls in configs.items():
        own = {f.name.replace("_", "-") for f in dataclasses.fields(cls)}
        for flag in sorted(every - set(_flags(cls)) - {"help", "config", "version"}):
            line = unknown_flag(stage, f"--{flag}")
            meant = re.search(r"did you mean --([\w-]+)\?", line)
            having = re.search(r"\(an option of ([\w, -]+)\)", line)
            assert meant or having, line
            if meant:
                assert meant.group(1) in own, line
            else:
                assert all(flag in _flags(configs[s]) for s in having.group(1).split(", ")), line
