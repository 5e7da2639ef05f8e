"""Inference: the SGLang client, the worker pool and how a turn is routed to a worker."""
