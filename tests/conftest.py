"""Shared test set-up: offline hub, the shared benchmark data, GPU skipping."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# the smallest `r1kit grpo` run the tests make: tiny model, 2 prompts x G 2 per step, 8-token completions
TINY_GRPO = (
    "--model",
    "tiny",
    "--num-generations",
    "2",
    "--prompts-per-step",
    "2",
    "--max-completion-length",
    "8",
    "--no-live",
)


def arith_jsonl(path: Path, pairs=((1, 2), (3, 4), (5, 1), (2, 2))) -> Path:
    """One "What is a+b?" prompt per pair, its sum as the answer: the data of the tests' grpo runs."""
    path.write_text(
        "".join(json.dumps({"question": f"What is {a}+{b}?", "answer": str(a + b)}) + "\n" for a, b in pairs)
    )
    return path


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `r1kit` command line in a subprocess."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("R1KIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "r1kit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


def chats(path: Path, n: int = 8) -> None:
    """A tiny chat SFT dataset (.jsonl): n one-digit sums answered in the R1-Zero format."""
    import json

    path.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"What is {a}+{a + 1}?"},
                        {
                            "role": "assistant",
                            "content": f"<think>{a}+{a + 1}={2 * a + 1}</think><answer>{2 * a + 1}</answer>",
                        },
                    ]
                }
            )
            + "\n"
            for a in range(1, n + 1)
        )
    )


def cli_config(*args: str, cwd: Path | None = None):
    """(Config, result): the config the real command line builds for `r1kit ARGS` (flags, --config,
    validation, the output checks), with the stage's `run` replaced by a recorder, so nothing runs.
    Config is None when the command stopped before `run` (result holds its exit code and stderr)."""
    import importlib

    from typer.testing import CliRunner

    from r1kit.cli import STAGES, app

    words = [str(a) for a in args]
    stage = " ".join(words[:2]) if words[0] == "data" else words[0]
    module = importlib.import_module(STAGES[stage.replace("_", "-")])
    seen: list = []
    original, module.run = module.run, seen.append
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        result = CliRunner().invoke(app, words)
    finally:
        module.run = original
        os.chdir(here)
    return (seen[0] if seen else None), result
