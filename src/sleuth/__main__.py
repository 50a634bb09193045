"""``python -m sleuth`` (also what ``torchrun -m sleuth`` runs)."""

from sleuth.cli import app

app(prog_name="sleuth")
