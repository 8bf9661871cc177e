r"""The judge: the one place that decides whether a completion answers its row correctly.

The accuracy and code rewards (what `r1kit grpo` trains on), rejection sampling, distillation,
DPO-shorten pairs and `r1kit evaluate` all ask `judge` / `judge_many`, so a sample judged correct
in training is judged correct in the evaluation table by construction (nanochat: reward =
evaluate). `judge` returns a `Verdict`: correct (True / False, or None when the row's gold cannot
be scored), the answer it read, whether the reply has the R1 format, and a short reason.

The rules, those of a careful human grader:

1. What is judged is what the model wrote after the prompt: the template's prefill + the
   completion (`judged_text`). The prefill is the stage's (`prefill=`, e.g. chat-think's
   "<think>\n", or the "<think>\n" an R1-distill chat template writes), else read from a prompt
   string that ends with an open "<think>". A completion that already starts with it is not
   given it twice.
2. Reasoning is not an answer. When the text opens a reasoning block (<think>), only what follows
   its </think> is read. A reply that ends inside an open block (cut off while reasoning, or
   re-opened and never closed) has no answer: it is never correct and never format-ok, however
   many boxes its reasoning holds.
3. Where the answer is (extract="auto"), in the text after the reasoning: the last complete
   <answer>...</answer> (a \boxed inside it counts), else the last complete \boxed{} / \fbox{}
   (several boxes: the last one counts), else the last answer statement ("The answer is 204",
   "**Answer:** $\frac12$", "Final answer: C", "#### 72") whose first word is not an English word
   ("The answer is not 0 but 5" is no statement), else the text itself. An <answer> or \boxed{
   opened after the last complete one and never closed means the answer was cut off: no answer.
   (A free-text answer cut off mid-number cannot be told from a finished one: the judge reads
   text only, the same text on every path, and never the generation's `truncated` flag.)
   Other modes (evaluate's --extract) restrict this: answer_tag, boxed, after_think (needs a
   </think>), last_number (base models prompted few-shot).
4. The gold decides how to compare, whatever the task label says (except that "numeric" insists
   on a number, "choice" on a letter or an option number and "code" runs tests). A gold that is a whole GSM8K
   solution counts by what follows its last "####".
   - a number (18, -3, 0.5, \frac{1}{2}, 1\frac{4}{5}, \$18.90, 10,\!080, 5.4 \text{ cents},
     106^\circ): the answer is read as a number and compared exactly ("204", "**204**", "$204.",
     "204 minutes", \boxed{\$10}, \boxed{\text{27}}, \frac{408}{2}, "x = 204", "2 \cdot 102 = 204"
     all equal 204). An answer with words gives its number: after a statement the first one
     ("204 minutes, i.e. 3 h 24 min"), elsewhere the last one; "2 or 3" hedges and answers
     nothing. Free text without any answer statement gives its last number (the GSM8K
     convention), as it gives its last piece of math ($...$, \(...\), \[...\]) for a LaTeX
     gold; text in other scripts counts as words ("答えは18です" gives 18). An answer that is only
     math but not a plain number (\sqrt{4}, 2\cdot 102) goes to math-verify. Decimals written to
     at least six places match a repeating gold within 5e-7 (0.333333 for 1/3), as math-verify's
     rounding does; for a whole gold of 1000 or more, European thousands separators count
     ("2.125", "2\u202f125" for 2125).
   - digits in a base (204_5): the same digits, with the same base or none.
   - a choice letter A-J ((B), \text{(C)}; or any gold when the task is "choice"): the letter of
     the answer ("C", "(C)", "\text{(C)}", "(C) 42", "Option C"; in free text the last "(C)" or
     "answer is C").
   - words (\text{Evelyn}, "even"): the same words, case, markup and punctuation aside.
   - other LaTeX (\left( 3, \frac{\pi}{2} \right), x \in [-2,7], 2k+2): equal after a light
     normalisation, else math-verify decides (called gold first). An answer that is only math is
     parsed as such; one that mixes words and math gives its math ("the point (3,
     \frac{\pi}{2})"; "x = 3 or x = 5" is the list "x = 3, x = 5"); free text gives its last piece
     of math. Anything else goes to math-verify's own extraction, and what it extracts must hold
     no words. Words never become a product of symbols: no text is ever wrapped in \boxed{}.
5. A gold that cannot be scored (empty, unbalanced braces such as "\frac{", LaTeX math-verify
   cannot parse, a non-number for task "numeric", a code row without tests) makes the verdict
   correct=None: the row is excluded, never rewarded and never counted wrong, and every stage
   reports how many rows and which (`exclusion_summary`). `gold_problem` screens a data set
   before any sampling or training.
6. Code (task "code"): the code after the reasoning is run against the row's tests in the sandbox
   (r1kit.rewards.code.check_code; MBPP's test imports and setup run before its asserts,
   HumanEval's prompt and entry point are joined to the completion). Correct when every test
   passes. Default limits (`CODE_LIMITS`) leave room for the slowest reference solution (MBPP 123
   takes ~5 s of CPU).
7. Format: format_ok when the judged text has the R1-Zero format (<think>..</think><answer>..
   </answer>) or the R1 think format (<think>..</think> then a non-empty answer).
8. Bounds: every reading is linear in the text; statements and free text are read from the last
   `TAIL` characters of the answer region, and math-verify never sees more than
   r1kit.answers.MATH_TEXT_LIMIT characters (and runs in helper processes with a timeout).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from r1kit import answers as A
from r1kit.errors import R1kitError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TAIL = 10_000  # characters of the answer region read for statements and free text
# The sandbox's own defaults are kept where larger; MBPP task 123's reference needs ~5 s of CPU,
# which on a loaded machine is more than 10 s of wall clock.
CODE_LIMITS = {"timeout_s": 30.0, "cpu_s": 20}
_CHOICE_TASKS = frozenset({"choice", "mcq", "multiple_choice", "multiple-choice"})


@dataclass(frozen=True)
class Verdict:
    """correct: True / False, None when the gold cannot be scored; answer: what was read (None if
    nothing); format_ok: R1 format; reason: a few words ("correct", "wrong answer", "no answer",
    "reasoning not closed", "answer cut off", "unscorable gold: ...", "tests failed")."""

    correct: bool | None
    answer: str | None
    format_ok: bool
    reason: str


@dataclass(frozen=True)
class Gold:
    """A gold read once: kind is number, base, choice, text, latex or code ("" when unscorable)."""

    kind: str
    text: str
    value: Any = None
    problem: str | None = None


# --------------------------------------------------------------------------- the gold


def task_kind(task: Any) -> str:
    """code, choice, numeric or auto (every other label, "math" included: the gold decides)."""
    t = "" if task is None else str(task).strip().lower()
    if t == "code":
        return "code"
    if t in _CHOICE_TASKS:
        return "choice"
    return "numeric" if t == "numeric" else "auto"


def has_tests(tests: Any) -> bool:
    if tests is None:
        return False
    if isinstance(tests, str):
        return bool(tests.strip())
    return any(str(t).strip() for t in tests)


def _balanced(s: str) -> bool:
    depth = 0
    for i, ch in enumerate(s):
        if ch in "{}" and i and s[i - 1] == "\\":
            continue
        depth += ch == "{"
        depth -= ch == "}"
        if depth < 0:
            return False
    return depth == 0


def _clean_gold(gold: str | None) -> str:
    if gold is None:
        return ""
    s = str(gold).strip()
    if "####" in s:  # a whole GSM8K solution: its answer follows the last "####"
        s = s.rsplit("####", 1)[1].strip().replace(",", "")
    s = A.last_boxed(s) or s
    s = s.strip()
    if len(s) > 1 and s.startswith("$") and s.endswith("$") and not s.startswith("\\$"):
        s = s.strip("$").strip()
    return s.rstrip(".").strip() if not s.endswith("\\.") else s


_BASE_RE = re.compile(r"^(\d+)_\{?(\d+)\}?$")
_WORDS_ONLY_RE = re.compile(r"[A-Za-z][A-Za-z '\-]*[A-Za-z]")


def _norm_words(s: str) -> str:
    s = A._TEXT_WRAP_RE.sub(r"\1", s).lower()
    s = re.sub(r"[$*_.,!?;:\"()\[\]{}\\]", " ", s)
    s = " ".join(s.split())
    return re.sub(r"^(?:the|a|an) ", "", s)


def read_gold(gold: Any, task: Any = None, tests: Any = None) -> Gold:
    """The gold of a row, classified (rule 4); Gold.problem says why it cannot be scored."""
    kind = task_kind(task)
    if kind == "code":
        return Gold("code", "") if has_tests(tests) else Gold("", "", problem="no tests to run")
    return _read_gold(None if gold is None else str(gold), kind)


@functools.lru_cache(maxsize=65536)
def _read_gold(gold: str | None, kind: str) -> Gold:
    s = _clean_gold(gold)
    if not s:
        return Gold("", "", problem="no gold answer")
    if len(s) > 1000:
        return Gold("", s[:60], problem="gold longer than 1000 characters")
    if not _balanced(s):
        return Gold("", s, problem=f"unbalanced braces in {s[:60]!r}")
    value = A.parse_number(s)
    if kind == "choice":  # options labelled A-J, or by numbers (ARC's "1"-"4")
        letter = A.choice_letter(s)
        if letter:
            return Gold("choice", s, letter)
        if value is not None:
            return Gold("number", s, value)
        return Gold("", s, problem=f"{s[:60]!r} is not a letter A-J")
    if value is not None:
        return Gold("number", s, value)
    if kind == "numeric":
        return Gold("", s, problem=f"{s[:60]!r} is not a number")
    m = _BASE_RE.match(s.replace(" ", ""))
    if m:
        return Gold("base", s, (m.group(1).lstrip("0") or "0", m.group(2)))
    letter = A.choice_letter(s)
    if letter:
        return Gold("choice", s, letter)
    plain = A._TEXT_WRAP_RE.sub(r"\1", s).strip()
    if "\\" not in plain and _WORDS_ONLY_RE.fullmatch(plain) and A.words_in(plain):
        return Gold("text", s, _norm_words(plain))
    if A.math_gold_ok(s):
        return Gold("latex", s)
    return Gold("", s, problem=f"math-verify cannot parse {s[:60]!r}")


def gold_problem(gold: Any, task: Any = None, tests: Any = None) -> str | None:
    """Why the row's gold cannot be scored, or None when it can (rule 5)."""
    return read_gold(gold, task, tests).problem


