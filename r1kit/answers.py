"""Answer primitives: find boxes and tags, read numbers and choice letters, talk to math-verify.

These are the pieces the judge (r1kit/judge.py) is built from; the judge alone decides whether
an answer is correct, and its docstring states the rules. Here:

* `extract_answer` finds the final answer in a completion (modes below); `last_boxed` the last
  complete \\boxed{} (linear-time brace matching, so a megabyte of unclosed boxes stays cheap).
* `parse_number` reads a number written plainly or in LaTeX (\\frac{1}{2}, 1\\frac{4}{5}, \\$18.90,
  10,\\!080, 5.4 \\text{ cents}, 106^\\circ); `number_tokens` finds the numbers in free text.
* `answer_key` groups equivalent answers for majority voting (cons@k).
* `check_answer` is kept for scripts: it asks the judge.

math-verify guards its own time with signal.alarm, which only works in the main thread and cannot
stop a long C-level computation (`9^{9^{9^9}}` hangs `verify`, 10,000 "(" hang `parse`). r1kit
turns that guard off and runs math-verify in a small pool of helper processes instead: each call
waits at most R1KIT_MATH_TIMEOUT seconds (default 3); a helper that overruns is killed, the check
counts as False, and a fresh helper starts on the next call. This works from any thread, and the
helpers cache parsed golds. Pool size: R1KIT_MATH_WORKERS (default 1 on machines with < 4 CPUs,
else 2). Numbers are compared in-process and never start a helper. What is sent to a helper is
bounded (`MATH_TEXT_LIMIT` characters), so no input makes math-verify's own parser run long.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from r1kit._mathverify import _pool, close_pool, math_workers  # noqa: F401  (math_workers is re-exported)
from r1kit.errors import R1kitError

EXTRACT_MODES = ("auto", "answer_tag", "boxed", "after_think", "last_number")
CHECK_KINDS = ("auto", "numeric", "math", "choice")
MATH_TEXT_LIMIT = 2000  # characters of an answer (or of free text) that math-verify ever sees

# --------------------------------------------------------------------------- extraction

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_BARE_RE = re.compile(r"\\boxed\s+([^\s${}]+)")


def _matching_braces(text: str) -> dict[int, int]:
    """Index of each "{" -> index of its "}"; one pass, so many unclosed boxes stay linear."""
    pairs, stack = {}, []
    for i, ch in enumerate(text):
        if ch in "{}" and i > 0 and text[i - 1] == "\\":  # \{ \} are literal braces (sets)
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def boxes(text: str) -> tuple[tuple[int, str] | None, bool]:
    r"""(start, content) of the last complete \boxed{...} / \fbox{...} / "\boxed 5", and whether a
    box opened after it was never closed (the answer was cut off)."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return None, False
    best: tuple[int, str] | None = None
    last_open = -1  # start of the last box that never closes
    braced = list(_BOX_RE.finditer(text))
    if braced:
        pairs = _matching_braces(text)
        for m in reversed(braced):
            close = pairs.get(m.end() - 1)
            if close is not None:
                best = (m.start(), text[m.end() : close].strip())
                break
            last_open = max(last_open, m.start())
    for m in _BOX_BARE_RE.finditer(text):  # "\boxed 5"
        if best is None or m.start() > best[0]:
            best = (m.start(), m.group(1))
    if best is not None and not best[1]:
        best = None
    return best, last_open > (best[0] if best else -1)


def last_boxed(text: str) -> str | None:
    r"""Content of the last complete \boxed{...} / \fbox{...} (nested braces kept), else None."""
    best, _ = boxes(text)
    return best[1] if best else None


def answer_tag(text: str) -> tuple[str | None, bool]:
    """(content of the last complete <answer>...</answer>, whether an <answer> opened after it was
    never closed). Content is stripped; None when there is none or it is empty."""
    end = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, end) if end >= 0 else -1
    cut = text.rfind("<answer>") > end
    if start < 0:
        return None, cut
    return text[start + len("<answer>") : end].strip() or None, cut


def _answer_tag(text: str) -> str | None:
    content, _ = answer_tag(text)
    return (last_boxed(content) or content) if content else None


def _after_think(text: str) -> str | None:
    idx = text.rfind("</think>")
    if idx < 0:
        return None
    tail = text[idx + len("</think>") :].strip()
    return (last_boxed(tail) or tail) or None


