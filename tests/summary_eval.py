"""Summary evaluation on the seeds and on tests/data/summary_docs (real documents of several kinds).

    python -m tests.summary_eval            # before (the previous method) and after, per kind
    python -m tests.summary_eval --after    # the current method only (faster)

Columns, each as before -> after:
  topics   share of the title's topics named by the overview or a key point, over the topics that
           some sentence of the text names (the text covers them)
  thirds   share of documents whose key points come from all three thirds of the document
  pronoun  share of key points (and overviews) opening with a pronoun whose antecedent lies outside
           the sentence ("They", "It", "This is"; "And they ...")
  filler   share of key points opening with a speech filler ("So", "Yeah", "Well", ...)
  redund   mean over documents of the highest cosine between two key points
  words    mean words shown (overview plus key points)
  secs     mean seconds per document, cold (the encoders are loaded before timing)

"Before" is the summarizer this replaced: in each window of four passages its three most central
sentences, then four of those by maximal marginal relevance, shown as they are. It lives here, not in
the product, only to be measured against.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bot.core.ingest import build_document  # noqa: E402
from summarizer import Models  # noqa: E402
from summarizer.extractive import mentions, starts_unresolved, title_topics  # noqa: E402
from summarizer.text import readable, split_sentences, trim_fillers, word_count, words  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETS = {"seed": ROOT / "seeds", "doc": ROOT / "tests" / "data" / "summary_docs"}


@dataclass
class Doc:
    name: str
    kind: str
    language: str
    title: str
    text: str
    passages: list[str]


@dataclass
class Outcome:
    """One method's summary of one document, with what the table measures."""
    shown: list[str]  # overview (if any) and key points, as a reader sees them
    points: list[str]
    sources: list[str]
    seconds: float
    topics_named: int = 0
    topics_covered: int = 0
    thirds: int = 0
    unresolved: int = 0
    fillers: int = 0
    redundancy: float = 0.0
    words: int = 0


def load_documents(sets=SETS) -> list[Doc]:
    docs = []
    for label, folder in sets.items():
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        for name, info in sorted(meta.items()):
            raw = (folder / name).read_text(encoding="utf-8")
            doc, text, passages = build_document(raw, path=f"{folder.name}/{name}", title=info.get("title"),
                                                 language=info.get("language"))
            kind = "seed" if label == "seed" else info["kind"]
            docs.append(Doc(name, kind, doc.language, doc.title, text, [p[2] for p in passages]))
    return docs


# -- the method this replaced (kept here only to be measured against) -----------------------------
_OLD_URLISH = re.compile(r"https?://|www\.|\]\(|\[\d+\]")


def _old_is_summary_sentence(sentence: str) -> bool:
    n = word_count(sentence)
    letters = sum(ch.isalpha() for ch in sentence)
    return (8 <= n <= 60 and letters / max(len(sentence), 1) > 0.6 and not _OLD_URLISH.search(sentence)
            and sentence.rstrip()[-1:] in ".!?。！？\"'”’")


def before_summary(encoder, passages: list[str]) -> list[str]:
    """Central sentences per window of 4 passages (3 each), then 4 by MMR (lambda 0.7), in order."""
    candidates, vectors = [], []
    for start in range(0, len(passages), 4):
        window = [readable(s) for p in passages[start:start + 4] for s in split_sentences(p)]
        window = [s for s in window if _old_is_summary_sentence(s)]
        if not window:
            continue
        embedded = encoder.embed_passages(window)
        centrality = embedded @ _unit(embedded.mean(axis=0))
        for i in sorted(np.argsort(-centrality)[:3]):
            candidates.append(window[i])
            vectors.append(embedded[i])
    if not candidates:
        return [s for p in passages for s in split_sentences(p) if word_count(s) >= 4][:4]
    matrix = np.stack(vectors)
    relevance = matrix @ _unit(matrix.mean(axis=0))
    chosen: list[int] = []
    while len(chosen) < min(4, len(matrix)):
        redundancy = (matrix @ matrix[chosen].T).max(axis=1) if chosen else np.zeros(len(matrix))
        scores = 0.7 * relevance - 0.3 * redundancy
        scores[chosen] = -np.inf
        chosen.append(int(np.argmax(scores)))
    return [candidates[i] for i in sorted(chosen)]


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / (np.linalg.norm(vector) or 1.0)


# -- measuring ------------------------------------------------------------------------------------
def covered_topics(doc: Doc) -> list[str]:
    """Title topics some sentence of the text names (echoes of the title itself do not count)."""
    topics = title_topics(doc.title)
    sentences = [s for s in split_sentences(doc.text) if word_count(s) >= 6
                 and sum(t.lower() in s.lower() for t in topics) < 2]
    return [t for t in topics if any(mentions(t, s) for s in sentences)]


def has_leading_filler(sentence: str) -> bool:
    first = words(sentence)[:1]
    return bool(first) and words(trim_fillers(sentence))[:1] != first


