"""Experiments: the lr / warm-up sweep, the sampler grid, and the result bundles they write."""
