"""Tables for bench/RESULTS.md from the output folders of examples/gemma3_arithmetic.sh and gemma3_gsm8k.sh.

    python bench/gemma3_summary.py --arith runs/gemma3/arith --gsm8k runs/gemma3/gsm8k [--out DIR]

Reads what the stages wrote, nothing else: each `r1kit evaluate` folder's results.json (accuracy =
pass@1, its standard error over problems `pass@1_stderr`, format rate = the judge's R1 format flag,
mean tokens, truncation), its per-sample rows (OUT/data) for the paired comparison below, each
stage's manifest.json (wall time, the exact command) and each GRPO run's metrics.jsonl (step times
from the logged wall clock, reward / accuracy / length at the start and the end, share of steps on
r1kit's fast rollout path, zero-std groups).

GRPO vs SFT on GSM8K (the issue's target): the pass@1 difference over the same problems and its
standard error, paired: d_j = (GRPO's mean correctness on problem j) - (SFT's), SE = sd(d) / sqrt(n).
"above by more than two standard errors" means d > 2 SE. The independent-samples SE
sqrt(SE_sft^2 + SE_grpo^2) (what `r1kit report --compare` uses; larger, since the two evaluations
share their problems) is printed beside it.

Prints the markdown last. With --out: writes gemma3_summary.json, gemma3_summary.md and copies the
curves (r1kit plot's curves.png) as arith_a_curves.png, arith_b_curves.png, gsm8k_curves.png.
Missing folders (a run stopped early) show as "-" and are listed as not run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARITH_EVALS = [  # (key, folder, what)
    ("a_base", "a_eval_base", "(a) base, equation prompt"),
    ("a_grpo", "a_eval_grpo", "(a) after GRPO (R1-Zero from the base)"),
    ("b_base", "b_eval_base", "(b) base, r1-zero template"),
    ("b_sft", "b_eval_sft", "(b) after cold-start SFT"),
    ("b_grpo", "b_eval_grpo", "(b) after GRPO"),
]
GSM8K_MODELS = [
    ("base", "base, 4-shot"),
    ("sft", "cold-start SFT"),
    ("grpo", "GRPO from SFT"),
    ("rs_sft", "SFT on rejection samples"),
]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def command_of(folder: Path) -> str | None:
    """The command a stage ran, as `r1kit ...` (manifest.json records sys.argv)."""
    manifest = _read_json(folder / "manifest.json")
    if not manifest or not manifest.get("command"):
        return None
    words = manifest["command"].split(" ")
    return "r1kit " + " ".join(_shell_word(w) for w in words[1:])


def _shell_word(word: str) -> str:
    """A word as a shell would need it (a newline stop string as $'\\n')."""
    if "\n" in word:
        return "$'" + word.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    return shlex.quote(word) if word and any(c in word for c in " \"'$`!*?;&|<>()") else word


def eval_metrics(folder: Path) -> dict[str, Any] | None:
    """The one model's metrics of an evaluate folder, with its wall time; None when it is not finished."""
    results = _read_json(folder / "results.json")
    manifest = _read_json(folder / "manifest.json")
    if not results or not manifest:
        return None
    m = dict(next(iter(results.values())))
    m["wall_s"] = manifest.get("wall_s")
    m["command"] = command_of(folder)
    return m


def per_prompt_means(folder: Path) -> dict[int, float]:
    """prompt_index -> mean correctness of its scored samples (unscorable golds left out)."""
    from datasets import load_from_disk

    rows = load_from_disk(str(folder / "data"))
    per: dict[int, list[float]] = {}
    for i, ok in zip(rows["prompt_index"], rows["correct"]):
        if ok is not None:
            per.setdefault(int(i), []).append(float(ok))
    return {i: sum(v) / len(v) for i, v in per.items()}


def paired_difference(base: Path, new: Path) -> dict[str, Any] | None:
    """new - base pass@1 over the problems both scored, with the paired standard error."""
    if not (base / "data").is_dir() or not (new / "data").is_dir():
        return None
    a, b = per_prompt_means(base), per_prompt_means(new)
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    d = [b[i] - a[i] for i in common]
    diff, se = statistics.fmean(d), statistics.stdev(d) / math.sqrt(len(d))
    return {
        "problems": len(common),
        "difference": diff,
        "paired_stderr": se,
        "sigmas": diff / se if se > 0 else (math.inf if diff > 0 else 0.0),
    }


