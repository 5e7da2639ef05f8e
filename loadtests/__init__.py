"""Load tests, benchmarks and the simulated SGLang worker."""