def extract_answer(text: str, mode: str = "auto") -> str | None:
    r"""The final answer in a completion, or None (the judge reads answers more carefully; this
    is the plain extraction that scripts and `answer_key` use).

    Modes:
      answer_tag   content of the last complete <answer>...</answer> (a \boxed inside is unwrapped)
      boxed        content of the last complete \boxed{...} or \fbox{...}
      after_think  text after the last </think>, stripped; the \boxed inside it if there is one
      last_number  the last number written anywhere in the text, thousands commas removed
                   ("The answer is 1,234." -> "1234"; "-3", "2.5", "3/4" kept as written): for
                   base models prompted few-shot (stop them at the next "Question:")
      auto         after a </think>, look only at the text after it; then answer tag, else boxed,
                   else that whole text. An opened but never closed <think> gives None (the
                   reasoning was cut off). Text with no tags at all is returned whole.
    """
    if mode not in EXTRACT_MODES:
        raise R1kitError(f"unknown answer extraction mode {mode!r}; choose one of {', '.join(EXTRACT_MODES)}")
    if not isinstance(text, str):
        return None
    if mode == "answer_tag":
        return _answer_tag(text)
    if mode == "boxed":
        return last_boxed(text)
    if mode == "after_think":
        return _after_think(text)
    if mode == "last_number":
        return last_number_text(text)
    idx = text.rfind("</think>")
    if idx >= 0:
        region = text[idx + len("</think>") :]
    elif "<think>" in text:
        return None
    else:
        region = text
    return _answer_tag(region) or last_boxed(region) or region.strip() or None


# --------------------------------------------------------------------------- numbers

_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_PLAIN_NUM_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?(\d+))?$")
_RATIO_RE = re.compile(r"^([+-]?\d+)/(\d+)$")
_FRAC_RE = re.compile(r"^([+-]?)\\[dt]?frac\{([+-]?\d+)\}\{([+-]?\d+)\}$")
_MIXED_RE = re.compile(r"^([+-]?)(\d+)\s*\\[dt]?frac\{(\d+)\}\{(\d+)\}$")
# "\frac 34", "\frac9{19}", "\frac{270}7": LaTeX lets a one-character argument go without braces
_FRAC_SHORT_RE = (
    re.compile(r"\\([dt]?frac)\s*(\d)\s*(\d)"),
    re.compile(r"\\([dt]?frac)\s*(\d)\s*\{"),
    re.compile(r"\\([dt]?frac)\{([^{}]*)\}\s*(\d)"),
)
# A unit written as LaTeX text after a number, with an optional power: "\text{ cm}^2", "\mbox{ inches}"
_UNIT_RE = re.compile(
    r"\\(?:text|textrm|mbox|mathrm|textnormal)\s*\{\s*[A-Za-z][A-Za-z .]*\}(?:\s*\^\s*\{?\d\}?)?"
)
_TEXT_WRAP_RE = re.compile(
    r"\\(?:text|textrm|textbf|textnormal|mbox|mathrm|mathbf|boldsymbol)\s*\{([^{}]*)\}"
)
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_MAX_EXPONENT = 400  # Fraction("1e999999999") would build a billion-digit integer


def short_fracs(s: str) -> str:
    r"""Give one-character \frac arguments their braces: "\frac 34" -> "\frac{3}{4}"."""
    if "frac" not in s:
        return s
    a, b, c = _FRAC_SHORT_RE
    s = a.sub(r"\\\1{\2}{\3}", s)
    s = b.sub(r"\\\1{\2}{", s)
    return c.sub(r"\\\1{\2}{\3}", s)


def _strip_decor(s: str) -> str:
    s = s.strip().replace("\u2212", "-").replace("{,}", ",")
    s = re.sub(r",\\!\s*", ",", s)  # 10,\!080 and 11,\! 111: LaTeX thousands
    s = _UNIT_RE.sub("", s)
    s = _TEXT_WRAP_RE.sub(r"\1", s)
    s = _DEGREE_RE.sub("", s)
    for junk in ("\\$", "\\%", "$", "%", "\\!", "\\,", "\\;", "\\ ", "~", "**"):
        s = s.replace(junk, "")
    s = s.strip().rstrip(".").strip()
    while s.startswith("{") and s.endswith("}") and s.count("{") == 1:
        s = s[1:-1].strip()
    return short_fracs(s)


