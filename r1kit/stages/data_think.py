"""Turn a worked-answer dataset into cold-start SFT data in the R1-Zero <think>/<answer> format.

R1's cold start (PAPERS.md) trains the base model on readable chains of thought before
reasoning RL. This command rewrites any dataset with worked solutions into that data: by default
GSM8K rows ("question", and an "answer" holding "steps\\n#### 72"); other datasets name their
columns with --question-field, --solution-field (the worked solution) and --answer-field (the
final answer, when the solution has no "####" line). Each row's completion is

\b
    <think>
    one reasoning step per line (GSM8K calculator annotations <<...>> removed)
    </think>
    <answer> 72 </answer>

which the `format` reward scores 1.0 and the judge reads the answer from. The prompt is the
--template rendering of the question: r1-zero (default; the R1-Zero training template, a plain
string, so base models without a chat template can be trained on it; the completion then starts
with a space), raw, or chat (also writes a `messages` column, which `r1kit sft` prefers).
Columns, as `r1kit data arithmetic` writes them: question, answer, completion, prompt, task
(+ messages for chat). `r1kit sft --data OUT` trains on it as it is. Rows that cannot be converted
(no steps, no final answer) are skipped and counted in metrics.jsonl.

Example:

\b
    r1kit data think --data ../shared/data/gsm8k_train.jsonl --output runs/gsm8k_think
    r1kit sft --model gemma.gguf --data runs/gsm8k_think --output runs/sft
"""

from __future__ import annotations

from dataclasses import dataclass

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError
from r1kit.options import DataOptions, restate

TEMPLATES = ("r1-zero", "chat", "raw")  # r1kit.data.think.THINK_TEMPLATES (literal: --help imports nothing)


@dataclass
class Config(DataOptions, StageConfig):
    DATA_REQUIRED = "the dataset with worked solutions"
    data: str = restate("data", note="Worked answers to convert (required).")
    split: str | None = restate(
        "split",
        None,
        "data think: default train, else the only one; written under the same name (train for single files).",
    )
    question_field: str = option("question", "Column holding the question.")
    solution_field: str = option(
        "answer", "Column holding the worked solution (GSM8K: 'answer', steps then '#### N')."
    )
    answer_field: str | None = option(
        None, "Column holding the final answer (default: read after the last '####' of the solution)."
    )
    template: str = option(
        "r1-zero",
        "Prompt template written into the data (no tokenizer here, so no 'auto'): "
        "r1-zero, raw, or chat (adds a messages column).",
        choices=TEMPLATES,
    )


def run(cfg: Config):
    from datasets import Dataset, DatasetDict

    from r1kit.data import load_dataset_any
    from r1kit.data.think import think_record
    from r1kit.outputs import check_output_free, stage_output

    check_output_free(cfg.output, cfg.overwrite)
    source = load_dataset_any(cfg.data, split=cfg.split)
    columns = [cfg.question_field, cfg.solution_field] + ([cfg.answer_field] if cfg.answer_field else [])
    missing = [c for c in columns if c not in source.column_names]
    if missing:
        raise R1kitError(
            f"{cfg.data} has no column(s) {', '.join(map(repr, missing))}; its columns: "
            f"{', '.join(source.column_names)} (name them with --question-field, --solution-field, "
            "--answer-field)"
        )
    if cfg.limit and cfg.limit < len(source):
        source = source.shuffle(seed=cfg.seed, keep_in_memory=True).select(
            range(cfg.limit), keep_in_memory=True
        )
    records, skipped = [], 0
    for row in source:
        rec = think_record(
            str(row[cfg.question_field]),
            str(row[cfg.solution_field] or ""),
            row[cfg.answer_field] if cfg.answer_field else None,
            cfg.template,
        )
        if rec is None:
            skipped += 1
        else:
            records.append(rec)
    if not records:
        hint = (
            ""
            if cfg.answer_field
            else " (no '####' final-answer line: name the answer column with --answer-field)"
        )
        raise R1kitError(f"none of the {len(source)} rows of {cfg.data} could be converted{hint}")
    with stage_output(cfg, "data think", {"data": cfg.data}) as out:
        DatasetDict({cfg.split or "train": Dataset.from_list(records)}).save_to_disk(str(out.data_dir))
        mean_lines = sum(r["completion"].count("\n") - 3 for r in records) / len(records)
        out.log(
            {
                "event": "written",
                "rows": len(records),
                "skipped": skipped,
                "source_rows": len(source),
                "mean_reasoning_lines": round(mean_lines, 2),
            }
        )
    print(f"{len(records)} rows written, {skipped} skipped; wrote {out.final}")
    return out.final
