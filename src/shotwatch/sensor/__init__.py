"""The sensor agent: audio sources, rolling encrypted buffer, signed reports (outer shell)."""
