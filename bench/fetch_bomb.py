"""Nested-encoding fetch bomb: a few KB that decode to gigabytes must be refused in bounded memory.

A body gzip-compressed twice and served with `Content-Encoding: gzip,gzip` once took 2.3 GB and
froze the event loop for seconds (issue 13). `python -m bench.fetch_bomb URL` fetches one URL with
the real `fetch()` and prints what happened as JSON (the hostile-fetch tests run it in a child
process under a memory limit).
"""
from __future__ import annotations

import asyncio
import gzip
import json
import resource
import struct
import sys
import time
import zlib
from dataclasses import asdict, dataclass

from bot.core.fetch import FetchError, fetch

_CHUNK = 4 * 2**20  # zeros per flushed deflate block; 4 MiB gives the smallest outer layer


def double_gzip(decoded_mib: int) -> bytes:
    """gzip(gzip(`decoded_mib` MiB of zeros)), built without ever holding the zeros.

    The inner layer repeats one fully flushed deflate block (each decodes on its own), so only the
    CRC has to run over the decoded size.
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(bytes(_CHUNK)) + deflate.flush(zlib.Z_FULL_FLUSH)
    blocks = max(1, decoded_mib * 2**20 // _CHUNK)
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(bytes(_CHUNK), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, (blocks * _CHUNK) & 0xFFFFFFFF)
    return gzip.compress(header + block * blocks + deflate.flush() + trailer, 9, mtime=0)


@dataclass
class Outcome:
    refused: str | None  # the one-line FetchError, None when the body was fetched
    seconds: float
    rss_growth_mb: float  # how far the fetch raised this process's resident-set high-water mark
    longest_stall_s: float  # the longest the event loop went without running a 10 ms ticker
    body_bytes: int = 0  # decoded bytes returned when fetched


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(url: str, timeout: float = 20.0) -> Outcome:
    """Fetch `url` with the real `fetch()` while a ticker watches the event loop."""
    stall = 0.0

    async def ticker() -> None:
        nonlocal stall
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            stall, last = max(stall, now - last - 0.01), now

    watcher = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    before, started = _peak_rss_mb(), time.perf_counter()
    refused, size = None, 0
    try:
        size = len((await fetch(url, allow_private=True, timeout=timeout)).data)
    except FetchError as exc:
        refused = str(exc)
    seconds = time.perf_counter() - started
    await asyncio.sleep(0.02)
    watcher.cancel()
    return Outcome(refused, round(seconds, 3), round(_peak_rss_mb() - before, 1), round(stall, 3), size)


if __name__ == "__main__":
    print(json.dumps(asdict(asyncio.run(measure(sys.argv[1])))))