def grpo_stats(folder: Path) -> dict[str, Any] | None:
    """Steps, step times (from the per-step wall clock), start/end reward, accuracy and length."""
    manifest = _read_json(folder / "manifest.json")
    metrics = folder / "metrics.jsonl"
    if not manifest or not metrics.is_file():
        return None
    steps = []
    for line in metrics.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec.get("step"), int) and "reward" in rec:
            steps.append(rec)
    out: dict[str, Any] = {
        "steps": len(steps),
        "wall_s": manifest.get("wall_s"),
        "train_s": (manifest.get("timings_s") or {}).get("train"),
        "command": command_of(folder),
    }
    times = [r["time"] for r in steps if isinstance(r.get("time"), (int, float))]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if gaps:
        out["step_s_median"] = statistics.median(gaps[1:] or gaps)  # the first gap holds the first captures
        out["step_s_mean"] = statistics.fmean(gaps)
    k = max(1, min(10, len(steps) // 4 or 1))
    for key, name in (
        ("reward", "reward"),
        ("accuracy", "accuracy"),
        ("completions/mean_length", "length"),
        ("zero_std_fraction", "zero_std"),
        ("rollout/fast_path", "fast_path"),
    ):
        values = [r[key] for r in steps if isinstance(r.get(key), (int, float))]
        if values:
            out[f"{name}_first"] = statistics.fmean(values[:k])
            out[f"{name}_last"] = statistics.fmean(values[-k:])
    out["window"] = k
    return out


def _pct(m: dict | None, key: str, se_key: str | None = None) -> str:
    if not m or not isinstance(m.get(key), (int, float)):
        return "-"
    text = f"{100 * m[key]:.1f}"
    se = m.get(se_key) if se_key else None
    return f"{text} ± {100 * se:.1f}" if isinstance(se, (int, float)) else text


def _num(m: dict | None, key: str, fmt: str = "{:.1f}") -> str:
    return fmt.format(m[key]) if m and isinstance(m.get(key), (int, float)) else "-"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(
        [
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows),
        ]
    )


def grpo_table(runs: dict[str, dict | None]) -> str:
    rows = []
    for name, g in runs.items():
        rows.append(
            [
                name,
                _num(g, "steps", "{}"),
                _num(g, "step_s_median", "{:.2f}"),
                _num(g, "train_s", "{:.0f}"),
                f"{_num(g, 'reward_first', '{:.3f}')} -> {_num(g, 'reward_last', '{:.3f}')}",
                f"{_num(g, 'accuracy_first', '{:.3f}')} -> {_num(g, 'accuracy_last', '{:.3f}')}",
                f"{_num(g, 'length_first')} -> {_num(g, 'length_last')}",
                f"{_num(g, 'zero_std_first', '{:.2f}')} -> {_num(g, 'zero_std_last', '{:.2f}')}",
                _num(g, "fast_path_last", "{:.2f}"),
            ]
        )
    return md_table(
        [
            "GRPO run",
            "steps",
            "median step s",
            "train s",
            "reward (first -> last steps)",
            "accuracy",
            "mean completion tokens",
            "zero-std groups",
            "fast rollouts",
        ],
        rows,
    )


def arith_summary(root: Path) -> tuple[dict, str]:
    evals = {key: eval_metrics(root / folder) for key, folder, _ in ARITH_EVALS}
    grpo = {"(a) a_grpo": grpo_stats(root / "a_grpo"), "(b) b_grpo": grpo_stats(root / "b_grpo")}
    rows = [
        [
            what,
            _pct(evals[key], "pass@1", "pass@1_stderr"),
            _pct(evals[key], "format_rate"),
            _num(evals[key], "mean_tokens"),
            _pct(evals[key], "truncation_rate"),
            _num(evals[key], "num_prompts", "{}"),
        ]
        for key, _, what in ARITH_EVALS
    ]
    md = [
        "### Arithmetic: held-out greedy accuracy",
        "",
        md_table(
            ["model", "greedy accuracy % ± SE", "format %", "mean tokens", "truncated %", "problems"], rows
        ),
        "",
        grpo_table(grpo),
    ]
    verdicts = {}
    for label, before, after in (
        ("(a) GRPO vs base", "a_base", "a_grpo"),
        ("(b) GRPO vs SFT", "b_sft", "b_grpo"),
    ):
        folders = {k: f for k, f, _ in ARITH_EVALS}
        diff = paired_difference(root / folders[before], root / folders[after])
        verdicts[label] = diff
        if diff:
            md.append(
                f"\n{label}: {100 * diff['difference']:+.1f} points over {diff['problems']} problems "
                f"(paired SE {100 * diff['paired_stderr']:.1f}, {diff['sigmas']:.1f} SE)"
            )
    fmt = (evals.get("b_grpo") or {}).get("format_rate")
    if isinstance(fmt, (int, float)):
        md.append(
            f"(b) format rate after GRPO: {100 * fmt:.1f}% ({'above' if fmt > 0.9 else 'NOT above'} 90%)"
        )
    missing = [folder for key, folder, _ in ARITH_EVALS if evals[key] is None]
    if missing:
        md.append(f"not run (yet): {', '.join(missing)}")
    md += _commands(root, [f for _, f, _ in ARITH_EVALS] + ["a_grpo", "b_sft", "b_grpo"])
    return {"evaluations": evals, "grpo": grpo, "comparisons": verdicts}, "\n".join(md)


def _commands(root: Path, folders: list[str]) -> list[str]:
    lines = ["", "Commands (from the stages' manifests):", "", "```"]
    found = [c for c in (command_of(root / f) for f in folders) if c]
    return lines + found + ["```"] if found else []


def gsm8k_summary(root: Path) -> tuple[dict, str]:
    data: dict[str, Any] = {"models": {}}
    for key, _ in GSM8K_MODELS:
        data["models"][key] = {
            kind: eval_metrics(root / f"eval_{key}_{kind}") for kind in ("greedy", "sampled")
        }
    sampled = next((m["sampled"] for m in data["models"].values() if m["sampled"]), {})
    k, temp = sampled.get("num_samples") or 4, _temperature(root)
    rows = []
    for key, what in GSM8K_MODELS:
        g, s = data["models"][key]["greedy"], data["models"][key]["sampled"]
        rows.append(
            [
                what,
                _pct(g, "pass@1", "pass@1_stderr"),
                _num(g, "mean_tokens"),
                _pct(s, "pass@1", "pass@1_stderr"),
                _pct(s, f"pass@{k}"),
                _num(s, "mean_tokens"),
                _pct(s, "format_rate"),
                _pct(s, "truncation_rate"),
                _num(s or g, "num_prompts", "{}"),
            ]
        )
    md = [
        "### GSM8K test (1,319 problems unless fewer are shown)",
        "",
        md_table(
            [
                "checkpoint",
                "greedy % ± SE",
                "greedy mean tokens",
                f"pass@1 % ± SE (T {temp}, {k} samples)",
                f"pass@{k} %",
                "sampled mean tokens",
                "format % (sampled)",
                "truncated % (sampled)",
                "problems",
            ],
            rows,
        ),
        "",
        grpo_table({"grpo": grpo_stats(root / "grpo")}),
    ]
    data["grpo"] = grpo_stats(root / "grpo")
    for kind in ("sampled", "greedy"):
        diff = paired_difference(root / f"eval_sft_{kind}", root / f"eval_grpo_{kind}")
        sft, grpo = data["models"]["sft"][kind], data["models"]["grpo"][kind]
        if diff is None or not sft or not grpo:
            continue
        independent = math.sqrt(sum((m.get("pass@1_stderr") or 0.0) ** 2 for m in (sft, grpo)))
        diff["independent_stderr"] = independent
        diff["above_2se"] = diff["difference"] > 2 * diff["paired_stderr"]
        data[f"grpo_vs_sft_{kind}"] = diff
        md.append(
            f"\nGRPO vs SFT, {kind} pass@1: {100 * diff['difference']:+.2f} points over {diff['problems']} "
            f"problems; paired SE {100 * diff['paired_stderr']:.2f} ({diff['sigmas']:.1f} SE), independent SE "
            f"{100 * independent:.2f}: GRPO is {'ABOVE' if diff['above_2se'] else 'NOT above'} SFT by more "
            "than two standard errors"
        )
    missing = [
        f"eval_{k}_{kind}"
        for k, _ in GSM8K_MODELS
        for kind in ("greedy", "sampled")
        if data["models"][k][kind] is None
    ]
    if missing:
        md.append(f"not run (yet): {', '.join(missing)}")
    md += _commands(
        root,
        [
            "eval_base_greedy",
            "eval_base_sampled",
            "think",
            "sft",
            "eval_sft_greedy",
            "eval_sft_sampled",
            "grpo",
            "eval_grpo_greedy",
            "eval_grpo_sampled",
            "rs",
            "rs_sft",
            "eval_rs_sft_greedy",
            "eval_rs_sft_sampled",
        ],
    )
    return data, "\n".join(md)


def _temperature(root: Path) -> str:
    """The sampled evaluations' temperature, from the first one's resolved_config.yaml."""
    import yaml

    for key, _ in GSM8K_MODELS:
        config = root / f"eval_{key}_sampled" / "resolved_config.yaml"
        if config.is_file():
            return f"{(yaml.safe_load(config.read_text()) or {}).get('temperature', '?'):g}"
    return "0.6"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arith", default="", help="examples/gemma3_arithmetic.sh's OUT")
    parser.add_argument("--gsm8k", default="", help="examples/gemma3_gsm8k.sh's OUT")
    parser.add_argument("--out", default="", help="write gemma3_summary.json / .md and the curves here")
    parser.add_argument(
        "--extra", default="", help="a JSON file to include under 'extra' (e.g. the model check)"
    )
    args = parser.parse_args(argv)
    summary: dict[str, Any] = {}
    parts = []
    if args.arith:
        summary["arithmetic"], md = arith_summary(Path(args.arith))
        parts.append(md)
    if args.gsm8k:
        summary["gsm8k"], md = gsm8k_summary(Path(args.gsm8k))
        parts.append(md)
    if args.extra and Path(args.extra).is_file():
        summary["extra"] = _read_json(Path(args.extra))
    text = "\n\n".join(parts) + "\n"
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gemma3_summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        (out / "gemma3_summary.md").write_text(text)
        for src, name in (
            (Path(args.arith) / "a_curves" / "curves.png", "arith_a_curves.png"),
            (Path(args.arith) / "b_curves" / "curves.png", "arith_b_curves.png"),
            (Path(args.gsm8k) / "curves" / "curves.png", "gsm8k_curves.png"),
        ):
            if (args.arith if name.startswith("arith") else args.gsm8k) and src.is_file():
                shutil.copyfile(src, out / name)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
