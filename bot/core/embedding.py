"""Model work off the lookup path: passages embedded in the background, queries encoded together.

`BackgroundEmbedder` fills in the vectors of newly indexed passages on a thread of its own at a
lower priority; `QueryVectors` lets the first of several waiting searches encode all their queries
in one encoder call. The Service owns one of each.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from bot.core.values import UserError
from bot.core.retrieve import clean_query
from bot.core.store import Store, StoreError
from summarizer import Models, use_threads
from summarizer.encoder import Encoder

log = logging.getLogger(__name__)
BACKGROUND_BATCH = 8  # passages per background encoder call: small, so lookups never wait long
YIELD_S = 2.0  # how long the background embedder lets running lookups finish before its next batch
ASSUMED_RATE = 5.0  # passages/s the background embedder is assumed to reach before it has measured itself
QUERY_BATCH = 32  # waiting searches whose queries are encoded together
BACKGROUND_NICE = 10  # the background embedder's CPU priority (0 normal, 19 lowest)


def embed_in_batches(store: Store, encoder: Encoder, model_id: str, missing: list[tuple[str, str]],
                     batch: int) -> Iterator[int]:
    """Embed `missing` (hash, text) pairs, `batch` at a time, saving each batch; yields how many
    were embedded after each one (the caller may pause or stop in between)."""
    for start in range(0, len(missing), batch):
        chunk = missing[start:start + batch]
        vectors = encoder.embed_passages([text for _, text in chunk])
        store.save_embeddings(model_id, [(digest, vec) for (digest, _), vec in zip(chunk, vectors)])
        yield len(chunk)


def _lower_priority() -> None:
    """Run the calling thread at a lower CPU priority (Linux keeps one per thread), so that when the
    cores are contended, lookups get them first; nothing happens where that is not possible."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (AttributeError, OSError) as exc:
        log.debug("background embedding runs at normal priority: %s", exc)


class QueryVectors:
    """Query embeddings for the lookup thread, computed for every waiting search at once.

    Searches that arrive together (many people at once) queue for the one lookup thread. Encoding
    their queries in one batch costs little more than encoding one, so the first search encodes
    the queries of all that wait behind it, and they find their vector ready.
    """

    def __init__(self, encoder: Callable[[], Encoder], keep: int = 256):
        self._encoder = encoder
        self._keep = keep
        self._lock = threading.Lock()
        self._waiting: dict[str, int] = {}  # cleaned query -> searches waiting for it
        self._ready: dict[str, np.ndarray] = {}  # oldest first

    def expect(self, query: str) -> str | None:
        """Note a search about to queue (on the event loop); returns the key to `done` it with."""
        try:
            key = clean_query(query)  # what the Retriever will ask to encode
        except UserError:
            return None
        with self._lock:
            self._waiting[key] = self._waiting.get(key, 0) + 1
        return key

    def done(self, key: str | None) -> None:
        if key is None:
            return
        with self._lock:
            if self._waiting.get(key, 0) > 1:
                self._waiting[key] -= 1
            else:
                self._waiting.pop(key, None)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """The Retriever's encoder call (on the lookup thread)."""
        todo = [text for text in texts if text not in self._ready]
        if todo:
            with self._lock:
                others = [q for q in self._waiting if q not in self._ready and q not in todo]
            batch = list(dict.fromkeys(todo + others))[:max(QUERY_BATCH, len(todo))]
            self._ready.update(zip(batch, self._encoder().embed_queries(batch)))
            for old in list(self._ready)[:max(0, len(self._ready) - self._keep)]:
                if old not in texts:
                    del self._ready[old]
        return np.stack([self._ready[text] for text in texts])


class BackgroundEmbedder:
    """Fills in the vectors of newly indexed passages on a thread of its own, a small batch at a time.

    Indexing makes a document searchable by keywords at once; its passages become searchable by
    meaning as this catches up. Before each batch it lets running lookups finish (up to YIELD_S);
    it uses its own encoder instance, its own share of the threads and a lower CPU priority, so a
    search never queues behind a large upload. It reads and writes through a connection of its own.
    """

    def __init__(self, store: Store, models: Models, lookups_idle: Callable[[float], bool]):
        self._main_store = store
        self._models = models
        self._lookups_idle = lookups_idle
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._state = threading.Condition()
        self._active = False
        self._thread: threading.Thread | None = None
        self.rate: float | None = None  # passages/s, measured
        self.backlog = 0  # passages waiting: counted when a round starts, kept up to date in between

    @property
    def active(self) -> bool:
        """Whether work is waiting or under way."""
        return not self._stop.is_set() and (self._active or self._wake.is_set())

    @property
    def started(self) -> bool:
        return self._thread is not None

    def wake(self, passages: int = 0) -> None:
        """Look for passages without vectors (soon; this never blocks); `passages` were just indexed."""
        with self._state:
            if self._stop.is_set():
                return
            self.backlog += passages
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="digestbot-embed", daemon=True)
                self._thread.start()
            self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing waits to be embedded (False on timeout)."""
        with self._state:
            return self._state.wait_for(lambda: not self.active, timeout)

    def seconds_for(self, passages: int) -> float:
        return passages / (self.rate or ASSUMED_RATE)

    def close(self) -> None:
        """Stop after the batch under way (what was embedded is saved; the rest waits for the next start)."""
        with self._state:
            self._stop.set()
            self._wake.set()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        _lower_priority()
        try:
            store = self._main_store.reopen()
        except StoreError as exc:
            log.warning("background embedding shares the service's database connection: %s", exc)
            store = self._main_store
        try:
            while True:
                self._wake.wait()
                with self._state:
                    if self._stop.is_set():
                        return
                    self._active = True
                    self._wake.clear()
                try:
                    self._catch_up(store)
                except Exception:  # a full disk or an encoder failure: tried again with the next document
                    log.exception("background embedding stopped; it resumes when a document is added")
                finally:
                    with self._state:
                        self._active = False
                        self._state.notify_all()
        finally:
            if store is not self._main_store:
                store.close()
            with self._state:
                self._state.notify_all()

    def _catch_up(self, store: Store) -> None:
        """Embed until no passage is left without a vector (documents added meanwhile included)."""
        model_id = self._models.encoder_id
        while not self._stop.is_set():
            missing = store.missing_embeddings(model_id)
            with self._state:
                self.backlog = len(missing)
            if not missing:
                return
            batches = embed_in_batches(store, self._models.bulk_encoder, model_id, missing, BACKGROUND_BATCH)
            while not self._stop.is_set():
                self._lookups_idle(YIELD_S)
                use_threads(self._models.bulk_threads)
                started = time.perf_counter()
                count = next(batches, 0)
                if not count:
                    break
                with self._state:
                    self.backlog = max(0, self.backlog - count)
                rate = count / max(time.perf_counter() - started, 1e-3)
                self.rate = rate if self.rate is None else 0.7 * self.rate + 0.3 * rate
