"""Ownership tests and the verdict (issue 4: not built yet)."""
