"""Files and HTML -> documents and passages (with character offsets), idempotently."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bot.core.extract import MAX_DOCUMENT_CHARS, extract, too_long
from bot.core.values import Document, UserError
from bot.core.store import Store
from summarizer.text import PARAGRAPH_BREAK, clean_control, guess_language, sentence_spans, word_count

log = logging.getLogger(__name__)

SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}
METADATA_FILE = "metadata.json"
METADATA_FIELDS = ("title", "url", "published", "language")
MIN_WORDS, MAX_WORDS = 80, 250
MAX_PASSAGES = 5_000
LEAD_WORDS = 30  # at most this many words in a paragraph that leads on to the next (`_leads_on`)
MAX_FILE_BYTES = 32 * 2**20


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    passages: int = 0
    errors: list[str] = field(default_factory=list)  # files not indexed, one line each
    warnings: list[str] = field(default_factory=list)  # indexed anyway (a malformed metadata.json)

    def line(self) -> str:
        text = (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.removed} removed ({self.passages} passages)")
        return text + (f"; {len(self.errors)} failed" if self.errors else "")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_passages(text: str) -> list[tuple[int, int]]:
    """Paragraph-aware passages of roughly MIN_WORDS-MAX_WORDS words, as (start, end) offsets."""
    paragraphs, cursor = [], 0
    for match in PARAGRAPH_BREAK.finditer(text):
        paragraphs.append((cursor, match.start()))
        cursor = match.end()
    paragraphs.append((cursor, len(text)))
    pieces: list[tuple[int, int]] = []
    for start, end in paragraphs:
        if not text[start:end].strip():
            continue
        if word_count(text[start:end]) <= MAX_WORDS:
            pieces.append((start, end))
        else:
            pieces.extend(_split_long(text, start, end))
    passages: list[tuple[int, int]] = []
    last_piece = (0, 0)  # the last piece of passages[-1]
    for start, end in pieces:
        if passages and word_count(text[passages[-1][0]:end]) <= MAX_WORDS and (
                word_count(text[passages[-1][0]:passages[-1][1]]) < MIN_WORDS or _leads_on(text, *last_piece)):
            passages[-1] = (passages[-1][0], end)
        elif passages and _leads_on(text, *last_piece) and last_piece[0] > passages[-1][0]:
            passages[-1] = _strip_span(text, passages[-1][0], last_piece[0])  # a heading goes with its section
            passages.append((last_piece[0], end))
        else:
            passages.append((start, end))
        last_piece = (start, end)
    if len(passages) > 1 and word_count(text[passages[-1][0]:passages[-1][1]]) < MIN_WORDS // 2:
        passages[-2:] = [(passages[-2][0], passages[-1][1])]
    return passages


def _leads_on(text: str, start: int, end: int) -> bool:
    """A short paragraph that introduces the next one: a heading, a question, a line ending in a colon
    or with no closing punctuation ("execute the command" before "dpkg --list"). A passage never ends
    with one, so an FAQ's question and the command that answers it are read and retrieved together."""
    piece = text[start:end].rstrip()
    return bool(piece) and word_count(piece) <= LEAD_WORDS and piece[-1] not in ".!;。！\"”’»"


