"""Signed evidence reports (issue 5: not built yet)."""
