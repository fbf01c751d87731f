"""Followed feeds against a real HTTP server on 127.0.0.1: entry identity, conditional polls, errors, scheduling."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from html import escape

import pytest
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.adapters.console import ConsolePoster
from bot.core import feeds
from bot.core.feeds import add_feed_job, feed_status, poll_feeds
from bot.core.fetch import add_bytes
from bot.core.values import Actor, Request, Target
from bot.core.watch import watch_folders
from tests.local_web import LocalWeb, web_server  # noqa: F401 - fixture

ADMIN = Actor("admin", "An admin", is_admin=True)
MEMBER = Actor("member", "A member")
TARGET = Target("console", "local", "test")

TOPICS = {
    "a": ("Pruning Apple Trees", "Prune apple trees in late winter while they are dormant, cutting crossing branches."),
    "b": ("Building Raised Beds", "Raised beds warm up sooner in spring and drain well after heavy rain."),
    "c": ("Saving Bean Seeds", "Let bean pods dry on the plant until they rattle, then shell and store them cool."),
    "d": ("Attracting Pollinators", "Native flowers that bloom in sequence keep bees visiting from April to October."),
}


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, allow_private_urls=True)


def page(key: str) -> str:
    title, body = TOPICS[key]
    return (f"<html><head><title>{title}</title></head>"
            f"<body><article><h1>{title}</h1><p>{body}</p></article></body></html>")


def rss(items: list[dict], title: str = "Garden Notes") -> str:
    def item(i: dict) -> str:
        parts = [f"<{tag}>{escape(i[key])}</{tag}>" for key, tag in
                 (("title", "title"), ("link", "link"), ("guid", "guid"), ("date", "pubDate"),
                  ("summary", "description")) if key in i]
        return f"<item>{''.join(parts)}</item>"

    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title><link>http://x/</link>'
            f'{"".join(item(i) for i in items)}</channel></rss>')


def atom(entries: list[dict], title: str = "Garden Atom") -> str:
    def entry(e: dict) -> str:
        return (f"<entry><title>{escape(e['title'])}</title><id>{escape(e['guid'])}</id>"
                f'<link href="{escape(e["link"])}"/><updated>2024-05-0{e["day"]}T08:00:00Z</updated></entry>')

    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>{title}</title>'
            f'<id>urn:garden</id><updated>2024-05-01T00:00:00Z</updated>{"".join(entry(e) for e in entries)}</feed>')


async def run(service, command: str, actor: Actor = ADMIN, **args: str):
    return await service.handle(Request(command, args, actor, TARGET))


def serve_pages(server: LocalWeb, *keys: str, prefix: str = "/posts/") -> dict[str, str]:
    return {key: server.page(f"{prefix}{key}", page(key)) for key in keys}


def titles(service) -> list[str]:
    return sorted(d.title for d in service.store.documents())


async def test_feed_commands_are_for_admins(service, web_server):
    url = web_server.page("/feed.xml", rss([]), content_type="application/rss+xml")
    for command, args in (("feed add", {"url": url}), ("feed list", {}), ("feed remove", {"feed": "1"})):
        reply = await run(service, command, MEMBER, **args)
        assert not reply.ok and "admins only" in reply.text
    assert web_server.requests == [] and service.store.feeds.feeds() == []


async def test_add_list_remove(service, web_server):
    links = serve_pages(web_server, "a", "b")
    items = [{"title": TOPICS[k][0], "link": links[k], "guid": f"post-{k}", "date": "Tue, 07 May 2024 08:00:00 GMT"}
             for k in ("a", "b")]
    url = web_server.page("/feed.xml", rss(items), content_type="application/rss+xml")

    added = await run(service, "feed add", url=url)
    assert added.ok, added.text
    assert added.text == "Following **Garden Notes** (feed `1`): 2 new entries indexed."
    docs = {d.title: d for d in service.store.documents()}
    assert set(docs) == {"Pruning Apple Trees", "Building Raised Beds"}
    assert docs["Pruning Apple Trees"].url == links["a"] and docs["Pruning Apple Trees"].published == "2024-05-07"
    assert service.embedder.wait_idle(120)  # vectors are filled in by the background embedder
    assert service.store.missing_embeddings(service.models.encoder_id) == []

    again = await run(service, "feed add", url=url)
    listed = await run(service, "feed list")
    assert not again.ok and "already followed" in again.text
    assert listed.data["feeds"][0] | {"last_polled": None} == {
        "feed_id": 1, "url": url, "title": "Garden Notes", "entries": 2, "last_polled": None,
        "error_count": 0, "last_error": None}
    assert feed_status(service.store) == {"feeds": "1 followed"}

    removed = await run(service, "feed remove", feed=url)
    assert removed.ok and "the 2 documents it added stay indexed" in removed.text
    assert service.store.feeds.feeds() == [] and len(service.store.documents()) == 2
    assert feed_status(service.store) == {}


@pytest.mark.parametrize("kind", ["rss", "atom"])
async def test_changed_links_and_republished_entries_are_not_indexed_twice(service, web_server, kind):
    build, content_type = (rss, "application/rss+xml") if kind == "rss" else (atom, "application/atom+xml")
    links = serve_pages(web_server, "a", "b", "c")
    entries = [{"title": TOPICS[k][0], "link": links[k], "guid": f"urn:post:{k}", "day": "1",
                "date": "Wed, 01 May 2024 08:00:00 GMT"} for k in ("a", "b")]
    url = web_server.page("/feed", build(entries), content_type=content_type)
    assert (await run(service, "feed add", url=url)).ok
    assert titles(service) == ["Building Raised Beds", "Pruning Apple Trees"]

    # Poll 2: the old entries moved (new links, new dates, a retitled one), plus one new entry.
    moved = serve_pages(web_server, "a", "b", prefix="/moved/")
    republished = [dict(e, link=moved[k] + "?utm_source=feed", day="3", date="Fri, 03 May 2024 08:00:00 GMT")
                   for e, k in zip(entries, ("a", "b"))]
    republished[0]["title"] = "Pruning Apple Trees (updated)"
    new = {"title": TOPICS["c"][0], "link": links["c"], "guid": "urn:post:c", "day": "2",
           "date": "Thu, 02 May 2024 08:00:00 GMT"}
    web_server.page("/feed", build([new] + republished), content_type=content_type)

    [result] = await poll_feeds(service)
    assert (result.added, result.known, result.error) == (1, 0, None)
    assert titles(service) == ["Building Raised Beds", "Pruning Apple Trees", "Saving Bean Seeds"]
    assert web_server.hits("/moved/a?utm_source=feed") == []  # known entries are not even fetched


async def test_identity_falls_back_to_link_then_title_and_date(service, web_server):
    links = serve_pages(web_server, "a")
    items = [
        {"title": TOPICS["a"][0], "link": links["a"]},  # no guid: the link identifies it
        {"title": "Frost Dates", "date": "Mon, 06 May 2024 08:00:00 GMT",  # neither: title + date
         "summary": "<p>The last spring frost here usually falls in the second week of May.</p>"},
    ]
    url = web_server.page("/feed.xml", rss(items), content_type="application/rss+xml")
    assert (await run(service, "feed add", url=url)).ok
    frost = next(d for d in service.store.documents() if d.title == "Frost Dates")
    assert frost.path.startswith(url + "#") and "second week of May" in service.store.document_text(frost.id)

    [result] = await poll_feeds(service)
    assert (result.added, result.known) == (0, 0) and len(service.store.documents()) == 2


async def test_an_unreachable_entry_page_falls_back_to_the_feed_text(service, web_server):
    dead = web_server.page("/posts/dead", "gone", status=404)
    items = [{"title": "Mulch Myths", "link": dead, "guid": "m1",
              "summary": "Wood chip mulch does not steal nitrogen from established plant roots."}]
    url = web_server.page("/feed.xml", rss(items), content_type="application/rss+xml")
    assert (await run(service, "feed add", url=url)).ok
    [doc] = service.store.documents()
    assert (doc.title, doc.url) == ("Mulch Myths", dead)
    assert "steal nitrogen" in service.store.document_text(doc.id)


@pytest.mark.parametrize("validator", ["etag", "last-modified"])
async def test_unchanged_feed_answers_304_and_nothing_is_fetched_again(service, web_server, validator):
    links = serve_pages(web_server, "a")
    body = rss([{"title": TOPICS["a"][0], "link": links["a"], "guid": "a"}]).encode()
    stamp = "Wed, 01 May 2024 08:00:00 GMT"

    async def conditional(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"' or request.headers.get("If-Modified-Since") == stamp:
            return web.Response(status=304)
        header = {"ETag": '"v1"'} if validator == "etag" else {"Last-Modified": stamp}
        return web.Response(body=body, headers={"Content-Type": "application/rss+xml", **header})

    url = web_server.route("/cond.xml", conditional)
    assert (await run(service, "feed add", url=url)).ok
    generation = service.store.generation()

    [result] = await poll_feeds(service)
    assert result.not_modified and result.error is None
    sent = web_server.hits("/cond.xml")[-1].headers
    assert sent.get("If-None-Match" if validator == "etag" else "If-Modified-Since") == (
        '"v1"' if validator == "etag" else stamp)
    assert len(web_server.hits("/posts/a")) == 1 and service.store.generation() == generation


async def test_a_long_backlog_is_indexed_over_several_polls(service, web_server, monkeypatch):
    monkeypatch.setattr(feeds, "MAX_ENTRIES_PER_POLL", 1)
    links = serve_pages(web_server, "a", "b")
    body = rss([{"title": TOPICS[k][0], "link": links[k], "guid": k} for k in ("a", "b")])
    url = web_server.page("/feed.xml", body, content_type="application/rss+xml", headers={"ETag": '"v1"'})
    first = await run(service, "feed add", url=url)
    assert first.ok and first.text.endswith("1 new entry indexed, 1 more on the next polls.")
    [result] = await poll_feeds(service)
    assert (result.added, result.waiting) == (1, 0) and len(service.store.documents()) == 2
    assert "If-None-Match" not in web_server.hits("/feed.xml")[-1].headers  # the backlog needed the full feed
    assert service.store.feeds.feeds()[0].etag == '"v1"'


async def test_failed_polls_are_counted_and_shown_in_status(service, web_server):
    url = web_server.page("/feed.xml", rss([]), content_type="application/rss+xml")
    assert (await run(service, "feed add", url=url)).ok
    web_server.page("/feed.xml", "down for maintenance", status=503)
    await poll_feeds(service)
    [result] = await poll_feeds(service)
    assert result.error == "127.0.0.1 answered 503 Service Unavailable; not indexed."
    assert feed_status(service.store) == {
        "feeds": "1 followed, 1 failing",
        "feed errors": f"Garden Notes: 2 failed polls in a row ({result.error})"}
    listed = await run(service, "feed list")
    assert "2 failed polls in a row" in listed.text and listed.data["feeds"][0]["error_count"] == 2

    web_server.page("/feed.xml", "<html><body>not a feed</body></html>")
    [result] = await poll_feeds(service)
    assert "not an RSS or Atom feed" in result.error and service.store.feeds.feeds()[0].error_count == 3

    web_server.page("/feed.xml", rss([]), content_type="application/rss+xml")
    [result] = await poll_feeds(service)
    assert result.error is None and feed_status(service.store) == {"feeds": "1 followed"}


async def test_things_that_are_not_feeds_are_refused(service, web_server):
    html = web_server.page("/blog", page("a"))
    gone = web_server.page("/gone.xml", "no", status=404)
    for url, expected in ((html, "not an RSS or Atom feed"), (gone, "answered 404"),
                          ("ftp://127.0.0.1/feed.xml", "Only http and https")):
        reply = await run(service, "feed add", url=url)
        assert not reply.ok and expected in reply.text and "\n" not in reply.text
    assert service.store.feeds.feeds() == [] and service.store.documents() == []


async def test_the_scheduler_job_polls_feeds(service, web_server):
    links = serve_pages(web_server, "a", "d")
    url = web_server.page("/feed.xml", rss([{"title": TOPICS["a"][0], "link": links["a"], "guid": "a"}]),
                          content_type="application/rss+xml")
    assert (await run(service, "feed add", url=url)).ok
    web_server.page("/feed.xml", rss([{"title": TOPICS["d"][0], "link": links["d"], "guid": "d"},
                                      {"title": TOPICS["a"][0], "link": links["a"], "guid": "a"}]),
                    content_type="application/rss+xml")
    scheduler = AsyncIOScheduler(timezone="UTC")
    add_feed_job(scheduler, service, minutes=60)
    assert scheduler.get_job("feeds").trigger.interval == dt.timedelta(minutes=60)
    scheduler.start()
    try:
        async with asyncio.timeout(20):
            while "Attracting Pollinators" not in titles(service) or \
                    service.store.missing_embeddings(service.models.encoder_id):
                await asyncio.sleep(0.05)
    finally:
        scheduler.shutdown(wait=False)
    assert titles(service) == ["Attracting Pollinators", "Pruning Apple Trees"]


async def test_the_digest_picks_up_documents_added_by_each_path(service, web_server, tmp_path, capsys):
    """URL, attachment, feed and watched folder: each new document is in the channel's next digest."""
    channel = Target("console", "local", "garden")
    service.register_poster("console", ConsolePoster())  # the digest prints on stdout
    folder = tmp_path / "watched"
    folder.mkdir()
    ready = asyncio.Event()
    watcher = asyncio.create_task(watch_folders(service, [folder], ready=ready, debounce_ms=300))
    try:
        async with asyncio.timeout(15):
            await ready.wait()
        links = serve_pages(web_server, "a", "b", "c")
        assert (await run(service, "add", MEMBER, url=links["a"])).ok
        upload = await add_bytes(service, MEMBER, b"# Frost Dates\n\nThe last frost here falls in mid May.\n",
                                 name="frost.md", content_type="text/markdown", url="https://files.example/frost.md")
        assert upload.ok
        feed = web_server.page("/feed.xml", rss([{"title": TOPICS["b"][0], "link": links["b"], "guid": "b"}]),
                               content_type="application/rss+xml")
        assert (await run(service, "feed add", url=feed)).ok
        (folder / "bees.txt").write_text("Bee Hotels\n\nDrilled hardwood blocks give solitary bees a place to nest.\n")
        async with asyncio.timeout(15):
            while len(service.store.documents()) < 4:
                await asyncio.sleep(0.05)

        preview = await run(service, "digest preview", MEMBER)
        assert sorted(i["title"] for i in preview.data["items"]) == [
            "Bee Hotels", "Building Raised Beds", "Frost Dates", "Pruning Apple Trees"]
        assert (await service.handle(Request("digest now", {}, ADMIN, channel))).ok  # posting is for admins
        capsys.readouterr()

        assert (await run(service, "add", MEMBER, url=links["c"])).ok
        later = await service.handle(Request("digest preview", {}, MEMBER, channel))
        assert [i["title"] for i in later.data["items"]] == ["Saving Bean Seeds"]
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_a_poll_has_one_deadline_and_fetches_entries_a_few_at_a_time(service, web_server, monkeypatch):
    """Slow entry pages cannot hold a poll past its deadline; what was not reached waits for the next poll."""
    monkeypatch.setattr(feeds, "POLL_DEADLINE_S", 3.0)
    monkeypatch.setattr(feeds, "ENTRY_TIMEOUT_S", 1.0)
    monkeypatch.setattr(feeds, "ENTRY_CONCURRENCY", 2)
    in_flight, most = 0, 0
    fetch_page = feeds.web.fetch

    async def counted_fetch(*args, **kwargs):
        """Entry fetches in flight, counted where the poll makes them (a count in the server lags
        behind a client that gave up, on a busy machine)."""
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await fetch_page(*args, **kwargs)
        finally:
            in_flight -= 1

    async def slow(request: web.Request) -> web.Response:
        for _ in range(100):  # answers after 5 s, or notices within 50 ms that the client gave up
            if request.transport is None or request.transport.is_closing():
                break
            await asyncio.sleep(0.05)
        return web.Response(text=page("a"), content_type="text/html")

    items = [{"title": f"Bed {i}", "link": web_server.route(f"/slow/{i}", slow), "guid": f"bed-{i}",
              "summary": f"<p>Raised bed number {i} gets {i + 2} buckets of compost every spring.</p>"}
             for i in range(10)]
    url = web_server.page("/feed.xml", rss([]), content_type="application/rss+xml")
    assert (await run(service, "feed add", url=url)).ok
    web_server.page("/feed.xml", rss(items), content_type="application/rss+xml", headers={"ETag": '"v1"'})
    await service.in_worker(lambda: service.models.encoder)  # loaded up front: the poll is timed, not the model

    monkeypatch.setattr(feeds.web, "fetch", counted_fetch)
    loop = asyncio.get_running_loop()
    started = loop.time()
    [result] = await poll_feeds(service)
    elapsed = loop.time() - started

    # Sequential 20 s fetches took 10 x 5 s here; the slack is for indexing and embedding on a busy machine.
    assert elapsed < feeds.POLL_DEADLINE_S + 10, elapsed
    assert most == 2  # entry pages fetched two at a time, never more
    assert result.added >= 1 and result.late >= 1 and result.added + result.late == 10, result
    assert f"{result.late} left for the next poll (this one ran out of time)" in result.line()
    assert len(service.store.documents()) == result.added  # each failed page fell back to the entry's text

    for i in range(10):
        web_server.page(f"/slow/{i}", "gone", status=404)
    [result] = await poll_feeds(service)
    assert result.late == 0 and len(service.store.documents()) == 10
    assert "If-None-Match" not in web_server.hits("/feed.xml")[-1].headers  # the late entries needed the full feed
