"""Training: parallel pairs, the mono / cross / hybrid batch samplers, and (next) the fine-tuning runs."""
