"""Adding documents by URL or upload: safe fetching, indexing what bot.core.extract reads, and the `add` command.

Fetching only goes to http(s) hosts whose every address is public (unless
`DIGESTBOT_ALLOW_PRIVATE_URLS`), re-checked on each redirect hop, and connects to the very address
it checked (so a DNS answer that changes between check and connect cannot reach an internal host).
Bodies are streamed under a byte limit, which also holds for what they decode to (one layer of gzip or
deflate at most, decoded here in bounded steps), and the whole exchange runs under one deadline.
"""
from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from bot.core.extract import Extracted, FetchError, extract
from bot.core.ingest import build_document
from bot.core.values import Actor, Document, Reply, Request, Source, UserError
from bot.core.registry import Param, command

if TYPE_CHECKING:
    from bot.core.service import Service

MAX_BYTES = 10 * 1024 * 1024
TIMEOUT_S = 20.0
MAX_REDIRECTS = 5
USER_AGENT = "digestbot/0.1 (document indexer)"
ACCEPT_ENCODING = "gzip, deflate"  # what _read_limited decodes itself
ACCEPT_DOCUMENTS = "text/html, application/xhtml+xml, application/pdf, text/markdown, text/plain;q=0.9"

_REDIRECTS = {301, 302, 303, 307, 308}
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.I)


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int  # 200-299, or 304 for a conditional request
    content_type: str  # media type without parameters, lower case ("" when absent)
    charset: str | None
    data: bytes
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Added:
    document: Document
    passages: int
    status: str  # "added" | "updated" | "duplicate" | "kept" (another's document at that address, unchanged)


# -- fetching ------------------------------------------------------------------------------------
def host_label(url: str) -> str:
    try:
        return httpx.URL(url).host or url[:80]
    except httpx.InvalidURL:
        return url[:80]


_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the last 32 bits
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use only, never public


def _carried_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for: mapped, compatible, NAT64, 6to4, Teredo."""
    if ip.ipv4_mapped:
        return [ip.ipv4_mapped]
    if ip.sixtofour:
        return [ip.sixtofour]
    if ip.teredo:
        return list(ip.teredo)  # server and client
    if ip in _IPV4_COMPATIBLE or ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return []


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global unicast address; an IPv6 address that carries an IPv4 one is judged by that one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64:
            return False
        carried = _carried_ipv4(ip)
        if carried:
            return all(map(is_public_address, carried))
    return ip.is_global and not ip.is_multicast


async def _pinned_request(client: httpx.AsyncClient, url: str, allow_private: bool,
                          headers: dict[str, str]) -> httpx.Request:
    """A GET for `url` aimed at an address that passed the check, with Host and TLS name kept."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(f"Not a valid URL: {url[:200]!r}") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchError("Only http and https URLs can be fetched.")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise FetchError(f"Not a valid URL: {url[:200]!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"Cannot find the host {parsed.host}.") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    blocked = next((ip for ip in addresses if not is_public_address(ip)), None)
    if blocked is not None and not allow_private:
        raise FetchError(f"{parsed.host} is a private or local address ({blocked}); it is not fetched.")
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return client.build_request("GET", parsed.copy_with(host=str(addresses[0])),
                                headers={**headers, "Host": parsed.netloc.decode("ascii")},
                                extensions=extensions)


