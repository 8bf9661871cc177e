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
