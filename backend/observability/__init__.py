"""Metrics, structured logs, request ids and health checks."""