def measure(doc: Doc, encoder, shown: list[str], points: list[str], sources: list[str], seconds: float) -> Outcome:
    out = Outcome(shown, points, sources, seconds)
    topics = covered_topics(doc)
    out.topics_covered = len(topics)
    out.topics_named = sum(any(mentions(t, s) for s in shown) for t in topics)
    flat = " ".join(doc.text.split())  # sources of the method before were whitespace-collapsed
    positions = [flat.find(" ".join(s.split())[:60]) for s in sources]
    out.thirds = len({3 * p // max(len(flat), 1) for p in positions if p >= 0})
    out.unresolved = sum(starts_unresolved(s) for s in shown)
    out.fillers = sum(has_leading_filler(s) for s in shown)
    if len(points) > 1:
        vectors = encoder.embed_passages(points)
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, -1)
        out.redundancy = float(similarity.max())
    out.words = sum(word_count(s) for s in shown)
    return out


def run_after(models: Models, doc: Doc) -> Outcome:
    encoder = models.reading_encoder(doc.language)
    started = time.perf_counter()
    summary = models.summarize(doc.passages, doc.language, "English", doc.title)
    seconds = time.perf_counter() - started
    points = [p.text for p in summary.points]
    return measure(doc, encoder, [summary.overview, *points], points, [p.source for p in summary.points], seconds)


def run_before(models: Models, doc: Doc) -> Outcome:
    encoder = models.reading_encoder(doc.language)
    started = time.perf_counter()
    sentences = before_summary(encoder, doc.passages)
    seconds = time.perf_counter() - started
    return measure(doc, encoder, sentences, sentences, sentences, seconds)


@dataclass
class Row:
    label: str
    outcomes: list[Outcome] = field(default_factory=list)

    def figures(self) -> dict[str, float]:
        o = self.outcomes
        shown = sum(len(x.shown) for x in o) or 1
        covered = sum(x.topics_covered for x in o)
        return {
            "topics": sum(x.topics_named for x in o) / covered if covered else float("nan"),
            "thirds": sum(x.thirds == 3 for x in o) / len(o),
            "pronoun": sum(x.unresolved for x in o) / shown,
            "filler": sum(x.fillers for x in o) / shown,
            "redund": float(np.mean([x.redundancy for x in o])),
            "words": float(np.mean([x.words for x in o])),
            "secs": float(np.mean([x.seconds for x in o])),
        }


FORMATS = {"topics": "{:.0%}", "thirds": "{:.0%}", "pronoun": "{:.1%}", "filler": "{:.1%}", "redund": "{:.2f}",
           "words": "{:.0f}", "secs": "{:.1f}"}


def table(rows: list[tuple[str, int, dict | None, dict]]) -> str:
    header = f"{'set':<22}{'docs':>5}  " + "  ".join(f"{k:>15}" for k in FORMATS)
    lines = [header, "-" * len(header)]
    for label, count, before, after in rows:
        cells = []
        for key, fmt in FORMATS.items():
            value = fmt.format(after[key])
            cells.append(f"{fmt.format(before[key]) + ' -> ' + value if before else value:>15}")
        lines.append(f"{label:<22}{count:>5}  " + "  ".join(cells))
    return "\n".join(lines)


def evaluate(models: Models, docs: list[Doc], with_before: bool = True):
    """Per-document outcomes of both methods and the table rows (per kind and language, and overall)."""
    models.reading_encoder("en").embed_passages(["warm up"])
    models.reading_encoder("de").embed_passages(["warm up"])
    after = {d.name: run_after(models, d) for d in docs}
    before = {d.name: run_before(models, d) for d in docs} if with_before else {}
    groups: dict[str, list[Doc]] = {}
    for d in docs:
        groups.setdefault(f"{d.kind} ({d.language})", []).append(d)
    groups["all but seeds"] = [d for d in docs if d.kind != "seed"]
    groups["all"] = docs
    rows = []
    for label, members in groups.items():
        b = Row(label, [before[d.name] for d in members]).figures() if with_before else None
        rows.append((label, len(members), b, Row(label, [after[d.name] for d in members]).figures()))
    return before, after, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--after", action="store_true", help="measure the current method only")
    parser.add_argument("--show", nargs="*", default=["000_e8e752ce90d85e32.txt", "001_bbe9685bcaad8dc0.txt",
                                                       "004_26890ec86dba1039.txt"],
                        help="documents whose summaries are printed before and after")
    args = parser.parse_args()
    models = Models(threads=1)
    docs = load_documents()
    before, after, rows = evaluate(models, docs, with_before=not args.after)
    for name in args.show:
        doc = next(d for d in docs if d.name == name)
        print(f"\n## {doc.title} ({doc.language}, {doc.kind})")
        if name in before:
            print("before:\n" + "\n".join(f"  - {s}" for s in before[name].shown))
        print("after:\n  " + after[name].shown[0] + "\n" + "\n".join(f"  • {s}" for s in after[name].points))
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
