"""Structure-aware extractive summaries: a one-sentence overview and key points, one per part.

Map: the whole document is read and cut into parts where it changes subject: at headings, at
segment cues and speaker turns in transcripts, and where the sentence embeddings change most
(change points between the sentences before and after a paragraph break). Each part offers its
best sentence: self-contained (no leading pronoun whose antecedent lies in an earlier sentence),
well formed, naming its subject, close to the part's centroid and to the title.
Select: topics the title names get a key point when the text covers them; then every third of
the document gets one; then the largest remaining parts, up to MAX_POINTS, in document order.
The overview is the sentence closest to both the title and the whole document, leads preferred.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from summarizer.encoder import Encoder
from summarizer.text import PARAGRAPH_BREAK, STOPWORDS, readable, sentence_spans, trim_fillers, word_count, words

MAX_POINTS = 5
MAX_PARTS = 8
WORDS_PER_PART = 350
CHANGE_WINDOW = 8  # sentences each side of a paragraph break compared for a topic shift
REDUNDANT = 0.85  # key points closer than this (cosine) say the same thing
_URLISH = re.compile(r"https?://|www\.|\]\(|\[\d+\]")
_MD_HEADING = re.compile(r"^\s*(#{1,6})\s+\S")
_SPEAKER = re.compile(r"^([A-Z][\w.'’-]*(?: [A-Z][\w.'’-]*){0,3}):\s+(?=\S)")
_SEGMENT_CUE = re.compile(
    r"^(?:\W*(?:and|so|okay|ok|alright|all right|now|next)\W+)*(?:moving on|on to|onto|next (?:up|story|one)|"
    r"first up|our (?:next|first|last)|let's (?:move|talk|turn)|turning to|kommen wir|weiter (?:geht|mit)|"
    r"als nächstes|zum (?:nächsten|schluss))\b", re.I)
_LEADING_CONNECTIVE = re.compile(r"^(?:(?:and|but|or|so|because|then|und|aber|oder|denn|doch)\b[,]?\s+)+", re.I)
UNRESOLVED_STARTS = frozenset("""they them their theirs he him his she her hers it its this that these those
such er sie es ihm ihn ihr ihre ihren ihrem sein seine seinen seinem dies diese dieser dieses diesen
dabei damit dazu daher deshalb dort darin davon""".split())
_DEMONSTRATIVE = {"this": "The", "that": "The", "these": "The", "those": "The",
                  "dieser": "Der", "diese": "Die", "dieses": "Das", "diesen": "Den", "diesem": "Dem"}
_NOT_A_NOUN = frozenset("""is was are were has have had will would can could should may might must does did do
means seems makes gives also just really one ones kind sort way said time all ist war sind waren hat haben
wird werden kann könnte muss soll""".split())
_POSSESSIVE = frozenset(("their", "its", "his"))
_NAME = re.compile(r"(?<=[a-z,;] )[A-Z][\w&-]*[a-z][\w&-]*(?: [A-Z][\w&-]+)*")  # capitalised, not sentence-initial
_BACK_REFERENCES = frozenset("they them their he him his she her these those".split())
_PERSONAL = frozenset("i we you ich wir du".split())  # chat, not statement (words() splits "I'm" to "i", "m")
_TOPIC_SPLIT = re.compile(r"\s+[-–—|]\s+|[,;:!?()\[\]]|\s+(?:and|und)\s+|#\d+")
_TOPIC_STOPWORDS = STOPWORDS | frozenset("new over s via vs".split())  # and words of headlines


@dataclass(frozen=True)
class KeyPoint:
    text: str  # the sentence as shown: markdown, fillers and false starts trimmed
    source: str  # the sentence exactly as the document has it (empty for generated points)


@dataclass
class Part:
    """Consecutive paragraphs about one subject, as a range of the document's candidate sentences."""
    start: int
    end: int
    heading: str = ""  # the heading it opens with, if any


@dataclass
class Reading:
    """What the map step learned about a document: candidate sentences, their vectors and the parts."""
    candidates: list[KeyPoint]
    thirds: list[int]  # which third of the document each candidate lies in
    vectors: np.ndarray
    parts: list[Part]
    part_texts: list[str]
    title_topics: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Extract:
    overview: KeyPoint | None
    points: list[KeyPoint]
    parts: list[str]  # the text of the parts the points come from, in document order


