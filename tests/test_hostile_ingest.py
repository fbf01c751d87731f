"""Hostile folders and oversized inputs (issue 13 items 3, 5, 8): links out of an indexed folder,
malformed metadata.json sidecars, and documents too large to index, against real files and SQLite."""
from __future__ import annotations

import io
import json
import os

import pytest

from bot.core.fetch import add_bytes
from bot.core.ingest import MAX_DOCUMENT_CHARS, MAX_FILE_BYTES, MAX_PASSAGES, build_document, index_paths
from bot.core.values import Actor
from bot.core.store import Store, StoreError

MEMBER = Actor("member", "A member")
NOTE = "# Orchard notes\n\nPrune the apple trees in late winter, before the buds swell.\n"
SECRET = "root:SHADOWHASH:19000:0:99999:7:::\n"


def matches(store: Store, word: str) -> int:
    return store.db.execute("SELECT count(*) FROM passages_fts WHERE passages_fts MATCH ?", [word]).fetchone()[0]


@pytest.fixture
def folders(tmp_path):
    """An indexed folder `docs` and, next to it, a folder `outside` it must never read."""
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    docs.mkdir()
    outside.mkdir()
    (docs / "orchard.md").write_text(NOTE)
    (outside / "shadow.txt").write_text(SECRET)
    (outside / "nested").mkdir()
    (outside / "nested" / "more.txt").write_text(SECRET)
    return docs, outside


def test_links_leaving_the_folder_are_not_followed(folders, store: Store):
    docs, outside = folders
    (docs / "shadow.txt").symlink_to(outside / "shadow.txt")
    (docs / "linked-folder").symlink_to(outside / "nested", target_is_directory=True)
    (docs / "sub").mkdir()
    (docs / "sub" / "up.md").symlink_to(outside / "shadow.txt")
    report = index_paths(store, [docs])
    assert report.added == 1 and not report.errors
    assert [d.title for d in store.documents()] == ["Orchard notes"]
    assert matches(store, "SHADOWHASH") == 0


def test_a_link_inside_the_folder_is_keyed_by_its_own_path_and_goes_with_it(folders, store: Store):
    docs, outside = folders
    (docs / "pinned.md").symlink_to(docs / "orchard.md")
    index_paths(store, [docs])
    link_doc = store.document_by_path(str(docs.resolve() / "pinned.md"))
    assert link_doc is not None and store.document_by_path(str(docs.resolve() / "orchard.md")) is not None
    # re-pointed out of the folder: the document goes on the next pass
    (docs / "pinned.md").unlink()
    (docs / "pinned.md").symlink_to(outside / "shadow.txt")
    report = index_paths(store, [docs])
    assert report.removed == 1 and store.document(link_doc.id) is None
    assert matches(store, "SHADOWHASH") == 0
    # a link that was indexed before (same target, inside) disappears with the link
    (docs / "pinned.md").unlink()
    (docs / "again.md").symlink_to(docs / "orchard.md")
    assert index_paths(store, [docs]).added == 1
    (docs / "again.md").unlink()
    assert index_paths(store, [docs]).removed == 1
    assert [d.path for d in store.documents()] == [str(docs.resolve() / "orchard.md")]


@pytest.mark.parametrize("sidecar, warned", [
    ('["orchard.md"]', "not an object"),
    ('"orchard.md"', "not an object"),
    ('{"orchard.md": null}', "orchard.md"),
    ('{"orchard.md": ["Title"]}', "orchard.md"),
    ('{"orchard.md": {"title": 7, "url": "https://example.org/orchard"}}', "title"),
    ('{"orchard.md": ', "not valid JSON"),
])
def test_a_malformed_metadata_json_is_one_warning_and_indexing_goes_on(folders, store: Store, sidecar, warned,
                                                                          caplog):
    docs, _ = folders
    (docs / "metadata.json").write_text(sidecar)
    (docs / "second.txt").write_text("Second note\n\nPears ripen off the tree in a cool room.\n")
    report = index_paths(store, [docs])
    assert (report.added, report.errors) == (2, [])
    assert len(report.warnings) == 1 and warned in report.warnings[0] and "metadata.json" in report.warnings[0]
    assert "\n" not in report.warnings[0]
    assert sorted(d.title for d in store.documents()) == ["Orchard notes", "Second note"]
    if "url" in sidecar:  # the valid fields of an entry still apply
        assert store.document_by_path(str(docs.resolve() / "orchard.md")).url == "https://example.org/orchard"


