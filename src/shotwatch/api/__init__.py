"""ASGI web application and API (outer shell)."""
