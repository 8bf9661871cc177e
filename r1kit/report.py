"""One comparison table from several `r1kit evaluate` outputs, and verdicts between two models.

The library under `r1kit report` (r1kit/stages/report.py). Rows are the evaluated models (named by
their folder, or their full spec where two folders share a name); each evaluation adds columns:
pass@1 ± its standard error over prompts (r1kit.metrics.pass_at_1_stderr), pass@k and cons@k
where it sampled k > 1, and mean tokens.

Each evaluation is labelled from the settings it really ran with (its resolved_config.yaml):
"greedy" only for a --greedy run; a sampled run is "T <temperature>, <k> sample(s)", so a
one-sample run at T 0.6 is "T 0.6, 1 sample", not greedy; "scored samples" for `evaluate
--samples`. Two evaluations with the same label get their folder names added.

`compare(table, base, new)`: for every evaluation holding both models, the pass@1 difference
with its standard error sqrt(SE_base² + SE_new²) (the two estimates treated as independent;
on the same prompts they are positively correlated, so this overstates the noise and the
verdict is conservative) and a verdict, "higher" / "lower" beyond `sigmas` (2) standard errors,
else "within noise"; and the change of mean tokens, "shorter" / "longer" / "same".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1kit.errors import R1kitError


@dataclass
class Evaluation:
    path: str
    label: str
    settings: dict[str, Any]
    results: dict[str, dict[str, Any]]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    evaluations: list[Evaluation]
    names: dict[str, str] = field(default_factory=dict)  # row name -> model spec


def read_evaluation(path: str | Path) -> Evaluation:
    """An evaluate output's results and real settings; R1kitError when it is not one."""
    import yaml

    folder = Path(path)
    results_file = folder / "results.json"
    if not results_file.is_file():
        raise R1kitError(f"{path} is not an r1kit evaluate output (no results.json)")
    try:
        results = json.loads(results_file.read_text())
    except ValueError as err:
        raise R1kitError(f"{results_file} is not valid JSON: {err}") from err
    if not isinstance(results, dict) or not results or not all(isinstance(m, dict) for m in results.values()):
        raise R1kitError(f"{results_file} holds no per-model metrics")
    settings: dict[str, Any] = {}
    config = folder / "resolved_config.yaml"
    if config.is_file():
        loaded = yaml.safe_load(config.read_text()) or {}
        settings = {
            k: loaded.get(k)
            for k in (
                "greedy",
                "temperature",
                "top_p",
                "num_samples",
                "samples",
                "few_shot",
                "limit",
                "max_new_tokens",
                "template",
            )
        }
    k = next(iter(results.values())).get("num_samples")
    settings["samples_per_prompt"] = k
    return Evaluation(str(path), label_of(settings), settings, results)


def label_of(settings: dict[str, Any]) -> str:
    """How an evaluation sampled, in a few words: 'greedy', 'T 0.6, 4 samples', 'scored samples'."""
    k = settings.get("samples_per_prompt") or settings.get("num_samples")
    if settings.get("samples"):
        return "scored samples"
    if settings.get("greedy"):
        return "greedy"
    t = settings.get("temperature")
    count = f"{k} sample{'s' if k != 1 else ''}" if k else "? samples"
    return f"T {t:g}, {count}" if isinstance(t, (int, float)) else f"{count} (settings unknown)"


def _row_names(evaluations: list[Evaluation]) -> dict[str, str]:
    """model spec -> row name: its folder name, or the whole spec where two specs share a folder name."""
    specs = list(dict.fromkeys(spec for e in evaluations for spec in e.results))
    short = {spec: Path(spec).name or spec for spec in specs}
    clash = {name for name in short.values() if list(short.values()).count(name) > 1}
    return {spec: (spec if short[spec] in clash else short[spec]) for spec in specs}


def _columns(e: Evaluation) -> list[tuple[str, str]]:
    """(column title, metric key) for one evaluation, titled with its label."""
    first = next(iter(e.results.values()))
    k = first.get("num_samples") or 1
    cols = [(f"{e.label}: pass@1", "pass@1")]
    cols += [
        (f"{e.label}: pass@{kk}", f"pass@{kk}")
        for kk in sorted(
            int(key.split("@")[1])
            for key in first
            if key.startswith("pass@") and key[5:].isdigit() and key != "pass@1"
        )
    ]
    if f"cons@{k}" in first:
        cols.append((f"{e.label}: cons@{k}", f"cons@{k}"))
    cols.append((f"{e.label}: mean tokens", "mean_tokens"))
    return cols


