"""What every platform's renderer decides the same way: the layout of a reply (`layout`: title, body,
sources, items), which URLs become links (`web_url`), and whether a link's visible text is honest.

A renderer only does its platform's syntax, escaping and splitting over these.

A document chooses its own title and text, so it can label a link `https://intranet.example/login` (or
just `intranet.example`) and point it at another host. A label that names any host other than the
link's target is "disguised": renderers then show the label as text and the real target plainly.
Labels that name no host ("Quarterly report") stay ordinary links.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from bot.core.values import DigestItem, Reply, Source

# A URL with a scheme, or a bare name with a dot and a letters-only last label (`intranet.example`,
# `www.bank.example.org`, `раураl.com`); `\w` covers look-alike letters from other scripts.
_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.-]*://[^\s<>\"'`|\]\[()]+", re.IGNORECASE)
_BARE_HOST = re.compile(r"(?<![\w.@-])(?:[\w-]+\.)+[^\W\d_]{2,}(?![\w-])")


def _normal(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:  # not a valid IDN: compared as written, so it never equals a real target
        pass
    return host.removeprefix("www.")


def hosts_named(text: str) -> set[str]:
    """The hosts a reader would take `text` to name: those of its URLs and of its bare host names."""
    hosts = set()
    for url in _URL_IN_TEXT.findall(text):
        try:
            hosts.add(_normal(urlsplit(url).hostname or url))
        except ValueError:  # e.g. a malformed IPv6 literal: still a host-looking label
            hosts.add(url.lower())
    hosts.update(_normal(name) for name in _BARE_HOST.findall(_URL_IN_TEXT.sub(" ", text)))
    return hosts


def disguised(label: str, url: str) -> bool:
    """Whether a link showing `label` and leading to `url` would name a different host than it goes to."""
    try:
        target = _normal(urlsplit(url).hostname or "")
    except ValueError:
        target = ""
    return any(host != target for host in hosts_named(label))


# -- the layout every renderer shares ----------------------------------------------------------------
URL_LIMIT = 1000  # longer URLs are shown as plain titles rather than links
# What a web URL keeps unquoted inside link syntax: in its host part (brackets for IPv6) and after it.
# No "@" anywhere (no mention, no user@host disguise), no "](" anywhere (no markdown link inside a link).
_HOST_SAFE = ":[]%~-._!$&'*+,;="
_PATH_SAFE = "/:?#%~-._!$&'()*+,;="
_HOST_END = re.compile(r"[/?#]|$")


@dataclass(frozen=True)
class Part:
    """One block of a reply, in reading order: its `body` text (core markdown), its numbered `sources`,
    or one numbered digest `item`. A renderer turns each into its platform's syntax."""

    kind: str  # "body" | "sources" | "item"
    text: str = ""
    sources: tuple[Source, ...] = ()
    item: DigestItem | None = None
    n: int = 0  # the item's number


def layout(reply: Reply) -> list[Part]:
    """What a reply shows below its title, in the order every platform shows it: the body, the
    sources its `[n]` markers cite, then the digest items numbered from 1. Empty parts are left out."""
    parts = [Part("body", reply.text)] if reply.text.strip() else []
    if reply.sources:
        parts.append(Part("sources", sources=tuple(reply.sources)))
    parts += [Part("item", item=item, n=n) for n, item in enumerate(reply.items, 1)]
    return parts


def one_line(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def web_url(url: str | None) -> str | None:
    """An http(s) URL, percent-quoted so it cannot break out of link syntax; None for anything else
    (file paths, javascript:, URLs over URL_LIMIT), which renderers show as text instead."""
    scheme = re.match(r"https?://", url or "", re.IGNORECASE)
    if not scheme or len(url) > URL_LIMIT:
        return None
    host_end = _HOST_END.search(url, scheme.end()).start()
    return (scheme.group() + quote(url[scheme.end():host_end], safe=_HOST_SAFE, errors="replace")
            + quote(url[host_end:], safe=_PATH_SAFE, errors="replace"))
