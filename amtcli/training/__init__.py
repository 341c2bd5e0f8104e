"""Training: data for transcribers, the loop, losses, checkpoints."""
