"""Benchmarks that write their results into docs/performance.md."""
