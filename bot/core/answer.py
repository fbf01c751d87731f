"""Question -> the short answer first, then the sentence that supports it with its [n], or abstain.

Answers are extractive, so every claim is a citation and nothing is invented:
1. the question is analysed for the kind of answer it wants (`bot.core.question`);
2. every sentence of the retrieved passages that name something the question names (a passage naming
   none of it is about something else) is a candidate, read with the sentence before it (so
   "It has 128 experts." keeps its subject, and the answer that follows an FAQ question or a
   sentence naming the subject is found); candidates are scored for meaning (multilingual e5
   cosine), for holding the question's words, and for holding a phrase of the wanted kind that
   the question does not already contain; a question naming a whole number ("Debian 11", "in 1975")
   is answered only from a passage holding it (or its title, or the passage before it: a talk named
   "NeurIPS 2024" is discussed over many sentences that do not repeat the year), and a sentence in the
   question's language that holds no word of what is asked about the subject is no candidate;
3. sentences that restate the question (questions, headings, the title) or quote it (a cross-reference
   to the section that answers it) are never the answer; when a document asks the question itself
   (an FAQ's heading), the answer is the opening of the section under that heading (of the heading
   that words the question best), which may lie in the passage before the one retrieved
   (`Hit.before`), followed by the section's best sentence further on, and no threshold applies;
4. otherwise the bot abstains when the best candidate's evidence (meaning, the question's rarer words, a
   phrase of the wanted kind near them) stays below a threshold fitted on the dev set's tune half.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from bot.core.values import Document, Hit, Source
from bot.core.question import NUMBER, PERSON, Question, analyse, numbers_in, phrases, stem
from summarizer.encoder import Encoder
from summarizer.text import (PARAGRAPH_BREAK, STOPWORDS, TOKEN, readable, sentence_spans, split_sentences,
                             trim_fillers, words)


@dataclass(frozen=True)
class Weights:
    """How a candidate's evidence adds up: e5 cosine between the question and the sentence with its
    context, plus bonuses for the question's words it holds (`coverage`), for a phrase of the wanted
    kind (`phrase`, more with the question's words close to it: `near`), for the passage's retrieval
    rank, for being in another language than the question (`other_language`: the small
    multilingual encoder scores same-language text higher) and for following a heading or FAQ
    question that holds the question's words (`section`: in FAQ-like text the answer is what
    follows the matching question). The best candidate must reach `min_evidence` or the bot
    abstains. Fitted on the tune half of the dev set: `python -m tests.fit_answer` prints the fit;
    `python -m tests.answer_eval` reports the held-out half."""

    coverage: float = 0.1
    phrase: float = 0.0
    near: float = 0.1
    rank: float = 0.01
    other_language: float = 0.0
    section: float = 0.0
    min_evidence: float = 0.87


WEIGHTS = Weights()
PHRASE_REACH = 6  # words either side of a phrase in which the question's words count as near
# A phrase leads the reply in bold when this share of the question's words stands near it (or it is a number):
# on the dev set's tune half, 78% of the bold answers then hold the gold answer, against 68% for any phrase.
SHORT_ANSWER_NEAR = 0.3
# Extra sentences are cited only for answers without a short phrase, and when nearly as good.
MAX_SENTENCES = 2
RUNNER_UP_MARGIN = 0.04
MIN_WORDS = 2  # a one-word sentence ("Yes.", "Right.") is a reply, not an answer; two ("Go ahead.") can be one
MAX_EMBEDDED = 24  # candidate sentences embedded per question, chosen by `_lexical_score`
QUOTE_CHARS = 400
# In a section whose heading or FAQ question matches the question this well, the answer line goes
# on with the section's next sentences up to SECTION_ANSWER_CHARS: an FAQ's answer is what follows
# its question, often over two or three sentences ("Use reportbug. It guides you ...").
SECTION_MATCH = 0.6
# A heading whose words and the question's overlap this much (Jaccard, by stem) is the question itself.
ASKED_HEADING = 0.75
CITED_WORDS = 4  # a sentence of the question this long (words), quoted whole, makes a cross-reference (`_cites`)
QUOTING_MARKS = "?“”„«»\""
SECTION_ANSWER_CHARS = 320
_SECTION_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)+\.?\s+")
_QUESTION_LABEL = re.compile(r"(?:Q|Question|Frage)\s*:\s", re.I)  # "Q: ...", answered by "A: ..."
_ANSWER_LABEL = re.compile(r"^(?:A|Answer|Antwort)\s*:\s*", re.I)
# A statement that ends by asking for agreement is no question: "he paid $42 billion for it, right?"
_TAG_QUESTION = re.compile(r",\s*(?:right|no|yeah|okay|ok|you know|correct|isn't it|wasn't it|don't you think|oder|"
                           r"nicht wahr|ne|gell|stimmt's)\?$", re.I)
_SECTION_REFERENCE = re.compile(  # "Kapitel 11", "section 12.4", and a numbered heading's "11.4."
    r"(?im)\b(chapter|kapitel|section|abschnitt|part|teil)\s+\d+(?:\.\d+)*|^\s*\d+(?:\.\d+)+\.?")
# What the encoder compares a name with to tell a person from a place, an organisation or a program.
_PERSON_DESCRIPTIONS = ("a person's name", "the name of a person")
_OTHER_DESCRIPTIONS = ("a place", "a country", "an organization", "a software")
_ANAPHOR = re.compile(r"^(?:it|its|they|their|them|this|that|these|those|he|she|his|her|there|"
                      r"er|sie|es|dies|diese[rsmn]?|dort)\b", re.I)


@dataclass(frozen=True)
class Answer:
    text: str  # markdown: the short answer in bold when one was found, then the cited sentences
    sources: list[Source]
    abstained: bool
    closest: list[Document]
    short: str | None = None  # the short answer phrase ("10 million tokens"), when found


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    start: int  # the claim sentence, as offsets in the passage text
    end: int
    context: int  # where the sentence before it starts: what was embedded and what gets quoted
    similarity: float
    coverage: float
    phrase: tuple[int, int] | None  # a phrase of the wanted kind inside the claim sentence
    near: float
    other_language: bool
    rank: float  # 1 for the first retrieved passage, towards 0 for the last
    section: float  # share of the question's words in the heading or FAQ question the sentence follows
    asked: float  # when that heading is the question itself (an FAQ's own answer): how closely it words it; else 0
    defines: bool = False  # the phrase says what the name a "Who is <name>?" question asks about is
    leads: bool = False  # the phrase is sure enough to lead the reply in bold (`_leads`)

    @property
    def under_question(self) -> bool:
        return self.asked > 0

    def score(self, weights: Weights) -> float:
        bonus = weights.phrase + weights.near * self.near if self.phrase else 0.0
        return (self.similarity + weights.coverage * self.coverage + weights.rank * self.rank
                + weights.other_language * self.other_language + weights.section * self.section + bonus)

    @property
    def sentence(self) -> str:
        return self.hit.passage.text[self.start:self.end]

    @property
    def short(self) -> str | None:
        return readable(self.hit.passage.text[self.phrase[0]:self.phrase[1]]) if self.phrase else None


def answer_question(question: str, hits: list[Hit], encoder: Encoder,
                    embed: Callable[[list[str]], np.ndarray] | None = None,
                    query: np.ndarray | None = None) -> Answer:
    """Pick the sentence that answers, lead with its short answer; abstain when the evidence is thin.

    `embed` embeds sentences (the service passes a cached one; default: the encoder directly) and
    `query` is the question's vector when the search already computed it.
    """
    return answer_from(candidates_for(question, hits, encoder, embed, query), hits)


def candidates_for(question: str, hits: list[Hit], encoder: Encoder,
                   embed: Callable[[list[str]], np.ndarray] | None = None,
                   query: np.ndarray | None = None) -> list[Candidate]:
    """Every answer-shaped sentence of the hits with its evidence, unscored (the model work)."""
    if query is None:
        query = encoder.embed_queries([question])[0]
    return _candidates(hits, analyse(question), embed or encoder.embed_passages, query)


def answer_from(candidates: list[Candidate], hits: list[Hit], weights: Weights = WEIGHTS) -> Answer:
    """The answer the candidates support under `weights` (no model work: the fit reruns this)."""
    closest = list({hit.document.id: hit.document for hit in hits}.values())[:3]
    pool, thresholded = answer_pool(candidates)
    scores = {id(c): c.score(weights) for c in candidates}
    ranked = sorted(pool, key=lambda c: -scores[id(c)])
    if not ranked or (thresholded and scores[id(ranked[0])] < weights.min_evidence):
        return Answer("", [], True, closest)
    chosen = [ranked[0]]
    if ranked[0].under_question:
        chosen += _section_detail(ranked[0], candidates, scores)
    elif ranked[0].phrase is None:
        for candidate in ranked[1:]:
            if len(chosen) == MAX_SENTENCES or scores[id(candidate)] < scores[id(ranked[0])] - RUNNER_UP_MARGIN:
                break
            if not any(_same_claim(candidate, c) for c in chosen):
                chosen.append(candidate)
    sources: list[Source] = []
    lines = []
    for candidate in chosen:
        source = next((s for s in sources if s.passage_id == candidate.hit.passage.id
                       and candidate.sentence in s.quote), None)  # a quote holds each claim citing it
        if source is None:
            doc = candidate.hit.document
            source = Source(len(sources) + 1, doc.id, doc.title, doc.path, doc.url, _quote(candidate),
                            candidate.hit.passage.id)
            sources.append(source)
        lines.append(f"{_claim_text(candidate)} [{source.n}]")
    short = chosen[0].short if chosen[0].leads else None
    text = " ".join(lines)
    return Answer(f"**{short}**\n{text}" if short else text, sources, False, closest, short)


def answer_pool(candidates: list[Candidate]) -> tuple[list[Candidate], bool]:
    """The candidates an answer is chosen from, and whether the evidence threshold applies: when a
    document asks the question itself (an FAQ heading), only that section's; else, when sentences say
    what the name a "Who is <name>?" question asks about is ("Adam D'Angelo, the CEO of Quora"), only
    those; either way with no threshold."""
    asked_here = _section_openings(candidates, lambda c: ((c.section, c.asked), c.hit, c.start))
    if asked_here:
        return [candidates[i] for i in asked_here], False
    defining = [c for c in candidates if c.defines]
    return (defining, False) if defining else (candidates, True)


def _section_detail(opening: Candidate, candidates: list[Candidate], scores: dict[int, float]) -> list[Candidate]:
    """The best sentence further into the section an FAQ's opening answers from: the opening says what to
    do ("If you have found a bug, please read the instructions"), a later sentence often names it ("You
    can use the package reportbug")."""
    shown = _claim_spans(opening)[-1][1]
    later = [c for c in candidates if c.hit.document.id == opening.hit.document.id
             and (c.section, c.asked) == (opening.section, opening.asked)
             and (c.hit.passage.ordinal, c.start) > (opening.hit.passage.ordinal, shown - 1)
             and not _same_claim(c, opening)]
    return [max(later, key=lambda c: scores[id(c)])] if later else []


def _section_openings(items: list, where: Callable) -> list[int]:
    """Indices of the first item under the heading that asks the question best (its words, then its
    wording), one per document: an FAQ answers its question right under it ("Go ahead. You do not need
    permission ..."), before details that may match the question's words better. `where(item)` is
    (the section match as `_section_match` gives it, hit, start offset)."""
    asked = [(i, section, hit, start) for i, (section, hit, start) in enumerate(map(where, items)) if section[1]]
    best = max((section for _, section, _, _ in asked), default=None)
    first: dict[str, tuple[tuple[int, int], int]] = {}
    for i, section, hit, start in asked:
        position = (hit.passage.ordinal, start)
        if section == best and (hit.document.id not in first or position < first[hit.document.id][0]):
            first[hit.document.id] = (position, i)
    return sorted(i for _, i in first.values())


def _candidates(hits: list[Hit], asked: Question, embed: Callable[[list[str]], np.ndarray],
                query: np.ndarray) -> list[Candidate]:
    """Every answer-shaped sentence of the hits with the sentence before it, best first."""
    spans, contexts = [], []
    asked_stems = _stems(asked.text)
    for rank, hit, section, asked_only in _passages_to_read(hits, asked, asked_stems):
        if not _about(hit, asked):
            continue
        text = hit.passage.text
        previous = None  # where the sentence before starts: the candidate is read with it
        for a, b, section, heading in _read(text, hit.document.title, asked, asked_stems, section):
            context, previous = (a if previous is None else previous), a
            if heading or (asked_only and not section[1]):
                continue
            if len(words(readable(text[a:b]))) < MIN_WORDS or _cites(text[a:b], asked):
                continue
            spans.append((rank, hit, context, a, b, section))
            contexts.append(readable(text[context:b]))
    if not spans:
        return []
    coverages, idf = _coverage(asked, [(hit, hit.passage.text[c:b], hit.passage.text[a:b])
                                       for _, hit, c, a, b, _ in spans])
    features = []
    for (rank, hit, context, a, b, (section, _)), coverage in zip(spans, coverages):
        phrase, near = _best_phrase(hit, a, b, asked, idf)
        features.append((coverage, phrase, near, 1 - rank / len(hits), section))
    if asked.needs_phrase:
        spans, contexts, features = _only(spans, contexts, features, [feature[1] is not None for feature in features])
    if asked.numbers:
        spans, contexts, features = _only(spans, contexts, features, [
            bool(section[1]) or asked.numbers <= numbers_in(_surroundings(hit)) for _, hit, _, _, _, section in spans])
    if asked.kind != NUMBER:  # a number has evidence of its own: it must be there and measure what is asked
        spans, contexts, features = _only(spans, contexts, features, [
            bool(section[1]) or hit.document.language != asked.language
            or _mentions_what_is_asked(asked, hit.document.title, hit.passage.text, context, a, b)
            for _, hit, context, a, b, section in spans])
    # The encoder is the cost of a new question: only the lexically likeliest sentences are embedded,
    # and the opening of a section whose heading asks the question (the answer there, see answer_pool).
    keep = sorted(range(len(spans)), key=lambda i: -_lexical_score(*features[i]))[:MAX_EMBEDDED]
    keep += [i for i in _section_openings(spans, lambda span: (span[5], span[1], span[3])) if i not in keep]
    if not keep:
        return []
    similarities = embed([contexts[i] for i in keep]) @ query
    if asked.kind == PERSON:  # of several names in a sentence, the one that reads like a person's answers "Who ...?"
        named = {i: names for i in keep if (names := _names_in(spans[i], asked))}
        likeness = _person_likeness(embed, {name for names in named.values() for name in names})
        for i in named:
            _, hit, _, a, b, _ = spans[i]
            features[i] = (features[i][0], *_best_phrase(hit, a, b, asked, idf, likeness), *features[i][3:])
    candidates = []
    for i, similarity in zip(keep, similarities):
        (rank, hit, context, a, b, (section, asked_by)), (coverage, phrase, near, rank_share, _) = \
            spans[i], features[i]
        defines = phrase is not None and asked.subject is not None
        candidates.append(Candidate(hit, a, b, context, float(similarity), coverage, phrase, near,
                                     hit.document.language != asked.language, rank_share, section, asked_by,
                                     defines, phrase is not None and _leads(asked, near, defines)))
    return candidates


def _names_in(span: tuple, asked: Question) -> list[str]:
    """The names in a candidate sentence, when it holds more than one."""
    _, hit, _, a, b, _ = span
    sentence = hit.passage.text[a:b]
    found = [readable(sentence[x:y]) for x, y in phrases(sentence, asked, hit.document.language)]
    return found if len(found) > 1 else []


def _person_likeness(embed: Callable[[list[str]], np.ndarray], names: set[str]) -> dict[str, float]:
    """How much more each name reads like a person's than like a place, an organisation or a program to the
    encoder (cosine to the nearest description of each; above 0, a person): "Ian Murdock" over "Free Software
    Foundation's GNU" for who founded Debian, "Genghis Khan" over "Mongol" for whose strategist Subutai was."""
    if not names:
        return {}
    ordered = sorted(names)
    vectors = embed([*_PERSON_DESCRIPTIONS, *_OTHER_DESCRIPTIONS, *ordered])
    person, other, named = np.split(vectors, [len(_PERSON_DESCRIPTIONS), len(_PERSON_DESCRIPTIONS) +
                                              len(_OTHER_DESCRIPTIONS)])
    return {name: float((person @ v).max() - (other @ v).max()) for name, v in zip(ordered, named)}


def _leads(asked: Question, near: float, defines: bool) -> bool:
    """Whether a phrase of the wanted kind is sure enough to lead the reply in bold: a number that
    measures what is asked, a description of the name asked about, or any phrase with the question's
    words close around it (SHORT_ANSWER_NEAR). A name far from them is often another one the sentence
    mentions ("**Uzbekistan**" for the sea the Syr Darya flows into); the sentence still answers."""
    return asked.kind == NUMBER or defines or near >= SHORT_ANSWER_NEAR


def _about(hit: Hit, asked: Question) -> bool:
    """Whether a passage (with its title and the passage before it) names anything the question names:
    a passage that names none of it is about something else ("What is the price of Amazon's Nova Act?"
    is not answered by a budget figure in a speech)."""
    return not asked.names or not asked.names.isdisjoint(w.lower() for w in words(_surroundings(hit)))


def _surroundings(hit: Hit) -> str:
    """What a passage's sentences are read in: its document's title, the passage before it and itself,
    less the numbers of chapters and sections, which say where a text stands, not what it is about
    ("Kapitel 11", "11.3. Wie kann ich ...?" are no passage about Debian 11)."""
    texts = [hit.document.title] + [p.text for p in (hit.before, hit.passage) if p]
    return " ".join(_SECTION_REFERENCE.sub(r"\1", text) for text in texts)


def _mentions_what_is_asked(asked: Question, title: str, text: str, context: int, start: int, end: int) -> bool:
    """Whether the sentence text[start:end] holds a word of what the question asks about its subject, beyond
    the document's title: "Who designed the first loom?" is not answered by "A loom is a device used to weave
    cloth", which is about the subject but not about its design. The sentence itself, or a question right
    before it that it answers ("Does D'Angelo have a conflict of interest? ... Poe is built using models from
    OpenAI"), not a statement before it, which may only lead to it ("The first edition was made by ...
    Authors of the rewritten FAQ are ..."). Only in the question's language; a heading that asks the
    question is evidence enough (`_candidates`)."""
    asking = readable(text[context:start]).endswith("?")
    sentence = text[context if asking else start:end]
    wanted = asked.asked_words - _stems(title)
    return not wanted or not wanted.isdisjoint(_stems(readable(sentence)))


def _only(spans: list, contexts: list[str], features: list, kept: list[bool]) -> tuple[list, list[str], list]:
    """Only the candidates that `kept` marks."""
    keep = [i for i, k in enumerate(kept) if k]
    return [spans[i] for i in keep], [contexts[i] for i in keep], [features[i] for i in keep]


def _lexical_score(coverage: float, phrase: tuple[int, int] | None, near: float, rank: float,
                   section: float) -> float:
    """A cheap first ranking of candidates, before the encoder: on the tune half, its best 24 held
    a sentence with the answer for 99% of the questions where any candidate did."""
    return coverage + 0.5 * rank + (0.3 + near if phrase else 0.0) + 0.2 * section


def _restates(sentence: str, title: str, asked: Question, own_line: bool = True) -> bool:
    """A question, a heading, a sentence that adds no word to the question's and the title's, or a line
    that names the title with at most three more words and ends in no full stop ("Navajo people"): it names
    the subject but answers nothing. One added word may be the answer: "Its closest living relatives are the
    wombats.", and a short statement about the title may be one ("The Navajo term for themselves is Diné.")."""
    stems, title_stems = _stems(readable(sentence)), _stems(title)
    return (_is_heading(sentence, own_line) or not stems - _stems(asked.text) - title_stems
            or (len(title_stems & stems) >= 0.6 * len(title_stems) and len(stems) <= len(title_stems) + 3
                and not readable(sentence).endswith((".", "!"))))


def _section_match(heading: str, asked: Question, asked_stems: set[str]) -> tuple[float, float]:
    """(share of the question's words in a heading or restating sentence, and when it is a heading
    that is the question itself, so that the section under it is that question's answer, how closely
    it words the question: the share of all their words, stop words too, that both hold; else 0).
    The wording tells "Does Debian just do GNU/Linux?" from "What is Debian GNU/Linux?"."""
    line = _SECTION_NUMBER.sub("", readable(heading))
    stems = _stems(line)
    shared = len(asked_stems & stems)
    if not (_is_heading(heading) and shared >= ASKED_HEADING * len(asked_stems | stems) > 0):
        return shared / max(len(asked_stems), 1), 0.0
    heading_words, asked_words = set(words(line.lower())), set(words(asked.text.lower()))
    return shared / max(len(asked_stems), 1), len(heading_words & asked_words) / len(heading_words | asked_words)


def _passages_to_read(hits: list[Hit], asked: Question,
                      asked_stems: set[str]) -> list[tuple[int, Hit, tuple[float, float], bool]]:
    """(retrieval rank, hit, the section it begins in, only its sentences under a heading asking the
    question?) for each hit, and before a hit that begins inside the section answering the question,
    the passage holding that section's opening (an FAQ's answer starts right after its question)."""
    read = []
    taken = {hit.passage.id for hit in hits}
    for rank, hit in enumerate(hits):
        before = hit.before
        section = _section_at_end(before.text, hit.document.title, asked, asked_stems) if before else (0.0, 0.0)
        if before and section[1] and before.id not in taken:
            taken.add(before.id)
            read.append((rank, Hit(before, hit.document, hit.score), (0.0, 0.0), True))
        read.append((rank, hit, section, False))
    return read


def _read(text: str, title: str, asked: Question, asked_stems: set[str],
          section: tuple[float, float] = (0.0, 0.0)) -> Iterator[tuple[int, int, tuple[float, float], bool]]:
    """Each sentence of `text` as (start, end, the section it is in, whether it is a heading or
    restates the question). A heading paragraph is read whole (`_heading_length`): "9.4. How can I log
    what I installed? I'd like to know when packages were removed!" is one heading, not a heading and
    an answer, and "Q: I told xz to use many threads. What is wrong?" asks what both sentences say."""
    spans = sentence_spans(text)
    i = 0
    while i < len(spans):
        a, b = spans[i]
        if not _restates(text[a:b], title, asked, _on_own_line(text, a, b)):
            yield a, b, section, False
            i += 1
            continue
        length = _heading_length(text, spans[i:])
        matches = {_section_after(text[a:end], section, asked, asked_stems) for end in (b, spans[i + length - 1][1])}
        section = max(matches, key=lambda match: (match[1] > 0, match[1], match[0]))  # asking it first
        for a, b in spans[i:i + length]:
            yield a, b, section, True
        i += length


def _heading_length(text: str, spans: list[tuple[int, int]]) -> int:
    """How many sentences the heading opening `spans` runs to: a question set off by a label ("Q:")
    goes on to the end of its paragraph, a numbered heading with the questions and exclamations of its
    paragraph ("1.2. Are there logs? The project keeps one." is a heading and an answer)."""
    first = readable(text[spans[0][0]:spans[0][1]])
    labelled, numbered = bool(_QUESTION_LABEL.match(first)), bool(_SECTION_NUMBER.match(first))
    length = 1
    for (_, end), (a, b) in zip(spans, spans[1:]):
        if PARAGRAPH_BREAK.search(text, end, a) or not (labelled or (numbered and readable(text[a:b])[-1:] in "?!")):
            break
        length += 1
    return length


def _section_at_end(text: str, title: str, asked: Question, asked_stems: set[str]) -> tuple[float, float]:
    """The section match in force at the end of `text` (the passage before a hit)."""
    section = (0.0, 0.0)
    for _, _, section, _ in _read(text, title, asked, asked_stems):
        pass
    return section


def _section_after(heading: str, section: tuple[float, float], asked: Question,
                   asked_stems: set[str]) -> tuple[float, float]:
    """The section a heading or restating sentence starts; a line ending in a colon ("Reports are
    public:") introduces what follows inside the current section and starts none, and a sentence that
    is no heading ("No, sorry.") does not leave the section whose heading asks the question."""
    if readable(heading).endswith(":") or (section[1] and not _is_heading(heading)):
        return section
    return _section_match(heading, asked, asked_stems)


def _cites(sentence: str, asked: Question) -> bool:
    """A sentence that quotes the question, or a sentence of it ("See Section 12.4, “Are there logs of
    known bugs?”"), points to where it is answered; it is not the answer. Without a quotation mark or a
    question mark it only shares the question's words ("Emmett Shear, who became interim CEO of OpenAI")."""
    if not any(mark in sentence for mark in QUOTING_MARKS):
        return False
    quoted = f" {' '.join(words(sentence.lower()))} "
    return any(len(part) >= CITED_WORDS and f" {' '.join(part)} " in quoted
               for part in (words(line.lower()) for line in split_sentences(asked.text)))


def _stems(text: str) -> set[str]:
    """Stems of the content words, so "director" meets "directed" and "founder" meets "founded"."""
    return {stem(w) for w in words(text) if len(w) > 1 and w.lower() not in STOPWORDS}


def _coverage(asked: Question, candidates: list[tuple[Hit, str, str]]) -> tuple[list[float], dict[str, float]]:
    """Share of the question's words each candidate (hit, sentence with context, sentence) holds,
    weighted by rarity among the candidates (returned too, by stem); the sentence itself counts as
    much as its context, so a sentence does not win on words only its predecessor holds.

    Across languages only names and numbers are comparable, so those alone count there; a
    question with none of them is not judged by its words at all.
    """
    wanted_all = {stem(w) for w in asked.content}
    names = {stem(w) for w in asked.names}
    present = [(_stems(window), _stems(sentence)) for _, window, sentence in candidates]
    idf = {w: math.log((1 + len(present)) / (1 + sum(w in p for p, _ in present))) + 1 for w in wanted_all}
    scores = []
    for (hit, _, _), (in_window, in_sentence) in zip(candidates, present):
        wanted = wanted_all if hit.document.language == asked.language else names & wanted_all
        total = sum(idf[w] for w in wanted)
        held = sum(idf[w] for w in wanted & in_window) + sum(idf[w] for w in wanted & in_sentence)
        scores.append(held / (2 * total) if total else 1.0)
    return scores, idf


def _best_phrase(hit: Hit, start: int, end: int, asked: Question, idf: dict[str, float],
                 person_likeness: dict[str, float] | None = None) -> tuple[tuple[int, int] | None, float]:
    """The phrase of the wanted kind with most of the question's words close around it (passage
    offsets), and the rarity-weighted share of the question's words within PHRASE_REACH words of it.
    Of two phrases near the same words, the one closer to them: "by L. Frank Baum, it was directed by
    Victor Fleming" answers who directed it with Fleming. Before either, one that is what a which-question
    asks for: "Into which sea ...?" is answered by "Aral Sea", not "Uzbekistan"; then, with `person_likeness`,
    the name most like a person's when any is (`_person_likeness`)."""
    if not asked.wants_phrase:
        return None, 0.0
    sentence = hit.passage.text[start:end]
    found = phrases(sentence, asked, hit.document.language)
    if not found:
        return None, 0.0
    tokens = [(m.start(), m.end(), stem(m.group())) for m in TOKEN.finditer(sentence)]
    total = sum(idf.values()) or 1.0

    def token_range(span: tuple[int, int]) -> tuple[int, int]:
        """The first and last token of the phrase."""
        inside = [i for i, (a, b, _) in enumerate(tokens) if a < span[1] and b > span[0]] or [0]
        return inside[0], inside[-1]

    def nearby(span: tuple[int, int]) -> tuple[float, int]:
        """(share of the question's words within reach, minus the distance to the closest of them)"""
        first, last = token_range(span)
        lo, hi = max(first - PHRASE_REACH, 0), min(last + PHRASE_REACH + 1, len(tokens))
        share = sum(idf.get(stem, 0.0) for stem in {stem for _, _, stem in tokens[lo:hi]}) / total
        distances = [first - i if i < first else i - last for i in range(lo, hi)
                     if idf.get(tokens[i][2]) and not first <= i <= last]
        return share, -min(distances, default=PHRASE_REACH + 1)

    def typed(span: tuple[int, int]) -> int:
        """How much the phrase, with the words right by it, is what is asked for: the noun of a which-question
        ("Aral Sea"), the words of what a how-many question counts ("17 billion active parameters")."""
        first, last = token_range(span)
        around = {stem for _, _, stem in tokens[max(first - 1, 0):last + 2]}
        return (asked.noun in around) + len(asked.counted & around)

    def person(span: tuple[int, int]) -> float:
        return max((person_likeness or {}).get(readable(sentence[span[0]:span[1]]), 0.0), 0.0)

    best = max(found, key=lambda span: (typed(span), person(span), nearby(span)))
    return (start + best[0], start + best[1]), nearby(best)[0]


def _claim_text(candidate: Candidate) -> str:
    """The sentence as the answer line shows it: fillers trimmed, the sentence before it kept when
    this one opens with a pronoun that only that sentence explains (not when that is a heading: "There
    are several tools" after "What programs manage packages?") or when it introduces this one ("Reports
    are public:"), an answer label ("A:") dropped, and what `_claim_spans` adds."""
    text = candidate.hit.passage.text
    spans = _claim_spans(candidate)
    claim = trim_fillers(readable(candidate.sentence))
    before = readable(text[candidate.context:candidate.start])
    if before and ((_ANAPHOR.match(claim) and not _is_heading(before)) or _introduces(before)):
        claim = f"{trim_fillers(before)} {claim}"
    claim = _ANSWER_LABEL.sub("", claim, count=1)  # "A: No. Use p7zip." shows as "No. Use p7zip."
    return " ".join([claim] + [readable(text[a:b]) for a, b in spans[1:]])


def _claim_spans(candidate: Candidate) -> list[tuple[int, int]]:
    """The claim sentence and the sentences after it that belong to the answer: a command set on
    its own line or anything after a colon ("run the command:" and the command), and, inside a
    section whose heading or FAQ question matches the question, the section's next sentences (a line
    introducing a list among them) up to SECTION_ANSWER_CHARS."""
    text = candidate.hit.passage.text
    spans = [(candidate.start, candidate.end)]
    for a, b in sentence_spans(text, candidate.end):
        claimed = text[spans[0][0]:spans[-1][1]]
        if claimed.rstrip().endswith(":") or _is_fragment(text[a:b]):
            spans.append((a, b))
        elif (candidate.section >= SECTION_MATCH and (not _is_heading(text[a:b]) or _introduces(text[a:b]))
              and len(readable(text[spans[0][0]:b])) <= SECTION_ANSWER_CHARS):
            spans.append((a, b))
        else:
            break
    return spans


def _introduces(sentence: str) -> bool:
    """A line that introduces what follows ("These instructions can be obtained in several ways:"),
    not a heading that ends in a colon."""
    line = readable(sentence)
    return line.endswith(":") and not _SECTION_NUMBER.match(line) and not sentence.lstrip().startswith("#")


def _is_heading(sentence: str, own_line: bool = True) -> bool:
    """A question (not a statement ending in a tag question), a markdown heading, a numbered heading, a
    labelled question ("Q: ...") or a short line without a full stop (`own_line`: when it stands on a
    line of its own; a transcript's sentence that lost its full stop at the end of a paragraph is no
    heading, nor is a list item ending in a comma, nor a sentence over several lines that ends in the
    command it introduces: "After the above, then:\n\n    make install")."""
    line = readable(sentence)
    return ((line.endswith("?") and not _TAG_QUESTION.search(line)) or sentence.lstrip().startswith("#")
            or bool(_SECTION_NUMBER.match(line)) or bool(_QUESTION_LABEL.match(line))
            or (own_line and line[-1:] not in ".!,;\"'”’)" and len(words(line)) < 16 and "\n" not in sentence.strip()))


def _on_own_line(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] has a line to itself (nothing else before or after it on its line)."""
    return (not text[:start].strip() or text[:start].rstrip(" \t").endswith("\n")) and \
        (not text[end:].strip() or text[end:].lstrip(" \t").startswith("\n"))


def _is_fragment(sentence: str) -> bool:
    """A command or code line set on its own line ("dpkg --list"): part of the sentence before it."""
    line = sentence.strip()
    return len(words(line)) <= 6 and line[-1:] not in ".!?\"'”’)"


def _quote(candidate: Candidate) -> str:
    """The passage text the answer came from: the sentence before the claim, the claim with what
    belongs to it, plus the following sentence when it fits in QUOTE_CHARS."""
    text = candidate.hit.passage.text
    end = _claim_spans(candidate)[-1][1]
    following = next(((a, b) for a, b in sentence_spans(text, end)), None)
    if following and following[1] - candidate.context <= QUOTE_CHARS:
        end = following[1]
    return text[candidate.context:end]


def _same_claim(a: Candidate, b: Candidate) -> bool:
    overlap = set(words(a.sentence.lower())) & set(words(b.sentence.lower()))
    return len(overlap) / max(len(set(words(a.sentence.lower()))), 1) > 0.6
