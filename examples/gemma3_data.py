"""Prompt files for the Gemma 3 examples (examples/gemma3_arithmetic.sh, examples/gemma3_gsm8k.sh).

Small converters: two read a dataset that r1kit wrote and write jsonl that the r1kit stages read as
they are (`--task arithmetic`), one turns the GGUF into a plain checkpoint folder:

    python examples/gemma3_data.py equations --data runs/arith2 --out runs/a_prompts --shots 8
        train.jsonl / test.jsonl: {"question": <few-shot equation prompt>, "answer": "85"}
    python examples/gemma3_data.py traces --data runs/arith3 --out runs/b_traces.jsonl
        {"question": "What is 482+379?", "steps": <the trace's reasoning lines>, "answer": "861"},
        the input of `r1kit data think --solution-field steps --answer-field answer`
    python examples/gemma3_data.py convert --model gemma-3-270m-q4_k_m.gguf --out runs/gemma3/base
        the GGUF loaded once (dequantized), checked (r1kit.models.sanity_check: refused when a plain
        sentence's perplexity is above 100) and saved as a float32 save_pretrained folder with its
        check in check.json; written to OUT.partial and renamed, so a folder with config.json is whole

Why equations for the base model (R1-Zero from the base, examples/gemma3_arithmetic.sh (a)):
Gemma 3 270M base answers arithmetic only in the plain form it saw in pre-training. Measured here
(CPU, greedy, 8 solved examples in the prompt): one-digit sums asked as
"Question: What is 7+5?\\nAnswer:" 0 of 24 right (it answers "12" or "10" to everything), asked as
"7 + 5 =" lines 19 of 24 right; two-digit sums as "47 + 38 =" lines 1 of 60 greedy, 3% of samples at
temperature 1, and 28% of problems have a right one among 16 samples (GRPO's signal). So the prompt
is 8 solved equations, one per line, then "a + b =": the reply ends at the newline (the equivalent
of a few-shot prompt's next "Question:", hence `--stop` with a newline) and the answer is its last
number.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

_QUESTION = re.compile(r"What is (\d+)\s*([+-])\s*(\d+)\?")


def _rows(source: str, split: str | None) -> list[dict]:
    """Rows of an r1kit dataset output / save_to_disk folder (one split) or a jsonl file."""
    if source.endswith(".jsonl"):
        with open(source) as f:
            return [json.loads(line) for line in f if line.strip()]
    from r1kit.data import load_dataset_any

    return load_dataset_any(source, split=split).to_list()


def equation(question: str, answer: str | None = None) -> str:
    """ "What is 47+38?" -> "47 + 38 = 85" (or "47 + 38 =" without an answer)."""
    m = _QUESTION.fullmatch(question.strip())
    if not m:
        raise ValueError(f"not an arithmetic question: {question!r}")
    left = f"{m[1]} {m[2]} {m[3]} ="
    return left if answer is None else f"{left} {answer}"


def equation_prompt(shots: list[dict], question: str) -> str:
    """The few-shot equation prompt: one solved equation per line, then the open one."""
    return "".join(equation(r["question"], r["answer"]) + "\n" for r in shots) + equation(question)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def cmd_equations(args) -> None:
    train, test = _rows(args.data, "train"), _rows(args.data, "test")
    shots = train[: args.shots]
    out = Path(args.out)
    for name, rows in (("train", train[args.shots :]), ("test", test)):  # the shots are not trained on
        write_jsonl(
            out / f"{name}.jsonl",
            [{"question": equation_prompt(shots, r["question"]), "answer": str(r["answer"])} for r in rows],
        )
    print(
        f"wrote {out}/train.jsonl ({len(train) - args.shots}), {out}/test.jsonl ({len(test)}), {args.shots} shots"
    )


def cmd_traces(args) -> None:
    rows = []
    for r in _rows(args.data, "train"):
        body = re.fullmatch(
            r"\s*<think>\n(.*)\n</think>\s*<answer>\s*(.*?)\s*</answer>\s*", r["completion"], re.DOTALL
        )
        if not body:
            raise ValueError(f"not a <think>/<answer> trace: {r['completion'][:80]!r}")
        rows.append({"question": r["question"], "steps": body[1], "answer": str(r["answer"])})
    write_jsonl(Path(args.out), rows)
    print(f"wrote {args.out} ({len(rows)} traces)")


def cmd_convert(args) -> None:
    import shutil
    import time

    from r1kit.models import check_sanity, load_model_and_tokenizer, sanity_check, save_model

    t0 = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(args.model, device="cpu")
    report = sanity_check(model, tokenizer)
    report.update(model=args.model, load_s=round(time.perf_counter() - t0, 1))
    check_sanity(report)  # R1kitError (one line, exit 2) on a broken load: nothing is written
    # transformers marks a model loaded from GGUF as quantized and its trainers refuse it, although
    # the weights are dequantized: drop the mark before saving a plain checkpoint
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out, part = Path(args.out), Path(args.out + ".partial")
    shutil.rmtree(part, ignore_errors=True)
    save_model(model, tokenizer, part)
    (part / "check.json").write_text(json.dumps(report, indent=1) + "\n")
    part.rename(out)
    print(
        f"sanity check passed (perplexity {', '.join(f'{p:.2f}' for p in report['perplexity'])}; "
        f"{report['prompt']!r} -> {report['continuation']!r}); wrote {out} in {time.perf_counter() - t0:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("equations", help="few-shot equation prompts from an arithmetic dataset (train/test)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="folder for train.jsonl and test.jsonl")
    p.add_argument("--shots", type=int, default=8)
    p.set_defaults(func=cmd_equations)
    p = sub.add_parser("traces", help="question / reasoning steps / answer rows from an arithmetic dataset")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="a .jsonl file")
    p.set_defaults(func=cmd_traces)
    p = sub.add_parser(
        "convert", help="a .gguf (or any model r1kit loads) -> a checked float32 checkpoint folder"
    )
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_convert)
    args = parser.parse_args(argv)
    from r1kit.errors import R1kitError

    try:
        args.func(args)
    except R1kitError as err:
        print(f"r1kit: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
