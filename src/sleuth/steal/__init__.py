"""Encoder extraction attacks and victim-side output defences (issue 3: not built yet)."""
