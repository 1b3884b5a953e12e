"""Comptoir host daemon: serves reader boards, verifies tokens, caches rights, bills."""

__version__ = "0.1.0"
