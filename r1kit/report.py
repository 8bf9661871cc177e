"""One table from several `r1kit evaluate` outputs (the quickstart's final summary).

    python -m r1kit.report runs/qs/eval runs/qs/eval_greedy --out runs/qs/summary.md

Rows are the evaluated checkpoints (named by their folder), columns the
metrics of each evaluation: pass@1 over k samples, cons@k and pass@k where the
evaluation sampled k > 1 (titled with its temperature), greedy accuracy where it
was greedy, and mean tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from r1kit.errors import R1kitError


def _temperature(eval_dir: Path) -> float | None:
    """The sampling temperature an evaluation ran at (its resolved_config.yaml), if recorded."""
    import yaml

    path = eval_dir / "resolved_config.yaml"
    if not path.is_file():
        return None
    value = (yaml.safe_load(path.read_text()) or {}).get("temperature")
    return float(value) if value is not None else None


def _columns(results: dict, tag: str) -> list[tuple[str, str]]:
    """(column title, metric key) pairs for one evaluation's results.json; `tag` prefixes every
    title (e.g. "greedy ", "T=1 ") so several evaluations can share one table."""
    any_metrics = next(iter(results.values()))
    k = any_metrics.get("num_samples", 1)
    if k == 1:
        return [(f"{tag}accuracy", "accuracy"), (f"{tag}mean tokens", "mean_tokens")]
    cols = [(f"{tag}pass@1 ({k} samples)", "pass@1")]
    cols += [(f"{tag}pass@{kk}", f"pass@{kk}") for kk in sorted(
        int(key.split("@")[1]) for key in any_metrics if key.startswith("pass@") and key != "pass@1")]
    if f"cons@{k}" in any_metrics:
        cols.append((f"{tag}cons@{k}", f"cons@{k}"))
    cols.append((f"{tag}mean tokens", "mean_tokens"))
    return cols


def build_table(eval_dirs: list[str | Path]) -> tuple[list[str], list[list[str]]]:
    header = ["stage"]
    rows: dict[str, list[str]] = {}
    for d in eval_dirs:
        path = Path(d) / "results.json"
        if not path.is_file():
            raise R1kitError(f"{d} is not an r1kit evaluate output (no results.json)")
        results = json.loads(path.read_text())
        greedy = next(iter(results.values())).get("num_samples", 1) == 1
        temperature = None if greedy else _temperature(Path(d))
        tag = "greedy " if greedy else (f"T={temperature:g} " if temperature is not None else "")
        cols = _columns(results, tag)
        offset = len(header) - 1  # cells before this evaluation's columns
        header += [title for title, _ in cols]
        for model, metrics in results.items():
            row = rows.setdefault(Path(model).name or model, [])
            row += ["-"] * (offset - len(row))  # a model absent from earlier evaluations
            for _, key in cols:
                value = metrics.get(key)
                if value is None:
                    row.append("-")
                elif key == "mean_tokens":
                    row.append(f"{value:.1f}")
                else:
                    row.append(f"{100 * value:.1f}%")
    width = len(header) - 1
    return header, [[name] + cells + ["-"] * (width - len(cells)) for name, cells in rows.items()]


def to_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_dirs", nargs="+", help="r1kit evaluate output folders")
    parser.add_argument("--out", help="also write the table as markdown here")
    args = parser.parse_args(argv)
    try:
        header, rows = build_table(args.eval_dirs)
    except R1kitError as exc:
        print(f"r1kit: error: {exc}", file=sys.stderr)
        return 2
    from rich.console import Console
    from rich.table import Table

    table = Table(title="r1kit pipeline: held-out accuracy and length per stage")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*r)
    Console().print(table)
    if args.out:
        Path(args.out).write_text(to_markdown(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
