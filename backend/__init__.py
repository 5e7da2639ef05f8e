"""Surge: an open-source backend for consumer AI chat apps served by SGLang."""

__version__ = "0.1.0"
