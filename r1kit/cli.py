"""The `r1kit` command line: thin typer wiring, one command per stage.

Each stage module under r1kit/stages/ holds a `Config` dataclass (composed of
the option groups of r1kit/options.py: the single source of defaults and help
text), a `run(config)` function and a docstring whose first line is the
command's summary. The flags of a command are built from the dataclass fields
here, so nothing about a stage's options is written twice; a renamed option's
old name and the other names of an option (trl's, r1kit.config.other_names) are
hidden flags that still work, and every flag may be written with underscores
(`--learning_rate`, as trl's command lines do) as well as dashes. A stage's
`--help` shows the indented blocks of its docstring (the example commands) as
written, so that they paste. Stage modules import torch only inside `run`,
which keeps `--help` fast.

Errors: a user's mistake (R1kitError) and a failure of the user's disk or paths
(full disk, file-size limit, permission denied, read-only) print one line and
exit with status 2, and so does a flag the stage does not have, or a value of the
wrong type (`StageCommand`: the nearest flag of the stage, or the one that means
what another stage's name for it means); anything else is a bug and keeps its
traceback. SIGTERM is
handled like Ctrl-C (exit 128 + signal): a stage keeps its trainer checkpoints
and prints the command that resumes. R1KIT_DEBUG=1 shows every traceback.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import inspect
import os
import re
import signal
import sys
import typing
from typing import Any

import typer
from typer.core import TyperCommand

from r1kit import __version__, trl_names
from r1kit.config import base_type, build_config, field_types, flag_name, other_names
from r1kit.errors import R1kitError
from r1kit.lookup import close_match

# The click typer runs on: its own vendored copy (typer >= 0.2x) or the click package (older typer).
click_errors = importlib.import_module(TyperCommand.__mro__[1].__module__.rpartition(".")[0] + ".exceptions")

# command name -> module. A command is registered once its stage exists.
STAGES: dict[str, str] = {
    "data arithmetic": "r1kit.stages.data",
    "data think": "r1kit.stages.data_think",
    "sft": "r1kit.stages.sft",
    "grpo": "r1kit.stages.grpo",
    "merge": "r1kit.stages.merge",
    "evaluate": "r1kit.stages.evaluate",
    "rejection-sample": "r1kit.stages.rejection_sample",
    "distill": "r1kit.stages.distill",
    "dpo-shorten": "r1kit.stages.dpo_shorten",
    "plot": "r1kit.stages.plot",
    "report": "r1kit.stages.report",
}

# OSErrors that come from the user's disk or paths, not from a bug: reported in one line (exit 2).
# Others (ENOENT of a file r1kit itself wrote, EBADF, ...) keep their traceback.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.EMFILE,
    errno.ENFILE,
    errno.EIO,
}


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError from the user's disk: what failed, where, and what to do."""
    where = f": {exc.filename}" if exc.filename else ""
    text = f"{exc.strerror or exc}{where} (errno {exc.errno})"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (
            f"writing failed, {text}: the disk (or a quota or file-size limit) is full; free space or choose "
            "an --output on another disk (the partial output was removed unless it held trainer checkpoints)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied or read-only, {text}; check the permissions of --output and of the inputs"
    return text


# Libraries that write files report a failed write in their own exception types: safetensors and
# tokenizers (Rust) as "... (os error 28)", torch.save as a RuntimeError of its stream writer.
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_TORCH_WRITE_FAILED = ("PytorchStreamWriter failed", "inline_container.cc", "iostream error")


def environment_failure(exc: BaseException) -> str | None:
    """One line when exc (or an exception it was raised from) is a failure of the user's disk or
    paths (full disk, file-size limit, permissions, read-only); None for anything else, which keeps
    its traceback: that is a bug to report."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            return describe_os_error(exc)
        match = _RUST_OS_ERROR.search(str(exc))
        if match and int(match.group(1)) in ENVIRONMENT_ERRNOS:
            code = int(match.group(1))
            return describe_os_error(OSError(code, os.strerror(code)))
        if isinstance(exc, RuntimeError) and any(s in str(exc) for s in _TORCH_WRITE_FAILED):
            first = str(exc).strip().splitlines()[0]
            return (
                f"writing failed: torch could not write a checkpoint file ({first}); the disk (or a quota or "
                "file-size limit) is probably full (the partial output was removed unless it held complete "
                "trainer checkpoints)"
            )
        exc = exc.__cause__ or exc.__context__
    return None


app = typer.Typer(
    name="r1kit",
    help="DeepSeek-R1 and Kimi k1.5 reasoning-RL recipes as composable stages. "
    "Each command reads HuggingFace datasets/checkpoints and writes a new output directory.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    # trl's and open-r1's command lines write flags with underscores (--learning_rate): click compares
    # every option name (and command name) after this, so both spellings reach the same option
    context_settings={
        "help_option_names": ["-h", "--help"],
        "token_normalize_func": lambda name: name.replace("_", "-"),
    },
)
_groups: dict[str, typer.Typer] = {}


def _param_for(field: dataclasses.Field, tp: Any, name_override: str | None = None) -> inspect.Parameter:
    """The typer option of a config field; with name_override, a hidden one under another name of it
    (a deprecated name or an alias: r1kit.config.other_names)."""
    if name_override is not None:
        param = _param_for(field, tp)
        param.default.param_decls = tuple(
            d.replace(flag_name(field.name), flag_name(name_override)) for d in param.default.param_decls
        )
        param.default.hidden = True
        return param.replace(name=name_override)
    inner, _ = base_type(tp)
    help_text = field.metadata.get("help", "")
    choices = field.metadata.get("choices")
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
    if choices:
        help_text += f" One of: {', '.join(choices)}."
    if default not in ("", None, []):
        help_text += f" [default: {default}]"
    name = "--" + flag_name(field.name)
    if inner is bool:
        annotation: Any = bool | None
        opt = typer.Option(None, f"{name}/--no-{flag_name(field.name)}", help=help_text, show_default=False)
    elif typing.get_origin(inner) is list:
        (item,) = typing.get_args(inner) or (str,)
        annotation = list[item] | None  # type: ignore[valid-type]
        metavar = {int: "INT", float: "FLOAT"}.get(item, "TEXT")
        opt = typer.Option(
            None,
            name,
            help=help_text + " Repeat the flag for several values.",
            show_default=False,
            metavar=metavar,
        )
    elif typing.get_origin(inner) is dict:
        annotation = str | None
        opt = typer.Option(None, name, help=help_text + " (YAML mapping; set it in --config)", hidden=True)
    else:
        annotation = inner | None
        metavar = field.metadata.get("metavar") or {int: "INT", float: "FLOAT"}.get(inner, "TEXT")
        opt = typer.Option(None, name, help=help_text, show_default=False, metavar=metavar)
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=annotation)


def _trl_param(key: str, tp: Any) -> inspect.Parameter:
    """A hidden flag for a trl key that r1kit translates (r1kit.trl_names.FLAG_TYPES), e.g.
    --reward_funcs accuracy --reward_funcs format --reward_weights 1 --reward_weights 0.5."""
    opt = typer.Option(None, "--" + flag_name(key), hidden=True, show_default=False)
    return inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=tp | None)


def _make_command(module_name: str):
    module = importlib.import_module(module_name)
    cls = module.Config
    hints = field_types(cls)
    params = [
        inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                None, "--config", help="YAML file of options; flags override it.", metavar="PATH"
            ),
            annotation=str | None,
        )
    ]
    fields = {
        f.name: f
        for f in dataclasses.fields(cls)
        if typing.get_origin(base_type(hints[f.name])[0]) is not dict
    }
    params += [_param_for(f, hints[name]) for name, f in fields.items()]
    params += [
        _param_for(fields[target], hints[target], old)
        for old, target in other_names(cls).items()
        if target in fields and old not in fields
    ]
    params += [_trl_param(key, tp) for key, tp in trl_names.flag_types(set(fields)).items()]

    def command(**kwargs: Any) -> None:
        from r1kit import outputs

        config_file = kwargs.pop("config", None)
        debug = os.environ.get("R1KIT_DEBUG") == "1"
        try:
            with outputs.stop_signals_raise():
                cfg = build_config(cls, config_file, kwargs)
                outputs.check_output(cfg, {"--config": config_file} if config_file else None)
                module.run(cfg)
        except R1kitError as exc:
            if debug:
                raise
            print(f"r1kit: error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM turned into outputs.Interrupted
            if debug:
                raise
            signum = getattr(exc, "signum", signal.SIGINT)
            reported = getattr(exc, "r1kit_reported", False)  # stage_output said where the checkpoints are
            if not reported and outputs.is_main_process():
                print(
                    f"r1kit: interrupted by {signal.Signals(signum).name}; nothing was written (no trainer "
                    "checkpoint to keep)",
                    file=sys.stderr,
                )
            raise typer.Exit(128 + signum) from None
        except Exception as exc:  # only failures of the disk and the paths become one line
            line = None if debug else environment_failure(exc)
            if line is None:
                raise
            print(f"r1kit: error: {line}", file=sys.stderr)
            raise typer.Exit(2) from None

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = verbatim_blocks(module.__doc__ or "")
    return command


def verbatim_blocks(doc: str) -> str:
    """`doc` with click's no-rewrap marker (a line holding only \\b) before every indented paragraph.

    click re-wraps each paragraph of a command's help to the terminal's width, which breaks an
    example command (its `\\` continuations land mid-line and the words of one flag split over two
    lines); a paragraph after a \\b line keeps its lines as written. Indented paragraphs are the
    docstrings' examples, formulas and lists, which are all laid out by hand."""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        starts_paragraph = line.strip() and (i == 0 or not lines[i - 1].strip())
        if starts_paragraph and line.startswith(" ") and (not out or out[-1] != "\b"):
            if out and out[-1].strip():
                out.append("")
            out.append("\b")
        out.append(line)
    return "\n".join(out)


class StageCommand(TyperCommand):
    """A stage's command: a mistake on the command line itself (a flag the stage lacks, a missing
    value, a value of the wrong type) is one line and exit 2, like every other user mistake, instead
    of click's usage block, whose "Possible options" is the nearest string, not the nearest meaning
    (`rejection-sample --policy` suggested --split)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click_errors.UsageError as exc:
            if os.environ.get("R1KIT_DEBUG") == "1":
                raise
            stage = self.name if self.name in STAGES else f"{ctx.parent.info_name} {self.name}"
            if isinstance(exc, click_errors.NoSuchOption):
                line = unknown_flag(stage, exc.option_name)
            else:
                line = " ".join(exc.format_message().split()).rstrip(".")
            print(f"r1kit: error: {line}; `r1kit {stage} --help` lists its options", file=sys.stderr)
            raise typer.Exit(2) from None


def _flags(cls: type, hidden: bool = True) -> dict[str, str]:
    """flag -> the field it sets, for a stage's Config: its fields, and with hidden=True also their
    other names (old names, trl's) and trl's translated keys (which set no single field: "")."""
    fields = [f.name for f in dataclasses.fields(cls)]
    flags = {flag_name(n): n for n in fields}
    if hidden:
        flags.update({flag_name(old): new for old, new in other_names(cls).items()})
        flags.update({flag_name(key): "" for key in trl_names.flag_types(set(fields))})
    return flags


def unknown_flag(stage: str, flag: str) -> str:
    """What to say about `flag`, which `stage` lacks: another stage's other name of one of this
    stage's options (distill's old --policy is --keep), else the stage's nearest flag, else the
    stages that have it."""
    name = flag.lstrip("-").replace("_", "-")
    configs = {s: importlib.import_module(m).Config for s, m in STAGES.items()}
    own = _flags(configs[stage], hidden=False)
    said = f"{stage} has no option {flag}"
    for other, cls in configs.items():
        target = _flags(cls).get(name)
        if target and flag_name(target) in own and flag_name(target) != name:
            kind = "old" if name.replace("-", "_") in getattr(cls, "DEPRECATED", {}) else "other"
            return f"{said} (did you mean --{flag_name(target)}? {flag} is {other}'s {kind} name for it)"
    close = close_match(name, own, cutoff=0.7)
    if close:
        return f"{said} (did you mean --{close}?)"
    having = [other for other, cls in configs.items() if name in _flags(cls)]
    return f"{said} (an option of {', '.join(having)})" if having else said


def _register() -> None:
    for name, module_name in STAGES.items():
        parts = name.split()
        target = app
        if len(parts) == 2:
            if parts[0] not in _groups:
                _groups[parts[0]] = typer.Typer(help=f"Support commands: {parts[0]}.", no_args_is_help=True)
                app.add_typer(_groups[parts[0]], name=parts[0])
            target = _groups[parts[0]]
        target.command(parts[-1], cls=StageCommand)(_make_command(module_name))


def _version_callback(value: bool) -> None:
    if value:
        print(f"r1kit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool | None = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    pass


_register()


def main() -> None:
    """Run the CLI. User mistakes print one line and exit 2 (traceback with R1KIT_DEBUG=1)."""
    # Per-operation progress bars of datasets would drown r1kit's own progress lines.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from r1kit.progress import quiet_library_warnings

    quiet_library_warnings()  # FutureWarnings of renamed library internals, hub progress bars in log files
    from r1kit import outputs

    outputs.COMMAND_LINE = sys.argv[1:]  # for the resume hint after an interruption
    app()
