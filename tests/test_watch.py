"""The folder watcher for real: files created, edited and deleted in a tmp folder reach the index by themselves."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change

from bot.core.watch import relevant, watch_folders

NOTE = "# Compost Notes\n\nTurn the compost pile every two weeks so the middle stays warm and airy.\n"


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait (bounded) for the watcher to have done its work."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def watching(service, folder: Path):
    ready = asyncio.Event()
    task = asyncio.create_task(watch_folders(service, [folder], ready=ready, debounce_ms=300))
    try:
        async with asyncio.timeout(15):
            await ready.wait()
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(10):
                await task


def doc_at(service, path: Path):
    return service.store.document_by_path(str(path.resolve()))


async def test_created_edited_and_deleted_files_reach_the_index(service, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    existing = folder / "existing.txt"
    existing.write_text("Seed catalogues arrive in January; order early for the rare tomato varieties.\n")
    model = service.models.encoder_id

    async with watching(service, folder):
        assert doc_at(service, existing) is not None  # indexed on start

        note = folder / "compost.md"
        note.write_text(NOTE)
        await until(lambda: doc_at(service, note) is not None and not service.store.missing_embeddings(model))
        assert doc_at(service, note).title == "Compost Notes"

        first_hash = doc_at(service, note).content_hash
        note.write_text(NOTE + "\nAdd dry leaves when the pile smells sour.\n")
        await until(lambda: doc_at(service, note).content_hash != first_hash)
        assert "dry leaves" in service.store.document_text(doc_at(service, note).id)

        (folder / "sub").mkdir()
        nested = folder / "sub" / "beds.html"
        nested.write_text("<html><body><article><h1>Raised Beds</h1><p>Raised beds drain well after rain "
                          "and warm up early in spring.</p></article></body></html>")
        await until(lambda: doc_at(service, nested) is not None)

        note.unlink()
        await until(lambda: doc_at(service, note) is None)
        assert doc_at(service, existing) is not None and doc_at(service, nested) is not None
        assert not service.store.missing_embeddings(model)


def test_only_documents_metadata_and_folders_are_relevant(tmp_path):
    assert relevant(Change.added, str(tmp_path / "notes.md")) and relevant(Change.deleted, str(tmp_path / "a.HTML"))
    assert relevant(Change.modified, str(tmp_path / "metadata.json")) and relevant(Change.added, str(tmp_path / "sub"))
    for junk in ("photo.png", ".notes.md.swp", "notes.md~", ".git/index", "__pycache__/x.pyc"):
        assert not relevant(Change.added, str(tmp_path / junk)), junk


async def test_unreadable_files_are_skipped_and_the_watcher_goes_on(service, tmp_path):
    async with watching(service, tmp_path):
        generation = service.store.generation()
        (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
        (tmp_path / "junk.txt").write_bytes(b"\x00\x01binary")  # supported suffix, unreadable content
        good = tmp_path / "good.txt"
        good.write_text("Bean poles go in before the seeds, so the roots are never disturbed.\n")
        await until(lambda: doc_at(service, good) is not None)
        assert [d.path for d in service.store.documents()] == [str(good.resolve())]
        assert service.store.generation() == generation + 1


async def test_missing_folders_are_skipped(service, tmp_path):
    async with asyncio.timeout(5):
        await watch_folders(service, [tmp_path / "nope"])  # returns: nothing to watch
    assert service.store.documents() == []
