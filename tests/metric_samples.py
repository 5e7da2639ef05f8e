"""Sample values read from a Prometheus exposition, so that a test checks what a counter counted.

A name appearing in ``/metrics`` proves nothing: prometheus_client prints every metric's ``# HELP`` and
``# TYPE`` lines before it has a single sample. And the registry lives as long as the test process, so
a test compares the samples after what it did with the samples before.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, frozenset[tuple[str, str]]]


def samples(text: str) -> dict[Key, float]:
    """Every sample of an exposition: (sample name, its labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample with exactly these labels, or None if the exposition has no such sample."""
    return samples(text).get((name, frozenset(labels.items())))


class Scrape:
    """One reading of ``/metrics``; ``added`` is how much a sample grew since an earlier reading."""

    def __init__(self, text: str) -> None:
        self.values = samples(text)

    def value(self, name: str, **labels: str) -> float:
        return self.values.get((name, frozenset(labels.items())), 0.0)

    def added(self, since: Scrape, name: str, **labels: str) -> float:
        return self.value(name, **labels) - since.value(name, **labels)


async def scrape(client) -> Scrape:
    """``GET /metrics`` of the app behind ``client``."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return Scrape(response.text)
