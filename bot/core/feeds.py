"""Followed RSS and Atom feeds: `feed add|list|remove` and the poller the scheduler runs.

Each entry is remembered by its identity (guid, else link, else title + date), so an entry is
indexed once even when its link changes or the feed republishes it. Polls are conditional
(ETag / Last-Modified); a failed poll raises the feed's error count shown in /status.

A feed only creates and updates documents of its own (recorded in feed_documents): an entry whose
address already belongs to another document leaves it alone, and an entry whose page cannot be
fetched is filed under a key of the feed's own. A poll fetches a few entry pages at a time and
stops at one deadline; entries it did not reach wait for the next poll.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from bot.core import fetch as web
from bot.core.extract import html_to_text, same_site
from bot.core.values import Document, Reply, Request, UserError
from bot.core.registry import Param, command
from bot.core.store import Store
from bot.storage.feeds import Feed

if TYPE_CHECKING:
    from bot.core.service import Service

log = logging.getLogger(__name__)

FEED_INTERVAL_MINUTES = 30
MAX_ENTRIES_PER_POLL = 20  # the rest wait for the next poll (which then skips the conditional request)
POLL_DEADLINE_S = 60.0  # one poll, however slow its entry pages are
ENTRY_TIMEOUT_S = 20.0  # one entry page
ENTRY_CONCURRENCY = 4  # entry pages fetched at once
ACCEPT_FEEDS = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"


@dataclass
class PollResult:
    feed: Feed
    added: int = 0  # new or updated documents
    known: int = 0  # entries whose text was already indexed
    unreadable: int = 0  # entries with no text to index
    kept: int = 0  # entries whose address belongs to another document, which was left alone
    waiting: int = 0  # new entries beyond MAX_ENTRIES_PER_POLL, left for the next polls
    late: int = 0  # entries not finished before the poll's deadline, left for the next poll
    not_modified: bool = False
    error: str | None = None

    def line(self) -> str:
        parts = [f"{self.added} new {'entry' if self.added == 1 else 'entries'} indexed"]
        parts += [f"{self.known} already indexed"] if self.known else []
        parts += [f"{self.unreadable} without readable text"] if self.unreadable else []
        parts += [f"{self.kept} left alone (" + ("its address belongs to another document)" if self.kept == 1
                                                 else "their addresses belong to other documents)")] if self.kept else []
        parts += [f"{self.waiting} more on the next polls"] if self.waiting else []
        parts += [f"{self.late} left for the next poll (this one ran out of time)"] if self.late else []
        return ", ".join(parts)


def find_feed(store: Store, needle: str) -> Feed:
    """A feed by its number (as `feed list` shows it) or its URL."""
    needle = needle.strip().lstrip("#")
    feed = store.feeds.find(needle)
    if feed is None:
        raise UserError(f"No followed feed matches {needle[:100]!r}. Try /feed list.")
    return feed


def _claimed(store: Store, feed_id: int, added: web.Added) -> web.Added:
    """`added`, with a document the feed just created recorded as the feed's own."""
    if added.status == "added":
        store.feeds.claim(feed_id, added.document.id)
    return added


def _may_update(store: Store, feed_id: int) -> Callable[[Document], bool]:
    """Whether the feed may update an existing document: only one it created."""
    return lambda doc: store.feeds.owns(feed_id, doc.id)


# -- entries -------------------------------------------------------------------------------------
def parse_feed(fetched: web.Fetched) -> Any:
    """feedparser's view of a fetched body (bytes only: feedparser never fetches anything itself)."""
    import feedparser

    parsed = feedparser.parse(fetched.data)
    if not parsed.version:
        raise web.FetchError(f"{web.host_label(fetched.url)}: not an RSS or Atom feed; nothing was changed.")
    return parsed


def entry_identity(entry: Any) -> str | None:
    """guid / Atom id, else link, else title + date; None for an entry with none of them."""
    if (entry.get("id") or "").strip():
        return "id:" + entry["id"].strip()
    if (entry.get("link") or "").strip():
        return "link:" + entry["link"].strip()
    title = (entry.get("title") or "").strip()
    if title:
        return f"title:{title}|{entry.get('published') or entry.get('updated') or ''}"
    return None


def _entry_date(entry: Any) -> str | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return time.strftime("%Y-%m-%d", parsed) if parsed else None


def _entry_link(entry: Any, base: str) -> str | None:
    link = (entry.get("link") or "").strip()
    try:
        return str(httpx.URL(base).join(link)) if link else None
    except httpx.InvalidURL:
        return None


def _entry_key(feed: Feed, identity: str) -> str:
    """Where the feed files an entry's own text: an address inside the feed's, nobody else's."""
    return f"{feed.url}#{hashlib.sha1(identity.encode()).hexdigest()[:12]}"


