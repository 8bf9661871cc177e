"""Model cards: the README.md that every model output carries (sft, grpo, dpo-shorten, distill, merge).

A checkpoint that leaves the machine (uploaded to the Hugging Face hub, sent to a colleague)
should say where it came from. `r1kit.outputs` calls `write_model_card` when a stage publishes
an output with a `model/` folder; the card is Hugging Face style: YAML front matter, then text.

Front matter: `base_model` and `datasets` list the hub ids the model descends from (the hub
accepts only hub ids there; local folders and files are named in the text), found by following
r1kit stage outputs back to their inputs (runs/grpo <- runs/sft <- Qwen/Qwen2.5-1.5B);
`base_model_relation` (finetune or merge), `tags` (r1kit, the stage, the method) and
`license`, left empty: the licenses of the base model and the data decide it, and only the user
can say which applies. Text: the stage and its paper, the inputs and their lineage, the exact
command, the final metrics (the last logged step and the stage's summary), the resolved
configuration, and the versions, git commit, device and world size from the manifest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# stage -> (what it did, tags, relation to the base model)
STAGES = {
    "sft": (
        "supervised fine-tuning (DeepSeek-R1 cold start, rejection-sampling SFT or distillation student)",
        ["sft", "trl"],
        "finetune",
    ),
    "grpo": (
        "reinforcement learning with GRPO from rule-based rewards (DeepSeek-R1, Kimi k1.5)",
        ["grpo", "reinforcement-learning", "trl"],
        "finetune",
    ),
    "dpo-shorten": (
        "long2short DPO towards the shortest correct answer (Kimi k1.5 §2.4)",
        ["dpo", "long2short", "trl"],
        "finetune",
    ),
    "distill": (
        "distillation: SFT of a student on a teacher's rejection-sampled traces (DeepSeek-R1 §2.4)",
        ["distillation", "sft", "trl"],
        "finetune",
    ),
    "merge": (
        "weight averaging of checkpoints (Kimi k1.5 long2short merging)",
        ["merge", "long2short"],
        "merge",
    ),
}
# the inputs that name the model a stage started from, and the ones that name its data
MODEL_INPUTS = ("student", "model", "models")
DATA_INPUTS = ("data", "samples")
# metrics of the last logged step shown in the card, in this order (rewards/<name>/mean are added)
CARD_KEYS = (
    "loss",
    "learning_rate",
    "mean_token_accuracy",
    "reward",
    "reward_std",
    "accuracy",
    "kl",
    "entropy",
    "completions/mean_length",
    "zero_std_fraction",
    "rewards/accuracies",
    "rewards/margins",
    "rewards/chosen",
    "rewards/rejected",
)
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".gguf", ".txt")


def write_model_card(
    model_dir: Path, manifest: dict[str, Any], command: str, stage_dir: Path, name: str
) -> Path:
    """Write model_dir/README.md for the output being published in stage_dir (its manifest given) under
    the folder name `name`."""
    card = model_dir / "README.md"
    card.write_text(render(manifest, command, stage_dir, name), encoding="utf-8")
    return card


def render(manifest: dict[str, Any], command: str, stage_dir: Path, name: str) -> str:
    import yaml

    stage = manifest.get("stage", "?")
    what, tags, relation = STAGES.get(stage, (f"r1kit stage {stage}", [], "finetune"))
    inputs = manifest.get("inputs") or {}
    models = _listed(inputs, MODEL_INPUTS)
    data = _listed(inputs, DATA_INPUTS)
    root_models = _unique(r for m in models for r in roots(m, MODEL_INPUTS))
    root_data = _unique(r for d in data for r in roots(d, DATA_INPUTS))
    meta: dict[str, Any] = {"library_name": "transformers"}
    hub_models = [m for m in root_models if is_hub_id(m)]
    if hub_models:
        meta["base_model"] = hub_models if len(hub_models) > 1 else hub_models[0]
        meta["base_model_relation"] = relation
    hub_data = [d for d in root_data if is_hub_id(d)]
    if hub_data:
        meta["datasets"] = hub_data
    meta["tags"] = ["r1kit", *tags, "reasoning"]
    meta["pipeline_tag"] = "text-generation"
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    front += "license:  # not set by r1kit: the licenses of the base model and the data decide it\n"

    intro = f"{what[0].upper()}{what[1:]}, made with r1kit {manifest.get('r1kit_version', '?')} (stage `{stage}`)."
    lines = [
        f"---\n{front}---",
        "",
        f"# {name}",
        "",
        intro,
        "",
        "| | |",
        "|---|---|",
        f"| stage | `{stage}` |",
    ]
    for label, specs in (("base model", models), ("data", data)):
        for spec in specs:
            chain = lineage(spec, MODEL_INPUTS if label == "base model" else DATA_INPUTS)
            shown = " ← ".join(f"`{s}`" for s in chain)
            lines.append(f"| {label} | {shown} |")
    if inputs.get("teacher"):
        lines.append(f"| teacher | `{inputs['teacher']}` |")
    lines.append(f"| started | {manifest.get('started', '?')} (wall time {manifest.get('wall_s', '?')} s) |")
    lines += ["", "## Command", "", "```bash", command, "```", ""]
    metrics = final_metrics(stage_dir)
    if metrics:
        lines += ["## Final metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
        lines.append("")
    config = stage_dir / "resolved_config.yaml"
    if config.is_file():
        lines += [
            "## Configuration",
            "",
            "Resolved: built-in defaults < `--config` file < flags.",
            "",
            "```yaml",
            config.read_text(encoding="utf-8").rstrip(),
            "```",
            "",
        ]
    lines += ["## Software and hardware", "", "| | |", "|---|---|"]
    for lib, ver in (manifest.get("versions") or {}).items():
        lines.append(f"| {lib} | {ver or 'not installed'} |")
    commit = manifest.get("git_commit")
    dirty = " (with uncommitted changes)" if manifest.get("git_dirty") else ""
    lines.append(f"| r1kit git commit | {commit + dirty if commit else 'not a git checkout'} |")
    lines += [
        f"| device | {manifest.get('device', '?')} |",
        f"| world size | {manifest.get('world_size', 1)} |",
        "",
    ]
    warnings = [w for w in (_summary(stage_dir).get("warnings") or []) if isinstance(w, str)]
    if warnings:
        lines += ["## Warnings raised during training", "", *[f"- {w}" for w in warnings], ""]
    license_text = "Not set by r1kit. Fill in the `license` field above: the licenses of the base model and of the data apply."
    lines += ["## License", "", license_text, ""]
    return "\n".join(lines)


def final_metrics(stage_dir: Path) -> dict[str, Any]:
    """The last logged training step's CARD_KEYS and rewards/<name>/mean, then the numbers of the
    stage's summary record. distill's student logs in its sft/ sub-output: read there too."""
    records = _records(stage_dir)
    steps = [
        r for r in records if isinstance(r.get("step"), int) and "train_runtime" not in r and "event" not in r
    ]
    if not steps and (stage_dir / "sft" / "metrics.jsonl").is_file():
        steps = [
            r
            for r in _records(stage_dir / "sft")
            if isinstance(r.get("step"), int) and "train_runtime" not in r and "event" not in r
        ]
    out: dict[str, Any] = {}
    if steps:
        last = steps[-1]
        out["step"] = last["step"]
        keys = [*CARD_KEYS, *sorted(k for k in last if k.startswith("rewards/") and k.endswith("/mean"))]
        out.update({k: last[k] for k in keys if _is_number(last.get(k))})
    for k, v in _summary(stage_dir).items():
        if k not in ("time", "event", "total_flos") and _is_number(v):
            out[k] = v
    return out


def _summary(stage_dir: Path) -> dict[str, Any]:
    return next((r for r in reversed(_records(stage_dir)) if r.get("event") == "summary"), {})


def roots(spec: str, keys: tuple[str, ...], depth: int = 0) -> list[str]:
    """The inputs an r1kit stage output descends from, followed back through the manifests; a spec
    that is not a stage output is its own root."""
    manifest = _manifest(spec)
    if manifest is None or depth > 20:
        return [spec]
    parents = _listed(manifest.get("inputs") or {}, keys)
    return _unique(r for p in parents for r in roots(p, keys, depth + 1)) or [spec]


def lineage(spec: str, keys: tuple[str, ...]) -> list[str]:
    """spec, then the first input it descends from, and so on (runs/grpo, runs/sft, tiny)."""
    chain = [spec]
    while len(chain) < 20:
        manifest = _manifest(chain[-1])
        parents = _listed((manifest or {}).get("inputs") or {}, keys)
        if not parents:
            break
        chain.append(parents[0] if len(parents) == 1 else ", ".join(parents))
        if len(parents) > 1:
            break
    return chain


def is_hub_id(spec: str) -> bool:
    """'org/name' that is not a local path or a data file: what the hub's metadata accepts."""
    if not isinstance(spec, str) or spec.lower().endswith(_FILE_SUFFIXES) or Path(spec).expanduser().exists():
        return False
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", spec) is not None


def _manifest(spec: str) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(str(spec)).expanduser() / "manifest.json").read_text())
    except (OSError, ValueError, TypeError):
        return None
    return data if isinstance(data, dict) and "r1kit_version" in data else None


def _listed(inputs: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for key in keys:
        value = inputs.get(key)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str) and item:
                out.append(item)
        if out and key in ("student", "model", "models"):
            break  # distill: the student is the base (the teacher is listed apart)
    return out


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


def _records(stage_dir: Path) -> list[dict[str, Any]]:
    from r1kit.outputs import read_metrics

    return read_metrics(stage_dir)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    from r1kit.progress import fmt_value

    return fmt_value(value)
