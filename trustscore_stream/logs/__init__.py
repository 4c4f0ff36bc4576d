"""Structured logging: JSON (or text) lines with component, worker and correlation ids, levels
per component, and redaction of secrets (docs/operations.md "Logging")."""