def _index_page(service: "Service", feed: Feed, fetched: web.Fetched, title: str | None,
                published: str | None) -> web.Added:
    """An entry's page, unless its address (or the canonical one it names) is another's document."""
    added = web.index_fetched(service, fetched, title=title, published=published,
                              may_update=_may_update(service.store, feed.id))
    return _claimed(service.store, feed.id, added)


def _index_entry_text(service: "Service", feed: Feed, entry: Any, identity: str, link: str | None,
                      title: str | None, published: str | None) -> web.Added | None:
    """The text the feed itself carries for an entry (full content, else its summary).

    It is the feed's word, not the linked page's: filed under the feed's own key, cited under the
    link only when that is on the feed's site, and not indexed at all when another document
    already has the link's address (it would stand in for that document in answers).
    """
    body = next((c.get("value") for c in entry.get("content") or [] if c.get("value")), None) \
        or entry.get("summary") or ""
    text, _ = html_to_text(f"<html><body><article>{body}</article></body></html>") if body.strip() else ("", {})
    if not text.strip():
        return None
    store, key = service.store, _entry_key(feed, identity)
    if link:
        taken = store.document_at(link, other_than=key)
        if taken:
            return web.Added(taken, 0, "kept")
    shown = link if link and same_site(link, feed.url) else key
    added = web.index_extracted(service, web.Extracted(text), link=key, url=shown, title=title,
                                published=published, may_update=_may_update(store, feed.id))
    return _claimed(store, feed.id, added)


async def _index_entry(service: "Service", feed: Feed, entry: Any, identity: str, base: str) -> web.Added | None:
    """The page an entry links to, else the entry's own text; None when neither has text."""
    title, published = (entry.get("title") or "").strip() or None, _entry_date(entry)
    link = _entry_link(entry, base)
    if link:
        try:
            fetched = await web.fetch(link, allow_private=service.settings.allow_private_urls,
                                      timeout=ENTRY_TIMEOUT_S)
            return await service.in_worker(_index_page, service, feed, fetched, title, published)
        except web.FetchError as exc:
            log.info("feed %s: entry %s: %s; indexing the feed's own text", feed.url, link, exc)
    return await service.in_worker(_index_entry_text, service, feed, entry, identity, link, title, published)


