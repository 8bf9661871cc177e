"""Every stage's `--help` shows its example as written, so that it pastes: the example block of the help
output is the docstring's, line for line, at any terminal width, and it is a command the CLI takes."""

import importlib
import inspect
import shlex

import pytest
from conftest import cli_config
from typer.testing import CliRunner

from r1kit.cli import STAGES, app


def example_lines(text: str, indent_of=lambda line: len(line) - len(line.lstrip())) -> list[str]:
    """The lines of the block after 'Example:' (blank lines dropped, dedented), up to the next line
    indented no deeper than that heading."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() in ("Example:", "Examples:"))
    depth = indent_of(lines[start])
    block = []
    for line in lines[start + 1 :]:
        if not line.strip() or line.strip() == "\b":  # click's no-rewrap marker, in a docstring
            continue
        if indent_of(line) <= depth:
            break
        block.append(line)
    margin = min(indent_of(line) for line in block)
    return [line[margin:] for line in block]


def commands(lines: list[str]) -> list[list[str]]:
    """Shell words of each command, `\\` continuations joined as a shell joins them."""
    return [shlex.split(text) for text in "\n".join(lines).replace("\\\n", " ").splitlines()]


@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("width", [60, 100])
def test_help_shows_the_example_as_written(stage, width):
    documented = example_lines(inspect.cleandoc(importlib.import_module(STAGES[stage]).__doc__))
    shown = CliRunner().invoke(app, [*stage.split(), "--help"], terminal_width=width)
    assert shown.exit_code == 0
    assert example_lines(shown.stdout) == documented
    first, *more = commands(documented)  # an example may go on with the stage that comes next
    assert first[0] == "r1kit" and " ".join(first[1:3]).startswith(stage), first
    assert all(words[0] == "r1kit" for words in more)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_example_is_a_valid_command(stage, tmp_path):
    """Each example, pasted: the flags exist and their values pass the stage's checks (the stage's run
    is replaced by a recorder, since its inputs are the outputs of earlier examples)."""
    module = importlib.import_module(STAGES[stage])
    for words in commands(example_lines(inspect.cleandoc(module.__doc__))):
        cfg, res = cli_config(*words[1:], cwd=tmp_path)
        assert res.exit_code == 0 and cfg is not None, (words, res.stderr)


def test_the_data_example_runs_as_written(tmp_path):
    """The one example with no inputs runs for real, as pasted."""
    from conftest import run_cli

    from r1kit.stages import data

    (words,) = commands(example_lines(inspect.cleandoc(data.__doc__)))
    res = run_cli(*words[1:], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    from datasets import load_from_disk

    written = load_from_disk(str(tmp_path / "runs" / "data" / "data"))
    assert (len(written["train"]), len(written["test"])) == (4000, 200)
