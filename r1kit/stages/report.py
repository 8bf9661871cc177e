"""Compare several evaluations in one table, labelled by how each really sampled; say which model won.

Reads `r1kit evaluate` outputs (their results.json and resolved_config.yaml; the library is
r1kit/report.py). Rows are the models, columns each evaluation's pass@1 ± standard error over
prompts, pass@k, cons@k and mean tokens, titled with the evaluation's real settings: "greedy"
only for a --greedy run, "T 0.6, 1 sample" for one sample at temperature 0.6. `--compare
BASE:NEW` (row names, e.g. sft:grpo) adds a verdict per evaluation: pass@1 higher / lower
beyond --sigmas (2) standard errors or within noise, and answers shorter or longer (mean tokens).

Output (a stage output folder like every stage's, so it is never written over a user's file,
appears whole or not at all, names the evaluations it read in manifest.json, and a recipe
rerun skips it): OUT/report.md (the table and the comparisons), OUT/report.json (the same as
data: header, rows, each evaluation's label and settings, comparisons). The table and the
comparisons are printed too.

Example:

    r1kit report --eval runs/eval --eval runs/eval_greedy --compare sft:grpo --output runs/report
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError


@dataclass
class Config(StageConfig):
    INPUTS = ("eval",)  # checked against --output (r1kit.outputs)
    eval: list[str] = option(
        [], "An `r1kit evaluate` output folder; repeat for several (their columns side by side)."
    )
    compare: list[str] = option(
        [],
        "BASE:NEW (model row names, e.g. sft:grpo): say whether NEW's pass@1 is higher "
        "than BASE's beyond --sigmas standard errors and whether its answers are shorter.",
        metavar="BASE:NEW",
    )
    sigmas: float = option(
        2.0,
        "--compare calls a pass@1 difference higher or lower only beyond this many standard "
        "errors (2 ~ 95% confidence); smaller ones are 'within noise'.",
    )

    def validate(self) -> None:
        super().validate()
        if not self.eval:
            raise R1kitError("--eval is required: an `r1kit evaluate` output (repeat for several)")
        for pair in self.compare:
            base, _, new = pair.partition(":")
            if not base or not new:
                raise R1kitError(f"--compare {pair!r}: write BASE:NEW, e.g. --compare sft:grpo")


def comparisons(cfg: Config, table) -> list[dict]:
    """The --compare verdicts (R1kitError for a model name the table does not have)."""
    from r1kit.report import compare

    out = []
    for pair in cfg.compare:
        base, _, new = pair.partition(":")
        out += compare(table, base, new, sigmas=cfg.sigmas)
    return out


def run(cfg: Config):
    from rich.console import Console
    from rich.table import Table

    from r1kit.outputs import stage_output
    from r1kit.report import build_table, describe, to_markdown

    # unreadable inputs and unknown --compare names fail here, before anything is written
    table = build_table(cfg.eval)
    verdicts = comparisons(cfg, table)
    with stage_output(cfg, "report", {"eval": list(cfg.eval)}) as out:
        text = "# Evaluation report\n\n" + to_markdown(table.header, table.rows)
        if verdicts:
            text += "\n## Comparisons\n\n" + "".join(f"- {describe(c)}\n" for c in verdicts)
        (out.path / "report.md").write_text(text)
        data = {
            "header": table.header,
            "rows": table.rows,
            "evaluations": [
                {"path": e.path, "label": e.label, "settings": e.settings} for e in table.evaluations
            ],
            "models": table.names,
            "comparisons": verdicts,
        }
        (out.path / "report.json").write_text(json.dumps(data, indent=2) + "\n")
        out.extra.update(evaluations=[e.label for e in table.evaluations], models=list(table.names))
    view = Table(title="r1kit report: pass@1 ± standard error over prompts, by evaluation")
    for i, col in enumerate(table.header):
        view.add_column(col, justify="left" if i == 0 else "right")
    for row in table.rows:
        view.add_row(*row)
    console = Console(width=max(100, 24 * len(table.header)))
    console.print(view)
    for c in verdicts:
        console.print(describe(c), soft_wrap=True)
    print(f"wrote {out.final}")
    return out.final
