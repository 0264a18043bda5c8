"""Benchmarks (``make bench-*``): each prints its figures, as ratios against a baseline from the same run."""
