"""Average the weights of two or more checkpoints (Kimi k1.5 long2short model merging).

Kimi k1.5 turns a long-chain-of-thought model into a shorter-answering one
without training by averaging its weights with those of a short-CoT model of
the same architecture (PAPERS.md, "Kimi k1.5", long2short: weight averaging
merge). This stage computes, tensor by tensor,

    merged = sum_i w_i * model_i,   w_i = weight_i / sum_j weight_j

Inputs are save_pretrained folders (safetensors, single file or sharded),
r1kit stage outputs (their model/ folder) and LoRA adapter folders. Shapes,
tensor names, architectures and vocabularies are checked from file headers
before anything is written; the first mismatched tensor is named. Tensors are
read in blocks of rows (128 MB float32 accumulator) and written straight into
the output shards, so memory does not grow with model size: two 1.07 GB
checkpoints merged at 0.62 GB peak RSS, torch included
(bench/bench_merge_memory.py). Config and generation config are copied from the
first model; the tokenizer and chat template from the first model that has
them (saying so when that is not the first), and a merge whose inputs have no
tokenizer at all is refused: its output could not be loaded.

Differences from the paper: any number of models and weights (the paper
averages two models equally); weights must be >= 0 and are normalised by their
sum. Floating tensors are accumulated in float32 and stored in the first
model's dtype (bfloat16 stays bfloat16); a model with weight 0 is not read, so
`--weight 1 --weight 0` reproduces the first model bit for bit. A LoRA adapter
is merged into its base (peft merge_and_unload) fully in memory and saved to a
temporary folder first; only that step loads a whole model. A tied input (no
lm_head stored) averaged with untied ones contributes its embedding as the head.

Example:

    r1kit merge --model runs/long-cot --model runs/short-cot --weight 0.5 --weight 0.5 --output runs/merged
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError
from r1kit.options import HubOptions


@dataclass
class Config(HubOptions, StageConfig):
    INPUTS = ("model",)  # checked against --output (r1kit.outputs)
    model: list[str] = option(
        [],
        "A checkpoint to average: a save_pretrained folder, an r1kit stage output or a LoRA adapter "
        "folder. Give two or more.",
    )
    weight: list[float] = option(
        [], "Weight of each --model, in the same order (>= 0, normalised by their sum). Default: equal."
    )
    max_shard_size: str = option("2GB", "Largest output safetensors file, e.g. 2GB or 500MB.")

    def validate(self) -> None:
        super().validate()
        from r1kit.merging import normalise_weights, parse_size

        if len(self.model) < 2:
            raise R1kitError(f"merge needs two or more --model values, got {len(self.model)}")
        normalise_weights(self.weight, len(self.model))
        parse_size(self.max_shard_size)


def _local_folder(spec: str, scratch, seed: int) -> Path:
    """The folder holding spec's safetensors; a LoRA adapter is merged into its base in `scratch`."""
    import tempfile

    from r1kit.models import resolve_checkpoint

    ref = resolve_checkpoint(spec)
    if ref.kind == "dir":
        return ref.path
    if ref.kind == "adapter":
        from r1kit.models import load_model, load_tokenizer, save_model

        # peft merge_and_unload needs the whole base in memory; the result is then streamed like any folder.
        folder = Path(tempfile.mkdtemp(prefix="adapter-", dir=scratch()))
        save_model(load_model(spec, device="cpu", seed=seed), load_tokenizer(spec), folder)
        return folder
    raise R1kitError(
        f"merge reads local safetensors checkpoints; {spec!r} is a {ref.kind} model. Save it as a folder "
        "first (save_pretrained / r1kit.models.save_model) and pass that folder"
    )


def run(cfg: Config) -> Path:
    import tempfile

    from r1kit.merging import (
        check_compatible,
        copy_side_files,
        merge_checkpoints,
        normalise_weights,
        parse_size,
        read_checkpoint,
        tokenizer_source,
    )
    from r1kit.outputs import check_output_free, stage_output

    check_output_free(cfg.output, cfg.overwrite)
    weights = normalise_weights(cfg.weight, len(cfg.model))
    scratch_dir: list[tempfile.TemporaryDirectory] = []

    def scratch() -> str:
        # Merged adapters go beside the output (same disk) when its parent exists.
        if not scratch_dir:
            parent = Path(cfg.output).resolve().parent
            scratch_dir.append(
                tempfile.TemporaryDirectory(prefix=".r1kit-merge-", dir=parent if parent.is_dir() else None)
            )
        return scratch_dir[0].name

    try:
        ckpts = [read_checkpoint(spec, _local_folder(spec, scratch, cfg.seed)) for spec in cfg.model]
        names, untie = check_compatible(ckpts)
        tokenizer = tokenizer_source(ckpts)
        inputs = {
            "models": list(cfg.model),
            "weights": list(cfg.weight) or None,
            "normalised_weights": weights,
        }
        with stage_output(cfg, "merge", inputs) as out:
            with out.timed("merge"):
                stats = merge_checkpoints(
                    ckpts, weights, names, out.model_dir, parse_size(cfg.max_shard_size)
                )
            copied = copy_side_files(
                ckpts[0].folder, out.model_dir, untie_head=untie, tokenizer_src=tokenizer.folder
            )
            out.log({"event": "merged", **stats})
            out.extra["merge"] = {
                **stats,
                "copied_files": copied,
                "tokenizer_from": tokenizer.spec,
                "untied_head": untie,
            }
            if tokenizer is not ckpts[0]:
                print(
                    f"tokenizer files copied from {tokenizer.spec}: the first model {ckpts[0].spec} has none "
                    "(the inputs share one vocabulary)"
                )
    finally:
        for d in scratch_dir:
            d.cleanup()
    size_mb = stats["bytes"] / 1e6
    print(f"merged {len(ckpts)} checkpoints ({stats['tensors']} tensors, {size_mb:.1f} MB) into {out.final}")
    return out.final
