"""What a digest says: the documents not yet posted to a channel, their one-line briefs, and the Reply
that carries them (the platform's poster renders and sends it)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.core.digest_rules import Period, iso
from bot.core.models import DigestItem, Document, Reply, Target
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


async def build_items(service: "Service", target: Target,
                      keep_alive: Callable[[], None] | None = None) -> tuple[list[DigestItem], int]:
    """The documents not yet posted to `target`, newest first (at most MAX_ITEMS), with their summaries;
    and how many more wait for the next digest. `keep_alive` runs after each summary (the outbox
    renews its lease there, and stops the build by raising when it lost it)."""
    new = new_documents(service.store, target)
    items = []
    for doc in new[:MAX_ITEMS]:
        summary = await service.summarize(doc)
        if keep_alive:
            keep_alive()
        items.append(DigestItem(doc.id, doc.title, doc.link, doc.url, doc.path, brief(summary.overview), doc.published))
    return items, len(new) - len(items)


def day_label(moment: dt.datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y}"


def local_time(moment: dt.datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{day_label(local, zone)} {local:%H:%M %Z}"


def count(n: int) -> str:
    return f"{n} new document" + ("" if n == 1 else "s")


def digest_reply(items: list[DigestItem], remaining: int, zone: ZoneInfo, now: dt.datetime,
                 period: Period | None, key: str) -> Reply:
    """The post: a header with the period and count, then the items (the renderer splits long ones)."""
    moment = period.end if period else now
    lines = []
    if period and period.fires > 1:
        lines.append(f"Catch-up digest: covers **{period.days(zone)} days** ({day_label(period.start, zone)} to "
                     f"{day_label(period.end, zone)}), {period.fires} scheduled digests in one.")
    lines.append(f"**{count(len(items))}**, newest first." if items else "Nothing new since the last digest.")
    if remaining:
        lines.append(f"_{remaining} more follow in the next digest._")
    return Reply("\n".join(lines), title=f"Digest · {day_label(moment, zone)}", items=items, data={"run": key})


def digest_data(target: Target, since: dt.datetime | None, items: list[DigestItem]) -> dict:
    """The JSON object scripts get from `digest preview/now --json`."""
    return {"target": target.key, "since": since and iso(since),
            "items": [{"doc_id": i.doc_id, "title": i.title, "path": i.path, "url": i.url, "summary": i.summary}
                      for i in items]}