async def _index_entries(service: "Service", feed: Feed, entries: list[tuple[str, Any]], base: str,
                         deadline: float) -> list[web.Added | None]:
    """Index (identity, entry) pairs, ENTRY_CONCURRENCY at a time, until `deadline` (event-loop time).

    Each finished entry is recorded at once; the unfinished ones are cancelled and left unrecorded,
    so the next poll tries them again. Returns the finished ones' outcomes.
    """
    gate = asyncio.Semaphore(ENTRY_CONCURRENCY)

    async def one(identity: str, entry: Any) -> web.Added | None:
        async with gate:
            try:
                added = await _index_entry(service, feed, entry, identity, base)
            except UserError as exc:  # e.g. too long to index: settled, not retried
                log.info("feed %s: entry %s: %s", feed.url, identity, exc)
                added = None
        own = added.document.id if added and added.status != "kept" else None
        service.store.feeds.record_entry(feed.id, identity, own, _now(service))
        return added

    tasks = [asyncio.create_task(one(identity, entry)) for identity, entry in entries]
    if not tasks:
        return []
    _, unfinished = await asyncio.wait(tasks, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
    for task in unfinished:
        task.cancel()
    await asyncio.gather(*unfinished, return_exceptions=True)
    return [task.result() for task in tasks if task not in unfinished]


# -- polling -------------------------------------------------------------------------------------
def _now(service: "Service") -> str:
    return service.clock().isoformat(timespec="seconds")


async def poll_feed(service: "Service", feed: Feed) -> PollResult:
    """Fetch one feed (conditionally) and index its new entries; failures are recorded, not raised."""
    result, store = PollResult(feed), service.store
    deadline = asyncio.get_running_loop().time() + POLL_DEADLINE_S
    headers = {k: v for k, v in (("If-None-Match", feed.etag), ("If-Modified-Since", feed.last_modified)) if v}
    try:
        fetched = await web.fetch(feed.url, allow_private=service.settings.allow_private_urls,
                              headers=headers, accept=ACCEPT_FEEDS)
        if fetched.status == 304:
            result.not_modified = True
            store.feeds.record_success(feed.id, _now(service), title=feed.title, etag=feed.etag,
                                       last_modified=feed.last_modified)
            return result
        parsed = await service.in_worker(parse_feed, fetched)
        seen, new = store.feeds.seen(feed.id), {}
        for entry in parsed.entries:
            identity = entry_identity(entry)
            if identity and identity not in seen:
                new.setdefault(identity, entry)
        todo = list(new.items())[:MAX_ENTRIES_PER_POLL]
        finished = await _index_entries(service, feed, todo, fetched.url, deadline)
        for added in finished:
            if added is None:
                result.unreadable += 1
            elif added.status == "duplicate":
                result.known += 1
            elif added.status == "kept":
                result.kept += 1
            else:
                result.added += 1
        result.waiting = max(0, len(new) - MAX_ENTRIES_PER_POLL)
        result.late = len(todo) - len(finished)
        complete = not (result.waiting or result.late)  # else forget the validators: the next poll needs them all
        store.feeds.record_success(feed.id, _now(service), title=parsed.feed.get("title") or feed.title,
                                   etag=fetched.etag if complete else None,
                                   last_modified=fetched.last_modified if complete else None)
        if result.added:
            service.embed_in_background()
    except UserError as exc:
        result.error = str(exc)
    except Exception as exc:  # one broken feed must not stop the others or the scheduler
        log.exception("feed %s: poll failed", feed.url)
        result.error = f"internal error ({type(exc).__name__})"
    if result.error:
        log.warning("feed %s: %s", feed.url, result.error)
        store.feeds.record_failure(feed.id, _now(service), result.error)
    return result


async def poll_feeds(service: "Service") -> list[PollResult]:
    """Poll every followed feed once (what the scheduler runs on an interval)."""
    return [await poll_feed(service, feed) for feed in service.store.feeds.feeds()]


def add_feed_job(scheduler: Any, service: "Service", minutes: int = FEED_INTERVAL_MINUTES) -> None:
    """Register the feed poller on an APScheduler scheduler: first poll right away, then every `minutes`."""
    scheduler.add_job(poll_feeds, "interval", args=[service], minutes=minutes, id="feeds", replace_existing=True,
                      max_instances=1, coalesce=True, misfire_grace_time=60 * minutes,
                      next_run_time=service.clock())


def feed_status(store: Store) -> dict[str, str]:
    """Lines for /status: how many feeds are followed and which ones are failing."""
    feeds = store.feeds.feeds()
    if not feeds:
        return {}
    failing = [f for f in feeds if f.error_count]
    status = {"feeds": f"{len(feeds)} followed" + (f", {len(failing)} failing" if failing else "")}
    if failing:
        status["feed errors"] = "; ".join(
            f"{f.name}: {f.error_count} failed polls in a row ({f.last_error})" for f in failing)
    return status


# -- commands ------------------------------------------------------------------------------------
@command("feed add", Param("url", "Address (http or https) of an RSS or Atom feed"), admin=True, slow=True)
async def feed_add_command(service: "Service", request: Request) -> Reply:
    """Follow an RSS or Atom feed: its new entries are fetched and indexed."""
    url, store = request.args["url"].strip(), service.store
    if store.feeds.follows(url):
        raise UserError("That feed is already followed; nothing was changed.")
    fetched = await web.fetch(url, allow_private=service.settings.allow_private_urls, accept=ACCEPT_FEEDS)
    parsed = await service.in_worker(parse_feed, fetched)
    feed_id = store.feeds.add(url, parsed.feed.get("title"), _now(service))
    result = await poll_feed(service, find_feed(store, str(feed_id)))
    name = result.feed.title or parsed.feed.get("title") or url
    line = f"Following **{name}** (feed `{feed_id}`): {result.line()}."
    if result.error:
        line = f"Following **{name}** (feed `{feed_id}`), but its first poll failed: {result.error}"
    return Reply(line, title="Feed added",
                 data={"feed_id": feed_id, "url": url, "title": name, "added": result.added,
                       "error": result.error})


@command("feed list", admin=True)
async def feed_list_command(service: "Service", request: Request) -> Reply:
    """List the followed feeds, with their entry counts and errors."""
    feeds, counts = service.store.feeds.feeds(), service.store.feeds.entry_counts()
    if not feeds:
        return Reply("No feeds are followed. Add one with /feed add URL.", title="Feeds", data={"feeds": []})
    lines = []
    for f in feeds:
        line = f"`{f.id}` **{f.name}** `{f.url}`: {counts.get(f.id, 0)} entries indexed, " \
               f"last polled {f.last_polled or 'never'}"
        if f.error_count:
            line += f", _{f.error_count} failed polls in a row: {f.last_error}_"
        lines.append(line)
    data = {"feeds": [{"feed_id": f.id, "url": f.url, "title": f.title, "entries": counts.get(f.id, 0),
                       "last_polled": f.last_polled, "error_count": f.error_count, "last_error": f.last_error}
                      for f in feeds]}
    return Reply("\n".join(lines), title=f"Feeds ({len(feeds)})", data=data)


@command("feed remove", Param("feed", "Feed number from /feed list, or its URL"), admin=True)
async def feed_remove_command(service: "Service", request: Request) -> Reply:
    """Stop following a feed (documents it added stay indexed)."""
    feed, store = find_feed(service.store, request.args["feed"]), service.store
    kept = store.feeds.entry_counts().get(feed.id, 0)
    store.feeds.remove(feed.id)
    return Reply(f"Stopped following **{feed.name}**; the {kept} documents it added stay indexed.",
                 title="Feed removed", data={"feed_id": feed.id, "url": feed.url, "documents_kept": kept})