def _split_long(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Cut an overlong paragraph at sentence ends (or hard, for a run-on with no sentence ends)."""
    chunks, chunk_start, chunk_end = [], None, None
    for a, b in sentence_spans(text, start, end):
        while word_count(text[a:b]) > MAX_WORDS:  # a "sentence" longer than a passage
            cut = a + max(1, len(text[a:b]) * MAX_WORDS // max(word_count(text[a:b]), 1))
            if chunk_start is not None:
                chunks.append((chunk_start, chunk_end))
                chunk_start = None
            chunks.append((a, cut))
            a = cut
        if chunk_start is not None and word_count(text[chunk_start:b]) > MAX_WORDS:
            chunks.append((chunk_start, chunk_end))
            chunk_start = None
        chunk_start = a if chunk_start is None else chunk_start
        chunk_end = b
    if chunk_start is not None:
        chunks.append((chunk_start, chunk_end))
    return chunks


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _title_from_text(text: str, fallback: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:200]
    return fallback


def _display_path(path: Path) -> str:
    """The path as indexed: relative to the working directory when inside it.

    Only `path` itself is made absolute, not resolved: a link inside an indexed folder is keyed by
    where it sits, not by what it points at (callers pass resolved folders)."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(absolute)


def _inside(path: Path, root: Path) -> bool:
    """Whether `path`, links followed, is `root` or lies under it (`root` already resolved)."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a link loop
        return False


def _doc_id(path: str) -> str:
    """The file stem plus 64 bits of the path's hash: anyone may choose a URL for /add, and an id
    that another path could be made to hash to would let it replace that document."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(path).stem).strip("-")[:40] or "doc"
    return f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:16]}"


def read_sidecar(file: Path, warnings: list[str]) -> dict[str, dict[str, str]]:
    """A folder's metadata.json: {file name: {title, url, published, language}}.

    What is malformed (not JSON, not an object, an entry that is not an object, a field that is
    not a string) is left out with one warning line each, and the folder is indexed anyway."""
    label = _display_path(file)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        warnings.append(f"{label}: not valid JSON ({str(exc).splitlines()[0][:120]}); its metadata is ignored.")
        return {}
    if not isinstance(data, dict):
        warnings.append(f"{label}: not an object of file names (a JSON {type(data).__name__}); "
                        "its metadata is ignored.")
        return {}
    entries = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            warnings.append(f"{label}: the entry for {name[:100]!r} is not an object; ignored.")
            continue
        bad = sorted(k for k in METADATA_FIELDS if k in entry and not isinstance(entry[k], (str, type(None))))
        if bad:
            warnings.append(f"{label}: {', '.join(bad)} of {name[:100]!r} not text; ignored.")
        entries[name] = {k: entry[k] for k in METADATA_FIELDS if isinstance(entry.get(k), str)}
    return entries


def _sidecar(directory: Path, root: Path | None, cache: dict[Path, dict], warnings: list[str]) -> dict:
    """The metadata.json of `directory`, read once per pass; one that links out of `root` is not read."""
    if directory not in cache:
        file = directory / METADATA_FILE
        readable = file.is_file() and (root is None or _inside(file, root))
        cache[directory] = read_sidecar(file, warnings) if readable else {}
    return cache[directory]


