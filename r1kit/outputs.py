"""Atomic stage output directories.

Every stage writes one directory:

    OUT/
      model/ or data/         the artifact (save_pretrained checkpoint / save_to_disk dataset)
      metrics.jsonl           one JSON object per logged step or summary
      resolved_config.yaml    the config after defaults < YAML < flags
      manifest.json           r1kit version, stage, inputs, seed, timings, artifacts

It is built in a hidden sibling `.OUT.partial` and renamed to OUT only when the
stage finished, so an interrupted stage (error, Ctrl-C, SIGTERM) never leaves a
directory that looks complete. A partial directory that holds trainer
checkpoints is kept so that `--resume auto` can continue from it; otherwise it
is removed.

Outputs are sacred (DESIGN.md): a stage deletes only what r1kit wrote.
`--overwrite` replaces an r1kit stage output (its manifest.json names an r1kit
version and a stage) or an empty folder, nothing else; an output that is,
contains or lies inside one of the stage's inputs is refused; checkpoints of an
interrupted run are discarded only by an explicit `--overwrite`. `check_output`
makes all these checks before any work starts, and `stage_output` repeats them
before it creates or deletes anything.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from r1kit import __version__
from r1kit.config import StageConfig, write_yaml
from r1kit.errors import R1kitError
from r1kit.progress import notice

MANIFEST = "manifest.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
RESOLVED_CONFIG = "resolved_config.yaml"
# metrics.jsonl of the interrupted run while a resumed run has not started training yet.
PREVIOUS_METRICS = ".metrics.previous.jsonl"
# The words the user typed after `r1kit` (set by the CLI); the resume hint repeats them.
COMMAND_LINE: list[str] | None = None


def is_main_process() -> bool:
    """Rank 0 of a distributed run (accelerate/torchrun set RANK), or a plain single process.

    Only the main process creates, logs to and publishes the output directory;
    the other ranks take part in training and in collective saves only.
    """
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    """Wait for every rank when a torch.distributed group is up; a no-op otherwise.

    Looks torch up in sys.modules so that stages which never import torch stay light.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.barrier()


def partial_dir(output: str | Path) -> Path:
    out = Path(output)
    return out.parent / f".{out.name}.partial"


def check_output_free(output: str | Path, overwrite: bool) -> None:
    """Refuse an output that cannot be written, or an existing one that --overwrite may not replace.

    `--overwrite` replaces only an r1kit stage output or an empty folder, and only when every
    folder in it can be emptied: a folder of the user's is never deleted, and a replacement
    never fails halfway through.
    """
    out = Path(output)
    _check_place(out)
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise R1kitError(
            f"output {out} already exists; pass --overwrite to replace it (r1kit replaces only its "
            "own stage outputs and empty folders) or choose another --output"
        )
    if out.is_symlink():
        raise R1kitError(
            f"output {out} is a symbolic link; --overwrite replaces only a real folder: pass the folder "
            "it points to or choose another --output"
        )
    if not out.is_dir():
        raise R1kitError(
            f"output {out} exists and is a file, not a folder; r1kit does not delete it: "
            "choose another --output"
        )
    if not is_stage_output(out) and any(out.iterdir()):
        raise R1kitError(
            f"--overwrite refused: {out} is not an r1kit stage output (no r1kit manifest.json) and "
            "not empty, and r1kit deletes only what it wrote; choose another --output or empty it yourself"
        )
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir() and not p.is_symlink())]:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise R1kitError(
                f"--overwrite cannot replace {out}: {folder} is read-only; make it writable or "
                "choose another --output"
            )


