"""Evidence and records: items, retention schedules, legal holds, disclosure."""