# --------------------------------------------------------------------------- the text judged


def reply_prefix(prompt: Any = None, prefill: Any = None) -> str:
    """The part of the reply the template wrote (rule 1): the stage's prefill, else the open
    "<think>..." at the end of a prompt string (or of a last assistant message)."""
    if isinstance(prefill, str) and prefill:
        return prefill
    if prompt is None:
        return ""
    from r1kit.rewards._text import prompt_tail

    tail = prompt_tail(prompt)
    if tail.rstrip().endswith(THINK_OPEN):
        return tail[tail.rfind(THINK_OPEN) :]
    return ""


def stage_prefill(tokenizer: Any, prefill: str = "", chat: bool = True) -> str:
    """What the judge must read before each completion text: the "<think>" that the tokenizer's
    chat template writes after the generation prompt (R1 distills; only for chat-message prompts,
    which go through it), else the stage's prefill (completions from r1kit's backends already
    start with that one, and the judge does not double it)."""
    if tokenizer is not None and chat:
        from r1kit.rewards._text import detect_think_prefill

        think = detect_think_prefill(tokenizer)
        if think:
            return think
    return prefill or ""


def judged_text(completion: Any, prompt: Any = None, prefill: Any = None) -> str:
    """prefill + completion: what the judge reads (a completion that starts with it keeps its own)."""
    from r1kit.rewards._text import completion_text

    text = completion_text(completion)
    pre = reply_prefix(prompt, prefill)
    if not pre or text.startswith(pre):
        return text
    if THINK_OPEN in pre and text.lstrip().startswith(THINK_OPEN):
        return text
    return pre + text


