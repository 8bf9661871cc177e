"""Answer extraction and checking, shared by the rewards, `evaluate` and `rejection-sample`.

R1 checks math by a rule: take the final answer from a fixed place (the <answer> tag of the
R1-Zero template, or the \\boxed{} the eval prompt asks for) and compare it with the gold.

* `extract_answer` finds the final answer in a completion (modes below).
* `check_answer` compares it with the gold: exactly as numbers (GSM8K, MGSM), by math-verify
  (MATH), or as a choice letter. It returns None when the *gold* cannot be parsed, so that the
  caller drops the row instead of handing out a free reward, and False when the prediction is
  missing or wrong.
* `answer_key` groups equivalent answers for majority voting (cons@k).

math-verify guards its own time with signal.alarm, which only works in the main thread and cannot
stop a long C-level computation (`9^{9^{9^9}}` hangs `verify`, 10,000 "(" hang `parse`). r1kit
turns that guard off and runs math-verify in a small pool of helper processes instead: each call
waits at most R1KIT_MATH_TIMEOUT seconds (default 3); a helper that overruns is killed, the check
counts as False, and a fresh helper starts on the next call. This works from any thread, and the
helpers cache parsed golds. Pool size: R1KIT_MATH_WORKERS (default 1 on machines with < 4 CPUs,
else 2). Numeric golds are compared in-process and never start a helper unless the prediction is
LaTeX that needs math-verify. The helper processes live in r1kit/_mathverify.py.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from r1kit._mathverify import _pool, close_pool, math_workers  # noqa: F401  (math_workers is re-exported)
from r1kit.errors import R1kitError

EXTRACT_MODES = ("auto", "answer_tag", "boxed", "after_think", "last_number")
CHECK_KINDS = ("auto", "numeric", "math", "choice")
CHOICE_LETTERS = "ABCDEFGHIJ"

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


def last_boxed(text: str) -> str | None:
    r"""Content of the last complete \boxed{...} / \fbox{...} (nested braces kept), else None."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    best: tuple[int, str] | None = None
    braced = list(_BOX_RE.finditer(text))
    if braced:
        pairs = _matching_braces(text)
        for m in reversed(braced):
            close = pairs.get(m.end() - 1)
            if close is not None:
                best = (m.start(), text[m.end():close].strip())
                break
    for m in _BOX_BARE_RE.finditer(text):  # "\boxed 5"
        if best is None or m.start() > best[0]:
            best = (m.start(), m.group(1))
    return best[1] if best and best[1] else None


def _answer_tag(text: str) -> str | None:
    end = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, end) if end >= 0 else -1
    if start < 0:
        return None
    content = text[start + len("<answer>"):end].strip()
    return (last_boxed(content) or content) or None


def _after_think(text: str) -> str | None:
    idx = text.rfind("</think>")
    if idx < 0:
        return None
    tail = text[idx + len("</think>"):].strip()
    return (last_boxed(tail) or tail) or None


