"""Benchmarks: write path, fan-out, burst and memory (see docs/performance.md)."""