def _check_place(out: Path) -> None:
    """The output names a folder (not '.' or '..': its partial sibling and the final rename need a
    name), and its nearest existing ancestor is a folder r1kit may write in."""
    if out.name in ("", ".", ".."):
        raise R1kitError(
            f"--output {out} does not name a folder; give one, e.g. runs/{out.absolute().resolve().name}"
        )
    where = out.absolute().parent
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise R1kitError(f"--output {out}: {where} is a file, not a folder")
    if not os.access(where, os.W_OK | os.X_OK):
        raise R1kitError(
            f"--output {out}: cannot write in {where} (read-only or permission denied); "
            "choose another --output"
        )


def is_stage_output(path: str | Path) -> bool:
    """A folder r1kit published: its manifest.json is r1kit's (names an r1kit version and a stage)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "r1kit_version" in manifest and "stage" in manifest


def check_output(cfg: StageConfig, extra_inputs: dict[str, str] | None = None) -> None:
    """Every check on a stage's --output, made before any work starts (see the module docstring).

    extra_inputs: inputs that are not Config fields, e.g. {"--config": path}.
    """
    check_inputs_apart(cfg, extra_inputs)
    check_output_free(cfg.output, cfg.overwrite)
    _check_partial(cfg)


def _check_partial(cfg: StageConfig) -> None:
    """A partial folder holding checkpoints is resumed (--resume auto) or discarded (--overwrite), never
    silently deleted; one that r1kit did not write is left alone."""
    part = partial_dir(cfg.output)
    if not part.exists() and not part.is_symlink():
        return
    kept = trainer_checkpoints(part)
    if kept:
        if _resumes_partial(cfg) or cfg.overwrite:
            return
        raise R1kitError(
            f"{part} holds {len(kept)} trainer checkpoint(s) of an interrupted run (latest {kept[-1].name}); "
            "rerun with --resume auto to continue from it, or add --overwrite to discard them"
        )
    if not _written_by_r1kit(part):
        raise R1kitError(
            f"{part} exists and was not written by r1kit (no {RESOLVED_CONFIG}); r1kit does not "
            "delete it: move it away or choose another --output"
        )


def _written_by_r1kit(part: Path) -> bool:
    return (
        part.is_dir()
        and not part.is_symlink()
        and ((part / RESOLVED_CONFIG).is_file() or not any(part.iterdir()))
    )


def _resumes_partial(cfg: StageConfig) -> bool:
    """--resume continues this output's own interrupted run: 'auto', or a checkpoint inside its partial folder."""
    resume = str(getattr(cfg, "resume", "") or "")
    if resume == "auto":
        return True
    return bool(resume) and _inside(_real(resume), _real(partial_dir(cfg.output)))


