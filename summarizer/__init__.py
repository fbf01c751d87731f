"""Everything that touches a model: encoders, the extractive default and generative backends.

`Models` loads each model lazily, once. The service calls it from two threads: lookups (queries,
answers, summaries) on one, background embedding of new passages on another, each with its own
encoder instance and its own share of the thread budget (`use_threads`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

from summarizer.encoder import Encoder, encoder_model_id, load_encoder
from summarizer.extractive import KeyPoint, extractive_summary
from summarizer.text import LANGUAGE_NAMES, split_sentences, trim_fillers, word_count

SUMMARY_METHOD = "keypoints-v1"
"""Part of the summary cache key: bump it when the extractive method changes, so old extracts are recomputed."""


@dataclass(frozen=True)
class Summary:
    """A one-sentence overview and up to five key points, in document order."""

    overview: str
    points: tuple[KeyPoint, ...]
    language: str  # the language the summary is written in, as a name ("English", "German")
    model_id: str

    @property
    def text(self) -> str:
        """The summary as a reader sees it: the overview, then one line per key point."""
        return "\n".join([self.overview, *(f"• {point.text}" for point in self.points)]).strip()

    def to_json(self) -> str:
        """What the summary cache stores (the sources stay with the points)."""
        return json.dumps({"overview": self.overview, "points": [[p.text, p.source] for p in self.points]},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, stored: str, language: str, model_id: str) -> "Summary":
        """A cached summary; a row that is not JSON is read as a bare overview."""
        try:
            data = json.loads(stored)
            return cls(data["overview"], tuple(KeyPoint(*point) for point in data["points"]), language, model_id)
        except (ValueError, KeyError, TypeError):
            return cls(stored, (), language, model_id)


def use_threads(count: int) -> None:
    """Cap the threads that model work run from the calling thread may use.

    torch's thread count is per calling thread (OpenMP's is), so the lookup worker and the
    background embedder can each keep to their share of the cores instead of oversubscribing them.
    """
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


@dataclass
class Models:
    encoder_name: str = "e5"
    summary_encoder_name: str = "minilm"
    generator_model: str | None = None
    generator_url: str | None = None
    generator_api_key: str | None = None
    threads: int = 1

    @classmethod
    def from_settings(cls, settings) -> "Models":
        return cls(settings.encoder, settings.summary_encoder, settings.summarizer_model,
                   settings.summarizer_url, settings.summarizer_api_key, settings.model_threads)

    @cached_property
    def encoder(self) -> Encoder:
        """The retrieval encoder (multilingual by default, so questions find passages in any language)."""
        return load_encoder(self.encoder_name, self.threads)

    @cached_property
    def bulk_encoder(self) -> Encoder:
        """A second instance of the retrieval encoder, for embedding new passages in the background:
        bulk work and queries then never share an engine (not every engine takes two threads at once)."""
        return load_encoder(self.encoder_name, self.bulk_threads)

    @property
    def bulk_threads(self) -> int:
        """Background embedding's share of the thread budget: half (at least one)."""
        return max(1, self.threads // 2)

    @property
    def interactive_threads(self) -> int:
        """Lookups' share while background embedding runs (the whole budget otherwise)."""
        return max(1, self.threads - self.bulk_threads)

    @cached_property
    def summary_encoder(self) -> Encoder:
        if self.summary_encoder_name == self.encoder_name:
            return self.encoder
        return load_encoder(self.summary_encoder_name, self.threads)

    @cached_property
    def generator(self):
        from summarizer.generative import load_generator

        return load_generator(self.generator_model, self.generator_url,
                              api_key=self.generator_api_key, threads=self.threads)

    @property
    def generates(self) -> bool:
        """Whether a generator is configured (a local model or a server)."""
        return bool(self.generator_model or self.generator_url)

    def close(self) -> None:
        """Release what a loaded generator holds open (the HTTP client of a server backend)."""
        generator = self.__dict__.get("generator")
        if generator is not None and hasattr(generator, "close"):
            generator.close()

    @property
    def encoder_id(self) -> str:
        return encoder_model_id(self.encoder_name)

    def reading_encoder(self, document_language: str) -> Encoder:
        """The encoder that reads a document for its summary: the summary encoder, except that
        MiniLM (English only) hands other languages to the multilingual retrieval encoder."""
        if document_language != "en" and self.summary_encoder_name == "minilm":
            return self.encoder
        return self.summary_encoder

    @property
    def summarizer_id(self) -> str:
        """Cache key part for summaries: changes whenever the summarizing model or method changes."""
        readers = dict.fromkeys([encoder_model_id(self.summary_encoder_name), encoder_model_id(self.encoder_name)])
        method = f"{SUMMARY_METHOD}:{'+'.join(readers)}"
        if self.generates:
            return f"{self.generator.model_id}|{method}"
        return method

    def summarize(self, passages: list[str], document_language: str, wanted_language: str,
                  title: str = "") -> Summary:
        """Overview and key points of a whole document, from the parts the encoder finds in it;
        generators write them in `wanted_language` from those parts, extracts keep the document's."""
        extract = extractive_summary(self.reading_encoder(document_language), passages, title)
        if self.generates:
            from summarizer.generative import key_point_summary

            parts = extract.parts or ["\n\n".join(passages)]  # no prose sentence: the document as one part
            overview, points = key_point_summary(self.generator, parts, title=title, language=wanted_language)
            return Summary(overview, tuple(KeyPoint(p, "") for p in points), wanted_language, self.summarizer_id)
        language = LANGUAGE_NAMES.get(document_language, document_language)
        if extract.overview is None:  # no prose sentence at all: the opening lines, as they are
            opening = [s for p in passages for s in split_sentences(p) if word_count(s) >= 4]
            return Summary(trim_fillers(opening[0]) if opening else "", (), language, self.summarizer_id)
        return Summary(extract.overview.text, tuple(extract.points), language, self.summarizer_id)