# -- sentences ------------------------------------------------------------------------------------
def first_word(sentence: str) -> str:
    """The first word after leading connectives ("And they're ..." starts with "they")."""
    found = words(_LEADING_CONNECTIVE.sub("", sentence).lower())
    return found[0] if found else ""


def starts_unresolved(sentence: str) -> bool:
    """Whether the sentence opens with a pronoun whose antecedent must lie in an earlier sentence."""
    return first_word(sentence) in UNRESOLVED_STARTS


def self_contained(sentence: str, previous: str = "") -> str | None:
    """The sentence made to stand on its own, or None: a leading demonstrative before a noun becomes
    the article ("This paper is called X" -> "The paper is called X"); a leading possessive takes the
    one name the previous sentence gives ("... moving to Amazon." "Their first act is Nova Act" ->
    "Amazon's first act is Nova Act"); any other leading pronoun ("They", "It", "This is") leaves it
    unresolved."""
    head = sentence.split(maxsplit=2)
    names = set(_NAME.findall(previous))
    if len(head) == 3 and head[0].lower() in _POSSESSIVE and len(names) == 1 and head[1].isalpha():
        sentence = f"{names.pop()}'s {head[1]} {head[2]}"
    elif len(head) == 3 and head[0].lower() in _DEMONSTRATIVE and head[1].isalpha() and head[1] not in _NOT_A_NOUN \
            and head[1].istitle() == head[0].lower().startswith("dies"):  # German nouns are capitalised
        sentence = f"{_DEMONSTRATIVE[head[0].lower()]} {head[1]} {head[2]}"
    return None if starts_unresolved(sentence) else sentence


def is_summary_sentence(sentence: str) -> bool:
    """A readable prose sentence: not a heading, link line, lyric fragment, run-on, question, speech
    broken off ("..."), nor one opening with an unresolved pronoun."""
    n = word_count(sentence)
    letters = sum(ch.isalpha() for ch in sentence)
    end = sentence.rstrip()
    return (8 <= n <= 50 and letters / max(len(sentence), 1) > 0.6 and not _URLISH.search(sentence)
            and end[-1:] in ".!。！\"'”’" and not end.endswith(("...", "…")) and not starts_unresolved(sentence))


# -- title topics ---------------------------------------------------------------------------------
def title_topics(title: str) -> list[str]:
    """The topics a title names: its comma/dash/colon-separated pieces that carry a content word
    ("#206 - Llama 4, Nova Act, xAI buys X" -> "Llama 4", "Nova Act", "xAI buys X")."""
    pieces = [" ".join(p.split()) for p in _TOPIC_SPLIT.split(title or "")]
    return [p for p in dict.fromkeys(pieces) if _topic_terms(p)]


def _topic_terms(topic: str) -> list[str]:
    return [w for w in words(topic.lower()) if len(w) > 1 and not w.isdigit() and w not in _TOPIC_STOPWORDS]


def mentions(topic: str, text: str) -> bool:
    """Whether `text` names the topic: its first and at least half of its names (capitalised content
    words, else all content words), matched across spacing ("Paper Bench" for PaperBench) and
    one-letter slips of transcription ("Lama" for Llama)."""
    terms = _topic_terms(topic)
    named = [t for t in terms if any(w.lower() == t and not w.islower() for w in words(topic))]
    terms = named or terms  # "xAI buys X": xAI is the subject, "buys" may be said otherwise
    if not terms:
        return False
    tokens = set(words(text.lower()))
    squashed = "".join(words(text.lower()))
    found = [t in tokens or (len(t) >= 6 and t in squashed) or (len(t) >= 4 and any(_one_edit(t, w) for w in tokens))
             for t in terms]
    return found[0] and sum(found) * 2 >= len(terms)


def _one_edit(a: str, b: str) -> bool:
    """a and b differ by exactly one inserted or deleted letter (Lama/Llama); substitutions are
    other words (Lama/Lame), so they do not count."""
    if abs(len(a) - len(b)) != 1:
        return False
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
    return short[i:] == long_[i + 1:]


# -- map: paragraphs, sentences, parts ----------------------------------------------------------
@dataclass
class _Paragraph:
    text: str
    heading: str = ""  # the heading that opens this paragraph, if it is one
    level: int = 0  # markdown heading depth; 7 for a plain short line
    turn: bool = False  # starts a speaker turn
    cue: bool = False  # opens a new segment ("moving on to ...", "next story")
    offset: int = 0  # where its text starts in the passages, in characters


