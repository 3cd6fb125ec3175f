"""Benchmarks: figures and ratios measured in one run. Not part of the tests' pass/fail."""
