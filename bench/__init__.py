"""Reproducible benchmarks: each script prints a Markdown table and writes JSON to results/."""