def extract_answer(text: str, mode: str = "auto") -> str | None:
    r"""The final answer in a completion, or None.

    Modes:
      answer_tag   content of the last complete <answer>...</answer> (a \boxed inside is unwrapped)
      boxed        content of the last complete \boxed{...} or \fbox{...}
      after_think  text after the last </think>, stripped; the \boxed inside it if there is one
      last_number  the last number written anywhere in the text, thousands commas removed
                   ("The answer is 1,234." -> "1234"; "-3", "2.5", "3/4" kept as written): for
                   base models prompted few-shot (stop them at the next "Question:")
      auto         after a </think>, look only at the text after it; then answer tag, else boxed,
                   else that whole text. An opened but never closed <think> gives None (the
                   reasoning was cut off). Text with no tags at all is returned whole, and
                   check_answer reads the number or expression in it.
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
        region = text[idx + len("</think>"):]
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
_TEXT_NUM_RE = re.compile(r"(?:(?<![\w)])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|(?<![\w.])\.\d+")
_MATHY_RE = re.compile(r"[+*/^=<>\\{}_|]")
_MAX_EXPONENT = 400  # Fraction("1e999999999") would build a billion-digit integer


def _strip_decor(s: str) -> str:
    s = s.strip().replace("\u2212", "-").replace("{,}", ",")
    for junk in ("\\$", "\\%", "$", "%", "\\!", "\\,", "\\ "):
        s = s.replace(junk, "")
    s = s.strip().rstrip(".").strip()
    while s.startswith("{") and s.endswith("}") and s.count("{") == 1:
        s = s[1:-1].strip()
    return s


def parse_number(text: str) -> Fraction | None:
    r"""A plain number as an exact Fraction, or None.

    Accepts integers, decimals (".5"), scientific notation, "a/b", \frac{a}{b} (and \dfrac,
    \tfrac), thousands commas ("2,125"), and ignores "$", "%" and a trailing ".".
    """
    if not isinstance(text, str):
        text = str(text)
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
    except (ValueError, ZeroDivisionError):
        return None
    return None


def sole_number(text: str) -> Fraction | None:
    """The number of a text that holds exactly one and no math: "18 dollars" -> 18, while
    "1+2i", "2x", "x = 5" give None (those are left to math-verify)."""
    text = re.sub(r"\\text\{([^{}]*)\}", r" \1 ", text or "").replace("\\$", "$").replace("\\%", "%")
    found = list(_TEXT_NUM_RE.finditer(text))
    if len(found) != 1:
        return None
    m = found[0]
    if _MATHY_RE.search(text[:m.start()] + " " + text[m.end():]):
        return None
    if re.match(r"[A-Za-z_^{(]", text[m.end():m.end() + 1]) or re.search(r"[A-Za-z_^]$", text[:m.start()]):
        return None  # "2x", "x2": a coefficient or an index, not the answer
    return parse_number(m.group(0))


def last_number_text(text: str) -> str | None:
    """The last number written in free text, as written but without thousands commas, or None."""
    for m in reversed(list(_TEXT_NUM_RE.finditer(text or ""))):
        if parse_number(m.group(0)) is not None:
            return m.group(0).replace(",", "")
    return None


def last_number(text: str) -> Fraction | None:
    """The last number written in free text ("... so she makes $18." -> 18), or None."""
    found = last_number_text(text)
    return None if found is None else parse_number(found)


# --------------------------------------------------------------------------- choices and keys

_CHOICE_STRICT_RE = re.compile(r"^\(?([A-J])\)?[.:]?$")
_CHOICE_PAREN_RE = re.compile(r"\(([A-J])\)")
_CHOICE_WORD_RE = re.compile(r"(?<![A-Za-z])([A-J])(?![A-Za-z])")


def _choice(text: str | None, strict: bool) -> str | None:
    if text is None:
        return None
    s = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", text).replace("$", "").strip()
    m = _CHOICE_STRICT_RE.match(s)
    if m or strict:
        return m.group(1) if m else None
    found = _CHOICE_PAREN_RE.findall(s) or _CHOICE_WORD_RE.findall(s)
    return found[-1] if found else None


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
    Returns "" when there is no answer (voters should skip it).
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
    return ka == kb or bool(_math_check(extract_answer(a) or ka, extract_answer(b)))


# --------------------------------------------------------------------------- checking

def _clean_gold(gold) -> str | None:
    if gold is None:
        return None
    s = str(gold).strip()
    s = last_boxed(s) or s
    s = s.strip().strip("$").strip()
    return s or None


def check_answer(completion: str, gold, kind: str = "auto", extract: str = "auto") -> bool | None:
    """Whether the completion's final answer equals the gold.

    kind: numeric   exactly as numbers; a prediction that is not a plain number is read by its
                    last number (the usual GSM8K convention: "... = 18 eggs" -> 18);
          math      math-verify, called as verify(gold, prediction): gold first;
          choice    a letter A-J ("B", "(B)", "\\text{(B)}"; in free text the last "(B)" or lone B);
          auto      numeric when the gold is a number, else math. With a numeric gold, a prediction
                    that is not a plain number counts by its only number when it holds one and no
                    math ("18 dollars"), else math-verify decides ("\\frac12", "x = 5", "1+2i").
    Returns None when the gold cannot be parsed, False when the prediction is missing or wrong.
    """
    if kind not in CHECK_KINDS:
        raise R1kitError(f"unknown answer kind {kind!r}; choose one of {', '.join(CHECK_KINDS)}")
    pred = extract_answer(completion, extract)  # validates the mode too
    gold_text = _clean_gold(gold)
    if gold_text is None:
        return None
    if kind == "choice":
        letter = _choice(gold_text, strict=True)
        return None if letter is None else _choice(pred, strict=False) == letter
    if kind in ("numeric", "auto"):
        value = parse_number(gold_text)
        if value is None and kind == "numeric":
            return None
        if value is not None:
            if pred is None:
                return False
            guess = parse_number(pred)
            if guess is None:
                guess = last_number(pred) if kind == "numeric" else sole_number(pred)
            if guess is not None or kind == "numeric":
                return guess == value
            return bool(_math_check(gold_text, pred))
    return _math_check(gold_text, pred)


def _math_check(gold_text: str, pred: str | None) -> bool | None:
    if not _math_gold_ok(gold_text):
        return None
    if pred is None:
        return False
    if normalize_latex(pred) == normalize_latex(gold_text):
        return True
    return _math_verdict(gold_text, pred)


@functools.lru_cache(maxsize=65536)
def _math_gold_ok(gold_text: str) -> bool:
    return _pool().call(("gold", gold_text, None)) is True


@functools.lru_cache(maxsize=262144)
def _math_verdict(gold_text: str, pred: str) -> bool | None:
    result = _pool().call(("check", gold_text, pred))
    return result if result is None else bool(result)


# --------------------------------------------------------------------------- math-verify helpers
# The helper processes live in r1kit/_mathverify.py.


def shutdown_math_helpers() -> None:
    """Stop the math-verify helper processes (they restart on the next math check)."""
    close_pool()
    _math_gold_ok.cache_clear()
    _math_verdict.cache_clear()
