"""The OpenAI-compatible API (``/openai/v1/*``): Chat Completions and the model list for any OpenAI client,
authenticated by API keys, through the same quotas, fair queue, degrade ladder and routing as turns."""
