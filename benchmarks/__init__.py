"""Benchmarks of the KAI service: start-up time and HTTP throughput and latency."""
