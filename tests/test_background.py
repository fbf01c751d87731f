"""Heavy work in the background (issue 13 item 3, issue 16 item 3): a large upload is searchable by
keywords at once, its vectors are filled in by a background embedder, and lookups never wait for
it. Real SQLite, the real packaged e5 model; ordering is asserted, not wall-clock times."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from bot.core.fetch import add_bytes
from bot.core.values import Actor, Request, Target
from bot.core.service import Service
from bot.core.store import Store

MEMBER = Actor("member", "A member")
TARGET = Target("console", "local", "test")
TOPICS = ["orchard pruning", "river flooding", "bread baking", "glacier melting", "chess openings",
          "bee keeping", "tide tables", "violin making"]


def long_upload(passages: int) -> bytes:
    """A plain-text document of about `passages` passages (one ~100-word paragraph each)."""
    paragraphs = []
    for n in range(passages):
        topic = TOPICS[n % len(TOPICS)]
        sentence = f"Section {n} of the field manual covers {topic} in the northern valley, step by step. "
        paragraphs.append(sentence * 7 + f"Keyword zanzibarite{n} marks this part.")
    return ("Field manual\n\n" + "\n\n".join(paragraphs)).encode()


def waiting(service: Service) -> int:
    return len(service.store.missing_embeddings(service.models.encoder_id))


async def until(condition: Callable[[], bool], timeout: float = 300.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def handle(service: Service, command: str, **args: str):
    return await service.handle(Request(command, args, MEMBER, TARGET))


async def test_a_search_during_a_large_upload_is_answered_before_its_embeddings_are_done(seeded_service):
    service = seeded_service
    before = waiting(service)
    assert before == 0
    add = asyncio.create_task(add_bytes(service, MEMBER, long_upload(48), name="manual.txt",
                                        content_type="text/plain", url="https://files.example/manual.txt"))
    total = 0

    def embedding_under_way() -> bool:
        nonlocal total
        total = max(total, waiting(service))
        return add.done() or 0 < waiting(service) < total

    await until(embedding_under_way)
    reply = await handle(service, "search", query="zanzibarite47")
    still_waiting = waiting(service)
    assert reply.ok and "Field manual" in reply.text  # found by keywords
    assert still_waiting > 0, "the search waited for the upload's embeddings"
    added = await add
    assert added.ok and "48 passages" in added.text


async def test_the_upload_reply_comes_first_and_status_shows_the_backlog_until_it_is_embedded(seeded_service):
    service = seeded_service
    reply = await add_bytes(service, MEMBER, long_upload(24), name="manual.txt", content_type="text/plain",
                            url="https://files.example/manual.txt")
    backlog = waiting(service)
    assert reply.ok and backlog > 0
    assert "searchable by keywords now" in reply.text and "by meaning in about" in reply.text
    status = await handle(service, "status")
    assert status.data["passages waiting for embeddings"] > 0
    assert "passages waiting for embeddings" in status.text and "searchable by meaning in about" in status.text
    await until(lambda: not service.embedder.active)
    status = await handle(service, "status")
    assert status.data["passages waiting for embeddings"] == 0 and waiting(service) == 0


async def test_dense_search_sees_new_vectors_as_they_arrive(seeded_service):
    """The vector matrix is topped up when embeddings land, not only when documents change."""
    service = seeded_service
    await add_bytes(service, MEMBER, long_upload(16), name="manual.txt", content_type="text/plain",
                    url="https://files.example/manual.txt")
    doc = service.store.document_by_path("https://files.example/manual.txt")
    passage = service.store.passages(doc.id)[-1]
    await service.search("glacier melting in the northern valley")  # loads the matrix before any new vector
    await until(lambda: waiting(service) == 0)
    ranked = await service.in_lookup(lambda: [pid for r in service.retriever._dense_by_language(passage.text, None)
                                              for pid in r])
    assert passage.id in ranked


def test_close_stops_the_background_embedder(settings, models):
    service = Service(settings, Store.open(settings.db_path), models)
    reply = asyncio.run(add_bytes(service, MEMBER, long_upload(64), name="manual.txt", content_type="text/plain",
                                  url="https://files.example/manual.txt"))
    assert reply.ok and waiting(service) > 0
    service.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("digestbot-embed")]
    store = Store.open(settings.db_path)  # what was embedded is saved; the rest waits for the next start
    try:
        assert 0 < len(store.missing_embeddings(models.encoder_id))
    finally:
        store.close()


class CountingEncoder:
    """The real encoder, counting the calls that encode queries."""

    def __init__(self, encoder):
        self.encoder, self.query_calls = encoder, 0
        self.model_id = encoder.model_id

    def embed_queries(self, texts):
        self.query_calls += 1
        return self.encoder.embed_queries(texts)

    def embed_passages(self, texts):
        return self.encoder.embed_passages(texts)


async def test_searches_arriving_together_share_one_query_encoding(seeded_service, models, monkeypatch):
    service = seeded_service
    queries = [f"{topic} {word}" for topic in ("board", "model", "investors", "startup")
               for word in ("fired", "release", "safety", "funding", "research")]
    alone = {q: [h.passage.id for h in await service.search(q)] for q in queries}  # one at a time
    counting = CountingEncoder(models.encoder)
    monkeypatch.setitem(models.__dict__, "encoder", counting)
    together = await asyncio.gather(*(service.search(q) for q in reversed(queries)))
    assert {q: [h.passage.id for h in hits] for q, hits in zip(reversed(queries), together)} == alone
    assert counting.query_calls < len(queries) // 2