def answer_region(text: str) -> str | None:
    """The text after the reasoning (rule 2), or None when the text ends inside an open block."""
    close = text.rfind(THINK_CLOSE)
    if text.rfind(THINK_OPEN) > close:
        return None
    return text[close + len(THINK_CLOSE) :] if close >= 0 else text


def format_ok(text: str) -> bool:
    """The R1-Zero format or the R1 think format (rule 7), on the judged text."""
    from r1kit.rewards.format import r1_zero_format_ok, think_format_ok

    return think_format_ok(text) or r1_zero_format_ok(text)


# --------------------------------------------------------------------------- reading the answer


@dataclass(frozen=True)
class Reading:
    text: str | None
    source: str  # tag, box, statement, text, number
    problem: str = "no answer"


# "the answer is", "final answer:" anywhere; "Answer:" only where a line starts ("check our answer:
# 17*44 = 748" in the middle of reasoning states no answer); "#### 72" (GSM8K).
_MARKER_RE = re.compile(
    r"(?i)(?:\bfinal\s+answer|\banswer)(?:\s*(?:\*\*|__))?\s*(?:is\b|=)(?:\s*(?:\*\*|__))?:?"
    r"|(?i:\bfinal\s+answer)(?:\s*(?:\*\*|__))?\s*:(?:\s*(?:\*\*|__))?"
    r"|(?im:^[ \t>#*_]*answer)(?:\s*(?:\*\*|__))?\s*:(?:\s*(?:\*\*|__))?"
    r"|####"
)
_DELIMITED_RE = re.compile(r"(\$\$?|\\\(|\\\[)(.{1,500}?)(?:(?<!\\)\$\$?|\\\)|\\\])", re.DOTALL)
_HEDGE_RE = re.compile(r"\s*,?\s*(?:or|and)\b", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"(?<!\\)[.;!?](?=\s|$)|,\s")
_LEAD_RE = re.compile(r"[A-Za-z]+")