def parse_number(text: str) -> Fraction | None:
    r"""A plain number as an exact Fraction, or None.

    Accepts integers, decimals (".5"), scientific notation, "a/b", \frac{a}{b} (and \dfrac,
    \tfrac, "\frac 34"), mixed numbers (1\frac{4}{5}), thousands commas ("2,125", "10,\!080"),
    and ignores "$", "%", degrees, a trailing "." and a unit in \text{} ("5.4 \text{ cents}").
    """
    if not isinstance(text, str):
        text = str(text)
    if len(text) > 400:
        return None
    s = _strip_decor(text)
    if not s or len(s) > 200:
        return None
    try:
        if _THOUSANDS_RE.match(s):
            return Fraction(s.replace(",", ""))
        m = _PLAIN_NUM_RE.match(s)
        if m:
            if m.group(1) and int(m.group(1)) > _MAX_EXPONENT:
                return None
            return Fraction(s)
        m = _RATIO_RE.match(s)
        if m:
            return Fraction(int(m.group(1)), int(m.group(2)))
        m = _FRAC_RE.match(s)
        if m:
            value = Fraction(int(m.group(2)), int(m.group(3)))
            return -value if m.group(1) == "-" else value
        m = _MIXED_RE.match(s)
        if m and int(m.group(3)) < int(m.group(4)):
            value = int(m.group(2)) + Fraction(int(m.group(3)), int(m.group(4)))
            return -value if m.group(1) == "-" else value
    except (ValueError, ZeroDivisionError):
        return None
    return None


# A number in free text, LaTeX-aware: mixed numbers, \frac{a}{b}, thousands, decimals, a/b.
_NUMBER_TOKEN_RE = re.compile(
    r"(?:(?<![\w)}.])-)?\d+\s*\\[dt]?frac\{\d+\}\{\d+\}"
    r"|(?:(?<![\w)}.])-)?\\[dt]?frac\{-?\d+\}\{-?\d+\}"
    r"|(?:(?<![\w)}.])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?"
    r"|(?<![\w.])\.\d+"
)


_THIN_THOUSANDS_RE = re.compile(r"(?<=\d)[\u00a0\u202f\u2009](?=\d{3}(?!\d))")
_POWER_RE = re.compile(r"(?<=[A-Za-z})\]])\s*\^\s*(?:\{\s*-?\d+\s*\}|-?\d+)")


def number_tokens(text: str) -> list[tuple[str, Fraction]]:
    """The numbers written in free text, in order, as (token, value); linear in the text."""
    text = short_fracs(re.sub(r",\\!\s*", ",", (text or "").replace("\u2212", "-").replace("{,}", ",")))
    text = _POWER_RE.sub(" ", _UNIT_RE.sub(" ", text))  # "15 \text{ cm}^2", "(x+1)^2": no answers
    if not text.isascii():
        text = _THIN_THOUSANDS_RE.sub(",", text)  # "2\u202f125" (French typography) is 2,125
    out = []
    for m in _NUMBER_TOKEN_RE.finditer(text):
        token = m.group(0)
        if len(token) > 200:
            continue
        value = parse_number(token)
        if value is not None:
            out.append((token.replace(",", ""), value))
    return out


def last_number_text(text: str) -> str | None:
    """The last number written in free text, as written but without thousands commas, or None."""
    found = number_tokens(text)
    return found[-1][0] if found else None


def last_number(text: str) -> Fraction | None:
    """The last number written in free text ("... so she makes $18." -> 18), or None."""
    found = number_tokens(text)
    return found[-1][1] if found else None


# --------------------------------------------------------------------------- words

# Letters that are math, not words, when written without a backslash.
MATH_NAMES = frozenset(
    {
        "sin",
        "cos",
        "tan",
        "cot",
        "sec",
        "csc",
        "log",
        "ln",
        "exp",
        "lim",
        "max",
        "min",
        "gcd",
        "lcm",
        "mod",
        "deg",
        "det",
        "arcsin",
        "arccos",
        "arctan",
        "sinh",
        "cosh",
        "tanh",
        "sqrt",
        "pi",
        "inf",
        "infty",
        "ker",
        "dim",
    }
)
# Two-letter runs that are English or units; other two-letter runs (xy, ab, pq) are products.
_SHORT_WORDS = frozenset(
    {
        "is",
        "or",
        "no",
        "so",
        "it",
        "at",
        "in",
        "on",
        "of",
        "to",
        "be",
        "by",
        "an",
        "as",
        "if",
        "am",
        "we",
        "he",
        "me",
        "my",
        "do",
        "up",
        "us",
        "cm",
        "km",
        "mm",
        "ft",
        "kg",
        "mg",
        "ml",
        "hr",
        "lb",
        "oz",
        "yd",
        "mi",
    }
)
_LETTERS_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_OTHER_LETTERS_RE = re.compile(r"[^\W\d_A-Za-z\u0370-\u03ff]+")
_ENV_RE = re.compile(r"\\(?:begin|end|operatorname)\s*\{[A-Za-z*]*\}")  # \begin{pmatrix}: names, not words


