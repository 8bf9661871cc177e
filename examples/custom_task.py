"""A task adapter of your own: use a dataset whose columns r1kit does not know, by dotted path.

A task adapter turns one raw row into r1kit's canonical fields (r1kit/data/tasks.py):
`question` (text), `answer` (the gold, as text), `task` ("math", "numeric" or "code": how the
answer is checked) and, where the data has them, `lang`, `tests`, `entry_point`, `difficulty`.
A plain function row -> dict works; wrapping it in `TaskAdapter` with the raw columns it reads
lets r1kit check them before a model loads, and name them in the error when they are missing.
Templates (r1-zero, chat, chat-think, raw) then render `question` into the prompt, so an adapter
never deals with prompts.

`svamp` reads SVAMP-style word problems, {"Body": ..., "Question": ..., "Answer": 8.0}: the
question is the body followed by the question, the gold answer is the number written without a
trailing ".0", and the check is numeric.

Use it wherever a stage takes `--task` (evaluate, grpo, rejection-sample, distill,
dpo-shorten). As for custom rewards, the module must be importable: run from the repository root
(`python -m r1kit` has the current folder on sys.path; the `r1kit` command needs PYTHONPATH=.):

    python examples/custom_task.py --write runs/word_problems.jsonl
    PYTHONPATH=. r1kit evaluate --model tiny --data runs/word_problems.jsonl \\
        --task examples.custom_task:svamp --template r1-zero --max-new-tokens 64 --output runs/eval-svamp

Running this file writes four made-up SVAMP-style problems (to --write, if given), prepares them
with the adapter and prints one JSON line per prepared row.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from r1kit.data.tasks import TaskAdapter
from r1kit.errors import R1kitError

EXAMPLES = [
    {
        "Body": "A baker made 14 loaves and sold 6 of them.",
        "Question": "How many loaves are left?",
        "Answer": 8.0,
    },
    {
        "Body": "Tom has 3 boxes with 4 pens in each box.",
        "Question": "How many pens does Tom have?",
        "Answer": 12.0,
    },
    {
        "Body": "A rope 10 meters long is cut into 4 equal pieces.",
        "Question": "How long is each piece?",
        "Answer": 2.5,
    },
    {
        "Body": "There were 25 birds on a tree. 7 flew away and then 4 more came.",
        "Question": "How many birds are on the tree now?",
        "Answer": 22.0,
    },
]


def _number_text(value) -> str:
    """8.0 -> "8", 2.5 -> "2.5", "1,200" -> "1200"."""
    try:
        number = float(str(value).replace(",", ""))
    except ValueError:
        raise R1kitError(f"svamp: Answer {value!r} is not a number") from None
    return str(int(number)) if number.is_integer() else repr(number)


def _svamp(row: dict) -> dict:
    body, question = str(row["Body"]).strip(), str(row["Question"]).strip()
    return {"question": f"{body} {question}", "answer": _number_text(row["Answer"]), "task": "numeric"}


svamp = TaskAdapter(_svamp, columns=("Body", "Question", "Answer"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", help="Where to write the example problems (.jsonl); default: a temp file.")
    args = parser.parse_args()

    from r1kit.data import prepare_dataset

    # Run as a script, Python puts examples/ on sys.path, not the repository root that the dotted
    # path "examples.custom_task:svamp" is relative to (the CLI run from the root has it).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    path = Path(args.write or Path(tempfile.mkdtemp(prefix="r1kit-svamp-")) / "word_problems.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in EXAMPLES))
    # The same call every stage makes for `--task examples.custom_task:svamp --template r1-zero`.
    prepared = prepare_dataset(str(path), task="examples.custom_task:svamp", template="r1-zero")
    for row in prepared:
        print(
            json.dumps(
                {
                    "question": row["question"],
                    "answer": row["answer"],
                    "task": row["task"],
                    "prompt_end": row["prompt"][-60:],
                }
            )
        )


if __name__ == "__main__":
    main()
