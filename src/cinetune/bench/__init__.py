"""Benchmarks: `cinetune bench <name>` measures and writes benchmarks/results/<name>.md."""
