"""Rebuild lee_stories.jsonl from gensim's wheel: `pip download --no-deps gensim==4.4.0`, then
`python tests/data/news/extract.py gensim-4.4.0-*.whl`. The story labels below were written by reading
the articles' openings, before any grouping was run on them."""
from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

SOURCE = "gensim/test/test_data/lee_background.cor"
STORIES = {  # story -> line numbers in SOURCE
    "interlaken-canyoning-trial": [162, 169, 214, 231, 255, 264, 282],
    "hih-royal-commission": [104, 195, 248, 263, 274, 279, 288],
    "qantas-maintenance-dispute": [68, 118, 129, 136, 188, 196, 204],
    "woomera-detention-unrest": [78, 85, 90, 106, 114],
    "governor-general-abuse-handling": [65, 74, 84, 91, 130],
    "argentina-crisis": [4, 21, 67, 77, 87],
    "sydney-hobart-yacht-race": [16, 28, 40, 47, 53],
    "david-hicks-detained": [98, 116, 143, 148],
    "first-test-adelaide": [119, 133, 140, 147, 183],
    "tora-bora-bin-laden-hunt": [99, 128, 134, 154, 177, 184, 193],
    "afghan-interim-government-talks": [244, 262, 293],
    "george-harrison-death": [258, 275, 294],
    "building-industry-royal-commission": [152, 186, 200, 207],
    "solomon-islands-election": [132, 139, 241],
    "nsw-bushfires": [1, 9, 20, 34, 41, 49],
    "nsw-storms": [256, 265, 273],
    "india-terror-suspect-australia": [211, 218, 226, 235],
    "bank-strike": [151, 176],
    "traveland-collapse": [261, 283],
    "rfds-crash": [182, 189],
    "peter-blake-killed": [213, 225],
}
SINGLES = [5, 12, 19, 25, 33, 46, 52, 62, 63, 110, 123, 126, 171, 220, 254, 291, 297]


def main(wheel: str) -> None:
    lines = zipfile.ZipFile(wheel).read(SOURCE).decode("utf-8", "replace").split("\n")
    story_of = {n: story for story, numbers in STORIES.items() for n in numbers} | {n: f"single-{n}" for n in SINGLES}
    out = Path(__file__).with_name("lee_stories.jsonl")
    with out.open("w", encoding="utf-8") as f:
        for n in sorted(story_of):
            text = " ".join(lines[n - 1].split())
            title = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]  # the corpus has no titles: the first sentence
            f.write(json.dumps({"id": f"lee-{n:03d}", "title": title, "text": text, "date": "2001-12",
                                "source": "ABC News (Lee corpus, via gensim)", "story": story_of[n]},
                               ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
