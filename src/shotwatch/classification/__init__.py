"""Gunfire vs confusers: pulse-level model and incident-level fusion."""
