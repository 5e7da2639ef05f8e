"""Settings that take Surge's per-user protections out of a benchmark's way.

A benchmark drives thousands of turns from one account and one IP address; the quotas, rate limits
and degrade ladder that protect a real fleet would otherwise be what it measures. The fair queue stays
on: it is part of the path every turn takes.
"""

from __future__ import annotations

UNLIMITED_USER = {
    "SURGE_SIGNUP_PER_IP_PER_HOUR": "1000000",
    "SURGE_LOGIN_PER_IP_PER_10MIN": "1000000",
    "SURGE_TIER_FREE_MESSAGES": "0",
    "SURGE_TIER_FREE_TOKENS": "0",
    "SURGE_TIER_FREE_CONCURRENT_TURNS": "100000",
    "SURGE_ADMISSION_MESSAGES_PER_USER_PER_MIN": "10000000",
    "SURGE_ADMISSION_MESSAGES_PER_IP_PER_MIN": "10000000",
    # One account opens as many conversations and streams as the benchmark needs.
    "SURGE_ADMISSION_CONVERSATIONS_PER_USER_PER_MIN": "10000000",
    "SURGE_ADMISSION_STREAMS_PER_USER": "100000",
    "SURGE_ADMISSION_SOCKETS_PER_USER": "100000",
    # Queue pressure this high never happens: the ladder stays at level 0 (full answers, thinking on).
    "SURGE_ADMISSION_LADDER_THRESHOLDS": "1e6,2e6,3e6,4e6",
    "SURGE_ADMISSION_MAX_QUEUE_WAIT_S": "3600",
}
