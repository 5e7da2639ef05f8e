"""Accounts: sign-up, login, rotating refresh tokens, the current user, export and deletion."""
