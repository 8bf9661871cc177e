"""Distillation: a teacher's rejection-sampled reasoning traces, then SFT of a student on them.

DeepSeek-R1 §2.4 (distillation): the ~800k samples curated with R1 (rejection sampling,
§2.3.3) are used to fine-tune smaller dense models (Qwen, Llama) with SFT only, no RL; 2-3
epochs, lr 1e-4 for the small students (PAPERS.md). r1kit runs the two stages it already has,
in one output directory:

\b
  1. rejection sampling with the teacher (k = --num-samples per prompt, --keep policy, the R1
     filters; r1kit/rejection.py) into OUT/traces, a complete `r1kit rejection-sample` output
     (data, samples, pass_rates, report.json, resolved_config.yaml);
  2. SFT of the student on OUT/traces (r1kit/finetuning.py, as `r1kit sft`); its logs stay in
     OUT/sft and its checkpoint is moved to OUT/model, so OUT loads as a model for the next stage
     (`--model OUT`).

Every option means what it means in those two stages (r1kit/options.py): the prompt, sampling,
reward and selection options go to the teacher's run, the trainer and LoRA options to the
student's; --dtype to both. `--no-filters` turns R1's four filters off at once.

Text is the interface between the two (the traces are chat `messages`), so the student may
have another architecture and tokenizer than the teacher. Both tokenizers need a chat template
when the prompt template is a chat one (`--template auto` picks chat when the teacher's tokenizer has
one); this is checked before anything is generated.

Differences from the paper: the traces come from the teacher checkpoint given here, not from
R1's curated 800k set; the non-reasoning share can be mixed in with --mix-data/--mix-ratio.

Example:

\b
    r1kit distill --teacher runs/sft --student tiny-llama --data runs/data --num-samples 4 --epochs 3 \\
        --learning-rate 1e-3 --output runs/distill
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from typing import ClassVar

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError
from r1kit.options import (
    KEEP_POLICIES,
    MODEL_SPEC,
    HubOptions,
    LoraOptions,
    OfflineTrainingOptions,
    ScoredSamplingOptions,
    SelectionOptions,
    TrainerOptions,
    project,
    restate,
)

FILTER_SWITCHES = ("filter_language", "filter_paragraphs", "filter_code_blocks", "filter_repetition")


@dataclass
class Config(
    HubOptions,
    OfflineTrainingOptions,
    LoraOptions,
    TrainerOptions,
    SelectionOptions,
    ScoredSamplingOptions,
    StageConfig,
):
    INPUTS = ("teacher", "student", "data", "mix_data")  # checked against --output (r1kit.outputs)
    DEPRECATED: ClassVar = {"policy": "keep"}  # old name -> new (r1kit.config.build_config)
    DATA_REQUIRED = "the prompts the teacher answers"
    teacher: str = option("", f"Teacher model that writes the traces: {MODEL_SPEC}.")
    student: str = option("tiny-llama", f"Student model trained on the traces: {MODEL_SPEC}.")
    dtype: str = restate("dtype", note="For the teacher and the student.")
    num_samples: int = restate("num_samples", 4)
    keep: str = restate("keep", note="distill keeps correct traces only.", choices=KEEP_POLICIES[:3])
    filters: bool = option(
        True,
        "Apply R1's four filters (language, long paragraphs, code blocks, repetition); "
        "--no-filters turns them all off.",
    )
    epochs: float = restate("epochs", 3.0, "(R1: 2-3)")
    learning_rate: float = restate("learning_rate", 1e-4, "(R1: 1e-4 for the small students)")
    batch_size: int = restate("batch_size", 16)
    warmup_ratio: float = restate("warmup_ratio", 0.03)

    def validate(self) -> None:
        super().validate()
        if not self.teacher:
            raise R1kitError("--teacher is required: the model whose traces the student learns")

    def traces_config(self, output: str):
        """The teacher's rejection-sampling run, with this run's prompt, sampling, reward and selection options."""
        from r1kit.rejection import RejectionConfig

        off = {} if self.filters else dict.fromkeys(FILTER_SWITCHES, False)
        return project(self, RejectionConfig, output=output, overwrite=False, model=self.teacher, **off)

    def sft_config(self, output: str, traces: str):
        """The student's SFT run on the traces, with this run's trainer, LoRA and length options (the
        data options name the traces, not this run's prompts)."""
        from r1kit.finetuning import FinetuneConfig

        data = {
            f.name: f.default
            for f in dataclasses.fields(FinetuneConfig)
            if f.name in ("split", "limit", "prompt_field")
        }
        return project(
            self, FinetuneConfig, output=output, overwrite=False, model=self.student, data=traces, **data
        )


def run(cfg: Config):
    from r1kit.finetuning import finetune, load_training_data
    from r1kit.models import load_tokenizer, resolve_checkpoint_dir
    from r1kit.outputs import check_output_free, read_manifest, stage_output
    from r1kit.rejection import prepare, print_report, write_rejection_sample

    check_output_free(cfg.output, cfg.overwrite)
    resolve_checkpoint_dir(cfg.student)
    # Everything that can be wrong with the inputs fails here, before the teacher generates.
    traces_cfg = cfg.traces_config(str(cfg.output))  # its output is set below, inside this run's folder
    prepared = prepare(traces_cfg, flag="--teacher")
    if getattr(load_tokenizer(cfg.student), "chat_template", None) is None:
        raise R1kitError(
            f"the traces are chat messages but the tokenizer of --student {cfg.student} has no chat "
            "template; choose a student whose tokenizer has one"
        )

    with stage_output(
        cfg, "distill", {"teacher": cfg.teacher, "student": cfg.student, "data": cfg.data}
    ) as out:
        traces = out.path / "traces"
        traces_cfg = dataclasses.replace(traces_cfg, output=str(traces))
        with (
            out.timed("traces"),
            stage_output(
                traces_cfg,
                "rejection-sample",
                {"model": cfg.teacher, "data": cfg.data, "mix_data": cfg.mix_data},
            ) as traces_out,
        ):
            report = write_rejection_sample(traces_cfg, traces_out, prepared)
        print_report(report)
        out.log({"event": "traces", **{k: v for k, v in report.items() if k != "steps"}})
        student = out.path / "sft"
        sft_cfg = cfg.sft_config(str(student), str(traces))
        with (
            out.timed("sft"),
            stage_output(sft_cfg, "sft", {"model": cfg.student, "data": str(traces)}) as sft_out,
        ):
            finetune(sft_cfg, sft_out, load_training_data(sft_cfg))
        shutil.move(str(student / "model"), str(out.model_dir))
        sft_manifest = read_manifest(student)
        out.log(
            {
                "event": "summary",
                "trace_rows": report["output_rows"],
                "mean_pass_rate": report["mean_pass_rate"],
                "student_steps": sft_manifest.get("global_step"),
            }
        )
        out.extra.update(
            {
                "trace_rows": report["output_rows"],
                "teacher_mean_pass_rate": report["mean_pass_rate"],
                "unscorable_gold": report.get("unscorable_gold", 0),
                "unscorable_gold_ids": report.get("unscorable_gold_ids", []),
                "student_steps": sft_manifest.get("global_step"),
                "layout": {
                    "traces": "rejection-sample output",
                    "sft": "student SFT logs",
                    "model": "student checkpoint",
                },
            }
        )
    print(f"wrote {out.final} (student checkpoint in {out.final / 'model'})")
    return out.final