def _real(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_inputs_apart(cfg: StageConfig, extra_inputs: dict[str, str] | None = None) -> None:
    """Refuse an --output that is, contains or lies inside a local input of the stage.

    The inputs are the fields a stage's Config lists in INPUTS (plus `extra_inputs`); values that
    are not local paths ('tiny', hub ids) are skipped. Paths are compared after resolving
    symbolic links and relative parts, and a LoRA adapter's base model counts as an input too,
    so no spelling of the same folder gets past. Any overlap is refused, even one that would be
    harmless, because replacing, filling or discarding the output would then change an input.
    """
    out = _real(cfg.output)
    for flag, path in _input_paths(cfg, extra_inputs):
        where = _real(path)
        if where == out:
            relation = "is"
        elif out in where.parents:
            relation = "contains"
        elif where in out.parents:
            relation = "lies inside"
        else:
            continue
        raise R1kitError(
            f"--output {cfg.output} {relation} the input {flag} {path}; an output may not be, "
            "contain or lie inside an input: choose another --output"
        )


def _input_paths(cfg: StageConfig, extra_inputs: dict[str, str] | None) -> Iterator[tuple[str, str]]:
    from r1kit.config import flag_name

    named = [(f"--{flag_name(name)}", getattr(cfg, name, None)) for name in getattr(cfg, "INPUTS", ())]
    for flag, value in [*named, *(extra_inputs or {}).items()]:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if not item or not isinstance(item, (str, os.PathLike)):
                continue
            path = Path(item).expanduser()
            if not (path.exists() or path.is_symlink()):
                continue  # 'tiny', a hub id, or a missing path that the stage reports itself
            yield flag, str(item)
            base = _adapter_base(path)
            if base:
                yield f"{flag} (the base model of LoRA adapter {item})", base


def _adapter_base(path: Path) -> str | None:
    """The local base model a LoRA adapter folder (or a stage output holding one) names, if any."""
    for folder in (path, path / "model"):
        try:
            base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
        except (OSError, ValueError, AttributeError):
            continue
        if base and Path(base).expanduser().exists():
            return str(base)
    return None


class StageOutput:
    """Handle on the directory being written; `path` is the partial directory."""

    def __init__(self, final: Path, stage: str, cfg: StageConfig, inputs: dict[str, Any]):
        self.final = final
        self.stage = stage
        self.cfg = cfg
        self.path = partial_dir(final)
        self.inputs = inputs
        self.extra: dict[str, Any] = {}
        self.started = time.time()
        self._timings: dict[str, float] = {}

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    def log(self, record: dict[str, Any]) -> None:
        """Append one metrics record (JSON line) to metrics.jsonl (main process only)."""
        if not is_main_process():
            return
        line = json.dumps({"time": round(time.time() - self.started, 3), **record}, default=_jsonable)
        with open(self.path / METRICS, "a") as fh:
            fh.write(line + "\n")

    def _set_aside_metrics(self) -> None:
        """Resuming: the interrupted run's metrics wait in PREVIOUS_METRICS until training starts."""
        metrics, previous = self.path / METRICS, self.path / PREVIOUS_METRICS
        if previous.exists():
            metrics.unlink(missing_ok=True)  # an earlier resume stopped before training: its lines repeat
        elif metrics.exists():
            metrics.rename(previous)

    def training_started(self, global_step: int) -> None:
        """Called by the metrics callbacks at the start of training (global_step > 0 after a resume).

        The interrupted run's step records up to the checkpoint come first; its later steps are
        redone now and logged again, and its records without a step (pre-training events) were
        logged again by this run, so both are dropped: every step appears once in metrics.jsonl.
        """
        previous = self.path / PREVIOUS_METRICS
        if not is_main_process() or not previous.exists():
            return
        kept = []
        for line in previous.read_text().splitlines():
            try:
                step = json.loads(line).get("step")
            except (ValueError, AttributeError):
                continue  # e.g. a last line cut off by the interruption
            if isinstance(step, int) and step <= global_step:
                kept.append(line + "\n")
        metrics = self.path / METRICS
        current = metrics.read_text() if metrics.exists() else ""
        tmp = self.path / ".metrics.tmp"
        tmp.write_text("".join(kept) + current)
        os.replace(tmp, metrics)
        previous.unlink()

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t0 = time.time()
        try:
            yield
        finally:
            self._timings[name] = round(self._timings.get(name, 0.0) + time.time() - t0, 3)

    def _write_manifest(self) -> None:
        artifacts = [p.name for p in sorted(self.path.iterdir()) if not p.name.startswith(".")]
        manifest = {
            "r1kit_version": __version__,
            "stage": self.stage,
            "command": " ".join(sys.argv),
            "inputs": self.inputs,
            "seed": getattr(self.cfg, "seed", None),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "wall_s": round(time.time() - self.started, 3),
            "timings_s": self._timings,
            "artifacts": artifacts,
            **run_environment(),
            **self.extra,
        }
        if self.model_dir.is_dir():
            # every model output carries a model card (README.md, Hugging Face style) for sharing
            from r1kit.model_card import write_model_card

            write_model_card(self.model_dir, manifest, user_command(), self.path, self.final.name)
            manifest["model_card"] = "model/README.md"
        (self.path / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_jsonable) + "\n")

    def _commit(self, keep_checkpoints: bool) -> None:
        ckpt = self.checkpoints_dir
        if ckpt.exists() and not keep_checkpoints:
            shutil.rmtree(ckpt)
        (self.path / PREVIOUS_METRICS).unlink(missing_ok=True)
        self._write_manifest()
        trash = None
        if self.final.exists():
            trash = self.final.parent / f".{self.final.name}.old-{os.getpid()}"
            os.rename(self.final, trash)
        os.rename(self.path, self.final)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


