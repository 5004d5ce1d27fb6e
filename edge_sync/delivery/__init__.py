"""Core to edge: the sync controllers that verify a published model and swap it in, or roll it back."""
