"""Readers for real-world formats (published live-fire layout, smj0 WAV chunks)."""
