"""Benchmarks behind ``sparse-memory bench NAME``; each returns one JSON-able dict."""

from __future__ import annotations

import argparse


def run_benchmark(name: str, args: argparse.Namespace) -> dict:
    if name == "lookup":
        from sparse_memory.bench.lookup import bench_lookup

        return bench_lookup(quick=args.quick)
    if name == "retrofit":
        from sparse_memory.bench.retrofit import bench_retrofit

        return bench_retrofit(quick=args.quick)
    if name == "addressing":
        from sparse_memory.bench.retrofit import bench_addressing

        return bench_addressing(quick=args.quick)
    raise ValueError(f"unknown benchmark {name!r}")
