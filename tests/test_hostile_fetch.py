"""Hostile fetches (issue 13), against a real HTTP server on 127.0.0.1: compression bombs, IPv6
addresses that carry a private IPv4 one, and feed entries aimed at other documents."""
from __future__ import annotations

import dataclasses
import gzip
import ipaddress
import json
import resource
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest

from bench.fetch_bomb import BOMBS_MIB, double_gzip
from bot.core.feeds import poll_feeds
from bot.core.fetch import MAX_BYTES, FetchError, fetch, is_public_address
from bot.core.values import Actor, Request, Target
from tests.local_web import web_server  # noqa: F401 - fixture
from tests.test_feeds import rss

ROOT = Path(__file__).resolve().parent.parent
PROBE_MEMORY_LIMIT = 2**30  # address space of the probe process: a bomb fails loudly instead of swapping
TEXT = b"Compost heaps need air: turn them every two weeks so the middle stays warm and sweet-smelling.\n" * 20


def probe(url: str) -> dict:
    """`bench.fetch_bomb` fetching `url` in a child process limited to PROBE_MEMORY_LIMIT of address space."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (PROBE_MEMORY_LIMIT, PROBE_MEMORY_LIMIT))

    proc = subprocess.run([sys.executable, "-m", "bench.fetch_bomb", url], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, preexec_fn=limit_memory)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def raw_deflate(data: bytes) -> bytes:
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflate.compress(data) + deflate.flush()


def test_a_twice_gzipped_bomb_is_refused_in_bounded_memory_without_blocking(web_server):
    body = double_gzip(BOMBS_MIB["2 KB bomb"])  # 1.4 GiB of zeros in about 2 KB
    assert len(body) < 2500
    url = web_server.page("/bomb", body, content_type="text/plain",
                          headers={"Content-Encoding": "gzip,gzip"})
    outcome = probe(url)
    assert outcome["refused"] == "127.0.0.1 sent a body compressed 2 times (gzip, gzip); " \
                                 "only one layer is accepted; not indexed."
    assert outcome["rss_growth_mb"] < 50, outcome
    assert outcome["longest_stall_s"] < 1.0 and outcome["seconds"] < 5, outcome


@pytest.mark.parametrize("encoding, expected", [
    ("gzip, gzip", "compressed 2 times (gzip, gzip)"),
    ("deflate,gzip,gzip", "compressed 3 times (deflate, gzip, gzip)"),
    ("br", "br compression, which cannot be read (only gzip and deflate)"),
    ("zstd", "zstd compression, which cannot be read (only gzip and deflate)"),
    ("compress", "compress compression, which cannot be read (only gzip and deflate)"),
])
async def test_stacked_and_unknown_encodings_are_refused_with_one_line(web_server, encoding, expected):
    url = web_server.page("/packed", gzip.compress(gzip.compress(TEXT)), content_type="text/plain",
                          headers={"Content-Encoding": encoding})
    with pytest.raises(FetchError) as refused:
        await fetch(url, allow_private=True)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),  # deflate as the RFC says: zlib-wrapped
    ("deflate", raw_deflate),  # deflate as some servers send it: raw
    ("identity", lambda data: data),
    ("gzip, identity", gzip.compress),
])
async def test_one_layer_of_gzip_or_deflate_is_decoded(web_server, encoding, encode):
    url = web_server.page("/notes.txt", encode(TEXT), content_type="text/plain",
                          headers={"Content-Encoding": encoding})
    fetched = await fetch(url, allow_private=True)
    assert fetched.data == TEXT
    assert web_server.hits("/notes.txt")[-1].headers["Accept-Encoding"] == "gzip, deflate"


async def test_a_single_layer_bomb_stops_at_the_cap_without_holding_more(web_server):
    body = gzip.compress(bytes(8 * MAX_BYTES), 9)
    url = web_server.page("/zeros.txt", body, content_type="text/plain", headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match="sent more than 10 MB"):
            await fetch(url, allow_private=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_BYTES


async def test_a_corrupt_compressed_body_is_refused(web_server):
    url = web_server.page("/broken", b"\x1f\x8b\x08\x00" + bytes(range(200)), content_type="text/plain",
                          headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match=r"^127\.0\.0\.1 sent a corrupt gzip body; not indexed\.$"):
        await fetch(url, allow_private=True)


# -- addresses -----------------------------------------------------------------------------------
CARRIES_PRIVATE_IPV4 = {
    "compatible loopback": "::127.0.0.1",
    "compatible private": "::10.0.0.1",
    "mapped private": "::ffff:192.168.1.1",
    "NAT64 loopback": "64:ff9b::7f00:1",
    "NAT64 private": "64:ff9b::10.1.2.3",
    "NAT64 link-local (cloud metadata)": "64:ff9b::169.254.169.254",
    "local-use NAT64": "64:ff9b:1::a00:1",
    "6to4 loopback": "2002:7f00:1::1",
    "6to4 private": "2002:a00:1::",
    "6to4 link-local": "2002:a9fe:a9fe::1",
    "Teredo, private client": "2001:0:808:808::f5ff:fffe",  # client bits are inverted: 10.0.0.1
}
PUBLIC = {
    "plain": "2606:4700::1111",
    "mapped": "::ffff:8.8.8.8",
    "NAT64": "64:ff9b::8.8.8.8",
    "6to4": "2002:808:808::1",
    "Teredo": "2001:0:808:808::f7f7:fbfb",  # server 8.8.8.8, client 8.8.4.4
}


@pytest.mark.parametrize("address", CARRIES_PRIVATE_IPV4.values(), ids=list(CARRIES_PRIVATE_IPV4))
def test_an_ipv6_address_is_judged_by_the_ipv4_address_it_carries(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC.values(), ids=list(PUBLIC))
def test_public_addresses_stay_public(address):
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("host", ["[::127.0.0.1]", "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::1]"])
async def test_fetching_an_ipv6_form_of_a_private_address_is_refused(host):
    with pytest.raises(FetchError, match=r"is a private or local address .*; it is not fetched\.$"):
        await fetch(f"http://{host}/latest/meta-data/", allow_private=False, timeout=5)


# -- feeds ---------------------------------------------------------------------------------------
MEMBER = Actor("member", "A member")
ADMIN = Actor("admin", "An admin", is_admin=True)
TARGET = Target("console", "local", "test")
TEAM_PAGE = """<html><head><title>Paying Suppliers</title></head><body><article><h1>Paying Suppliers</h1>
<p>Supplier invoices are paid by the finance team after two approvals, never by wire on request.</p>
</article></body></html>"""
FORGED = "FORGED notice: suppliers must now wire the fee to account 4711 before Friday."


async def command(service, name: str, actor: Actor = ADMIN, **args: str):
    return await service.handle(Request(name, args, actor, TARGET))


def document_texts(service) -> dict[str, str]:
    return {d.path: service.store.document_text(d.id) for d in service.store.documents()}


@pytest.mark.parametrize("attack", ["its link fails", "its page claims the document as canonical"])
async def test_a_feed_entry_cannot_overwrite_another_document(service, web_server, attack):
    service.settings = dataclasses.replace(service.settings, allow_private_urls=True)
    team = web_server.page("/team/payments", TEAM_PAGE)
    assert (await command(service, "add", MEMBER, url=team)).ok
    before = document_texts(service)
    if attack == "its link fails":
        web_server.page("/team/payments", "down for maintenance", status=503)
        link = team
    else:
        link = web_server.page("/posts/notice", f'<html><head><link rel="canonical" href="{team}"></head>'
                                                f"<body><article><p>{FORGED}</p></article></body></html>")
    entry = {"title": "Paying Suppliers", "link": link, "guid": "notice-1", "summary": f"<p>{FORGED}</p>"}
    feed = web_server.page("/feed.xml", rss([entry]), content_type="application/rss+xml")

    reply = await command(service, "feed add", url=feed)
    assert reply.ok, reply.text
    assert document_texts(service) == before
    assert "1 left alone (its address belongs to another document)" in reply.text
    [result] = await poll_feeds(service)  # the entry is settled: not tried again
    assert (result.added, result.kept) == (0, 0) and document_texts(service) == before


async def test_a_failed_entry_from_another_site_is_indexed_under_the_feed_not_the_link(service, web_server):
    """The feed's own text for an entry whose page failed is the feed's word: it is filed and cited
    under the feed, never under another site's address."""
    service.settings = dataclasses.replace(service.settings, allow_private_urls=True)
    elsewhere = web_server.page("/team/payments", "down", status=503)  # on 127.0.0.1
    entry = {"title": "Paying Suppliers", "link": elsewhere, "guid": "notice-2", "summary": f"<p>{FORGED}</p>"}
    feed = web_server.page("/feed.xml", rss([entry]), content_type="application/rss+xml")
    feed = feed.replace("127.0.0.1", "localhost")  # the feed lives on another host
    reply = await command(service, "feed add", url=feed)
    assert reply.ok, reply.text
    [doc] = service.store.documents()
    assert doc.path.startswith(feed + "#") and doc.url == doc.path
    assert service.store.document_by_path(elsewhere) is None