def _paragraphs(passages: list[str]) -> list[_Paragraph]:
    found, read = [], 0
    for passage in passages:
        for raw in PARAGRAPH_BREAK.split(passage):
            offset, read = read + len(raw) - len(raw.lstrip()), read + len(raw)
            text = raw.strip()
            if not text:
                continue
            heading = _MD_HEADING.match(text)
            single_line = "\n" not in text and word_count(text) <= 12 and text[-1:] not in ".!?:;,"
            if heading or single_line:
                found.append(_Paragraph("", readable(text.splitlines()[0]), len(heading[1]) if heading else 7))
                text = "\n".join(text.splitlines()[1:]).strip() if heading else ""
                if not text:
                    continue
            speaker = _SPEAKER.match(text)
            body = text[speaker.end():] if speaker else text
            found.append(_Paragraph(body, turn=bool(speaker), cue=bool(_SEGMENT_CUE.match(readable(body))),
                                    offset=offset + len(raw.strip()) - len(body)))
    return found


def read_document(encoder: Encoder, passages: list[str], title: str = "") -> Reading:
    """The map step: candidate sentences from the whole document, embedded, and cut into parts."""
    candidates: list[KeyPoint] = []
    boundary_bonus: dict[int, float] = {}  # candidate index -> how strongly a new part may start there
    headings: dict[int, str] = {}
    pending_heading, pending_level = "", 99
    paragraphs = _paragraphs(passages)
    home: list[int] = []  # candidate index -> paragraph index
    thirds: list[int] = []  # candidate index -> the third of the document it lies in
    length = max(1, sum(len(p) for p in passages))
    for number, paragraph in enumerate(paragraphs):
        if paragraph.heading:
            pending_heading, pending_level = paragraph.heading, min(pending_level, paragraph.level)
            continue
        start, previous = len(candidates), ""
        for a, b in sentence_spans(paragraph.text):
            source = paragraph.text[a:b]
            shown = self_contained(trim_fillers(readable(source)), previous)
            previous = source
            starts_sentence = source[:1].isupper() or source[:1].isdigit()  # not a fragment cut by a break
            if shown and starts_sentence and is_summary_sentence(shown):
                candidates.append(KeyPoint(shown, source))
                home.append(number)
                thirds.append(min(2, 3 * (paragraph.offset + a) // length))
        if len(candidates) == start:
            continue
        bonus = 0.05 * paragraph.turn + 0.15 * paragraph.cue
        if pending_heading:
            bonus += 0.4 if pending_level <= 3 else 0.25
            headings[start] = pending_heading
        boundary_bonus[start] = bonus
        pending_heading, pending_level = "", 99
    vectors = encoder.embed_passages([c.text for c in candidates]) if candidates else np.zeros((0, 1))
    parts = _cut(vectors, boundary_bonus, sum(word_count(c.text) for c in candidates))
    for part in parts:
        part.heading = headings.get(part.start, "")
    texts = ["\n\n".join(p.text for p in paragraphs[home[part.start]:home[part.end - 1] + 1]) for part in parts]
    return Reading(candidates, thirds, np.asarray(vectors, dtype=np.float32), parts, texts, title_topics(title))


def _cut(vectors: np.ndarray, boundary_bonus: dict[int, float], total_words: int) -> list[Part]:
    """Parts at the strongest topic shifts: change points of the embeddings at paragraph breaks,
    strengthened by headings, segment cues and speaker turns; no part under `min_size` sentences."""
    n = len(vectors)
    if n == 0:
        return []
    count = max(min(3, n), min(MAX_PARTS, total_words // WORDS_PER_PART, n // 3))
    min_size = max(1, n // (2 * count))
    scores = {}
    for b, bonus in boundary_bonus.items():
        if min_size <= b <= n - min_size:
            left = _unit(vectors[max(0, b - CHANGE_WINDOW):b].mean(axis=0))
            right = _unit(vectors[b:b + CHANGE_WINDOW].mean(axis=0))
            scores[b] = 1.0 - float(left @ right) + bonus
    cuts: list[int] = []
    for b in sorted(scores, key=scores.get, reverse=True):
        if len(cuts) == count - 1:
            break
        if all(abs(b - c) >= min_size for c in cuts):
            cuts.append(b)
    bounds = [0, *sorted(cuts), n]
    return [Part(a, b) for a, b in zip(bounds, bounds[1:])]


# -- select: overview and key points --------------------------------------------------------------
def select(encoder: Encoder, reading: Reading, title: str = "", max_points: int = MAX_POINTS) -> Extract:
    """The overview and up to `max_points` key points, in document order."""
    candidates, vectors, parts = reading.candidates, reading.vectors, reading.parts
    if not candidates:
        return Extract(None, [], [])
    title_vector = _unit(encoder.embed_passages([title])[0]) if title.strip() else None
    quality = np.array([_form(c.text, reading.title_topics) for c in candidates])
    centrality = np.zeros(len(candidates))
    for part in parts:
        block = vectors[part.start:part.end]
        centrality[part.start:part.end] = block @ _unit(block.mean(axis=0))
    about_title = vectors @ title_vector if title_vector is not None else np.zeros(len(candidates))
    for part in parts:  # a sentence that names its part's heading states the part's point
        if part.heading:
            for i in range(part.start, part.end):
                quality[i] += 0.1 * mentions(part.heading, candidates[i].text)
    score = centrality + 0.5 * about_title + quality

    lead = np.zeros(len(candidates))
    lead[:3] = 0.2
    overview_score = vectors @ _unit(vectors.mean(axis=0)) + about_title + lead + quality
    overview = int(np.argmax(overview_score))
    covered = {t for t in reading.title_topics if mentions(t, candidates[overview].text)}

    chosen: list[int] = []
    part_of = np.zeros(len(candidates), dtype=int)
    for k, part in enumerate(parts):
        part_of[part.start:part.end] = k

    def usable(i: int) -> bool:
        return i != overview and i not in chosen and all(vectors[i] @ vectors[j] < REDUNDANT
                                                         for j in [overview, *chosen])

    def best(indices) -> int | None:
        indices = [i for i in indices if usable(i)]
        return max(indices, key=lambda i: score[i]) if indices else None

    for topic in reading.title_topics:  # every title topic the text covers gets a key point
        if topic in covered or len(chosen) >= max_points:
            continue
        pick = best(i for i, c in enumerate(candidates) if mentions(topic, c.text))
        if pick is not None:
            chosen.append(pick)
            covered |= {t for t in reading.title_topics if mentions(t, candidates[pick].text)}
    used_parts = {int(part_of[i]) for i in chosen}
    for third in range(3):  # then every third of the document, from a part not yet heard from
        if len(chosen) >= max_points or any(reading.thirds[i] == third for i in chosen):
            continue
        pick = best(i for i in range(len(candidates)) if reading.thirds[i] == third and part_of[i] not in used_parts)
        if pick is None:
            pick = best(i for i in range(len(candidates)) if reading.thirds[i] == third)
        if pick is not None:
            chosen.append(pick)
            used_parts.add(int(part_of[pick]))
    for k in sorted(range(len(parts)), key=lambda k: parts[k].end - parts[k].start, reverse=True):
        if len(chosen) >= max_points:  # then the largest parts not yet heard from
            break
        if k not in used_parts:
            pick = best(range(parts[k].start, parts[k].end))
            if pick is not None:
                chosen.append(pick)
                used_parts.add(k)
    chosen.sort()
    return Extract(candidates[overview], [candidates[i] for i in chosen],
                   [reading.part_texts[k] for k in sorted(used_parts)])


def _form(sentence: str, topics: list[str]) -> float:
    """How well a sentence reads as a key point on its own: names its subject (a name, a number or
    a title topic), states rather than chats (first and second person), refers back little, is not
    broken off or too long."""
    tokens = words(sentence.lower().replace("’", "'"))
    named = any(t[:1].isupper() or any(ch.isdigit() for ch in t) for t in sentence.split()[1:])
    score = 0.05 * named + 0.15 * any(mentions(t, sentence) for t in topics)
    score -= 0.2 * (first_word(sentence) in _PERSONAL) + 0.05 * min(3, sum(t in _PERSONAL for t in tokens))
    score -= 0.15 * min(3, sum(t in _BACK_REFERENCES for t in tokens))
    score -= 0.1 * (" -- " in sentence) + 0.1 * (word_count(sentence) > 35)
    return score


def extractive_summary(encoder: Encoder, passages: list[str], title: str = "",
                       max_points: int = MAX_POINTS) -> Extract:
    """Overview and key points of a whole document (read end to end: map over parts, then select)."""
    return select(encoder, read_document(encoder, passages, title), title, max_points)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / (np.linalg.norm(vector) or 1.0)
