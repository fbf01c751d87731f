"""`add` by URL and by upload, against a real HTTP server on 127.0.0.1: what gets indexed, and what is refused."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os

import pytest
from aiohttp import web

from bot.adapters.console import respond
from bot.cli import main
from bot.core.fetch import MAX_BYTES, FetchError, add_bytes, fetch
from bot.core.ingest import build_document, index_paths
from bot.core.values import Actor, Request, Target
from tests.local_web import closed_port, make_pdf, web_server  # noqa: F401 - fixture

MEMBER = Actor("member", "A member")
ADMIN = Actor("admin", "An admin", is_admin=True)
TARGET = Target("console", "local", "test")

ARTICLE = """Tomato seedlings go into the ground once the soil is warm, planted deep enough that the
first true leaves sit just above the surface. Buried stems grow extra roots, which makes the plant
sturdier in wind and better at finding water during dry weeks."""


def article_page(title: str = "Tomato Growing Guide", body: str = ARTICLE, canonical: str | None = None) -> str:
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    return f"""<!doctype html><html><head><title>{title} | Garden Site</title>
<meta name="author" content="Ada Gardener"><meta property="article:published_time" content="2024-03-05">
{link}</head><body>
<nav><a href="/">Home</a> <a href="/about">About us</a> Subscribe to our newsletter</nav>
<article><h1>{title}</h1><p>{body}</p></article>
<footer>Copyright 2024 Garden Site. All rights reserved. Cookie policy.</footer></body></html>"""


@pytest.fixture
def settings(settings):
    """The local test server lives on 127.0.0.1, so these tests allow private addresses."""
    return dataclasses.replace(settings, allow_private_urls=True)


async def add(service, url: str, actor: Actor = MEMBER):
    return await service.handle(Request("add", {"url": url}, actor, TARGET))


def fingerprint(service) -> tuple:
    """Everything `add` could change: the document rows and the index generation."""
    return tuple(service.store.documents()), service.store.passage_count(), service.store.generation()


async def test_html_page_indexed_with_metadata_under_its_canonical_url(service, web_server):
    canonical = web_server.url("/articles/tomatoes")
    url = web_server.page("/articles/tomatoes?utm_source=chat", article_page(canonical=canonical))

    reply = await add(service, url)

    assert reply.ok, reply.text
    assert reply.data["status"] == "added" and reply.sources[0].url == canonical
    [doc] = service.store.documents()
    assert (doc.path, doc.url, doc.title, doc.published) == (canonical, canonical, "Tomato Growing Guide", "2024-03-05")
    text = service.store.document_text(doc.id)
    assert "first true leaves" in text
    assert "newsletter" not in text and "Cookie policy" not in text  # boilerplate removed
    assert service.embedder.wait_idle(120)  # vectors are filled in by the background embedder
    assert service.store.missing_embeddings(service.models.encoder_id) == []
    hits = await service.search("how deep should tomato seedlings be planted", limit=1)
    assert hits[0].document.id == doc.id


async def test_canonical_url_on_another_site_is_ignored(service, web_server):
    url = web_server.page("/page", article_page(canonical="https://elsewhere.example/stolen"))
    reply = await add(service, url)
    assert reply.ok, reply.text
    assert service.store.documents()[0].url == url


async def test_redirects_are_followed_and_the_final_url_is_the_link(service, web_server):
    final = web_server.page("/new-home", article_page())
    start = web_server.redirect("/old-home", "/hop", status=301)
    web_server.redirect("/hop", final, status=308)
    reply = await add(service, start)
    assert reply.ok, reply.text
    assert service.store.documents()[0].url == final


async def test_pdf_text_and_metadata(service, web_server):
    pdf = make_pdf(["Quarterly compost report for the community garden.",
                    "Bins reached sixty degrees within a week of turning.",
                    "Volunteers logged forty hours of sifting in March."], title="Compost Report", author="B. Soil")
    url = web_server.page("/files/report", pdf, content_type="application/pdf")
    reply = await add(service, url)
    assert reply.ok, reply.text
    [doc] = service.store.documents()
    assert (doc.title, doc.published, doc.url) == ("Compost Report", "2024-01-15", url)
    assert "sixty degrees" in service.store.document_text(doc.id)


@pytest.mark.parametrize("path, content_type", [
    ("/notes/watering.md", "text/markdown; charset=utf-8"),
    ("/notes/watering.txt", "text/plain"),
    ("/notes/watering.md", "application/octet-stream"),  # untyped: the name and the bytes decide
])
async def test_markdown_and_plain_text(service, web_server, path, content_type):
    body = "# Watering Schedule\n\nWater the beds early in the morning, twice a week in summer.\n"
    reply = await add(service, web_server.page(path, body, content_type=content_type))
    assert reply.ok, reply.text
    [doc] = service.store.documents()
    assert doc.title == "Watering Schedule" and "twice a week" in service.store.document_text(doc.id)


async def test_declared_charset_is_respected(service, web_server):
    body = "Crème brûlée for the harvest party, served after the pumpkin soup.".encode("latin-1")
    reply = await add(service, web_server.page("/menu.txt", body, content_type="text/plain; charset=iso-8859-1"))
    assert reply.ok, reply.text
    assert "Crème brûlée" in service.store.document_text(service.store.documents()[0].id)


async def test_a_hostname_is_connected_by_the_address_that_was_checked(service, web_server):
    """The request goes to the resolved address, with the original Host header."""
    url = web_server.page("/by-name", article_page()).replace("127.0.0.1", "localhost")
    reply = await add(service, url)
    assert reply.ok, reply.text
    assert web_server.hits("/by-name")[-1].headers["Host"] == f"localhost:{web_server.port}"
    assert service.store.documents()[0].url == url


async def test_console_and_changed_page_updates_the_same_document(service, web_server):
    url = web_server.page("/faq", article_page(title="Garden FAQ"))
    first = await respond(service, f"/add {url}")
    web_server.page("/faq", article_page(title="Garden FAQ", body=ARTICLE + " Stake them early."))
    second = await respond(service, f"/add {url}")
    assert first.ok and second.ok, (first.text, second.text)
    assert (first.data["status"], second.data["status"]) == ("added", "updated")
    assert first.data["doc_id"] == second.data["doc_id"] and len(service.store.documents()) == 1
    assert "Stake them early" in service.store.document_text(first.data["doc_id"])


async def test_duplicate_submissions_change_nothing(service, web_server):
    url = web_server.page("/dup", article_page())
    mirror = web_server.page("/mirror-of-dup", article_page())
    assert (await add(service, url)).ok
    before = fingerprint(service)
    for again in (url, mirror):
        reply = await add(service, again)
        assert not reply.ok and reply.text.startswith("Already indexed as **Tomato Growing Guide**")
        assert fingerprint(service) == before


def _oversized_stream(size: int):
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"a" * 2**20
        for _ in range(size // len(chunk) + 1):
            await response.write(chunk)
        await response.write_eof()
        return response

    return handler


BAD_INPUTS = {
    "not found": (lambda w: w.page("/gone", "nothing here", status=404), "answered 404 Not Found"),
    "server error": (lambda w: w.page("/boom", "oops", status=500), "answered 500 Internal Server Error"),
    "oversized, declared": (lambda w: w.page("/big", b"a" * (MAX_BYTES + 1), content_type="text/plain"),
                            "sent more than 10 MB"),
    "oversized, streamed": (lambda w: w.route("/stream", _oversized_stream(MAX_BYTES + 1)), "sent more than 10 MB"),
    "binary junk": (lambda w: w.page("/junk.txt", os.urandom(4096), content_type="text/plain"), "binary data"),
    "binary junk as html": (lambda w: w.page("/junk", bytes(range(256)) * 8, content_type="text/html"),
                            "binary data"),
    "wrong content type": (lambda w: w.page("/pic", b"\x89PNG\r\n\x1a\n" + bytes(64), content_type="image/png"),
                           "image/png cannot be added"),
    "fake pdf": (lambda w: w.page("/fake.pdf", "just words", content_type="application/pdf"),
                 "says it is a PDF but is not one"),
    "broken pdf": (lambda w: w.page("/broken.pdf", b"%PDF-1.4\n garbage", content_type="application/pdf"),
                   "not a readable PDF"),
    "redirect loop": (lambda w: (w.redirect("/loop-b", "/loop-a"), w.redirect("/loop-a", "/loop-b"))[1],
                      "redirects in a loop"),
    "invalid redirect": (lambda w: w.redirect("/bad-hop", "http://127.0.0.1:port/"),
                         "Download from 127.0.0.1 failed (RemoteProtocolError)"),
    "too many redirects": (lambda w: [w.redirect(f"/r{i}", f"/r{i + 1}") for i in range(8)][0],
                           "redirects more than 5 times"),
    "empty extraction": (lambda w: w.page("/empty", "<html><head><title>x</title></head><body></body></html>"),
                         "no readable text"),
    "unreachable host": (lambda w: f"http://127.0.0.1:{closed_port()}/page", "Cannot connect to 127.0.0.1"),
    "ftp": (lambda w: "ftp://127.0.0.1/notes.txt", "Only http and https URLs"),
    "file": (lambda w: "file:///etc/passwd", "Only http and https URLs"),
    "no host": (lambda w: "http:///path-only", "Not a valid URL"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
async def test_bad_input_gets_one_line_and_leaves_the_index_unchanged(service, web_server, case):
    service.store.replace_document(*build_document(ARTICLE, path="notes/tomatoes.txt"))
    setup, expected = BAD_INPUTS[case]
    url = setup(web_server)
    before = fingerprint(service)
    reply = await add(service, url)
    assert not reply.ok
    assert expected in reply.text and "\n" not in reply.text
    assert fingerprint(service) == before


@pytest.mark.parametrize("host", [
    "127.0.0.1:{port}", "localhost:{port}", "[::1]", "10.1.2.3", "192.168.0.10", "172.16.5.4", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "[::ffff:127.0.0.1]", "[fe80::1]", "224.0.0.1", "2130706433",
])
async def test_private_and_local_addresses_are_refused_by_default(service, web_server, host):
    service.settings = dataclasses.replace(service.settings, allow_private_urls=False)
    web_server.page("/secret", article_page())
    reply = await add(service, f"http://{host.format(port=web_server.port)}/secret")
    assert not reply.ok and "private or local address" in reply.text, reply.text
    assert web_server.requests == [] and service.store.documents() == []


async def test_whole_exchange_has_one_deadline(web_server):
    """A server that drips bytes forever cannot hold a fetch past its deadline."""

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x")
            await asyncio.sleep(0.1)
        return response

    url = web_server.route("/drip", drip)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(FetchError, match="did not answer within 1 s"):
        await fetch(url, allow_private=True, timeout=1.0)
    assert loop.time() - started < 5


async def test_attachments_are_indexed_with_their_link(service):
    pdf = make_pdf(["Seed swap notes: bring labelled envelopes and a pencil."], title="Seed Swap")
    link = "https://files.example/attachments/seed-swap.pdf"
    reply = await add_bytes(service, MEMBER, pdf, name="seed-swap.pdf", content_type="application/pdf", url=link)
    assert reply.ok, reply.text
    [doc] = service.store.documents()
    assert (doc.title, doc.url, doc.path) == ("Seed Swap", link, link)
    again = await add_bytes(service, MEMBER, pdf, name="copy.pdf", content_type="application/pdf",
                            url="https://files.example/attachments/copy.pdf")
    assert not again.ok and again.text.startswith("Already indexed")
    junk = await add_bytes(service, MEMBER, os.urandom(2048), name="x.txt", content_type="text/plain", url=link + "2")
    big = await add_bytes(service, MEMBER, b"a" * (MAX_BYTES + 1), name="big.txt", content_type="text/plain",
                          url=link + "3")
    assert not junk.ok and "binary data" in junk.text
    assert not big.ok and "larger than 10 MB" in big.text
    assert len(service.store.documents()) == 1


async def test_documents_are_stamped_by_the_service_clock(service, tmp_path):
    """Uploads and folder indexing take `added_at` from the injected clock, as digests read it."""
    service.clock = lambda: dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    reply = await add_bytes(service, MEMBER, b"Compost\n\nCompost turns kitchen scraps into soil over a summer.",
                            name="compost.txt", content_type="text/plain", url="https://files.example/compost.txt")
    assert reply.ok, reply.text
    (tmp_path / "mulch.md").write_text("# Mulch\n\nStraw mulch keeps the beds moist through July.\n")
    index_paths(service.store, [tmp_path], added_at=service.timestamp())
    assert {d.title: d.added_at for d in service.store.documents()} == {
        "Compost": "2031-05-06T07:08:09+00:00", "Mulch": "2031-05-06T07:08:09+00:00"}


async def test_add_can_be_limited_to_admins(service, web_server):
    service.settings = dataclasses.replace(service.settings, add_policy="admins")
    url = web_server.page("/members", article_page())
    refused = await add(service, url, MEMBER)
    upload = await add_bytes(service, MEMBER, b"Some plain words to index.", name="n.txt",
                             content_type="text/plain", url="https://files.example/n.txt")
    assert not refused.ok and not upload.ok and "for admins" in refused.text and "for admins" in upload.text
    assert web_server.requests == [] and service.store.documents() == []
    assert (await add(service, url, ADMIN)).ok


def test_cli_add(settings, web_server, monkeypatch, capsys):
    monkeypatch.setenv("DIGESTBOT_DB", settings.db_path)
    monkeypatch.setenv("DIGESTBOT_ALLOW_PRIVATE_URLS", "1")
    url = web_server.page("/cli", article_page(title="Mulching Basics"))
    assert main(["add", url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "added" and data["title"] == "Mulching Basics" and data["url"] == url
    assert main(["add", url]) == 1
    assert "Already indexed" in capsys.readouterr().err
