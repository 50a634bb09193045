"""``report.pdf``: the HTML report printed by a headless Chromium, where one is installed.

A PDF is optional: sleuth does not bundle a browser, and without one the report simply has no
PDF (the HTML is the report). Debian: ``apt install chromium``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 60


def find_browser() -> str | None:
    """The first headless-capable browser on PATH (or $SLEUTH_CHROMIUM), if any."""
    override = os.environ.get("SLEUTH_CHROMIUM")
    if override:
        return shutil.which(override)
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def html_to_pdf(html: Path, pdf: Path, browser: str) -> bool:
    """Print ``html`` to ``pdf``; False (and no file) when the browser fails."""
    with tempfile.TemporaryDirectory(prefix="sleuth-chromium-") as profile:
        args = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.resolve().as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        try:
            subprocess.run(args, capture_output=True, timeout=TIMEOUT_S, check=True)
        except (OSError, subprocess.SubprocessError):
            pdf.unlink(missing_ok=True)
            return False
    return pdf.is_file() and pdf.stat().st_size > 0
