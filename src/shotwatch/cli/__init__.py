"""The shotwatch command (outer shell)."""
