"""Task adapters: turn a benchmark's raw records into r1kit's canonical columns.

Canonical fields: `question` (str), `answer` (gold, str), `task` ("math" | "numeric" | "code"),
and where the task has them `lang`, `tests` (code run after the completion), `entry_point`,
`difficulty`. `prepare_dataset` loads a source, applies an adapter and renders `prompt` with a
template (see templates.py). Registry names and formats are documented in the shared
data/SOURCES.md; an unknown name gets a did-you-mean error, and a dotted path
("mypkg.mod:fn") names a custom adapter: a function raw row -> dict of canonical fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from r1kit.data.loading import load_dataset_any, rename_columns, require_columns
from r1kit.data.templates import get_template
from r1kit.errors import R1kitError
from r1kit.lookup import check_name, lookup

if TYPE_CHECKING:
    from datasets import Dataset

TASK_TYPES = ("math", "numeric", "code")
# What the user of a prompt stage can do about a missing column (its options map columns and adapters).
MAP_COLUMNS = "map them with --prompt-field/--answer-field or choose a --task"
OPTIONAL_FIELDS = ("lang", "tests", "entry_point", "difficulty")
# generic: the first of these present is the question / the gold answer
PROMPT_FIELDS = ("question", "prompt", "problem", "input", "instruction")
ANSWER_FIELDS = ("answer", "solution", "output", "target", "gold")


@dataclass(frozen=True)
class TaskAdapter:
    """fn(row) -> canonical fields; `columns` are the raw columns it reads. --prompt-field and
    --answer-field rename a differently named column into `prompt_col` / `answer_col`."""

    fn: Callable[[dict], dict]
    columns: tuple[str, ...] = ()
    prompt_col: str | None = None
    answer_col: str | None = None

    def __call__(self, row: dict) -> dict:
        return self.fn(row)


def strip_number(text: Any) -> str:
    """A numeric gold answer as a plain string: whitespace and thousands commas removed."""
    return str(text).strip().replace(",", "")


def gsm8k_gold(solution: str) -> str:
    """The final answer of a GSM8K solution: after the last "####", commas removed."""
    if "####" not in solution:
        raise R1kitError(
            f"a gsm8k answer has no '####' final-answer marker: {solution[-60:]!r} (is this gsm8k?)"
        )
    return strip_number(solution.rsplit("####", 1)[1])


def _gsm8k(row: dict) -> dict:
    return {"question": row["question"], "answer": gsm8k_gold(row["answer"]), "task": "numeric"}


def _math500(row: dict) -> dict:
    out = {"question": row["problem"], "answer": str(row["answer"]).strip(), "task": "math"}
    out["difficulty"] = int(row["level"]) if row.get("level") is not None else None
    return out


def _mgsm(row: dict) -> dict:
    return {
        "question": row["question"],
        "answer": strip_number(row["answer"]),
        "task": "numeric",
        "lang": row["lang"],
    }


def _humaneval(row: dict) -> dict:
    # The answer of a code task is the reference solution; grading runs `tests` instead.
    return {
        "question": row["prompt"],
        "answer": row.get("canonical_solution") or "",
        "task": "code",
        "tests": f"{row['test']}\ncheck({row['entry_point']})",
        "entry_point": row["entry_point"],
    }


def _mbpp_entry_point(code: str, first_test: str) -> str:
    names = re.findall(r"^def\s+(\w+)", code or "", flags=re.MULTILINE)
    used = [n for n in names if re.search(rf"\b{re.escape(n)}\s*\(", first_test)]
    if used or names:
        return (used or names)[0]
    m = re.search(r"assert\s+(\w+)\s*\(", first_test)
    return m[1] if m else ""


def _mbpp_tests(row: dict) -> str:
    """MBPP's test code: the imports of the "sanitized" rows (`test_imports`, e.g. "import math" for
    asserts that call math.isclose), then `test_setup_code`, then the asserts. The sandbox runs the
    lines before the first assert as set-up, after the solution is defined."""
    imports = row.get("test_imports") or []
    if isinstance(imports, str):
        imports = [imports]
    setup = (row.get("test_setup_code") or "").replace("\r\n", "\n").strip()
    lines = [str(i).strip() for i in imports if str(i).strip()]
    if setup:
        lines.append(setup)
    return "\n".join([*lines, *(t.replace("\r\n", "\n") for t in row["test_list"])])


def _mbpp(row: dict) -> dict:
    # the original rows hold the task in "text", the sanitized ones in "prompt"
    text = row.get("text") if row.get("text") is not None else row.get("prompt")
    if text is None:
        raise R1kitError(f"an mbpp row needs a 'text' (or 'prompt') column; got {sorted(row)}")
    tests = list(row["test_list"])
    return {
        "question": f"{text}\nYour code should pass this test:\n{tests[0]}",
        "answer": (row.get("code") or "").replace("\r\n", "\n"),
        "task": "code",
        "tests": _mbpp_tests(row),
        "entry_point": _mbpp_entry_point(row.get("code") or "", tests[0]),
    }


def _arithmetic(row: dict) -> dict:
    out = {"question": row["question"], "answer": str(row["answer"]), "task": row.get("task") or "numeric"}
    if "difficulty" in row:
        out["difficulty"] = row["difficulty"]
    return out


def _question_text(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    # chat messages: the question is the last user turn
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        users = [m.get("content", "") for m in value if m.get("role") == "user"]
        if users:
            return users[-1]
    raise R1kitError(f"column {field!r} must hold text (or chat messages), got {type(value).__name__}")


def generic_adapter(prompt_field: str, answer_field: str | None, task_type: str | None) -> TaskAdapter:
    """Any dataset: question from `prompt_field`, gold from `answer_field`, task from the flag,
    else from a `task` column, else "math". Optional canonical columns are kept when present."""

    def fn(row: dict) -> dict:
        out = {
            "question": _question_text(row[prompt_field], prompt_field),
            "answer": "" if answer_field is None or row[answer_field] is None else str(row[answer_field]),
            "task": task_type or row.get("task") or "math",
        }
        out.update({k: row[k] for k in OPTIONAL_FIELDS if k in row})
        return out

    return TaskAdapter(fn, tuple(c for c in (prompt_field, answer_field) if c), prompt_field, answer_field)


TASKS: dict[str, TaskAdapter] = {
    "gsm8k": TaskAdapter(_gsm8k, ("question", "answer"), "question", "answer"),
    "math500": TaskAdapter(_math500, ("problem", "answer"), "problem", "answer"),
    "mgsm": TaskAdapter(_mgsm, ("question", "answer", "lang"), "question", "answer"),
    "humaneval": TaskAdapter(_humaneval, ("prompt", "test", "entry_point"), "prompt", None),
    "mbpp": TaskAdapter(_mbpp, ("test_list",), "text", None),
    "arithmetic": TaskAdapter(_arithmetic, ("question", "answer"), "question", "answer"),
    # prepare_dataset builds "generic" from the flags; standalone it uses the first usual column names
    "generic": TaskAdapter(lambda row: _generic_default(row)),
}


def _generic_default(row: dict) -> dict:
    prompt = next((c for c in PROMPT_FIELDS if c in row), None)
    answer = next((c for c in ANSWER_FIELDS if c in row and c != prompt), None)
    if prompt is None:
        raise R1kitError(f"cannot tell which column is the question among {sorted(row)}; pass --prompt-field")
    return generic_adapter(prompt, answer, None)(row)


def detect_task(ds: Dataset) -> str:
    """Guess the adapter from the columns (and, for gsm8k, the '####' in the answers)."""
    cols = set(ds.column_names)
    if {"entry_point", "canonical_solution"} <= cols:
        return "humaneval"
    if "test_list" in cols:
        return "mbpp"
    if {"question", "answer", "completion"} <= cols:
        return "arithmetic"
    if {"question", "answer"} <= cols:
        head = ds.select(range(min(len(ds), 20)))["answer"]
        if all(isinstance(a, str) and "####" in a for a in head):
            return "gsm8k"
        if "lang" in cols:
            return "mgsm"
    if {"problem", "answer"} <= cols:
        return "math500"
    return "generic"


def get_task(name: str) -> TaskAdapter:
    adapter = lookup(TASKS, name, "task", dotted=True)
    return adapter if isinstance(adapter, TaskAdapter) else TaskAdapter(adapter)


def _generic_for(ds: Dataset, source: str, prompt_field, answer_field, task_type) -> TaskAdapter:
    cols = ds.column_names
    prompt_field = prompt_field or next((c for c in PROMPT_FIELDS if c in cols), None)
    if prompt_field is None:
        raise R1kitError(
            f"{source}: cannot tell which column is the question; available columns: {', '.join(cols)} "
            "(pass --prompt-field, or --task with one of: " + ", ".join(TASKS) + ")"
        )
    if answer_field is None and task_type != "code":
        answer_field = next((c for c in ANSWER_FIELDS if c in cols and c != prompt_field), None)
        if answer_field is None:
            raise R1kitError(
                f"{source}: cannot tell which column is the gold answer; available columns: {', '.join(cols)} "
                "(pass --answer-field)"
            )
    return generic_adapter(prompt_field, answer_field, task_type)


def prepare_dataset(
    source: str,
    *,
    task: str | None = None,
    split: str | None = None,
    prompt_field: str | None = None,
    answer_field: str | None = None,
    template: str = "raw",
    system_prompt: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    task_type: str | None = None,
) -> Dataset:
    """Load `source`, apply the task adapter (given, or detected from the columns) and render prompts.

    Returns columns `prompt` (str for "raw"/"r1-zero", chat messages for chat templates),
    `question`, `answer`, `task`, plus `lang`, `tests`, `entry_point`, `difficulty` where the
    task has them. `limit` keeps a seeded random subset of that many rows. `task_type` sets the
    `task` column of the generic adapter ("math" by default).
    """
    render = get_template(template)  # fail on a bad template before loading anything
    if task_type is not None:
        check_name(task_type, TASK_TYPES, "task type")
    if limit is not None and limit < 1:
        raise R1kitError(f"limit ({limit}) must be >= 1")
    adapter = get_task(task) if task else None
    ds = load_dataset_any(source, split=split)
    name = task or detect_task(ds)
    if name == "generic":
        adapter = _generic_for(ds, source, prompt_field, answer_field, task_type)
    else:
        adapter = adapter or get_task(name)
        renames = {prompt_field: adapter.prompt_col, answer_field: adapter.answer_col}
        ds = rename_columns(
            ds, {old: new for old, new in renames.items() if old and new}, source, MAP_COLUMNS
        )
    require_columns(ds, adapter.columns, source, MAP_COLUMNS)
    if limit is not None and limit < len(ds):
        ds = ds.shuffle(seed=seed, keep_in_memory=True).select(range(limit), keep_in_memory=True)

    def convert(row: dict) -> dict:
        out = adapter(row)
        if "question" not in out or "answer" not in out:
            raise R1kitError(
                f"task adapter {name!r} must return 'question' and 'answer', returned {sorted(out)}"
            )
        out["answer"] = "" if out["answer"] is None else str(out["answer"])
        out.setdefault("task", task_type or "math")
        canonical = {k: out[k] for k in ("question", "answer", "task", *OPTIONAL_FIELDS) if k in out}
        return {"prompt": render(out["question"], system_prompt), **canonical}

    # keep_in_memory: never write cache files into the source folder (it may be another stage's output)
    out = ds.map(convert, remove_columns=ds.column_names, keep_in_memory=True, desc=f"preparing {name}")
    order = ["prompt", "question", "answer", "task", *OPTIONAL_FIELDS]
    return out.select_columns([c for c in order if c in out.column_names])
