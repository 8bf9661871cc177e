"""r1kit from Python: the same stage configs and `run` functions as the command line.

Every command `r1kit STAGE --some-flag V` is, in Python,

    from r1kit.config import build_config
    from r1kit.stages import STAGE_MODULE              # sft, grpo, evaluate, data, ...
    STAGE_MODULE.run(build_config(STAGE_MODULE.Config, flags={"some_flag": V, "output": ...}))

`build_config` applies the same precedence (defaults < YAML file < flags) and the same checks
as the CLI, and `run` writes the same output folder (manifest.json, metrics.jsonl, ...). Below:
the `data arithmetic` stage writes the built-in task, the `evaluate` stage scores the tiny model
on its test split, and `evaluate_model`, the function under that stage, scores the same model in
memory, which is what you call from your own loop (no output folder). Greedy decoding makes the
two agree exactly. As a check of the scoring, the task's own worked solutions are scored too:
all of them are right.

    python examples/python_api.py --output runs/python-api

Prints one JSON line: {"stage": metrics, "in_memory": metrics, "same_completions": true,
"reference_accuracy": 1.0}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="runs/python-api", help="Folder for the two stage outputs.")
    parser.add_argument("--problems", type=int, default=8, help="Test problems to evaluate on.")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    out = Path(args.output)

    from r1kit.config import build_config
    from r1kit.stages import data, evaluate

    # 1. `r1kit data arithmetic --output OUT/data --train-size 8 --test-size N --digits 1`
    data_dir = out / "data"
    if not (data_dir / "manifest.json").exists():
        data.run(
            build_config(
                data.Config,
                flags={"output": str(data_dir), "train_size": 8, "test_size": args.problems, "digits": 1},
            )
        )

    # 2. `r1kit evaluate --model tiny --data OUT/data --greedy --max-new-tokens 48 --output OUT/eval`
    cfg = build_config(
        evaluate.Config,
        flags={
            "output": str(out / "eval"),
            "overwrite": True,
            "model": ["tiny"],
            "data": str(data_dir),
            "greedy": True,
            "max_new_tokens": args.max_new_tokens,
        },
    )
    stage_metrics = evaluate.run(cfg)["tiny"]

    # 3. The same evaluation in memory: a model object, a prepared dataset, sampling parameters.
    from r1kit.answers import check_answer
    from r1kit.data import prepare_dataset
    from r1kit.evaluation import evaluate_model
    from r1kit.generation import SamplingParams
    from r1kit.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer("tiny")
    # evaluate's defaults: the test split, and --template auto, which is chat for the tiny model (its
    # tokenizer has a chat template)
    problems = prepare_dataset(str(data_dir), split="test", template="chat")
    params = SamplingParams(greedy=True, max_new_tokens=args.max_new_tokens)
    memory_metrics, rows = evaluate_model(model, tokenizer, problems, params)

    # The worked solutions that `data arithmetic` ships, checked the way evaluate checks samples.
    from datasets import load_from_disk

    test = load_from_disk(str(data_dir / "data"))["test"]
    verdicts = [check_answer(row["completion"], row["answer"]) for row in test]
    # The stage keeps every sample in OUT/eval/data: the in-memory run wrote the same texts.
    saved = load_from_disk(str(out / "eval" / "data"))["completion"]
    print(
        json.dumps(
            {
                "stage": stage_metrics,
                "in_memory": memory_metrics,
                "same_completions": saved == [row["completion"] for row in rows],
                "reference_accuracy": sum(map(bool, verdicts)) / len(verdicts),
            }
        )
    )


if __name__ == "__main__":
    main()