def build_document(text: str, *, path: str, title: str | None = None, url: str | None = None,
                   published: str | None = None, language: str | None = None,
                   doc_id: str | None = None, added_at: str | None = None,
                   ) -> tuple[Document, str, list[tuple[int, int, str, str]]]:
    """A Document plus its cleaned text and passages (start, end, text, hash), ready for the store.

    `added_at` is the indexing time by the service's clock (`Service.timestamp()`); without one
    the store stamps the time it saves the document.
    """
    text = clean_control(text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if not text.strip():
        raise UserError(f"{path}: no text to index")
    if len(text) > MAX_DOCUMENT_CHARS:
        raise too_long(path, len(text))
    passages = []
    for start, end in split_passages(text):
        start, end = _strip_span(text, start, end)
        if end > start:
            body = text[start:end]
            passages.append((start, end, body, content_hash(body)))
    if len(passages) > MAX_PASSAGES:
        raise UserError(f"{path}: {len(passages):,} passages is more than the {MAX_PASSAGES:,} passages a document "
                        "may have; not indexed.")
    doc = Document(
        id=doc_id or _doc_id(path), path=path, title=title or _title_from_text(text, Path(path).name),
        language=language or guess_language(text), content_hash=content_hash(text), chars=len(text),
        url=url, published=published, added_at=added_at,
    )
    return doc, text, passages


def read_file(path: Path, sidecar: dict) -> tuple[str, dict]:
    """Text and metadata of one supported file; sidecar entries override what the file says.

    Files go through the same extraction as fetched URLs and attachments (HTML, PDF, text).
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path.name}: {size / 2**20:,.0f} MB is more than the {MAX_FILE_BYTES / 2**20:g} MB "
                        "a file may have; not indexed.")
    extracted = extract(path.read_bytes(), content_type="", name=path.name)
    meta = {"title": extracted.title, "published": extracted.published, "url": extracted.url}
    meta.update(sidecar.get(path.name, {}))
    return extracted.text, {k: v for k, v in meta.items() if v is not None}


def discover(paths: Iterable[str | Path]) -> tuple[list[tuple[Path, str]], list[Path]]:
    """(files to index with the path each is indexed under, the folders scanned).

    A folder is walked without entering linked folders, and a file in it is taken only when its
    resolved location stays inside the folder: a link to /etc/shadow is never read. A file named
    on its own is read wherever it points.
    """
    files, roots = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            root = path.resolve()
            roots.append(root)
            files.extend((file, _display_path(file)) for file in _files_inside(root))
        elif path.is_file():
            files.append((path, _display_path(path.resolve())))
        else:
            raise UserError(f"{raw}: no such file or directory")
    return files, roots


def _files_inside(root: Path) -> list[Path]:
    found = []
    for folder, _, names in os.walk(root):  # followlinks=False: linked folders are not entered
        for name in names:
            file = Path(folder, name)
            if file.suffix.lower() in SUFFIXES and _inside(file, root) and file.is_file():
                found.append(file)
    return sorted(found)


def index_paths(store: Store, paths: Iterable[str | Path],
                progress: Callable[[Iterable[Path]], Iterable[Path]] = lambda it: it,
                added_at: str | None = None) -> IndexReport:
    """Index files and folders: unchanged skipped, changed replaced, files gone from a scanned folder dropped.

    `added_at`: the time of this pass by the service's clock, as `build_document` takes it.
    """
    files, roots = discover(paths)
    report, sidecars = IndexReport(), {}
    indexed_paths = dict(files)
    for path in progress([file for file, _ in files]):
        indexed_path = indexed_paths[path]
        root = next((r for r in roots if path.is_relative_to(r)), None)
        try:
            body, meta = read_file(path, _sidecar(path.parent, root, sidecars, report.warnings))
            existing = store.document_by_path(indexed_path)
            doc, text, passages = build_document(
                body, path=indexed_path, title=meta.get("title"), url=meta.get("url"),
                published=meta.get("published"), language=meta.get("language"),
                doc_id=existing.id if existing else None, added_at=added_at)
        except (UserError, OSError, ValueError) as exc:
            report.errors.append(str(exc))
            continue
        if existing and existing.content_hash == doc.content_hash and \
                (existing.title, existing.url, existing.published) == (doc.title, doc.url, doc.published):
            report.unchanged += 1
            continue
        store.replace_document(doc, text, passages)
        report.passages += len(passages)
        if existing:
            report.updated += 1
        else:
            report.added += 1
    for warning in report.warnings:
        log.warning("%s", warning)
    report.removed = drop_missing(store, roots, set(indexed_paths.values()))
    return report


def drop_missing(store: Store, roots: list[Path], found: set[str]) -> int:
    """Remove documents that lived under one of `roots` and were not `found` there this time
    (deleted, or now a link out of the folder)."""
    prefixes = [_display_path(root) for root in roots]
    removed = 0
    for doc in store.documents():
        if doc.path in found or doc.path.startswith(("http://", "https://")):
            continue
        if any(_under(doc.path, prefix) for prefix in prefixes):
            store.delete_document(doc.id)
            removed += 1
    return removed


def _under(path: str, prefix: str) -> bool:
    """Whether an indexed path lies in the folder indexed as `prefix` ("." is the working directory,
    under which every relative path lies)."""
    if prefix == ".":
        return not os.path.isabs(path)
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")