def _cell(metrics: dict[str, Any], key: str) -> str:
    value = metrics.get(key)
    if not isinstance(value, (int, float)):
        return "-"
    if key == "mean_tokens":
        return f"{value:.1f}"
    text = f"{100 * value:.1f}%"
    se = metrics.get("pass@1_stderr") if key == "pass@1" else None
    return f"{text} ± {100 * se:.1f}" if isinstance(se, (int, float)) else text


def build_table(eval_dirs: list[str | Path]) -> Table:
    evaluations = [read_evaluation(d) for d in eval_dirs]
    labels = [e.label for e in evaluations]
    for e in evaluations:
        if labels.count(e.label) > 1:
            e.label = f"{e.label} ({Path(e.path).name})"
    names = _row_names(evaluations)
    header = ["model"]
    rows: dict[str, list[str]] = {names[spec]: [] for e in evaluations for spec in e.results}
    for e in evaluations:
        cols = _columns(e)
        header += [title for title, _ in cols]
        for name in rows:
            spec = next((s for s in e.results if names[s] == name), None)
            rows[name] += [_cell(e.results[spec], key) if spec else "-" for _, key in cols]
    return Table(
        header,
        [[name, *cells] for name, cells in rows.items()],
        evaluations,
        {name: spec for spec, name in names.items()},
    )


def compare(table: Table, base: str, new: str, sigmas: float = 2.0) -> list[dict[str, Any]]:
    """Verdicts of `new` against `base` (row names) in every evaluation that has both (module docstring)."""
    for name in (base, new):
        if name not in table.names:
            from r1kit.config import did_you_mean

            raise R1kitError(
                f"--compare {base}:{new}: no model {name!r} in the evaluations"
                f"{did_you_mean(name, table.names)}; models: {', '.join(table.names)}"
            )
    out = []
    for e in table.evaluations:
        a, b = e.results.get(table.names[base]), e.results.get(table.names[new])
        if a is None or b is None or a.get("pass@1") is None or b.get("pass@1") is None:
            continue
        diff = b["pass@1"] - a["pass@1"]
        ses = [m.get("pass@1_stderr") for m in (a, b)]
        se = math.sqrt(sum(s * s for s in ses)) if all(isinstance(s, (int, float)) for s in ses) else None
        if se is None:
            verdict = "no standard error"
        elif diff > sigmas * se:
            verdict = "higher"
        elif diff < -sigmas * se:
            verdict = "lower"
        else:
            verdict = "within noise"
        ta, tb = a.get("mean_tokens"), b.get("mean_tokens")
        change = (
            (tb - ta) / ta if isinstance(ta, (int, float)) and isinstance(tb, (int, float)) and ta else None
        )
        length = "same" if change is None or abs(change) < 1e-9 else ("shorter" if change < 0 else "longer")
        out.append(
            {
                "evaluation": e.label,
                "path": e.path,
                "base": base,
                "new": new,
                "pass@1_base": a["pass@1"],
                "pass@1_new": b["pass@1"],
                "difference": diff,
                "difference_stderr": se,
                "sigmas": sigmas,
                "accuracy": verdict,
                "mean_tokens_base": ta,
                "mean_tokens_new": tb,
                "mean_tokens_change": change,
                "length": length,
            }
        )
    return out


def describe(c: dict[str, Any]) -> str:
    """One line for a comparison."""
    se = (
        ""
        if c["difference_stderr"] is None
        else f", {c['sigmas']:g} SE = {100 * c['sigmas'] * c['difference_stderr']:.1f}"
    )
    line = (
        f"{c['new']} vs {c['base']} ({c['evaluation']}): pass@1 {100 * c['pass@1_new']:.1f}% vs "
        f"{100 * c['pass@1_base']:.1f}% ({100 * c['difference']:+.1f} points{se}): {c['accuracy']}"
    )
    if c["mean_tokens_change"] is not None:
        line += (
            f"; mean tokens {c['mean_tokens_new']:.1f} vs {c['mean_tokens_base']:.1f} "
            f"({100 * c['mean_tokens_change']:+.1f}%): {c['length']}"
        )
    return line


def to_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