_TRAILING_UNITS_RE = re.compile(r"(?:\s*(?:" + _UNIT_RE.pattern + r"|\\[,;!]|\\ ))+\s*$")


def strip_units(text: str) -> str:
    r"""The answer without a unit written as LaTeX text at its end: "288\pi \text{ cm}^3" -> "288\pi".
    Only at the end: "\text{Not} 0 \text{but} 5" keeps its words."""
    if len(text) > MATH_TEXT_LIMIT:
        return text
    stripped = _TRAILING_UNITS_RE.sub("", text)
    return stripped if stripped.strip() else text


def words_in(text: str) -> list[str]:
    r"""The English words of an answer: letter runs outside LaTeX commands that are not math
    names ("sin", "pi") nor two-letter products of variables ("xy"). Text inside \text{} counts."""
    text = _ENV_RE.sub(" ", _TEXT_WRAP_RE.sub(r" \1 ", text))
    out = []
    for m in _LETTERS_RE.finditer(text):
        w = m.group(0)
        low = w.lower()
        if low in MATH_NAMES or (len(w) == 2 and low not in _SHORT_WORDS):
            continue
        out.append(w)
    if not text.isascii():  # other scripts (答えは, উত্তর) are words too; Greek letters are math
        out.extend(m.group(0) for m in _OTHER_LETTERS_RE.finditer(text))
    return out


_JOIN_WORDS = frozenset({"or", "and"})


def math_part(text: str) -> str | None:
    r"""The math of an answer that also holds words, for math-verify: its last $...$ when it has
    one, else what is left between the words ("the point (3, \frac{\pi}{2})" -> "(3,
    \frac{\pi}{2})", "Not 0 but 5" -> "5"; pieces joined by "or"/"and" stay together as a list:
    "x = 3 or x = 5" -> "x = 3, x = 5"). None when no math is left."""
    if len(text) > MATH_TEXT_LIMIT:
        return None
    chunks = re.findall(r"(?<!\\)\$([^$]+)(?<!\\)\$", text)
    if len(chunks) == 1:
        return chunks[0].strip() or None
    if chunks:  # several pieces of math: drop the delimiters, "$3$ and $5$" is the list "3, 5"
        text = re.sub(r"(?<!\\)\$", " ", text)
    envs: list[str] = []  # \begin{pmatrix}: set aside, its name is no word

    def hide(m: re.Match) -> str:
        envs.append(m.group(0))
        return f"\x00{len(envs) - 1}\x01"

    text = _TEXT_WRAP_RE.sub(r" \1 ", _ENV_RE.sub(hide, text))
    pieces, joins, last = [], [], 0
    for m in _LETTERS_RE.finditer(text):
        low = m.group(0).lower()
        if low in MATH_NAMES or (len(low) == 2 and low not in _SHORT_WORDS):
            continue
        pieces.append(text[last : m.start()])
        joins.append(low in _JOIN_WORDS)
        last = m.end()
    pieces.append(text[last:])
    cleaned = [
        re.sub("\x00(\\d+)\x01", lambda m: envs[int(m.group(1))], p.strip().strip(",.:;").strip())
        for p in pieces
    ]
    for j, join in enumerate(joins):  # "X or east": a hedge between math and words answers nothing
        if join and not cleaned[j + 1] and j + 1 < len(joins) and not joins[j + 1]:
            return None
    out: list[str] = []
    for i, piece in enumerate(cleaned):
        if not piece:
            continue
        if out and i > 0 and joins[i - 1]:
            out[-1] = out[-1] + ", " + piece
        else:
            out.append(piece)
    return out[-1] if out else None


# --------------------------------------------------------------------------- choices and keys

_CHOICE_STRICT_RE = re.compile(r"^\(?([A-J])\)?[.:]?$")


def choice_letter(text: str | None) -> str | None:
    r"""The letter of an answer that is only a choice: "B", "(B)", "B.", "\text{(B)}", "**B**"."""
    if text is None:
        return None
    s = _TEXT_WRAP_RE.sub(r"\1", text).replace("$", "").replace("**", "").strip()
    m = _CHOICE_STRICT_RE.match(s)
    return m.group(1) if m else None


