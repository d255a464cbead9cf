"""Benchmarks for netopt's generated gateway (see bench/README.md)."""