class _Inflater:
    """Undoes one gzip or deflate layer without ever producing more output than it is asked for."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        self._started = False

    def __call__(self, data: bytes, max_length: int) -> bytes:
        """At most `max_length` (>= 1) decoded bytes; the rest of `data` waits in the decompressor."""
        try:
            out = self._zlib.decompress(data, max_length)
        except zlib.error:
            if self.encoding != "deflate" or self._started:
                raise
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # "deflate" as some servers send it: raw
            out = self._zlib.decompress(data, max_length)
        self._started = True
        return out


def _inflater(content_encoding: str, name: str) -> _Inflater | None:
    """The decoder for a response's Content-Encoding; FetchError for stacked or unknown encodings.

    One layer at most: a body compressed twice is how a few KB become gigabytes.
    """
    layers = [e for e in (part.strip().lower() for part in content_encoding.split(",")) if e and e != "identity"]
    if len(layers) > 1:
        raise FetchError(f"{name} sent a body compressed {len(layers)} times ({', '.join(layers)}); "
                         "only one layer is accepted; not indexed.")
    if not layers:
        return None
    encoding = {"x-gzip": "gzip"}.get(layers[0], layers[0])
    if encoding not in ("gzip", "deflate"):
        raise FetchError(f"{name} sent {encoding[:40]} compression, which cannot be read "
                         "(only gzip and deflate); not indexed.")
    return _Inflater(encoding)


async def _read_limited(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    """The body, decoded here (not by httpx) so that both the bytes received and the bytes they
    decode to stop at `max_bytes` before any more is held."""
    name = host_label(url)
    too_big = FetchError(f"{name} sent more than {max_bytes / 2**20:g} MB; not indexed.")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    inflate = _inflater(response.headers.get("content-encoding", ""), name)
    chunks, received, size = [], 0, 0
    async for raw in response.aiter_raw():
        received += len(raw)
        if received > max_bytes:
            raise too_big
        try:
            chunk = inflate(raw, max_bytes + 1 - size) if inflate else raw
        except zlib.error as exc:
            raise FetchError(f"{name} sent a corrupt {inflate.encoding} body; not indexed.") from exc
        size += len(chunk)
        if size > max_bytes:  # also when the decompressor stopped short of the whole of `raw`
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _follow(client: httpx.AsyncClient, url: str, allow_private: bool, headers: dict[str, str],
                  max_bytes: int) -> Fetched:
    seen: set[str] = set()
    for _ in range(MAX_REDIRECTS + 1):
        if url in seen:
            raise FetchError(f"{host_label(url)} redirects in a loop; not indexed.")
        seen.add(url)
        request = await _pinned_request(client, url, allow_private, headers)
        response = await client.send(request, stream=True)
        try:
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                url = str(httpx.URL(url).join(location))
                continue
            if response.status_code != 304 and not response.is_success:
                raise FetchError(f"{host_label(url)} answered {response.status_code} "
                                 f"{response.reason_phrase}".rstrip() + "; not indexed.")
            data = b"" if response.status_code == 304 else await _read_limited(response, url, max_bytes)
            media = response.headers.get("content-type", "")
            charset = _CHARSET.search(media)
            return Fetched(url, response.status_code, media.split(";", 1)[0].strip().lower(),
                           charset.group(1) if charset else None, data,
                           response.headers.get("etag"), response.headers.get("last-modified"))
        finally:
            await response.aclose()
    raise FetchError(f"{host_label(url)} redirects more than {MAX_REDIRECTS} times; not indexed.")


async def fetch(url: str, *, allow_private: bool, headers: dict[str, str] | None = None,
                accept: str = ACCEPT_DOCUMENTS, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT_S) -> Fetched:
    """GET a URL safely; every failure is a FetchError with a one-line reason."""
    url = url.strip()
    headers = {"User-Agent": USER_AGENT, "Accept": accept, "Accept-Encoding": ACCEPT_ENCODING, **(headers or {})}
    try:
        async with asyncio.timeout(timeout):
            async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout) as client:
                return await _follow(client, url, allow_private, headers, max_bytes)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise FetchError(f"{host_label(url)} did not answer within {timeout:g} s; not indexed.") from exc
    except httpx.ConnectError as exc:
        raise FetchError(f"Cannot connect to {host_label(url)}; not indexed.") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"Download from {host_label(url)} failed ({type(exc).__name__}); not indexed.") from exc


# -- indexing ------------------------------------------------------------------------------------
def index_extracted(service: "Service", extracted: Extracted, *, link: str, title: str | None = None,
                    published: str | None = None, url: str | None = None,
                    may_update: Callable[[Document], bool] | None = None) -> Added:
    """Store extracted text under its canonical URL (else `link`); the same text twice is a duplicate.

    `url` is the address shown and cited (default: where it is stored). A document already at that
    place is replaced only if `may_update` (default: always) allows it, else it is "kept".
    Synchronous (runs in the service's worker); embedding is left to the caller.
    """
    path = extracted.url or link
    existing = service.store.document_by_path(path)
    if existing is not None and may_update is not None and not may_update(existing):
        return Added(existing, 0, "kept")
    doc, text, passages = build_document(
        extracted.text, path=path, url=url or path, title=title or extracted.title,
        published=published or extracted.published, doc_id=existing.id if existing else None,
        added_at=service.timestamp())
    same = service.store.document_by_hash(doc.content_hash)
    if same is not None:
        return Added(same, 0, "duplicate")
    service.store.replace_document(doc, text, passages)
    return Added(doc, len(passages), "updated" if existing else "added")


def index_fetched(service: "Service", fetched: Fetched, *, title: str | None = None, published: str | None = None,
                  may_update: Callable[[Document], bool] | None = None) -> Added:
    extracted = extract(fetched.data, content_type=fetched.content_type, name=host_label(fetched.url),
                        charset=fetched.charset, base_url=fetched.url)
    return index_extracted(service, extracted, link=fetched.url, title=title, published=published,
                           may_update=may_update)


def check_add_allowed(service: "Service", actor: Actor) -> None:
    """`DIGESTBOT_ADD=admins` limits adding documents to admins; the default, `everyone`, lets anyone add.

    Any other value counts as admins-only, so a typo never opens adding to everyone.
    """
    if service.settings.add_policy != "everyone" and not actor.is_admin:
        raise UserError("Adding documents is for admins here; nothing was changed.")


async def add_url(service: "Service", url: str) -> Added:
    fetched = await fetch(url, allow_private=service.settings.allow_private_urls)
    added = await service.in_worker(index_fetched, service, fetched)
    service.embed_in_background(added.passages)
    return added


def added_reply(added: Added, searchable: str = "") -> Reply:
    """The one-line answer to an add, saying when it is `searchable` (`Service.meaning_search_note`);
    a duplicate is refused as bad input (nothing changed)."""
    doc = added.document
    if added.status == "duplicate":
        raise UserError(f"Already indexed as **{doc.title}** (`{doc.id}`); nothing was changed.")
    verb = "Added" if added.status == "added" else "Updated"
    source = Source(1, doc.id, doc.title, doc.path, doc.url, "")
    return Reply(f"{verb} **{doc.title}** ({added.passages} passages) [1]" + (f"; {searchable}." if searchable else "."),
                 [source], title=verb,
                 data={"status": added.status, "doc_id": doc.id, "title": doc.title, "url": doc.url,
                       "published": doc.published, "passages": added.passages, "searchable": searchable})


def check_upload(service: "Service", actor: Actor, name: str, size: int | None = None) -> None:
    """The upload policy: may `actor` add documents, and is `size` (bytes, when known) within MAX_BYTES.
    UserError with a one-line reason if not. Adapters ask before downloading, and while streaming."""
    check_add_allowed(service, actor)
    if size is not None and size > MAX_BYTES:
        raise UserError(f"{name}: larger than {MAX_BYTES / 2**20:g} MB; not indexed.")


async def add_bytes(service: "Service", actor: Actor, data: bytes, *, name: str, content_type: str,
                    url: str) -> Reply:
    """Index an uploaded file (Discord attachment, Slack file share); `url` is its link.

    Adapters reach this through `Service.upload` (attachments are not command args); it answers like
    `handle` does for bad input: a Reply with ok=False and a one-line reason.
    """
    try:
        check_upload(service, actor, name, len(data))
        media = content_type.split(";", 1)[0].strip().lower()
        charset = _CHARSET.search(content_type)
        extracted = await service.in_worker(extract, data, content_type=media, name=name,
                                            charset=charset.group(1) if charset else None)
        added = await service.in_worker(index_extracted, service, extracted, link=url)
        service.embed_in_background(added.passages)
        return added_reply(added, service.meaning_search_note())
    except UserError as exc:
        return Reply(str(exc), ok=False, title="Sorry")


@command("add", Param("url", "Web address (http or https) of a page, PDF, Markdown or text file"), slow=True,
         accepts_file=True)
async def add_command(service: "Service", request: Request) -> Reply:
    """Fetch a web page or file by its URL and index it."""
    check_add_allowed(service, request.actor)
    return added_reply(await add_url(service, request.args["url"]), service.meaning_search_note())
