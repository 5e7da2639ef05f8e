"""Per-user API keys for the OpenAI-compatible API: made, listed and deleted by the signed-in user, and
checked on every request of ``/openai/v1/*``."""
