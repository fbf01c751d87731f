"""Nested-encoding fetch bomb: a few KB that decode to gigabytes must be refused in bounded memory.

A body gzip-compressed twice and served with `Content-Encoding: gzip,gzip` once took 2.3 GB and
froze the event loop for seconds (issue 13). The `load:fetch` stage of bench/run serves such bodies
(about 2 KB and 5 KB) on 127.0.0.1 and fetches them with the real `fetch()`; the target is a peak
under 300 MB. `python -m bench.fetch_bomb URL` fetches one URL and prints what happened as JSON
(the hostile-fetch tests run it in a child process under a memory limit).
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

from aiohttp import web

from bench.report import StageResult
from bot.core.fetch import FetchError, fetch

_CHUNK = 4 * 2**20  # zeros per flushed deflate block; 4 MiB gives the smallest outer layer


def double_gzip(decoded_mib: int) -> bytes:
    """gzip(gzip(`decoded_mib` MiB of zeros)), built without ever holding the zeros.

    The inner layer repeats one fully flushed deflate block (each decodes on its own), so only the
    CRC has to run over the decoded size.
    """
    zeros = bytes(_CHUNK)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    blocks = max(1, decoded_mib * 2**20 // _CHUNK)
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, (blocks * _CHUNK) & 0xFFFFFFFF)
    return gzip.compress(header + block * blocks + deflate.flush() + trailer, 9, mtime=0)


@dataclass
class Outcome:
    refused: str | None  # the one-line FetchError, None when the body was fetched
    seconds: float
    rss_growth_mb: float  # the resident-set high-water mark during the fetch, less the resident set before it
    longest_stall_s: float  # the longest the event loop went without running a 10 ms ticker
    body_bytes: int = 0  # decoded bytes returned when fetched


def _reset_peak_rss() -> bool:
    """Start a new resident-set high-water mark (Linux: /proc/self/clear_refs); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (the high-water mark) from /proc/self/status, else ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith(field + ":"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
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
    before = _rss_mb("VmRSS") if _reset_peak_rss() else _rss_mb("VmHWM")
    started = time.perf_counter()
    refused, size = None, 0
    try:
        size = len((await fetch(url, allow_private=True, timeout=timeout)).data)
    except FetchError as exc:
        refused = str(exc)
    seconds = time.perf_counter() - started
    await asyncio.sleep(0.02)
    watcher.cancel()
    return Outcome(refused, round(seconds, 3), round(_rss_mb("VmHWM") - before, 1), round(stall, 3), size)


# Decoded sizes whose double-gzip bodies are about 2 KB and 5 KB on the wire.
BOMBS_MIB = {"2 KB bomb": 1400, "5 KB bomb": 3600}
PEAK_TARGET_MB = 300


async def _serve(routes: dict[str, tuple[bytes, str]]) -> tuple[web.AppRunner, str]:
    """A 127.0.0.1 server answering each path with (body, Content-Encoding); returns it and its base URL."""

    async def answer(request: web.Request) -> web.Response:
        body, encoding = routes[request.path]
        return web.Response(body=body, headers={"Content-Type": "text/plain", "Content-Encoding": encoding})

    app = web.Application()
    app.router.add_get("/{name}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _stage(result: StageResult) -> None:
    routes = {f"/{label.split()[0]}kb": (double_gzip(mib), "gzip,gzip") for label, mib in BOMBS_MIB.items()}
    text = b"A line of ordinary text that a page could hold, repeated for a megabyte.\n" * 14_000
    routes["/control"] = (gzip.compress(text), "gzip")
    runner, base = await _serve(routes)
    try:
        for (label, mib), path in zip(BOMBS_MIB.items(), routes):
            outcome = await measure(base + path)
            result.figures[f"{label}: body bytes"] = len(routes[path][0])
            result.figures[f"{label}: decodes to MiB"] = mib
            result.figures[f"{label}: refused"] = "yes" if outcome.refused else "no"
            result.figures[f"{label}: seconds"] = outcome.seconds
            result.figures[f"{label}: longest event-loop stall ms"] = round(outcome.longest_stall_s * 1000, 1)
            result.check(f"{label}: peak RSS growth", outcome.rss_growth_mb, PEAK_TARGET_MB, "MB")
            if outcome.refused:
                result.notes.append(f"{label}: {outcome.refused}")
        control = await measure(base + "/control")
        result.figures["control (1 MB text, gzip once): fetched bytes"] = control.body_bytes
        result.figures["control: seconds"] = control.seconds
    finally:
        await runner.cleanup()


def stage(opts) -> StageResult:
    """bench/run's `load:fetch` stage (the same work with or without --quick: it takes seconds)."""
    result = StageResult("load:fetch")
    asyncio.run(_stage(result))
    result.notes.append("peak RSS growth: the resident-set high-water mark during the fetch (reset through "
                        "/proc/self/clear_refs) less the resident set before it")
    return result


if __name__ == "__main__":
    print(json.dumps(asdict(asyncio.run(measure(sys.argv[1])))))
