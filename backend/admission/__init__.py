"""Admission: rate limits, quotas, the fair queue and the overload policy."""
