"""Atomic stage output directories.

Every stage writes one directory:

    OUT/
      model/ or data/         the artifact (save_pretrained checkpoint / save_to_disk dataset)
      metrics.jsonl           one JSON object per logged step or summary
      resolved_config.yaml    the config after defaults < YAML < flags
      manifest.json           r1kit version, stage, inputs, seed, timings, artifacts

It is built in a hidden sibling `.OUT.partial` and renamed to OUT only when the
stage finished, so an interrupted stage (error, Ctrl-C) never leaves a
directory that looks complete. A partial directory that holds trainer
checkpoints is kept so that `--resume auto` can continue from it; otherwise it
is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from r1kit import __version__
from r1kit.config import StageConfig, write_yaml
from r1kit.errors import R1kitError

MANIFEST = "manifest.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"


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
    """Refuse an existing output before any work starts."""
    out = Path(output)
    if out.exists() and not overwrite:
        raise R1kitError(f"output {out} already exists; pass --overwrite to replace it or choose another --output")
    if out.exists() and not out.is_dir():
        raise R1kitError(f"output {out} exists and is not a directory")


def is_stage_output(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


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
            **self.extra,
        }
        (self.path / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_jsonable) + "\n")

    def _commit(self, keep_checkpoints: bool) -> None:
        ckpt = self.checkpoints_dir
        if ckpt.exists() and not keep_checkpoints:
            shutil.rmtree(ckpt)
        self._write_manifest()
        trash = None
        if self.final.exists():
            trash = self.final.parent / f".{self.final.name}.old-{os.getpid()}"
            os.rename(self.final, trash)
        os.rename(self.path, self.final)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def has_trainer_checkpoint(path: Path) -> bool:
    ckpt = path / CHECKPOINTS
    return ckpt.is_dir() and any(p.name.startswith("checkpoint-") for p in ckpt.iterdir())


@contextmanager
def stage_output(
    cfg: StageConfig, stage: str, inputs: dict[str, Any] | None = None, *, keep_checkpoints: bool = False,
    resume: bool = False,
) -> Iterator[StageOutput]:
    """Create the partial directory, yield it, and publish it atomically on success.

    With `resume=True` an existing partial directory (from an interrupted run)
    is reused so that trainer checkpoints inside it can be continued.
    """
    final = Path(cfg.output)
    check_output_free(final, cfg.overwrite)
    out = StageOutput(final, stage, cfg, inputs or {})
    if not is_main_process():
        yield out
        barrier()  # lets rank 0 publish only after this rank's last write (e.g. its rng_state_N.pth)
        return
    if out.path.exists() and not (resume and has_trainer_checkpoint(out.path)):
        shutil.rmtree(out.path)
    out.path.mkdir(parents=True, exist_ok=True)
    write_yaml(cfg, out.path / "resolved_config.yaml")
    try:
        yield out
        barrier()  # the other ranks may still write into the partial directory until they get here
        out._commit(keep_checkpoints)
    except BaseException:
        if has_trainer_checkpoint(out.path):
            print(
                f"r1kit: stage {stage} did not finish; trainer checkpoints kept in {out.path} "
                f"(rerun the same command with --resume auto to continue)",
                file=sys.stderr,
            )
        else:
            shutil.rmtree(out.path, ignore_errors=True)
        raise


def read_manifest(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / MANIFEST).read_text())


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path) / METRICS
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
