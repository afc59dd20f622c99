"""Evaluation only: compares the pipeline's output with ground truth AFTER it has run.

Nothing in the pipeline (association, location, incidents, io, storage, pipeline) may import
this package; a test enforces it. The demo's report step and the benchmarks use it to say how
far the located shots are from the surveyed (or simulated) truth.
"""
