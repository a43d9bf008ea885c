"""Shared test helpers (tiny tokenizers and models built on the spot, no downloads)."""
