"""Everything that touches a model: encoders, the extractive default and generative backends.

`Models` loads each model lazily, once, and is used from the service's single worker thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from summarizer.encoder import Encoder, encoder_model_id, load_encoder
from summarizer.extractive import extractive_summary
from summarizer.text import LANGUAGE_NAMES

SUMMARY_SENTENCES = 4


@dataclass(frozen=True)
class Summary:
    text: str
    language: str  # the language the summary is written in, as a name ("English", "German")
    model_id: str


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

    @property
    def summarizer_id(self) -> str:
        """Cache key part for summaries: changes whenever the summarizing model changes."""
        if self.generator_model or self.generator_url:
            return self.generator.model_id
        return f"extractive-v2:{encoder_model_id(self.summary_encoder_name)}"

    def summarize(self, passages: list[str], document_language: str, wanted_language: str) -> Summary:
        """Summary of a whole document; generators write in `wanted_language`, extracts keep the document's."""
        if self.generator_model or self.generator_url:
            from summarizer.generative import abstractive_summary

            text = abstractive_summary(self.generator, passages, language=wanted_language,
                                       sentences=SUMMARY_SENTENCES)
            return Summary(text, wanted_language, self.summarizer_id)
        sentences = extractive_summary(self.summary_encoder, passages, SUMMARY_SENTENCES)
        return Summary(" ".join(sentences), LANGUAGE_NAMES.get(document_language, document_language),
                       self.summarizer_id)