def _statement_text(tail: str, start: int) -> str:
    rest = tail[start : start + 600].lstrip(" \t*_:")
    if rest.startswith(("\n", "\r")):
        rest = rest.lstrip()
    m = _DELIMITED_RE.match(rest)
    if m and not _HEDGE_RE.match(rest, m.end()):
        return m.group(2).strip()
    line = rest.split("\n", 1)[0]  # "$18$ or $19$": the whole hedge, which answers nothing
    if not _starts_with_number_list(line):
        line = line[: _sentence_end(line)]
    return line.strip(" *_\t")


def _sentence_end(line: str) -> int:
    """Where the first sentence of `line` ends, not counting a "." or "," inside $...$."""
    for m in _SENTENCE_END_RE.finditer(line):
        if len(re.findall(r"(?<!\\)\$", line[: m.start()])) % 2 == 0:
            return m.start()
    return len(line)


def _starts_with_number_list(line: str) -> bool:
    # "3, 5, 7" and "(1, 2)" are one answer: do not cut them at the comma
    return bool(re.match(r"\s*[\[(\\{]|\s*-?\d+(?:\.\d+)?\s*,\s*-?\d", line))


def _answer_like(text: str, kind: str) -> bool:
    """Does a statement start with an answer rather than a word ("not 0 but 5")?"""
    if not text:
        return False
    if kind == "text":
        return True
    s = (
        re.sub(r"(?i)^(?:option|choice)\s+", "", text.lstrip("*_([{ "))
        if kind == "choice"
        else text.lstrip("*_([{ ")
    )
    lead = _LEAD_RE.match(s)
    return lead is None or not A.words_in(lead.group(0))


def read_answer(region: str, mode: str = "auto", kind: str = "number") -> Reading:
    """Where the answer is (rule 3): a Reading of its text and where it came from."""
    if mode == "last_number":
        found = A.number_tokens(region[-TAIL:])
        return Reading(found[-1][0], "number") if found else Reading(None, "number")
    if mode in ("auto", "after_think", "answer_tag"):
        content, cut = A.answer_tag(region)
        if cut:
            return Reading(None, "tag", "answer cut off")
        if content is not None:
            inner, inner_cut = A.boxes(content)
            if inner_cut:
                return Reading(None, "box", "answer cut off")
            return Reading(inner[1], "box") if inner else Reading(content, "tag")
        if mode == "answer_tag":
            return Reading(None, "tag")
    best, cut = A.boxes(region)
    if cut:
        return Reading(None, "box", "answer cut off")
    if best is not None:
        return Reading(best[1], "box")
    if mode == "boxed":
        return Reading(None, "box")
    tail = region[-TAIL:]
    statement = None
    for m in _MARKER_RE.finditer(tail):
        text = _statement_text(tail, m.end())
        if _answer_like(text, kind):
            statement = text
    if statement:
        return Reading(statement, "statement")
    tail = tail.strip()
    return Reading(tail, "text") if tail else Reading(None, "text")


