"""What a digest says: the documents not yet posted to a channel, their one-line briefs, and the Reply
that carries them (the platform's poster renders and sends it)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from bot.core import stories as story_rules
from bot.core.digest_rules import DigestFilter, Period, iso
from bot.core.values import DigestItem, Document, Reply, Target
from bot.core.stories import Story, StoryDoc
from bot.core.store import Store

if TYPE_CHECKING:
    from bot.core.service import Service

MAX_ITEMS = 25  # per digest; the rest wait for the next one (newest first)
SUMMARY_CHARS = 300


def new_documents(store: Store, target: Target) -> list[Document]:
    """Indexed documents never posted to `target`, newest first."""
    posted = store.schedules.posted_doc_ids(target)
    return [doc for doc in store.documents() if doc.id not in posted]


def brief(overview: str) -> str:
    """A digest item's one line: the summary's overview sentence (its key points are behind /summary),
    cut at a word within SUMMARY_CHARS."""
    line = " ".join(overview.split())
    return line if len(line) <= SUMMARY_CHARS else line[:SUMMARY_CHARS].rsplit(" ", 1)[0] + "…"


@dataclasses.dataclass(frozen=True)
class Batch:
    """What a channel's next digest holds: its items, how many more documents wait for the digest
    after it, and the documents its filter dropped, each with the reason."""

    items: list[DigestItem]
    remaining: int
    dropped: list[tuple[Document, str]]


async def build_items(service: "Service", target: Target, keep_alive: Callable[[], None] | None = None) -> Batch:
    """The documents not yet posted to `target` that pass its filter, newest first (at most MAX_ITEMS),
    with their summaries. `keep_alive` runs after each summary (the outbox renews its lease there, and
    stops the build by raising when it lost it)."""
    schedule = service.store.schedules.schedule_for(target)
    new, dropped = await service.in_lookup(filter_documents, service, new_documents(service.store, target),
                                           schedule and schedule.filter)  # a topic filter encodes: off the loop
    items = []
    for doc in new[:MAX_ITEMS]:
        summary = await service.summarize(doc)
        if keep_alive:
            keep_alive()
        items.append(DigestItem(doc.id, doc.title, doc.link, doc.url, doc.path, brief(summary.overview), doc.published))
    return Batch(items, len(new) - len(items), dropped)


def passage_matrices(service: "Service", doc_ids: list[str]) -> dict[str, np.ndarray]:
    """Each document's passage vectors cached in the store (documents not embedded yet are left out)."""
    store = service.store
    owner = {p.id: doc_id for doc_id in doc_ids for p in store.passages(doc_id)}
    ids, matrix = store.passage_vectors_of(service.models.encoder_id, np.fromiter(owner, dtype=np.int64))
    rows: dict[str, list[int]] = {}
    for row, passage_id in enumerate(ids):
        rows.setdefault(owner[int(passage_id)], []).append(row)
    return {doc_id: matrix[found] for doc_id, found in rows.items()}


def document_vectors(service: "Service", doc_ids: list[str]) -> dict[str, np.ndarray | None]:
    """Each document's vector: the mean of its passage vectors (None: not embedded yet)."""
    matrices = passage_matrices(service, doc_ids)
    return {doc_id: story_rules.document_vector(matrices[doc_id]) if doc_id in matrices else None
            for doc_id in doc_ids}


def filter_documents(service: "Service", docs: list[Document], digest_filter: DigestFilter | None
                     ) -> tuple[list[Document], list[tuple[Document, str]]]:
    """The documents `digest_filter` keeps, and those it drops with the reason why."""
    if digest_filter is None:
        return docs, []
    store, kept, dropped = service.store, [], []
    topic_scores: dict[str, float] = {}
    if digest_filter.topic:
        query = service.models.encoder.embed_queries([digest_filter.topic])[0].astype(np.float32)
        topic_scores = {doc_id: float((matrix.astype(np.float32) @ query).max())
                        for doc_id, matrix in passage_matrices(service, [d.id for d in docs]).items()}
    for doc in docs:
        words = set(re.findall(r"\w+", f"{doc.title} {store.document_text(doc.id)}".lower()))
        address = f"{doc.path} {doc.url or ''}"
        if digest_filter.sources and not any(source in address for source in digest_filter.sources):
            reason = "not from " + ", ".join(digest_filter.sources)
        elif digest_filter.include and not words & set(digest_filter.include):
            reason = "none of: " + ", ".join(digest_filter.include)
        elif words & set(digest_filter.exclude):
            reason = "excluded word: " + ", ".join(sorted(words & set(digest_filter.exclude)))
        elif digest_filter.topic and doc.id not in topic_scores:
            reason = "not embedded yet: its closeness to the topic is unknown"
        elif digest_filter.topic and topic_scores[doc.id] < digest_filter.threshold:
            reason = f"off topic ({topic_scores[doc.id]:.2f} < {digest_filter.threshold:.2f})"
        else:
            kept.append(doc)
            continue
        dropped.append((doc, reason))
    return kept, dropped


