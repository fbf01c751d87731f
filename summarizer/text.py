"""Language-agnostic text helpers: sentence spans, word counts and a small language guesser."""
from __future__ import annotations

import re
import unicodedata

# A sentence may end at . ! ? (or their CJK forms) followed by space/quote, or at a line break;
# `_ends_sentence` then rejects the periods of initials, abbreviations and German ordinals.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"'”’»)\]]*\s+|(?<=[。！？])|\n+")
_ABBREVIATIONS = frozenset("""mr mrs ms dr prof st jr sr vs etc inc ltd co corp no nr vol fig approx ca e.g i.e
u.s u.k u.n a.m p.m dept gen col lt sgt rev hon jan feb mar apr jun jul aug sep sept oct nov dec mt ft
z.b d.h u.a bzw usw vgl bspw ggf evtl inkl sog zzgl abs str hr fr dipl ing mrd mio tsd""".split())
GERMAN_MONTHS = tuple("""januar februar märz april mai juni juli august september oktober november
dezember""".split())
_LAST_TOKEN = re.compile(r"(\S+)\.$")
_INITIALS = re.compile(r"(?:[A-Z]\.)*[A-Z]")
_SECTION_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_LIST_ITEM = re.compile(r"(?:[-*•+]|\d+[.)]|[A-Z][\w .'-]{0,30}:)\s")
_CLOSING_MARKS = "*_\"'”’»)]"  # emphasis and quotes that may follow a sentence's final stop
_ONE_LINE_BLOCK = re.compile(r"([^\n]*)(?:\n[ \t]*\n|\s*$)")  # a line, then a blank line or the end
CJK_CHARACTERS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_CJK = re.compile(f"[{CJK_CHARACTERS}]")
_WORD = re.compile(r"\w+", re.UNICODE)
# A word, or one CJK character: Chinese and Japanese write words without spaces, so `\w+` would take a
# whole clause for one word.
TOKEN = re.compile(f"[{CJK_CHARACTERS}]|[^\\W{CJK_CHARACTERS}]+")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")  # a blank line

# The commonest words of each language the guesser tells apart, with the words a question opens with:
# a short question may hold none of the others ("Welche Ordnungszahl hat Helium?").
_LANGUAGE_MARKERS = {
    "en": {"the", "and", "of", "to", "is", "that", "in", "it", "for", "was", "with", "on", "as", "are", "this",
           "who", "what", "when", "where", "which", "why", "how", "did", "does", "do", "has", "have", "were"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "ein", "eine", "zu", "den", "mit", "sich", "auch", "von", "dass",
           "wer", "wem", "wen", "wessen", "wie", "wann", "wo", "warum", "welche", "welcher", "welches", "welchem",
           "welchen", "hat", "hatte", "wurde", "wurden", "gibt", "es", "ich", "sie", "im", "für", "über", "sind",
           "kann", "muss", "soll", "war"},
    "fr": {"le", "la", "les", "et", "est", "une", "des", "du", "que", "pour", "dans", "pas", "qui", "sur", "au"},
    "es": {"el", "la", "los", "las", "y", "es", "una", "del", "que", "para", "por", "con", "se", "no", "en"},
}
# Function words (English and German): what a question, an answer sentence or a topic label
# shares with another text only by grammar, not by content.
STOPWORDS = frozenset("""a an the of to in on for and or is are was were be been being who whom whose what
when where which why how does do did has have had it its this that these those with by from as at about into
than then there their they them he she his her i you we our your my me not no can could would should will
shall may might must so if but also just very much many more most some any all one ever else such
der die das des dem den ein eine einer eines einem einen und oder ist sind war waren wird werden wurde
wurden hat haben hatte wer wen wem wessen was wann wo woher wohin warum wieso weshalb wie welche welcher
welches welchen welchem mit von zu zum zur im in am an auf aus bei für nach über unter um nicht kein
keine auch sich es er sie wir ihr man noch nur schon sehr viel viele mehr""".split())

LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "zh": "Chinese"}


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character spans of the sentences in text[start:end], stripped of surrounding whitespace."""
    end = len(text) if end is None else end
    spans, cursor = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        if not _ends_sentence(text, cursor, match.start(), match.end()):
            continue
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


def _ends_sentence(text: str, cursor: int, stop: int, after: int) -> bool:
    """False for a period that belongs to a word: an initial ("David O. Selznick"), a known
    abbreviation ("Dr.", "z. B."), a German ordinal date ("19. November"), or any period
    followed by a lower-case word ("etc. and"); and for the line break of hard-wrapped text."""
    breaks = text.count("\n", stop, after)
    if breaks > 1:
        return not _introduces_line(text, cursor, stop, after)
    token = _LAST_TOKEN.search(text, max(cursor, stop - 40), stop)  # the word the period ends, if one does
    if breaks:
        return not (_wrapped(text, stop, after) or _are_initials(token))
    if text[stop - 1:stop] != ".":
        return True
    following = text[after:after + 30].split(maxsplit=1)
    next_word = following[0].strip("\"'“”‘’»«()[]").lower() if following else ""
    if not token or not next_word:
        return True
    word = token.group(1).lstrip("(\"'“‘").lower()
    if _are_initials(token) or (len(word) == 1 and word.isalpha() and re.fullmatch(r"\w\.", following[0])):
        return False  # an initial ("David O. Selznick", "J.H.M. Dassen"), or the first half of "z. B." / "d. h."
    if word in _ABBREVIATIONS or (word.isdigit() and len(word) <= 2 and next_word in GERMAN_MONTHS):
        return False
    if _SECTION_NUMBER.fullmatch(word) and not text[text.rfind("\n", 0, stop) + 1:token.start()].strip():
        return False  # "6.1. How many distributions are there?" is one heading
    first = following[0].lstrip("\"'“‘»«([")[:1]
    return not first.islower()


def _are_initials(token: re.Match | None) -> bool:
    """Whether the word a period ends (`_LAST_TOKEN`) is an initial or initials run together ("J.H.M.
    Dassen"), also where a hard-wrapped line breaks after them."""
    return bool(token) and bool(_INITIALS.fullmatch(token.group(1).lstrip("(\"'“‘")))


def _wrapped(text: str, stop: int, after: int) -> bool:
    """A single line break inside a paragraph of hard-wrapped text (FAQs, man pages, mail): the
    line before is long and has no closing punctuation, and the next is no list item or label."""
    line = text[text.rfind("\n", 0, stop) + 1:stop].strip()
    following = text[after:after + 40]
    return (len(line) >= 40 and line[-1] not in ".!?:;。！？" and not _LIST_ITEM.match(following))


def _introduces_line(text: str, cursor: int, stop: int, after: int) -> bool:
    """A paragraph that ends by introducing a one-line block, as manuals and FAQs set commands:
    "To list the packages, execute the command" + "dpkg --list" is one sentence, the command its end.
    The sentence before has no closing punctuation (or a colon); the block is one short line without any."""
    line = text[cursor:stop].strip()
    block = _ONE_LINE_BLOCK.match(text, after)
    command = block.group(1).strip().rstrip(_CLOSING_MARKS) if block else ""
    return (len(line.split()) >= 3 and not line.startswith("#") and (line[-1] == ":" or line[-1].isalnum())
            and 0 < len(command) <= 60 and command[-1] not in ".!?。！？" and not _LIST_ITEM.match(command))


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
    scores = {lang: sum(t in stop for t in tokens) for lang, stop in _LANGUAGE_MARKERS.items()}
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


# Speech fillers and false starts: dropped from answer lines and key points, never from quotes.
# Words that open a spoken sentence without adding to it; those that also open written phrases ("So far",
# "Right now", "Like most ...", "Also available") count only before a comma or where no such phrase follows.
_LEADING_FILLER = re.compile(
    r"^(?:(?:yeah|yes|um+|uh+|oh|okay|ok|and|anyway|i mean|you know|basically|alright|all right|ja|na ja|genau"
    r"|so(?!\s+(?:far|much|many|few|little|long|that|called)\b)|well(?![- ]known)"
    r"|right(?!\s+(?:now|after|before|away|here|there)\b))\b[,.]?\s+|(?:like|look|also),\s+)+", re.I)
_INLINE_FILLER = re.compile(r"(,?)\s+\b(?:you know|i mean|um+|uh+|like|sort of|kind of)\b,(?=\s)", re.I)
_STUTTER = re.compile(r"\b((?:\w+['’]?\w*\s*){1,3}?)[,\s]+\1\b", re.I)


def trim_fillers(sentence: str) -> str:
    """A spoken sentence as a reader wants it: leading "So, yeah," and inline ", you know," gone,
    repeated false starts ("it's, it's") collapsed, first letter capitalised."""
    text = _INLINE_FILLER.sub(r"\1", sentence.strip())
    text = _STUTTER.sub(r"\1", text)
    trimmed = _LEADING_FILLER.sub("", text)
    if len(words(trimmed)) < 3:  # the sentence was all filler: keep it as it was
        trimmed = text
    return trimmed[:1].upper() + trimmed[1:]
