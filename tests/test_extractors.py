"""Every extractor imported and run on real bytes, and the installed set pinned.

A fresh install once lacked `lxml_html_clean` (pip 23 skips lxml's `html_clean` extra), so every
HTML page failed at import time. Running each extractor here makes CI (which installs the way the
README does) fail in that case instead of the bot.
"""
from __future__ import annotations

import importlib.metadata
import io
import logging
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pypdf import PdfReader, PdfWriter

from bot.core.extract import extract, html_to_text
from bot.core.feeds import parse_feed
from bot.core.fetch import Fetched
from bot.core.ingest import index_paths
from tests.local_web import make_pdf

ROOT = Path(__file__).resolve().parent.parent

ARTICLE = """<!doctype html><html><head><title>Raised Beds | Garden Site</title>
<meta name="author" content="Ada Gardener"><meta property="article:published_time" content="2024-03-05"></head>
<body><nav><a href="/">Home</a> Subscribe to our newsletter</nav><article><h1>Raised Beds</h1>
<p>Raised beds warm up sooner in spring and drain well after heavy rain, so seeds can go in two weeks earlier.</p>
<p>Fill them with a mix of topsoil and compost, and top up with an inch of compost every autumn.</p>
<p>Keep paths between beds wide enough for a wheelbarrow; the soil in the beds is never walked on.</p>
</article><footer>Copyright 2024 Garden Site. Cookie policy.</footer></body></html>"""

SHORT_PAGE = """<html><head><title>Frost Dates</title></head><body><div class="c"><div>
<p>The last spring frost in the valley usually falls in the second week of May, so tender seedlings wait.</p>
</div></div><div class="nav"><a href="/">Home</a></div></body></html>"""

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Garden Notes</title><link>http://x/</link>
<item><title>Saving Bean Seeds</title><link>http://x/beans</link><guid>beans</guid>
<description>&lt;p&gt;Let bean pods dry on the plant until they rattle.&lt;/p&gt;</description></item></channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Garden Atom</title>
<id>urn:garden</id><updated>2024-05-01T00:00:00Z</updated><entry><title>Pruning Apple Trees</title>
<id>urn:apple</id><link href="http://x/apples"/><updated>2024-05-02T08:00:00Z</updated></entry></feed>"""

MARKDOWN = b"# Watering Schedule\n\nWater the beds early in the morning, twice a week in summer.\n"


def test_html_main_extraction_drops_boilerplate_and_reads_metadata():
    extracted = extract(ARTICLE.encode(), content_type="text/html", name="beds.html")
    assert "wheelbarrow" in extracted.text and "newsletter" not in extracted.text
    assert (extracted.title, extracted.author, extracted.published) == ("Raised Beds", "Ada Gardener", "2024-03-05")


def test_html_fallback_path_runs_justext_on_a_short_page(caplog):
    """A page with little text sends trafilatura to its fallbacks (readability, then justext,
    which needs lxml_html_clean)."""
    with caplog.at_level(logging.DEBUG, logger="trafilatura"):
        text, meta = html_to_text(SHORT_PAGE)
    assert any("justext examination" in r.getMessage() for r in caplog.records)
    assert "second week of May" in text and meta["title"] == "Frost Dates"


def test_pdf_written_by_pypdf_is_read_back():
    """A real PDF rewritten by pypdf's writer with compressed (Flate) content streams."""
    source = PdfReader(io.BytesIO(make_pdf(["Compost bins reached sixty degrees within a week of turning."],
                                           title="Compost Report", author="B. Soil")))
    writer = PdfWriter()
    for page in source.pages:
        writer.add_page(page).compress_content_streams()
    writer.add_metadata({"/Title": "Compost Report", "/CreationDate": "D:20240115120000Z"})
    out = io.BytesIO()
    writer.write(out)
    assert b"/FlateDecode" in out.getvalue()
    extracted = extract(out.getvalue(), content_type="application/pdf", name="report.pdf")
    assert "sixty degrees" in extracted.text
    assert (extracted.title, extracted.published) == ("Compost Report", "2024-01-15")


@pytest.mark.parametrize("body, title, entry", [(RSS, "Garden Notes", "Saving Bean Seeds"),
                                                 (ATOM, "Garden Atom", "Pruning Apple Trees")])
def test_feeds_are_parsed(body, title, entry):
    parsed = parse_feed(Fetched("http://x/feed", 200, "application/rss+xml", None, body))
    assert parsed.feed["title"] == title and [e["title"] for e in parsed.entries] == [entry]


@pytest.mark.parametrize("content_type, name", [("text/markdown", "water.md"), ("text/plain", "water.txt"),
                                                ("", "water.md")])
def test_markdown_and_text(content_type, name):
    extracted = extract(MARKDOWN, content_type=content_type, name=name)
    assert extracted.text == MARKDOWN.decode()


def test_a_folder_with_every_kind_of_file_indexes_completely(store, tmp_path):
    """What `digestbot index` does: one HTML, PDF, Markdown and text file each, none failing."""
    (tmp_path / "beds.html").write_text(ARTICLE)
    (tmp_path / "report.pdf").write_bytes(make_pdf(["Volunteers logged forty hours of sifting."], title="Sifting"))
    (tmp_path / "water.md").write_bytes(MARKDOWN)
    (tmp_path / "frost.txt").write_text("Frost\n\nThe last frost here falls in mid May.\n")
    report = index_paths(store, [tmp_path])
    assert (report.added, report.errors) == (4, [])
    assert sorted(d.title for d in store.documents()) == ["Frost", "Raised Beds", "Sifting", "Watering Schedule"]


# -- the pinned install --------------------------------------------------------------------------
def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = (re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip()) for line in lines if not line.startswith("#"))
    return {canonicalize_name(m[1]): m[2] for m in pairs if m}


def _needed(extras: set[str]) -> set[str]:
    """digestbot's installed dependencies (with `extras`), all the way down, as this venv's markers select them."""
    def requires(name: str, chosen: set[str]) -> list[tuple[Requirement, set[str]]]:
        reqs = [Requirement(r) for r in importlib.metadata.requires(name) or []]
        return [(r, r.extras) for r in reqs
                if not r.marker or any(r.marker.evaluate({"extra": e}) for e in chosen | {""})]

    needed, todo = set(), requires("digestbot", extras)
    while todo:
        req, chosen = todo.pop()
        name = canonicalize_name(req.name)
        if name not in needed:
            needed.add(name)
            todo += requires(req.name, chosen)
    return needed


def test_every_dependency_is_pinned_in_constraints():
    """A dependency added to pyproject.toml without refreshing constraints.txt fails here."""
    pins = _pins()
    needed = _needed({"test"}) - {"pip"}  # sqlite-utils asks for pip: the venv's own is used, never pinned
    assert needed - set(pins) == set()
    assert canonicalize_name("lxml_html_clean") in needed  # declared directly, not through lxml's extra
    drifted = {name: (importlib.metadata.version(name), pins[name]) for name in needed
               if importlib.metadata.version(name).split("+")[0] != pins[name]}
    assert drifted == {}, "installed version differs from constraints.txt (installed, pinned)"