_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _clean_answer(text: str) -> str:
    """An answer without its math delimiters, markdown bold and closing period ("$3$ and $5$"
    keeps its delimiters: they are two pieces of math)."""
    s = text.strip().replace("**", "").strip()
    for _ in range(2):
        for a, b in _DELIMS:
            inner = s[len(a) : -len(b)] if len(s) > len(a) + len(b) else ""
            if (
                s.startswith(a)
                and s.endswith(b)
                and inner
                and not s.startswith("\\$")
                and not re.search(r"(?<!\\)\$", inner)
            ):
                s = inner.strip()
        s = s.rstrip(".").strip()
    s = re.sub(r"^\\(?:displaystyle|textstyle)\s*", "", s)
    return s


# --------------------------------------------------------------------------- comparing

_DOT_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:\.\d{3})+")


def _same_number(value: Fraction, gold: Fraction, token: str) -> bool:
    if value == gold:
        return True
    # "2.125" for 2125: dots as thousands separators (German, Spanish, ...), for a whole gold only
    if gold.denominator == 1 and abs(gold) >= 1000 and _DOT_THOUSANDS_RE.fullmatch(token.strip()):
        return int(token.replace(".", "")) == gold
    # math-verify rounds to 6 places: 0.333333 answers 1/3; only for decimals written that long
    m = re.search(r"\.(\d+)", token)
    return bool(m) and len(m.group(1)) >= 6 and abs(value - gold) <= Fraction(5, 10**7)


def _content_number(c: str, source: str) -> tuple[Fraction | None, str | None, str | None]:
    """(value, token, math) of an answer's content: a number, else math for math-verify."""
    value = A.parse_number(c)
    if value is not None:
        return value, c, None
    if "=" in c and "==" not in c:
        rhs = c.rsplit("=", 1)[1].strip()
        value = A.parse_number(rhs)
        if value is not None:
            return value, rhs, None
    core = A.strip_units(c)
    if not A.words_in(core):
        value = A.parse_number(core)
        if value is not None:
            return value, core, None
        return None, None, core if re.search(r"\d", core) else None
    found = A.number_tokens(core)
    if not found:
        return None, None, None
    if len({v for _, v in found}) > 1 and re.search(r"(?i)\bor\b", core):
        return None, None, None  # "2 or 3" hedges: no single answer
    token, value = found[0] if source == "statement" else found[-1]
    return value, token, None


def _compare_number(gold: Gold, reading: Reading) -> tuple[bool, str | None]:
    c = reading.text or ""
    if reading.source == "text" and (len(c) > 200 or A.words_in(c)):
        found = A.number_tokens(c)
        if not found:
            return False, None
        token, value = found[-1]
        return _same_number(value, gold.value, token), token
    c = _clean_answer(c)
    value, token, math = _content_number(c, reading.source)
    if value is not None:
        return _same_number(value, gold.value, token or ""), token
    if math:
        return A.math_equal(gold.text, math), math[:200]
    return False, c[:200] or None


_BASE_ANSWER_RE = re.compile(r"(?<![\w.])\(?(\d+)\)?(?:_\{?(\d+)\}?)?(?![\w.])")


def _compare_base(gold: Gold, reading: Reading) -> tuple[bool, str | None]:
    c = _clean_answer(reading.text or "").replace(" ", "")
    found = list(_BASE_ANSWER_RE.finditer(c if reading.source != "text" else reading.text or ""))
    if not found:
        return False, c[:200] or None
    if reading.source != "text" and len(found) > 1 and re.search(r"(?i)\bor\b", c + (reading.text or "")):
        return False, c[:200]  # "52_8 or 1+2i" hedges
    m = found[-1] if reading.source == "text" else found[0]
    digits, base = m.group(1).lstrip("0") or "0", m.group(2)
    return digits == gold.value[0] and base in (None, gold.value[1]), m.group(0)


