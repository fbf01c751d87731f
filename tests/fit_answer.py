"""Fit the answer weights on the tune half of the dev set: `python -m tests.fit_answer`.

The model work (retrieval, sentence vectors) runs once per question; then every weight setting
in a small grid re-ranks the same candidates, and the setting with the most facts in the answer
text wins among those that abstain on at least 90% of the unanswerable questions and on at most
5% of the answerable ones (or, when none does, the most facts within the 5%, then the most abstentions). Only the tune
half is read; copy the printed weights into `bot.core.answer.WEIGHTS` and report the held-out
half with `python -m tests.answer_eval`.
"""
from __future__ import annotations

import dataclasses
import itertools
import sys
import time

from bot.core.answer import WEIGHTS, Weights, answer_from, answer_pool, candidates_for
from tests.answer_eval import contains_any, load_dev_questions, open_dev_service

GRID = {
    "coverage": [0.0, 0.05, 0.1],
    "phrase": [0.0, 0.04, 0.08, 0.12],
    "near": [0.0, 0.05, 0.1],
    "other_language": [0.0, 0.02, 0.04, 0.06],
    "section": [0.0, 0.1, 0.2, 0.3],
}
MIN_UNANSWERABLE_ABSTAINED = 0.9
MAX_ANSWERABLE_ABSTAINED = 0.05


def collect(service, questions):
    """Each question with its hits and unscored candidates (the slow part, done once), and for every
    candidate whether the answer it alone would give holds the fact, in its text and in its quote."""
    rows = []
    unbounded = dataclasses.replace(WEIGHTS, min_evidence=float("-inf"))
    for n, item in enumerate(questions, 1):
        hits = service.question_hits(item["q"])
        candidates = candidates_for(item["q"], hits, service.models.encoder, service.embed_sentences,
                                    service.retriever.query_vector(item["q"]))
        gold = item["answers"]
        judged_alone = []
        for candidate in candidates:
            alone = answer_from([candidate], hits, unbounded)
            judged_alone.append((bool(gold) and contains_any(alone.text, gold),
                                 bool(gold) and any(contains_any(s.quote, gold) for s in alone.sources)))
        rows.append((item, hits, candidates, judged_alone))
        if n % 50 == 0:
            print(f"  {n}/{len(questions)} questions", file=sys.stderr)
    return rows


def judged(rows, weights: Weights) -> list[tuple[float, bool, bool, bool]]:
    """Per question: the best candidate's evidence, answerable?, fact in its text?, fact in its quote?
    (The answer's second sentence, when it has one, is left out: the fit ranks, the eval reports.)"""
    result = []
    for item, _, candidates, judged_alone in rows:
        if not candidates:
            result.append((float("-inf"), bool(item["answers"]), False, False))
            continue
        pool, thresholded = answer_pool(candidates)  # as answer_from chooses
        best = max((i for i, c in enumerate(candidates) if any(c is p for p in pool)),
                   key=lambda i: candidates[i].score(weights))
        top = candidates[best].score(weights) if thresholded else float("inf")
        result.append((top, bool(item["answers"]), *judged_alone[best]))
    return result


def outcome(judgements, threshold: float) -> tuple[int, int, int, int, int, int]:
    """(facts, quotes, answerable abstained, unanswerable abstained, n answerable, n unanswerable)."""
    facts = quotes = wrong = right = n = 0
    for top, answerable, fact, quote in judgements:
        answered = top >= threshold
        if answerable:
            n += 1
            wrong += not answered
            facts += answered and fact
            quotes += answered and quote
        else:
            right += not answered
    return facts, quotes, wrong, right, n, len(judgements) - n


def settings(rows, weights: Weights):
    """Every evidence threshold for these weights, with its outcome."""
    judgements = judged(rows, weights)
    for step in range(0, 81):
        threshold = round(0.80 + step * 0.005, 3)
        yield dataclasses.replace(weights, min_evidence=threshold), outcome(judgements, threshold)


def meets_targets(result) -> bool:
    facts, _, wrong, right, n, u = result
    return right / max(u, 1) >= MIN_UNANSWERABLE_ABSTAINED and wrong / max(n, 1) <= MAX_ANSWERABLE_ABSTAINED


def preference(result) -> tuple:
    """Settings that meet both abstention targets first, by facts; then those within the answerable
    abstention cap, by facts, then by abstentions on the unanswerable."""
    facts, _, wrong, right, n, u = result
    if meets_targets(result):
        return (2, facts, right)
    return (int(wrong / max(n, 1) <= MAX_ANSWERABLE_ABSTAINED), facts, right)


def main() -> None:
    start = time.monotonic()
    service = open_dev_service()
    tune = [q for q in load_dev_questions() if q["split"] == "tune"]
    rows = collect(service, tune)
    print(f"candidates for {len(rows)} tune questions in {time.monotonic() - start:.0f}s", file=sys.stderr)
    report("current", rows, WEIGHTS)
    best = max((found for values in itertools.product(*GRID.values())
                for found in settings(rows, dataclasses.replace(WEIGHTS, **dict(zip(GRID, values))))),
               key=lambda found: preference(found[1]))
    report("fitted", rows, best[0])
    if not meets_targets(best[1]):
        print("no setting meets both abstention targets; the best trade-off within the answerable cap:")
    print(best[0])
    print("threshold  fact  abstained: answerable  unanswerable")
    for weights, (facts, _, wrong, right, n, u) in settings(rows, best[0]):
        if abs(weights.min_evidence - best[0].min_evidence) <= 0.05:
            print(f"{weights.min_evidence:9.3f} {facts / n:6.1%}  {wrong / n:20.1%}  {right / max(u, 1):12.1%}")
    service.close()


def report(label: str, rows, weights: Weights) -> None:
    facts, quotes, wrong, right, n, u = outcome(judged(rows, weights), weights.min_evidence)
    print(f"{label:<8} fact {facts / n:6.1%}  quote {quotes / n:6.1%}  answerable abstained {wrong / n:6.1%}  "
          f"unanswerable abstained {right / max(u, 1):6.1%}  (n={n}, unanswerable {u})")


if __name__ == "__main__":
    main()
