"""Optional packages (tracker, vllm) that an option needs: one line naming the extra, before any model loads.

Before, `--report-to wandb` without wandb loaded the model, built the trainer and then failed in
transformers with a ~95-line traceback. The packages are hidden from the r1kit process by a
sitecustomize.py whose import finder refuses them, so the test holds whether or not they are
installed here. `--model` names a folder that does not exist: the check must come first.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
BLOCKER = '''import sys


class _Missing:
    """Refuse the modules named in R1KIT_TEST_MISSING, as if they were not installed."""

    names = set(__import__("os").environ.get("R1KIT_TEST_MISSING", "").split(","))

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Missing())
'''

CASES = [
    (["sft", "--data", "d.jsonl", "--report-to", "wandb"], "--report-to wandb", "'r1kit[wandb]'"),
    (
        ["sft", "--data", "d.jsonl", "--report-to", "none,tensorboard"],
        "--report-to tensorboard",
        "'r1kit[tensorboard]'",
    ),
    (["grpo", "--data", "d.jsonl", "--report-to", "trackio"], "--report-to trackio", "'r1kit[trackio]'"),
    (["grpo", "--data", "d.jsonl", "--use-vllm", "on"], "--use-vllm on", "'r1kit[vllm]'"),
    (["dpo-shorten", "--data", "d.jsonl", "--report-to", "wandb"], "--report-to wandb", "'r1kit[wandb]'"),
    (["dpo-shorten", "--data", "d.jsonl", "--backend", "vllm"], "--backend vllm", "'r1kit[vllm]'"),
    (
        ["distill", "--teacher", "t", "--data", "d.jsonl", "--report-to", "tensorboard"],
        "--report-to tensorboard",
        "'r1kit[tensorboard]'",
    ),
    (
        ["distill", "--teacher", "t", "--data", "d.jsonl", "--backend", "vllm"],
        "--backend vllm",
        "'r1kit[vllm]'",
    ),
    (["evaluate", "--data", "d.jsonl", "--backend", "vllm"], "--backend vllm", "'r1kit[vllm]'"),
    (["rejection-sample", "--data", "d.jsonl", "--backend", "vllm"], "--backend vllm", "'r1kit[vllm]'"),
]


def r1kit(args, cwd: Path, missing: str) -> subprocess.CompletedProcess:
    (cwd / "site").mkdir(exist_ok=True)
    (cwd / "site" / "sitecustomize.py").write_text(BLOCKER)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "R1KIT_TEST_MISSING": missing,
        "PYTHONPATH": os.pathsep.join([str(cwd / "site"), str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("R1KIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "r1kit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


MISSING = "wandb,tensorboard,tensorboardX,trackio,vllm"


class Blocker:
    """The same finder as BLOCKER, for runs inside pytest's process."""

    def __init__(self, names):
        self.names = set(names.split(","))

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def check_one_line(code: int, stderr: str, root: Path, flag: str, extra: str) -> None:
    assert code == 2, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    package = extra[len("'r1kit[") : -2]  # 'r1kit[wandb]' -> wandb
    assert (
        lines[0]
        == f"r1kit: error: {flag} needs the {package} package, which is not installed: pip install {extra}"
    )
    assert not (root / "out").exists() and not (root / ".out.partial").exists()


@pytest.mark.parametrize(
    ("args", "flag", "extra"), CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES]
)
def test_missing_package_is_one_line_naming_the_extra_before_the_model(
    tmp_path, monkeypatch, args, flag, extra
):
    from typer.testing import CliRunner

    from r1kit.cli import app

    monkeypatch.setattr(sys, "meta_path", [Blocker(MISSING), *sys.meta_path])
    monkeypatch.chdir(tmp_path)
    model = "--student" if args[0] == "distill" else "--model"
    res = CliRunner().invoke(app, [*args, model, str(tmp_path / "no-such-model"), "--output", "out"])
    check_one_line(res.exit_code, res.stderr, tmp_path, flag, extra)


def wandb_sft(tmp_path):
    """An sft command asking for wandb, whose model is missing: the next error once the extra is there."""
    return [
        "sft",
        "--data",
        "d.jsonl",
        "--report-to",
        "wandb",
        "--model",
        str(tmp_path / "no-such-model"),
        "--output",
        "out",
    ]


def test_missing_package_through_the_command_line(tmp_path):
    """The same in a real `r1kit` process, the packages refused by a sitecustomize import finder."""
    res = r1kit(
        wandb_sft(tmp_path),
        tmp_path,
        MISSING,
    )
    check_one_line(res.returncode, res.stderr, tmp_path, "--report-to wandb", "'r1kit[wandb]'")


def test_an_installed_package_passes_the_check(tmp_path):
    """The check looks the package up: with it importable (here: a stand-in wandb package on the path),
    the run goes on to the next problem, the missing model, instead of asking for the extra."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "wandb").mkdir()
    (tmp_path / "site" / "wandb" / "__init__.py").write_text("")
    res = r1kit(
        wandb_sft(tmp_path),
        tmp_path,
        "",
    )
    assert res.returncode == 2 and "r1kit[wandb]" not in res.stderr and "no-such-model" in res.stderr, (
        res.stderr
    )


def test_extras_are_declared():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in ("tensorboard", "wandb", "trackio", "vllm"):
        assert extras[name] and extras[name][0].startswith(name), name