_CHOICE_LEAD_RE = re.compile(r"^(?:(?i:option|choice)\s*)?\(?([A-J])(?:\)|[.:]\s|\s*$)")
_CHOICE_LAST_RE = re.compile(r"(?<![A-Za-z\\])\(?([A-J])\)?[.!]?\s*$")
_CHOICE_SAID_RE = re.compile(r"(?i:answer|option|choice)\s*(?:(?i:is)\s*|:\s*)?\(?([A-J])\)?(?![A-Za-z])")


def _compare_choice(gold: Gold, reading: Reading) -> tuple[bool, str | None]:
    c = reading.text or ""
    letter = None
    if reading.source == "text":
        letter = A.choice_letter(c)
        if letter is None:
            # the last thing it names: "(C)", "answer is C", or a piece of math (which may be no letter)
            found = [(m.end(), m.group(1)) for m in re.finditer(r"\(([A-J])\)", c)]
            found += [(m.end(), m.group(1)) for m in _CHOICE_SAID_RE.finditer(c)]
            found += [
                (m.end(), A.choice_letter(next(g for g in m.groups() if g is not None)))
                for m in _MATH_CHUNK_RE.finditer(c)
            ]
            letter = max(found, key=lambda f: f[0])[1] if found else None
        if letter is None:  # "... so I choose C."
            m = _CHOICE_LAST_RE.search(c[-200:])
            letter = m.group(1) if m else None
    else:
        s = A._TEXT_WRAP_RE.sub(r"\1", _clean_answer(c)).strip()
        letter = A.choice_letter(s)
        if letter is None:
            m = _CHOICE_LEAD_RE.match(s)
            letter = m.group(1) if m else None
    return letter == gold.value, letter


def _compare_text(gold: Gold, reading: Reading) -> tuple[bool, str | None]:
    c = reading.text or ""
    if reading.source == "text":
        lines = [line for line in c.splitlines() if line.strip()]
        c = lines[-1] if lines else ""
        said = re.search(r"(?i)\b(?:is|:)\s+([^:]*)$", c)
        candidates = [c] + ([said.group(1)] if said else [])
    else:
        candidates = [_clean_answer(c)]
    answer = _norm_words(candidates[-1])
    return any(_norm_words(x) == gold.value for x in candidates), answer[:200] or None


_MATH_CHUNK_RE = re.compile(
    r"(?<!\\)\$\$(.{1,1000}?)\$\$|(?<![\\$])\$(?!\$)(.{1,1000}?)(?<![\\$])\$"
    r"|\\\((.{1,1000}?)\\\)|\\\[(.{1,1000}?)\\\]",
    re.DOTALL,
)


def _compare_latex(gold: Gold, reading: Reading) -> tuple[bool, str | None]:
    if reading.source == "text":
        # free text: the last math it writes is its answer (as the last number is for numbers)
        chunks = list(_MATH_CHUNK_RE.finditer(reading.text or ""))
        if not chunks:
            return A.math_extract_equal(gold.text, reading.text or ""), None
        last = chunks[-1]
        reading = Reading(next(g for g in last.groups() if g is not None), "text-math")
    c = _clean_answer(reading.text or "")
    if A.normalize_latex(c) == A.normalize_latex(gold.text):
        return True, c[:200]
    core = A.strip_units(c)
    if not A.words_in(core):
        return A.math_equal(gold.text, core), core[:200]
    part = A.math_part(core)  # words around the math ("the point (3, \pi/2)"): the math alone
    if part is not None and not A.words_in(part):
        return A.math_equal(gold.text, part), part[:200]
    return A.math_extract_equal(gold.text, c), c[:200]


_COMPARE = {
    "number": _compare_number,
    "base": _compare_base,
    "choice": _compare_choice,
    "text": _compare_text,
    "latex": _compare_latex,
}


# --------------------------------------------------------------------------- the verdict


