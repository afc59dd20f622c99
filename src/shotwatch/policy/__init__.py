"""Identity, authentication and the single authorization decision point."""
