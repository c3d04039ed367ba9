"""Frontends: Hugging Face Mamba checkpoints and live models into the edgec IR."""