# Libraries whose versions decide what a run computes (manifest.json "versions").
LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "math-verify")


def run_environment() -> dict[str, Any]:
    """What a manifest records about the software and machine: library versions, the git commit
    of the r1kit checkout (None when r1kit is not run from a git checkout), world size and device."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {"python": platform.python_version(), "r1kit": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    commit, dirty = git_state()
    return {
        "versions": versions,
        "git_commit": commit,
        "git_dirty": dirty,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "device": device_name(),
    }


def git_state() -> tuple[str | None, bool | None]:
    """(HEAD commit, uncommitted changes to tracked files?) of the git checkout r1kit runs from, or
    (None, None) when it is an installed package or git cannot tell."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():  # a folder in a checkout, a file in a worktree
        return None, None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head.stdout.strip() or None, bool(status.stdout.strip()) if status.returncode == 0 else None


def device_name() -> str:
    """'cuda: <GPU name> x N' when the stage ran on CUDA GPUs, else 'cpu' (torch is asked only if the
    stage loaded it: a stage without torch ran on the CPU)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return f"cuda: {torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}"
    except (RuntimeError, AssertionError, OSError):  # a broken driver must not cost the run its manifest
        pass
    return "cpu"


def user_command() -> str:
    """The command as the user typed it (`r1kit STAGE ...`), else this process's argv."""
    if COMMAND_LINE is not None:
        return shlex.join(["r1kit", *COMMAND_LINE])
    return shlex.join(sys.argv)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def trainer_checkpoints(path: Path) -> list[Path]:
    """The complete trainer checkpoints in a stage's (partial) folder, oldest first.

    Complete means its trainer_state.json parses: transformers writes that file last, so a
    checkpoint cut off while saving (Ctrl-C, SIGTERM, a full disk) is not one.
    """
    from r1kit.training import checkpoint_step

    folder = path / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [(checkpoint_step(p), p) for p in folder.iterdir()]
    return [p for step, p in sorted((x for x in found if x[0] is not None), key=lambda x: x[0])]


def has_trainer_checkpoint(path: Path) -> bool:
    return bool(trainer_checkpoints(path))


@contextmanager
def stage_output(
    cfg: StageConfig,
    stage: str,
    inputs: dict[str, Any] | None = None,
    *,
    keep_checkpoints: bool = False,
    resume: bool = False,
) -> Iterator[StageOutput]:
    """Create the partial directory, yield it, and publish it atomically on success.

    A partial directory holding trainer checkpoints of an interrupted run is reused when
    `--resume` continues it ('auto' or a checkpoint inside it), discarded (saying so) with
    --overwrite, and refused otherwise (check_output). `resume` is kept for callers; the
    decision reads cfg.resume. On any exception the partial directory is removed, unless it
    holds checkpoints: then one line says where they are and the command that continues.
    """
    final = Path(cfg.output)
    out = StageOutput(final, stage, cfg, inputs or {})
    if not is_main_process():
        yield out
        barrier()  # lets rank 0 publish only after this rank's last write (e.g. its rng_state_N.pth)
        return
    check_output(cfg)
    # --push-to-hub: the repo is opened now, before any model loads, and the model pushed once the
    # output is complete; only by the outermost output (distill's student run is a part of distill's)
    repo = _open_hub_repo(cfg) if not _OPEN else None
    if out.path.exists() and has_trainer_checkpoint(out.path) and _resumes_partial(cfg):
        out._set_aside_metrics()
    elif out.path.exists():
        if kept := trainer_checkpoints(out.path):
            notice(
                f"--overwrite: discarding {len(kept)} trainer checkpoint(s) of an interrupted run in {out.path}"
            )
        shutil.rmtree(out.path)
    _OPEN.append(stage)
    try:
        out.path.mkdir(parents=True, exist_ok=True)
        write_yaml(cfg, out.path / RESOLVED_CONFIG)
        yield out
        barrier()  # the other ranks may still write into the partial directory until they get here
        out._commit(keep_checkpoints)
    except BaseException as exc:
        if kept := trainer_checkpoints(out.path):
            notice(
                f"{stage} {_stopped(exc)}; {len(kept)} trainer checkpoint(s) kept in {out.path} "
                f"(latest {kept[-1].name}); to continue: {resume_command()}"
            )
            try:
                exc.r1kit_reported = True  # type: ignore[attr-defined]  # the CLI adds no second line
            except AttributeError:
                pass
        else:
            shutil.rmtree(out.path, ignore_errors=True)
        raise
    finally:
        _OPEN.pop()
    if repo:
        _push(out, repo)


