"""tgsr: timestamp-grounded speech reasoning for large audio-language models."""

__version__ = "0.1.0"
