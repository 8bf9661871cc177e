"""Rejection sampling: k samples per prompt, keep the correct ones, filter them, write SFT data.

DeepSeek-R1 §2.3.3 (stage 3): sample the RL checkpoint on reasoning prompts, "retain only the
correct ones", drop chains of thought with mixed languages, long paragraphs and code blocks
(r1kit/filters.py; repetition too, as for the cold start), and mix in non-reasoning SFT data
(~600k reasoning + ~200k non-reasoning samples, i.e. --mix-ratio 0.25). Kimi k1.5 §2.4
"shortest rejection sampling" samples n = 8 times and keeps the shortest correct answer
(--keep shortest-correct). Correctness is the judge's verdict (r1kit/judge.py: the accuracy and
code rewards and `r1kit evaluate` ask the same judge); prompts whose gold cannot be scored are
excluded and reported in report.json (unscorable_gold, unscorable_gold_ids).

Order of the filters, each reported with the prompts and samples that survive it:
generated -> correct -> language -> paragraph -> code_block -> repetition -> keep policy.
`--keep all` skips the correctness step and keeps every sample (wrong ones too), which is what
`r1kit dpo-shorten --samples` wants.

Outputs:
  OUT/data         the SFT-ready dataset: messages (user prompt + assistant completion), prompt,
                   completion, answer, num_tokens, reward_<name> per reward, reward, correct,
                   pass_rate, sample_index, prompt_index, source ("sample" | "mix"); feed it to
                   `r1kit sft --data OUT`
  OUT/samples      every generated sample with its scores, `dropped_by` (the first step that
                   removed it; "" when kept) and `kept`
  OUT/pass_rates   per prompt: prompt, question, answer, pass_rate (correct / k), num_correct, k;
                   for curriculum / prioritized sampling in `r1kit grpo`
  OUT/report.json  the survival counts per step, mean pass rate, mix rows

The library under this stage is r1kit/rejection.py (`r1kit distill` runs it for its teacher).

Differences from the papers: thresholds of the filters are r1kit's (the papers give none); mixed
rows are drawn with the seed, with repetition when the mix dataset is smaller than needed.

Example:

\b
    r1kit rejection-sample --model runs/sft --data runs/data --num-samples 8 --keep shortest-correct \\
        --output runs/rs
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from r1kit.rejection import RejectionConfig


@dataclass
class Config(RejectionConfig):
    """`r1kit rejection-sample`'s options: r1kit.rejection.RejectionConfig (model, prompts, sampling,
    rewards, selection groups)."""

    DEPRECATED: ClassVar = {"batch_size": "sample_batch_size"}  # old name -> new (r1kit.config.build_config)


def run(cfg: Config):
    from r1kit.outputs import check_output_free, stage_output
    from r1kit.rejection import prepare, print_report, write_rejection_sample

    check_output_free(cfg.output, cfg.overwrite)
    prepared = prepare(cfg, "--model")
    with stage_output(
        cfg, "rejection-sample", {"model": cfg.model, "data": cfg.data, "mix_data": cfg.mix_data}
    ) as out:
        summary = write_rejection_sample(cfg, out, prepared)
    print_report(summary)
    print(f"wrote {out.final}")
    return out.final