# The stage outputs open in this process, outermost first (a stage may write another inside its own).
_OPEN: list[str] = []


def _open_hub_repo(cfg: StageConfig) -> str | None:
    """The hub repo this stage pushes to (created or found now, before training), or None."""
    if not getattr(cfg, "push_to_hub", ""):
        return None
    from r1kit.hub import open_repo

    return open_repo(cfg.push_to_hub, private=bool(getattr(cfg, "hub_private", False)))


def _push(out: StageOutput, repo: str) -> None:
    """Upload the complete output's model folder (with its model card) to `repo` (r1kit/hub.py)."""
    from r1kit.hub import push_model

    model = out.final / "model"
    if not model.is_dir():
        raise R1kitError(f"--push-to-hub: {out.final} holds no model folder to upload")
    url = push_model(model, repo, out.stage, out.final)
    print(f"pushed {model} to {repo} ({url})")


def _stopped(exc: BaseException) -> str:
    if isinstance(exc, Interrupted):
        return f"was interrupted by {exc.signame}"
    if isinstance(exc, KeyboardInterrupt):
        return "was interrupted (Ctrl-C)"
    return f"stopped on {type(exc).__name__}"


def resume_command() -> str:
    """The command that continues an interrupted run: the user's words with --resume auto."""
    if COMMAND_LINE is None:
        return "rerun the same command with --resume auto"
    words, skip = [], False
    for word in COMMAND_LINE:
        if skip:
            skip = False
        elif word == "--resume":
            skip = True
        elif not word.startswith("--resume="):
            words.append(word)
    command = shlex.join(["r1kit", *words, "--resume", "auto"])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"{command} (under the same launcher, e.g. accelerate launch)"
    return command


# ---------------------------------------------------------------------------------------------
# Stop signals: SIGTERM (kill, SLURM preemption) is handled like Ctrl-C


class Interrupted(KeyboardInterrupt):
    """A stop signal raised as an exception in the main thread, so that stage_output keeps the
    checkpoints and says how to resume, exactly as for Ctrl-C."""

    def __init__(self, signum: int):
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(self.signame)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT raise Interrupted (main thread only; restored after).

    Python's default for SIGTERM is to die on the spot: no cleanup, no word, and a partial folder
    left behind. A signal that lands while transformers saves a checkpoint cuts that checkpoint
    short; it is then incomplete (no trainer_state.json, written last) and resume takes the one
    before (trainer_checkpoints).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def read_manifest(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / MANIFEST).read_text())


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a stage folder's metrics.jsonl ([] without one). A line that is not a JSON
    object (one cut off by an interruption) is skipped."""
    p = Path(path) / METRICS
    if not p.is_file():
        return []
    records = []
    for line in p.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