def test_a_file_over_the_size_cap_is_skipped_with_one_line(folders, store: Store):
    docs, _ = folders
    with open(docs / "huge.txt", "wb") as big:  # sparse: the cap is checked before anything is read
        big.truncate(MAX_FILE_BYTES + 1)
    report = index_paths(store, [docs])
    assert report.added == 1 and len(report.errors) == 1
    assert "huge.txt" in report.errors[0] and "MB" in report.errors[0] and "\n" not in report.errors[0]


def test_documents_over_the_character_or_passage_cap_are_refused(folders, store: Store):
    docs, _ = folders
    (docs / "long.txt").write_text("Long\n\n" + "Grain harvest notes for the valley. " * (MAX_DOCUMENT_CHARS // 36 + 10))
    paragraph = " ".join(["a"] * 81)  # one-letter words: many passages in few characters
    (docs / "many.txt").write_text("\n\n".join([paragraph] * (MAX_PASSAGES + 5)))
    report = index_paths(store, [docs])
    assert report.added == 1 and len(report.errors) == 2
    long_error, many_error = sorted(report.errors)
    assert "long.txt" in long_error and f"{MAX_DOCUMENT_CHARS:,} characters" in long_error
    assert "many.txt" in many_error and f"{MAX_PASSAGES:,} passages" in many_error
    assert store.passage_count() == 1


def shared_stream_pdf(pages: int, lines: int) -> bytes:
    """A small PDF whose pages all draw one content stream: its text grows with the page count."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    stream = DecodedStreamObject()
    stream.set_data(("BT /F1 10 Tf 20 800 Td " + " ".join(
        f"(Line {i} of the one shared content stream, drawn again on every page.) Tj 0 -12 Td"
        for i in range(lines)) + " ET").encode())
    content = writer._add_object(stream)
    for _ in range(pages):
        page = writer.add_blank_page(595, 842)
        page[NameObject("/Contents")] = content
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def test_an_upload_expanding_past_the_cap_is_refused_and_changes_nothing(service):
    pdf = shared_stream_pdf(pages=MAX_DOCUMENT_CHARS // 6000 + 20, lines=100)
    assert len(pdf) < 200_000
    reply = await add_bytes(service, MEMBER, pdf, name="stacked.pdf", content_type="application/pdf",
                            url="https://files.example/stacked.pdf")
    assert not reply.ok and "stacked.pdf" in reply.text and f"{MAX_DOCUMENT_CHARS:,} characters" in reply.text
    assert "\n" not in reply.text
    text = ("Plain notes about the harvest. " * 40 + "\n\n") * (MAX_DOCUMENT_CHARS // 1240 + 5)
    reply = await add_bytes(service, MEMBER, text.encode(), name="long.txt", content_type="text/plain",
                            url="https://files.example/long.txt")
    assert not reply.ok and f"{MAX_DOCUMENT_CHARS:,} characters" in reply.text
    assert service.store.documents() == [] and service.store.passage_count() == 0


def test_sidecar_that_links_out_of_the_folder_is_not_read(folders, store: Store):
    docs, outside = folders
    (outside / "metadata.json").write_text(json.dumps({"orchard.md": {"title": "Stolen title"}}))
    os.symlink(outside / "metadata.json", docs / "metadata.json")
    report = index_paths(store, [docs])
    assert report.added == 1
    assert [d.title for d in store.documents()] == ["Orchard notes"]


def test_a_colliding_document_id_replaces_nothing(store: Store):
    """Ids carry 64 bits of the path's hash; an id that is taken by another path is refused."""
    first = build_document("The quarterly offsite moves to Brest.", path="https://team.example/offsite")
    store.replace_document(*first)
    assert len(first[0].id.rsplit("-", 1)[1]) == 16
    forged = build_document("FORGED: wire the fee to this account.", path="https://evil.example/offsite",
                            doc_id=first[0].id)
    with pytest.raises(StoreError):
        store.replace_document(*forged)
    kept = store.document(first[0].id)
    assert kept.path == "https://team.example/offsite"
    assert "FORGED" not in store.document_text(first[0].id)