def find_stories(service: "Service", target: Target, items: list[DigestItem]) -> list[Story]:
    """The items grouped into stories (in item order), each group marked with the earlier digest's story
    it continues, if this channel was shown that story before."""
    store = service.store
    documents = {doc.id: doc for doc in (store.document(item.doc_id) for item in items) if doc}
    vectors = document_vectors(service, list(documents))
    docs = [StoryDoc(doc.id, doc.title, story_rules.names(doc.title, store.document_text(doc.id), doc.language),
                     vectors[doc.id]) for doc in documents.values()]
    found = story_rules.group(docs)
    earlier = store.schedules.posted_stories(target)
    if not earlier:
        return found
    earlier_vectors = document_vectors(service, sorted({i for story in earlier for i in story.doc_ids}))
    candidates = [(n, story.names, story_rules.story_vector([earlier_vectors.get(i) for i in story.doc_ids]))
                  for n, story in enumerate(earlier)]
    marked = []
    for story in found:
        match = story_rules.update_of(story, story_rules.story_vector([vectors[i] for i in story.doc_ids]),
                                      candidates)
        marked.append(story if match is None else dataclasses.replace(
            story, update_of=(earlier[match].label, earlier[match].posted_at)))
    return marked


def day_label(moment: dt.datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y}"


def local_time(moment: dt.datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{day_label(local, zone)} {local:%H:%M %Z}"


def count(n: int) -> str:
    return f"{n} new document" + ("" if n == 1 else "s")


def story_heading(story: Story) -> str:
    """How a grouped story is introduced: its label, and for a follow-up the day it was first shown."""
    if story.update_of:
        when = story.update_of[1]
        return f"New on a story from {when.day} {when:%b}: {story.label}"
    return f"Story: {story.label}"


def in_story_order(items: list[DigestItem], stories: list[Story]) -> list[DigestItem]:
    """The items with each story's documents together, the story's heading before its first item's brief
    (renderers show a story as consecutive items without knowing about stories)."""
    by_id = {item.doc_id: item for item in items}
    ordered = []
    for story in stories:
        members = [by_id[i] for i in story.doc_ids if i in by_id]
        if (story.grouped or story.update_of) and members:
            first = members[0]
            size = f" ({len(members)} documents)" if len(members) > 1 else ""
            members[0] = dataclasses.replace(first, summary=f"{story_heading(story)}{size}. {first.summary}")
            members[1:] = [dataclasses.replace(m, summary=f"Same story: {story.label}. {m.summary}")
                           for m in members[1:]]
        ordered += members
    placed = {item.doc_id for item in ordered}
    return ordered + [item for item in items if item.doc_id not in placed]


def digest_reply(items: list[DigestItem], remaining: int, zone: ZoneInfo, now: dt.datetime,
                 period: Period | None, key: str, stories: list[Story] = ()) -> Reply:
    """The post: a header with the period and count, the grouped stories, then the items (the renderer
    splits long ones)."""
    moment = period.end if period else now
    lines = []
    if period and period.fires > 1:
        lines.append(f"Catch-up digest: covers **{period.days(zone)} days** ({day_label(period.start, zone)} to "
                     f"{day_label(period.end, zone)}), {period.fires} scheduled digests in one.")
    shown = [story for story in stories if story.grouped or story.update_of]
    lines.append(f"**{count(len(items))}**, newest first." if items else "Nothing new since the last digest.")
    items = in_story_order(items, stories)
    number = {item.doc_id: n for n, item in enumerate(items, 1)}
    for story in shown:
        numbers = sorted(number[i] for i in story.doc_ids if i in number)
        span = f"items {numbers[0]}–{numbers[-1]}" if len(numbers) > 1 else f"item {numbers[0]}"
        lines.append(f"• **{story_heading(story)}**: {span}")
    if remaining:
        lines.append(f"_{remaining} more follow in the next digest._")
    return Reply("\n".join(lines), title=f"Digest · {day_label(moment, zone)}", items=items, data={"run": key})


def stories_data(stories: list[Story]) -> list[dict]:
    return [{"label": s.label, "doc_ids": list(s.doc_ids),
             "update_of": s.update_of and {"label": s.update_of[0], "posted_at": iso(s.update_of[1])}}
            for s in stories]


def digest_data(target: Target, since: dt.datetime | None, items: list[DigestItem],
                stories: list[Story] = ()) -> dict:
    """The JSON object scripts get from `digest preview/now --json` (a document outside any group is a
    story of one)."""
    return {"target": target.key, "since": since and iso(since),
            "items": [{"doc_id": i.doc_id, "title": i.title, "path": i.path, "url": i.url, "summary": i.summary}
                      for i in items],
            "stories": stories_data(stories)}
