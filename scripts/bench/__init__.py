"""callcoach benchmarks (issue #7): one module per benchmark, run_all.py runs the CPU ones."""
