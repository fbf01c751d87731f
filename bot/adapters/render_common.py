"""What every platform's renderer decides the same way: whether a link's visible text is honest.

A document chooses its own title and text, so it can label a link `https://intranet.example/login` (or
just `intranet.example`) and point it at another host. A label that names any host other than the
link's target is "disguised": renderers then show the label as text and the real target plainly.
Labels that name no host ("Quarterly report") stay ordinary links.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

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
