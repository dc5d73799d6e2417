"""Training: session-parallel batches, negative sampling, the optimizer, the compiled loop and the one
training routine with checkpoints and warm start."""
