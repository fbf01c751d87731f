"""Language-agnostic text helpers: sentence spans, word counts and a small language guesser."""
from __future__ import annotations

import re
import unicodedata

# A sentence ends at . ! ? (or their CJK forms) followed by space/quote, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"'”’»)\]]*\s+|(?<=[。！？])|\n+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"\w+", re.UNICODE)

_STOPWORDS = {
    "en": {"the", "and", "of", "to", "is", "that", "in", "it", "for", "was", "with", "on", "as", "are", "this"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "ein", "eine", "zu", "den", "mit", "sich", "auch", "von", "dass"},
    "fr": {"le", "la", "les", "et", "est", "une", "des", "du", "que", "pour", "dans", "pas", "qui", "sur", "au"},
    "es": {"el", "la", "los", "las", "y", "es", "una", "del", "que", "para", "por", "con", "se", "no", "en"},
}
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "zh": "Chinese"}


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character spans of the sentences in text[start:end], stripped of surrounding whitespace."""
    end = len(text) if end is None else end
    spans, cursor = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        spans.append((cursor, match.start() if match.group() else match.end()))
        cursor = match.end()
    spans.append((cursor, end))
    stripped = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            stripped.append((a, b))
    return stripped


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def word_count(text: str) -> int:
    """Words, counting two CJK characters as one word so Chinese text sizes like English."""
    cjk = len(_CJK.findall(text))
    return len(_WORD.findall(_CJK.sub(" ", text))) + cjk // 2


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def guess_language(text: str) -> str:
    """ISO 639-1 code by stopword counts (and CJK share): good enough to label documents."""
    sample = text[:20000]
    letters = sum(ch.isalpha() for ch in sample) or 1
    if len(_CJK.findall(sample)) / letters > 0.3:
        return "zh"
    tokens = [w.lower() for w in _WORD.findall(sample)]
    scores = {lang: sum(t in stop for t in tokens) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=scores.get)
    return best if scores[best] else "en"


_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_FOOTNOTE = re.compile(r"\[\d+\]\([^)]*\)|\[\d+\]")
_MD_LINE_START = re.compile(r"^\s*(?:[-*+]|\d+\.|#{1,6}|>)\s+", re.M)
_MD_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)[_*](?=\S)|(?<=\S)[_*](?!\w)")


def readable(text: str) -> str:
    """Text as a person reads it: markdown links reduced to their text, footnotes, bullets,
    heading marks and emphasis dropped, whitespace collapsed."""
    text = _MD_LINK.sub(r"\1", _FOOTNOTE.sub("", text))
    text = _MD_EMPHASIS.sub("", _MD_LINE_START.sub("", text))
    return " ".join(text.split())


def clean_control(text: str) -> str:
    """Drop control and format characters except newlines and tabs."""
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
