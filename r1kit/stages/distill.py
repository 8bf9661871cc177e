"""Distillation: a teacher's rejection-sampled reasoning traces, then SFT of a student on them.

DeepSeek-R1 §2.4 (distillation): the ~800k samples curated with R1 (rejection sampling,
§2.3.3) are used to fine-tune smaller dense models (Qwen, Llama) with SFT only, no RL; 2-3
epochs, lr 1e-4 for the small students (PAPERS.md). r1kit runs the two stages it already has,
in one output directory:

  1. `r1kit rejection-sample` with the teacher (k = --num-samples per prompt, --keep policy,
     the R1 filters) into OUT/traces, a complete rejection-sample output (data, samples,
     pass_rates, report.json);
  2. `r1kit sft` of the student on OUT/traces; its logs stay in OUT/sft and its checkpoint is
     moved to OUT/model, so OUT loads as a model for the next stage (`--model OUT`).

Text is the interface between the two (the traces are chat `messages`), so the student may
have another architecture and tokenizer than the teacher. Both tokenizers need a chat template
when the prompt template is a chat one; this is checked before anything is generated.

Differences from the paper: the traces come from the teacher checkpoint given here, not from
R1's curated 800k set; the non-reasoning share can be mixed in with --mix-data/--mix-ratio.

Example:

    r1kit distill --teacher runs/sft --student tiny-llama --data runs/data --template chat --num-samples 4 --epochs 3 --learning-rate 1e-3 --output runs/distill
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError
from r1kit.sampling import KEEP_POLICIES


@dataclass
class Config(StageConfig):
    INPUTS = ("teacher", "student", "data", "mix_data")  # checked against --output (r1kit.outputs)
    teacher: str = option("", "Teacher model that writes the traces (checkpoint folder, stage output, hub id...).")
    student: str = option("tiny-llama", "Student model trained on the traces: 'tiny', 'tiny-llama', a checkpoint "
                          "folder, an r1kit stage output or a hub id.")
    data: str = option("", "Prompts: a save_to_disk folder, an r1kit stage output, a data file or a hub id.")
    split: str = option("train", "Split of the prompt dataset.")
    task: str | None = option(None, "Task adapter (gsm8k, math500, ...) that maps the columns.")
    prompt_field: str | None = option(None, "Column holding the question (default: the task's, else 'prompt').")
    answer_field: str | None = option(None, "Column holding the gold answer (default: the task's, else 'answer').")
    template: str = option("chat", "Prompt template: chat, chat-think, r1-zero, raw, or a dotted path.")
    system_prompt: str | None = option(None, "System prompt added to every prompt.")
    limit: int = option(0, "Use a seeded random subset of N prompts (0 = all).")
    num_samples: int = option(4, "Teacher samples per prompt.")
    temperature: float = option(1.0, "Teacher sampling temperature.")
    top_p: float = option(0.95, "Teacher nucleus sampling top-p.")
    max_new_tokens: int = option(1024, "Most tokens per teacher sample.")
    sample_batch_size: int = option(64, "Teacher sequences generated together.")
    backend: str = option("auto", "Generation backend for the teacher: auto (fast on a CUDA GPU for a supported "
                          "model, else hf), fast, hf, vllm.", choices=("auto", "fast", "hf", "vllm"))
    policy: str = option("all-correct", "Which correct traces to keep (R1: all-correct; Kimi: shortest-correct).",
                         choices=KEEP_POLICIES[:3])
    lang: str = option("", "Target language of the chains of thought (language filter).")
    filters: bool = option(True, "Apply the R1 filters (language, long paragraphs, code blocks, repetition) "
                           "with rejection-sample's default thresholds.")
    mix_data: str = option("", "Non-reasoning SFT data (a 'messages' column) to mix into the traces.")
    mix_ratio: float = option(0.25, "Share of the traces dataset that --mix-data makes up.")
    epochs: float = option(3.0, "Student SFT epochs (R1: 2-3).")
    max_steps: int = option(-1, "Stop the student's SFT after this many steps (-1 = all epochs).")
    learning_rate: float = option(1e-4, "Student peak learning rate (R1: 1e-4 for the small students).")
    batch_size: int = option(16, "Student examples per device per step.")
    grad_accum: int = option(1, "Student gradient accumulation steps.")
    max_length: int = option(1024, "Longest tokenized student example.")
    warmup_ratio: float = option(0.03, "Fraction of student steps for linear warm-up.")
    lora: bool = option(False, "Train the student with LoRA adapters (merged into OUT/model).")
    logging_steps: int = option(10, "Log the student's training every N steps.")
    report_to: str = option("none", "Passed to trl/transformers report_to.")

    def validate(self) -> None:
        super().validate()
        if not self.teacher:
            raise R1kitError("--teacher is required: the model whose traces the student learns")
        if not self.data:
            raise R1kitError("--data is required: the prompts the teacher answers")
        self.traces_config("x").validate()
        self.sft_config("x", "x").validate()

    def traces_config(self, output: str):
        from r1kit.stages import rejection_sample

        off = {} if self.filters else dict(filter_language=False, filter_paragraphs=False,
                                            filter_code_blocks=False, filter_repetition=False)
        return rejection_sample.Config(
            output=output, seed=self.seed, model=self.teacher, data=self.data, split=self.split, task=self.task,
            prompt_field=self.prompt_field, answer_field=self.answer_field, template=self.template,
            system_prompt=self.system_prompt, limit=self.limit, num_samples=self.num_samples,
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
            batch_size=self.sample_batch_size, backend=self.backend, keep=self.policy, lang=self.lang,
            mix_data=self.mix_data, mix_ratio=self.mix_ratio, **off,
        )

    def sft_config(self, output: str, traces: str):
        from r1kit.stages import sft

        return sft.Config(
            output=output, seed=self.seed, model=self.student, data=traces, epochs=self.epochs,
            max_steps=self.max_steps, learning_rate=self.learning_rate, batch_size=self.batch_size,
            grad_accum=self.grad_accum, max_length=self.max_length, warmup_ratio=self.warmup_ratio, lora=self.lora,
            logging_steps=self.logging_steps, report_to=self.report_to,
        )


def run(cfg: Config):
    from r1kit.models import load_tokenizer, resolve_checkpoint_dir
    from r1kit.outputs import check_output_free, read_manifest, stage_output
    from r1kit.stages import rejection_sample, sft
    from r1kit.stages.rejection_sample import check_chat_template, load_prompts

    check_output_free(cfg.output, cfg.overwrite)
    resolve_checkpoint_dir(cfg.teacher)
    resolve_checkpoint_dir(cfg.student)
    # Everything that can be wrong with the inputs fails here, before the teacher generates.
    prompts = load_prompts(cfg.traces_config("x"))
    check_chat_template(load_tokenizer(cfg.teacher), prompts, cfg.teacher, "--teacher")
    student_tok = load_tokenizer(cfg.student)
    if getattr(student_tok, "chat_template", None) is None:
        raise R1kitError(f"the traces are chat messages but the tokenizer of --student {cfg.student} has no chat "
                         "template; choose a student whose tokenizer has one")

    with stage_output(cfg, "distill", {"teacher": cfg.teacher, "student": cfg.student, "data": cfg.data}) as out:
        traces = out.path / "traces"
        with out.timed("traces"):
            rejection_sample.run(cfg.traces_config(str(traces)))
        report = json.loads((traces / "report.json").read_text())
        out.log({"event": "traces", **{k: v for k, v in report.items() if k != "steps"}})
        student = out.path / "sft"
        with out.timed("sft"):
            sft.run(cfg.sft_config(str(student), str(traces)))
        shutil.move(str(student / "model"), str(out.model_dir))
        sft_manifest = read_manifest(student)
        out.log({"event": "summary", "trace_rows": report["output_rows"], "mean_pass_rate": report["mean_pass_rate"],
                 "student_steps": sft_manifest.get("global_step")})
        out.extra.update({"trace_rows": report["output_rows"], "teacher_mean_pass_rate": report["mean_pass_rate"],
                          "unscorable_gold": report.get("unscorable_gold", 0),
                          "unscorable_gold_ids": report.get("unscorable_gold_ids", []),
                          "student_steps": sft_manifest.get("global_step"),
                          "layout": {"traces": "rejection-sample output", "sft": "student SFT logs",
                                     "model": "student checkpoint"}})
    print(f"wrote {out.final} (student checkpoint in {out.final / 'model'})")
    return out.final
