"""Bytes -> text: the main text and metadata of an HTML, Markdown, plain-text or PDF body.

The one extraction for files indexed from folders, fetched URLs, uploads and feed entries. Every
failure is a FetchError (a UserError) with a one-line reason; a body that would give more text than
MAX_DOCUMENT_CHARS is refused, PDFs before all their pages are read.
"""
from __future__ import annotations

import datetime as dt
import io
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

import httpx

from bot.core.values import UserError

# Caps per document: a small PDF whose pages share one content stream can expand to tens of
# millions of characters; a big text file in a folder to gigabytes of memory. Bigger is refused.
MAX_DOCUMENT_CHARS = 2_000_000

HTML_TYPES = {"text/html", "application/xhtml+xml"}
TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown"}
PDF_TYPES = {"application/pdf", "application/x-pdf"}
UNTYPED = {"", "application/octet-stream", "binary/octet-stream"}
SUFFIX_KINDS = {".html": "html", ".htm": "html", ".md": "text", ".markdown": "text", ".txt": "text",
                ".pdf": "pdf"}


class FetchError(UserError):
    """A URL could not be fetched, or a body could not be read: the message is the one-line reply."""


@dataclass(frozen=True)
class Extracted:
    text: str
    title: str | None = None
    author: str | None = None
    published: str | None = None  # YYYY-MM-DD
    url: str | None = None  # the canonical URL the content names for itself


def too_long(name: str, chars: int | None = None) -> UserError:
    """The one-line refusal of a document with more text than MAX_DOCUMENT_CHARS."""
    size = f"{chars:,} characters of text" if chars is not None else "its text"
    return UserError(f"{name}: {size} is more than the {MAX_DOCUMENT_CHARS:,} characters a document may have; "
                     "not indexed.")


def html_to_text(html: str) -> tuple[str, dict]:
    """Main text and metadata of an HTML page (boilerplate removed by trafilatura)."""
    import trafilatura

    text = trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True) or ""
    meta = trafilatura.extract_metadata(html)
    info = {}
    if meta is not None:
        info = {"title": meta.title, "published": meta.date, "url": meta.url, "author": meta.author}
    return text, {k: v for k, v in info.items() if v}


def _kind(data: bytes, content_type: str, name: str) -> str:
    """"html", "text" or "pdf", from the bytes, the declared type and the name; FetchError otherwise."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if content_type in PDF_TYPES:
        raise FetchError(f"{name}: says it is a PDF but is not one; not indexed.")
    if content_type in HTML_TYPES:
        return "html"
    if content_type in TEXT_TYPES:
        return "text"
    if content_type in UNTYPED:
        by_suffix = SUFFIX_KINDS.get(PurePosixPath(name.split("?", 1)[0]).suffix.lower())
        if by_suffix and by_suffix != "pdf":
            return by_suffix
        head = data[:1024].lstrip().lower()
        return "html" if head.startswith((b"<!doctype html", b"<html")) else "text"
    raise FetchError(f"{name}: {content_type} cannot be added (only HTML, Markdown, plain text and PDF).")


def _decode(data: bytes, charset: str | None, name: str) -> str:
    if b"\x00" in data[:8192]:
        raise FetchError(f"{name}: binary data, not text; not indexed.")
    text = None
    for encoding in filter(None, (charset, "utf-8")):
        try:
            text = data.decode(encoding)
            break
        except (LookupError, UnicodeDecodeError):
            continue
    if text is None:
        from trafilatura.utils import detect_encoding

        guess = next(iter(detect_encoding(data[:65536])), "cp1252")
        text = data.decode(guess, errors="replace")
    sample = text[:8192]
    junk = sum(ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f") for ch in sample)
    if junk > max(8, len(sample) // 20):
        raise FetchError(f"{name}: binary data, not text; not indexed.")
    return text


def _pdf(data: bytes, name: str) -> Extracted:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise FetchError(f"{name}: an encrypted PDF; not indexed.")
        pages, chars = [], 0
        for page in reader.pages:  # stopped early: pages sharing one content stream multiply its text
            pages.append((page.extract_text() or "").strip())
            chars += len(pages[-1])
            if chars > MAX_DOCUMENT_CHARS:
                raise too_long(name)
        info = reader.metadata
    except UserError:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on malformed input
        raise FetchError(f"{name}: not a readable PDF ({type(exc).__name__}); not indexed.") from exc
    created = info.creation_date if info else None
    return Extracted("\n\n".join(p for p in pages if p), title=(info.title if info else None) or None,
                     author=(info.author if info else None) or None,
                     published=created.date().isoformat() if isinstance(created, dt.datetime) else None)


def same_site(url: str, other: str) -> bool:
    """Both are http(s) URLs on one host (a leading "www." aside)."""
    try:
        a, b = httpx.URL(url), httpx.URL(other)
    except httpx.InvalidURL:
        return False
    return {a.scheme, b.scheme} <= {"http", "https"} and bool(a.host) and \
        a.host.removeprefix("www.") == b.host.removeprefix("www.")


def _canonical(base_url: str | None, canonical: str | None) -> str | None:
    """The page's canonical URL, resolved against where it was fetched; None unless on the same site."""
    if not base_url or not canonical:
        return None
    try:
        url = str(httpx.URL(base_url).join(canonical))
    except httpx.InvalidURL:
        return None
    return url if same_site(url, base_url) else None


def extract(data: bytes, *, content_type: str, name: str, charset: str | None = None,
            base_url: str | None = None) -> Extracted:
    """Main text and metadata of an HTML, Markdown, plain-text or PDF body (FetchError if none).

    A page's own canonical URL is kept only when it is on the same site as `base_url`, so a page
    cannot claim (and overwrite) another site's document.
    """
    kind = _kind(data, content_type, name)
    if kind == "pdf":
        extracted = _pdf(data, name)
    elif kind == "html":
        text, meta = html_to_text(_decode(data, charset, name))
        extracted = Extracted(text, meta.get("title"), meta.get("author"), meta.get("published"),
                              _canonical(base_url, meta.get("url")))
    else:
        extracted = Extracted(_decode(data, charset, name))
    if not extracted.text.strip():
        raise FetchError(f"{name}: no readable text found; not indexed.")
    return extracted
