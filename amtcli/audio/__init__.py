"""Audio in: files -> float32 mono samples, samples -> CQT features."""
