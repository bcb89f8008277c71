"""Processors: the stages between a finished span and the batch (hooks, redaction, trimming)."""
