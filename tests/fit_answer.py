"""Fit the answer weights on the tune half of the dev set: `python -m tests.fit_answer`.

The model work (retrieval, sentence vectors) runs once per question; then every weight setting
in a small grid re-ranks the same candidates (`answer_from`), and the setting with the most
facts in the answer text wins, among those that abstain on at least 90% of the unanswerable
questions and on at most 5% of the answerable ones. Only the tune half is read; print the
result, then copy it into `bot.core.answer.WEIGHTS` and report the held-out half with
`python -m tests.answer_eval`.
"""
from __future__ import annotations

import dataclasses
import itertools
import sys
import time

from bot.core.answer import WEIGHTS, Weights, answer_from, candidates_for
from tests.answer_eval import contains_any, load_dev_questions, open_dev_service

GRID = {
    "coverage": [0.0, 0.05, 0.1, 0.15, 0.2],
    "phrase": [0.0, 0.02, 0.04, 0.06, 0.08],
    "near": [0.0, 0.05, 0.1, 0.2],
    "other_language": [0.0, 0.02, 0.04],
}
MIN_UNANSWERABLE_ABSTAINED = 0.9
MAX_ANSWERABLE_ABSTAINED = 0.05


def collect(service, questions):
    """Each question with its hits and unscored candidates (the slow part, done once)."""
    rows = []
    for n, item in enumerate(questions, 1):
        hits = service.question_hits(item["q"])
        rows.append((item, hits, candidates_for(item["q"], hits, service.models.encoder, service.embed_sentences)))
        if n % 50 == 0:
            print(f"  {n}/{len(questions)} questions", file=sys.stderr)
    return rows


def judged(rows, weights: Weights) -> list[tuple[float, bool, bool, bool]]:
    """Per question: the best candidate's evidence, answerable?, fact in the text?, fact in a quote?"""
    unbounded = dataclasses.replace(weights, min_evidence=float("-inf"))
    result = []
    for item, hits, candidates in rows:
        top = max((c.score(weights) for c in candidates), default=float("-inf"))
        answer = answer_from(candidates, hits, unbounded)
        gold = item["answers"]
        result.append((top, bool(gold), bool(gold) and contains_any(answer.text, gold),
                       bool(gold) and any(contains_any(s.quote, gold) for s in answer.sources)))
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


def best_threshold(rows, weights: Weights) -> tuple[Weights, tuple] | None:
    """The evidence threshold with the most facts that meets both abstention targets."""
    judgements = judged(rows, weights)
    best = None
    for step in range(0, 61):
        threshold = round(0.80 + step * 0.005, 3)
        result = outcome(judgements, threshold)
        facts, _, wrong, right, n, u = result
        if right / max(u, 1) >= MIN_UNANSWERABLE_ABSTAINED and wrong / max(n, 1) <= MAX_ANSWERABLE_ABSTAINED:
            if best is None or facts > best[1][0]:
                best = (dataclasses.replace(weights, min_evidence=threshold), result)
    return best


def main() -> None:
    start = time.monotonic()
    service = open_dev_service()
    tune = [q for q in load_dev_questions() if q["split"] == "tune"]
    rows = collect(service, tune)
    print(f"candidates for {len(rows)} tune questions in {time.monotonic() - start:.0f}s", file=sys.stderr)
    report("current", rows, WEIGHTS)
    best = None
    for values in itertools.product(*GRID.values()):
        weights = dataclasses.replace(WEIGHTS, **dict(zip(GRID, values)))
        found = best_threshold(rows, weights)
        if found and (best is None or found[1][0] > best[1][0]):
            best = found
    if best is None:
        print("no setting meets both abstention targets")
    else:
        report("fitted", rows, best[0])
        print(best[0])
    service.close()


def report(label: str, rows, weights: Weights) -> None:
    facts, quotes, wrong, right, n, u = outcome(judged(rows, weights), weights.min_evidence)
    print(f"{label:<8} fact {facts / n:6.1%}  quote {quotes / n:6.1%}  answerable abstained {wrong / n:6.1%}  "
          f"unanswerable abstained {right / max(u, 1):6.1%}  (n={n}, unanswerable {u})")


if __name__ == "__main__":
    main()