def judge(
    completion: Any,
    gold: Any = None,
    task: Any = None,
    *,
    prompt: Any = None,
    prefill: Any = None,
    extract: str = "auto",
    tests: Any = None,
    entry_point: str | None = None,
    question: Any = None,
    limits: Mapping[str, Any] | None = None,
) -> Verdict:
    """The verdict on one completion (a string or chat messages) for its row (rules above).

    gold: the `answer` column; task: the `task` column (code, numeric, choice, or anything else);
    prompt / prefill: what precedes the completion (rule 1); extract: an r1kit.answers mode;
    tests / entry_point / question (default: prompt): code rows; limits: sandbox limits.
    """
    if extract not in A.EXTRACT_MODES:
        raise R1kitError(
            f"unknown answer extraction mode {extract!r}; choose one of {', '.join(A.EXTRACT_MODES)}"
        )
    text = judged_text(completion, prompt, prefill)
    g = read_gold(gold, task, tests)
    region = answer_region(text)
    fmt = region is not None and format_ok(text)
    if g.problem:
        return Verdict(None, None, fmt, f"unscorable gold: {g.problem}")
    if region is None:
        return Verdict(False, None, False, "reasoning not closed")
    if extract == "after_think" and THINK_CLOSE not in text:
        return Verdict(False, None, fmt, "no </think>")
    if g.kind == "code":
        from r1kit.rewards.code import DEFAULT_LIMITS, check_code

        opts = {k: max(v, DEFAULT_LIMITS.get(k, v)) for k, v in CODE_LIMITS.items()}
        opts.update({k: v for k, v in (limits or {}).items() if v is not None})
        passed, _ = check_code(
            region, tests, entry_point or None, question if question is not None else prompt, **opts
        )
        return Verdict(bool(passed), None, fmt, "tests passed" if passed else "tests failed")
    reading = read_answer(region, extract, g.kind)
    if reading.text is None:
        return Verdict(False, None, fmt, reading.problem)
    ok, answer = _COMPARE[g.kind](g, reading)
    return Verdict(bool(ok), answer, fmt, "correct" if ok else "wrong answer")


def judge_many(
    rows: Sequence[Mapping[str, Any]],
    *,
    extract: str = "auto",
    prefill: Any = None,
    limits: Mapping[str, Any] | None = None,
    max_workers: int | None = None,
) -> list[Verdict]:
    """Verdicts for many rows (dicts with completion, answer, task, and where present prompt,
    prefill, question, tests, entry_point). A row's own non-empty `prefill` wins over `prefill`.

    Code rows run in parallel sandboxes (max_workers, default the CPU count); the others from as
    many threads as there are math-verify helpers (R1KIT_MATH_WORKERS), which then work in parallel.
    """

    def one(row: Mapping[str, Any]) -> Verdict:
        own = row.get("prefill")
        return judge(
            row.get("completion"),
            row.get("answer"),
            row.get("task"),
            prompt=row.get("prompt"),
            prefill=own if isinstance(own, str) and own else prefill,
            extract=extract,
            tests=row.get("tests"),
            entry_point=row.get("entry_point"),
            question=row.get("question"),
            limits=limits,
        )

    n = len(rows)
    out: list[Verdict | None] = [None] * n
    code = [i for i, r in enumerate(rows) if task_kind(r.get("task")) == "code" and has_tests(r.get("tests"))]
    taken = set(code)
    rest = [i for i in range(n) if i not in taken]
    for idx, workers in ((rest, A.math_workers()), (code, max_workers or os.cpu_count() or 1)):
        if not idx:
            continue
        if workers > 1 and len(idx) > 1:
            with ThreadPoolExecutor(min(workers, len(idx))) as pool:
                for i, v in zip(idx, pool.map(lambda i: one(rows[i]), idx)):
                    out[i] = v
        else:
            for i in idx:
                out[i] = one(rows[i])
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- reporting exclusions


def exclusion_summary(ids: Sequence) -> dict[str, Any]:
    """What every stage reports about rows left out for an unscorable gold (rule 5)."""
    ids = list(ids)
    return {"unscorable_gold": len(ids), "unscorable_gold_ids": ids}


def screen(
    golds: Sequence[Any], tasks: Sequence[Any] | None = None, tests: Sequence[Any] | None = None
) -> dict[int, str]:
    """Row index -> why its gold cannot be scored, for the rows of a data set that cannot be."""
    n = len(golds)
    tasks = list(tasks) if tasks is not None else [None] * n
    tests = list(tests) if tests is not None else [None] * n
    out = {}
    for i, (g, t, x) in enumerate(zip(golds, tasks, tests)):
        problem = gold_problem(g, t, x)
        if problem:
            out[i] = problem
    return out
