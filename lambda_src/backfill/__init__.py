"""Backfill: chunked, resumable, self-pacing data migrations inside MySQL/MariaDB or PostgreSQL,
run by a schedule (docs/backfill.md)."""
