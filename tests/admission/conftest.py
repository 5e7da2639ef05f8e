"""Admission tests build Surges over workers of their own, like the turn tests."""

from tests.chat.conftest import client_with

__all__ = ["client_with"]
