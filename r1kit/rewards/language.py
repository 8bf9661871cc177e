"""Language consistency reward (DeepSeek-R1): Num(target-language words) / Num(words) in the CoT.

The chain of thought is the text inside <think>...</think> (the text before </think> when the
template pre-filled <think>, everything after an unclosed <think>, the whole completion when
there are no think tags). It works offline: Unicode script rules plus py3langid, which ships its
own model.

What counts as a word:
* Han, kana and Thai characters are one word each (those languages do not separate words).
* Other letters form words of one script (Latin, Cyrillic, Bengali, Telugu, Hangul, ...).
* Neutral and left out of the count: digits (any script's), punctuation, math symbols, LaTeX
  commands (\\frac), single Latin or Greek letters (math variables), and a CoT with no word at all
  gives None (no signal).

Which language a word is in:
* By script where the script names the language: Cyrillic -> ru (or the target if it is a
  Cyrillic language), Thai -> th, Bengali -> bn, Telugu -> te, Hangul -> ko, ... kana -> ja.
  Han -> ja inside a sentence that has kana, else zh (Japanese sentences almost always carry
  kana; Chinese never does).
* Latin-script words, only when the target itself is written in Latin script: py3langid,
  restricted to en/de/fr/es/sw plus the target, on windows of `window` consecutive Latin words
  (default 5); every word of a window gets the window's label. Single words are too short for
  character n-gram identification (names, "in", "per" are shared); windows of 5 are what made the
  MGSM check pass (see tests/test_language.py). When the target is not a Latin-script language
  every Latin word is simply off-target and py3langid is not needed.
"""

from __future__ import annotations

import functools
import re

from r1kit.errors import R1kitError
from r1kit.rewards._text import column, completion_text

LATIN_CANDIDATES = ("en", "de", "fr", "es", "sw")
_LATIN_LANGS = {
    "en",
    "de",
    "fr",
    "es",
    "sw",
    "it",
    "pt",
    "nl",
    "id",
    "ms",
    "tr",
    "vi",
    "pl",
    "cs",
    "ro",
    "hu",
    "sv",
    "da",
    "no",
    "nb",
    "fi",
    "ca",
    "gl",
    "eu",
    "af",
    "tl",
    "hr",
    "sk",
    "sl",
    "et",
    "lv",
    "lt",
    "sq",
    "az",
    "uz",
    "ha",
    "yo",
    "zu",
    "xh",
    "ga",
    "cy",
    "is",
    "mt",
    "eo",
    "la",
}
_SCRIPT_LANGS = {
    "han": "zh",
    "kana": "ja",
    "hangul": "ko",
    "thai": "th",
    "bengali": "bn",
    "telugu": "te",
    "cyrillic": "ru",
    "devanagari": "hi",
    "arabic": "ar",
    "hebrew": "he",
    "greek": "el",
    "tamil": "ta",
    "georgian": "ka",
    "armenian": "hy",
}
_LANG_SCRIPT = {
    "zh": "han",
    "ja": "kana",
    "ko": "hangul",
    "th": "thai",
    "bn": "bengali",
    "te": "telugu",
    "ru": "cyrillic",
    "uk": "cyrillic",
    "bg": "cyrillic",
    "mk": "cyrillic",
    "kk": "cyrillic",
    "mn": "cyrillic",
    "be": "cyrillic",
    "hi": "devanagari",
    "mr": "devanagari",
    "ne": "devanagari",
    "ar": "arabic",
    "fa": "arabic",
    "ur": "arabic",
    "he": "hebrew",
    "el": "greek",
    "ta": "tamil",
    "ka": "georgian",
    "hy": "armenian",
}
SUPPORTED_LANGS = tuple(sorted(_LATIN_LANGS | set(_LANG_SCRIPT)))

_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
_WORD_RE = re.compile(
    r"(?P<latex>\\[A-Za-z]+)"
    r"|(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f])"
    r"|(?P<kana>[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f])"
    r"|(?P<thai>[\u0e00-\u0e7f])"
    rf"|(?P<latin>[{_LATIN}][{_LATIN}\u0300-\u036f]*(?:['\u2019][{_LATIN}]+)*)"
    r"|(?P<cyrillic>[\u0400-\u052f]+)"
    r"|(?P<greek>[\u0370-\u03ff]+)"
    r"|(?P<bengali>[\u0980-\u09ff]+)"
    r"|(?P<telugu>[\u0c00-\u0c7f]+)"
    r"|(?P<devanagari>[\u0900-\u0963\u0966-\u097f]+)"
    r"|(?P<tamil>[\u0b80-\u0bff]+)"
    r"|(?P<arabic>[\u0600-\u06ff\u0750-\u077f]+)"
    r"|(?P<hebrew>[\u0590-\u05ff]+)"
    r"|(?P<hangul>[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]+)"
    r"|(?P<georgian>[\u10a0-\u10ff]+)"
    r"|(?P<armenian>[\u0530-\u058f]+)"
    r"|(?P<other>[^\W\d_]+)"
)
_SENTENCE_RE = re.compile(r"[^\u3002\uff01\uff1f\u0964\u0965!?.\n]+")  # 。！？ and Indic dandas end sentences


