"""Answer-quality evaluation over the seeds: `python -m tests.answer_eval` prints the table.

For each question: did retrieval put the right document at rank 1 / in the top 3, does the
answer contain the expected fact, and did the bot abstain. Run once with hybrid retrieval and
once with BM25 alone, so the hybrid's gain is a ratio from the same run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bot.core.answer import answer_question
from bot.core.service import ASK_PASSAGES, Service

QUESTIONS = Path(__file__).parent / "data" / "answer_eval.json"


@dataclass
class Scores:
    hit1: float
    hit3: float
    fact: float
    abstained_answerable: float
    abstained_unanswerable: float
    misses: list[str]

    def row(self, label: str) -> str:
        return (f"{label:<7} hit@1 {self.hit1:6.1%}  hit@3 {self.hit3:6.1%}  fact {self.fact:6.1%}  "
                f"abstained: answerable {self.abstained_answerable:6.1%}, unanswerable {self.abstained_unanswerable:6.1%}")


def evaluate(service: Service, dense: bool = True) -> Scores:
    data = json.loads(QUESTIONS.read_text())
    hit1 = hit3 = facts = wrongly_abstained = 0
    misses = []
    for item in data["answerable"]:
        hits = service.retriever.search(item["q"], limit=ASK_PASSAGES, dense=dense)
        ranked_docs = [h.document.path.split("/")[-1][:3] for h in hits]
        hit1 += ranked_docs[:1] == [item["doc"]]
        hit3 += item["doc"] in ranked_docs[:3]
        answer = answer_question(item["q"], hits, service.models.encoder, service.embed_sentences)
        wrongly_abstained += answer.abstained
        found = any(f.lower() in answer.text.lower() for f in item["fact"])
        facts += found
        if not found:
            misses.append(f"{item['q']} -> {answer.text[:160] or '(abstained)'}")
    abstained = 0
    for question in data["unanswerable"]:
        hits = service.retriever.search(question, limit=ASK_PASSAGES, dense=dense)
        answer = answer_question(question, hits, service.models.encoder, service.embed_sentences)
        abstained += answer.abstained
        if not answer.abstained:
            misses.append(f"(unanswerable) {question} -> {answer.text[:160]}")
    n, u = len(data["answerable"]), len(data["unanswerable"])
    return Scores(hit1 / n, hit3 / n, facts / n, wrongly_abstained / n, abstained / u, misses)


def main() -> None:
    import dataclasses
    import shutil
    import tempfile

    from bot.config import Settings
    from bot.core.ingest import index_paths
    from bot.core.service import open_service

    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(Settings.from_env({}), db_path=f"{tmp}/eval.db")
        service = open_service(settings)
        index_paths(service.store, [Path(__file__).parent.parent / "seeds"])
        service.embed_missing()
        hybrid, bm25 = evaluate(service, dense=True), evaluate(service, dense=False)
        print(hybrid.row("hybrid"))
        print(bm25.row("bm25"))
        print(f"hybrid/bm25 hit@3 ratio {hybrid.hit3 / max(bm25.hit3, 1e-9):.2f}, "
              f"fact ratio {hybrid.fact / max(bm25.fact, 1e-9):.2f}")
        for miss in hybrid.misses:
            print("  miss:", miss)
        service.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