def normalize_latex(s: str) -> str:
    """A light textual normal form of a LaTeX answer (spaces, \\left, \\dfrac, \\text, degrees)."""
    s = s.strip().strip("$")
    s = re.sub(r"\\(?:text|textbf|mathrm|mathbf|mbox)\{([^{}]*)\}", r"\1", s)
    for junk in ("\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "\\:", "\\ "):
        s = s.replace(junk, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^\{?\\circ\}?", "", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    s = re.sub(r"\s+", "", s).rstrip(".")
    if re.match(r"^[A-Za-z]=", s) and s.count("=") == 1:  # "x=5" answers the same as "5"
        s = s[2:]
    return s


def answer_key(text_or_extracted: str) -> str:
    r"""A canonical key for majority voting: equal keys mean the same answer.

    Numbers (also \frac{a}{b}, 0.5, "2,125") become their exact value ("1/2", "2125"); other
    answers their normalized LaTeX. A completion is first passed through extract_answer("auto").
    Returns "" when there is no answer (voters skip it).
    """
    ext = extract_answer(text_or_extracted, "auto") if isinstance(text_or_extracted, str) else None
    if ext is None:
        return ""
    value = parse_number(ext)
    norm = normalize_latex(ext)
    if value is None:
        value = parse_number(norm)
    return str(value) if value is not None else norm


def same_answer(a: str, b: str) -> bool:
    """True when two answers (or completions) agree: equal keys, else math-verify (a as gold)."""
    ka, kb = answer_key(a), answer_key(b)
    if not ka or not kb:
        return False
    if ka == kb:
        return True
    if not math_gold_ok(extract_answer(a) or ka):
        return False
    return math_equal(extract_answer(a) or ka, extract_answer(b) or kb)


# --------------------------------------------------------------------------- checking (the judge decides)


def check_answer(completion: str, gold, kind: str = "auto", extract: str = "auto") -> bool | None:
    """Whether the completion's final answer equals the gold, as r1kit.judge decides it.

    kind: auto / math (the gold decides: numbers as numbers, LaTeX by math-verify, A-J as a
    choice), numeric (the gold must be a number), choice (a letter A-J). Returns None when the
    gold cannot be parsed, False when the prediction is missing or wrong.
    """
    if kind not in CHECK_KINDS:
        raise R1kitError(f"unknown answer kind {kind!r}; choose one of {', '.join(CHECK_KINDS)}")
    from r1kit.judge import judge

    return judge(completion, gold, kind, extract=extract).correct


# --------------------------------------------------------------------------- math-verify helpers
# The helper processes live in r1kit/_mathverify.py.


@functools.lru_cache(maxsize=65536)
def math_gold_ok(gold_text: str) -> bool:
    """Whether math-verify parses the gold to a mathematical object (not just a string)."""
    if len(gold_text) > MATH_TEXT_LIMIT:
        return False
    return _pool().call(("gold", gold_text, None)) is True


def math_equal(gold_text: str, pred_math: str) -> bool:
    """math-verify's verdict on an answer that is only math (no words), called gold first."""
    if len(pred_math) > MATH_TEXT_LIMIT:
        return False
    if len(pred_math) > 200:  # long answers are rare: not worth the cache's memory
        return _pool().call(("check", gold_text, pred_math)) is True
    return _math_equal(gold_text, pred_math)


@functools.lru_cache(maxsize=131072)
def _math_equal(gold_text: str, pred_math: str) -> bool:
    return _pool().call(("check", gold_text, pred_math)) is True


def math_extract_equal(gold_text: str, free_text: str) -> bool:
    """math-verify's verdict on free text, read with its own extraction (its default configs).
    What it extracts must hold no words (`words_in`): a sentence is never a product of symbols."""
    return _math_extract_equal(gold_text, free_text[-MATH_TEXT_LIMIT:])


@functools.lru_cache(maxsize=4096)
def _math_extract_equal(gold_text: str, free_text: str) -> bool:
    return _pool().call(("extract", gold_text, free_text)) is True


def shutdown_math_helpers() -> None:
    """Stop the math-verify helper processes (they restart on the next math check)."""
    close_pool()
    math_gold_ok.cache_clear()
    _math_equal.cache_clear()
    _math_extract_equal.cache_clear()
