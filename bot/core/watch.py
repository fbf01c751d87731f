"""Watched document folders: while the bot runs, a folder is re-indexed within seconds of a change in it.

Re-indexing a whole folder is cheap (unchanged files are skipped by content hash) and catches every
kind of change at once: new, edited, renamed and deleted files, and metadata.json edits.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from watchfiles import Change, DefaultFilter, awatch

from bot.core.ingest import METADATA_FILE, SUFFIXES, IndexReport, index_paths

if TYPE_CHECKING:
    from bot.core.service import Service

log = logging.getLogger(__name__)

DEBOUNCE_MS = 700  # changes arriving together (an editor's save, a copied folder) make one re-index
WAKE_MS = 1000  # the watcher's idle wake-up; the first one tells us it is live
_default_filter = DefaultFilter()


def relevant(change: Change, path: str) -> bool:
    """Supported documents, sidecar metadata and directories (a folder moved in or out), no editor junk."""
    name = Path(path).name
    suffix = Path(path).suffix.lower()
    return _default_filter(change, path) and (suffix in SUFFIXES or name == METADATA_FILE or not suffix)


def reindex(service: "Service", roots: list[Path]) -> IndexReport:
    """Index the given folders and have what is new embedded in the background (synchronous: runs
    on the service's document thread). The embedder is woken on every pass, so passages a previous
    run or another process left without vectors are embedded too."""
    report = index_paths(service.store, roots, added_at=service.timestamp())
    service.embed_in_background(report.passages)
    return report


def _roots_touched(changes: Iterable[tuple[Change, str]], roots: list[Path]) -> list[Path]:
    touched = set()
    for _, raw in changes:
        path = Path(raw)
        touched.update(root for root in roots if path == root or root in path.parents)
    return sorted(touched)


async def _reindex_logged(service: "Service", roots: list[Path]) -> None:
    try:
        report = await service.in_worker(reindex, service, roots)
    except Exception:  # a bad file or a full disk must not stop the watcher
        log.exception("re-indexing %s failed", ", ".join(map(str, roots)))
        return
    for error in report.errors:
        log.warning("not indexed: %s", error)
    log.info("re-indexed %s: %s", ", ".join(map(str, roots)), report.line())


async def watch_folders(service: "Service", paths: Iterable[str | Path] | None = None, *,
                        ready: asyncio.Event | None = None, debounce_ms: int = DEBOUNCE_MS) -> None:
    """Keep the index in step with `paths` (default: the configured DIGESTBOT_DOCS) until cancelled.

    The folders are fully indexed once the watcher is live (so nothing changed in between is
    missed); `ready` is set after that first pass.
    """
    roots = [Path(p).resolve() for p in (service.settings.docs if paths is None else paths)]
    present = [root for root in roots if root.exists()]
    for root in roots:
        if root not in present:
            log.warning("not watching %s: no such file or folder", root)
    if not present:
        return
    first = True
    async for changes in awatch(*present, watch_filter=relevant, debounce=debounce_ms,
                                rust_timeout=WAKE_MS, yield_on_timeout=True):
        touched = present if first else _roots_touched(changes, present)
        if touched:
            await _reindex_logged(service, touched)
        if first and ready is not None:
            ready.set()
        first = False
