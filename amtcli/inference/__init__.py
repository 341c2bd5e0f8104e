"""Inference: chunking, decoding posteriors into notes, and the transcribe API."""