def normalize_lang(lang: str) -> str:
    """ "zh-CN" -> "zh", "pt_BR" -> "pt"; R1kitError for a language r1kit cannot score."""
    code = re.split(r"[-_]", str(lang).strip().lower())[0]
    if code not in _LATIN_LANGS and code not in _LANG_SCRIPT:
        raise R1kitError(
            f"language {lang!r} is not supported by the language reward; use one of "
            f"{', '.join(SUPPORTED_LANGS)}"
        )
    return code


def cot_text(text: str) -> str:
    """The chain of thought of a completion (see the module docstring)."""
    start, end = text.find("<think>"), text.rfind("</think>")
    if start >= 0 and end > start:
        return text[start + len("<think>") : end]
    if end >= 0:
        return text[:end]
    if start >= 0:
        return text[start + len("<think>") :]
    return text


def _words(text: str) -> list[tuple[str, str]]:
    """(script, word) for every counted word, in order; neutral tokens dropped."""
    words = []
    for sentence in _SENTENCE_RE.finditer(text):
        found = [(m.lastgroup, m.group()) for m in _WORD_RE.finditer(sentence.group())]
        has_kana = any(script == "kana" for script, _ in found)
        for script, word in found:
            if script == "latex" or word.isdecimal():
                continue
            if script in ("latin", "greek") and len(word) == 1:
                continue
            if script == "han" and has_kana:
                script = "kana"  # Han inside a Japanese sentence
            words.append((script, word))
    return words


@functools.lru_cache(maxsize=64)
def _identifier(candidates: tuple[str, ...]):
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as e:
        raise R1kitError(
            f"the language reward needs py3langid for Latin-script targets ({e}); "
            f"install it: pip install py3langid"
        ) from e
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    identifier.set_languages([c for c in candidates if c in identifier.labels])
    return identifier


def _latin_labels(words: list[str], target: str, window: int) -> list[str]:
    candidates = tuple(sorted(set(LATIN_CANDIDATES) | {target}))
    identifier = _identifier(candidates)
    labels = []
    for i in range(0, len(words), window):
        chunk = words[i : i + window]
        if len(chunk) < window and labels:  # a short tail borrows words so it is not classified alone
            chunk = words[max(0, len(words) - window) :]
            chunk_len = len(words) - i
        else:
            chunk_len = len(chunk)
        label = identifier.classify(" ".join(chunk))[0]
        labels.extend([label] * chunk_len)
    return labels


def language_share(text: str, lang: str, window: int = 5) -> float | None:
    """Share of the words of `text` that are in language `lang` (0..1), None if it has no words."""
    target = normalize_lang(lang)
    words = _words(text)
    if not words:
        return None
    target_script = _LANG_SCRIPT.get(target, "latin")
    hits = 0
    latin_run: list[str] = []

    def flush() -> int:
        if not latin_run:
            return 0
        n = sum(label == target for label in _latin_labels(latin_run, target, window))
        latin_run.clear()
        return n

    for script, word in words:
        if script == "latin" and target_script == "latin":
            latin_run.append(word)
            continue
        hits += flush()
        if script == "kana" or script == "han":
            hits += _SCRIPT_LANGS[script] == target
        elif script == target_script and script != "latin":
            hits += 1  # e.g. Cyrillic words for a ru or uk target
    hits += flush()
    return hits / len(words)


def make_language_reward(lang: str | None = None, window: int = 5):
    """Language-consistency reward; target from `lang` here, else from the `lang` column."""
    fixed = normalize_lang(lang) if lang else None
    if window < 1:
        raise R1kitError(f"language window must be >= 1 word, got {window}")

    def language(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float | None]:
        n = len(completions)
        targets = [fixed] * n if fixed else column(kwargs, "lang", n, required=True)
        return [
            None if t is None else language_share(cot_text(completion_text(c)), t, window)
            for c, t in zip(completions, targets)
        ]

    language.__name__ = "language"
    return language


language_reward = make_language_reward()
