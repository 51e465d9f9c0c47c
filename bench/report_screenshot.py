"""How the erasure report looks: a small store, one erasure, its page in headless Chromium.

Builds a store of made-up people (the test helpers' data: a forest, a linear regression and a
logistic regression that needs a retrain), erases one subject, renders the HTML report, and —
when Chromium is on PATH — writes a screenshot (PNG) and a print (PDF, A4) of it::

    python -m bench.report_screenshot            # docs/erasure-report.{html,png,pdf}
    python -m bench.report_screenshot --out-dir /tmp/r

Prints the files written and the PDF's page count. The helpers (:func:`browser`,
:func:`print_pdf`, :func:`pdf_pages`) are what the report page's tests use too.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs"
NAME = "erasure-report"
# at a device scale of 1.5, a viewport of 827 CSS px is 1240 px wide: an A4 sheet (210 mm =
# 794 CSS px) at 150 dpi with a thin margin, a little taller than A4 to show the sign-off
WINDOW, SCALE = (827, 1200), 1.5
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str | None:
    """The path of a Chromium-family browser on PATH, or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def build_report(directory: Path) -> dict[str, Any]:
    """A store in ``directory`` with one erasure; that request's report (JSON)."""
    from store import ModelStore
    from tests.store.helpers import VICTIM, budgeted, populate

    st = ModelStore.open(directory)
    try:
        populate(st)
        st.train(
            "churn", dataset="people", estimator=budgeted(), label="label", features=["a", "b"]
        )
        receipt = st.erase(VICTIM, legal_ground="art17-1-b")
        return st.erasure_report(receipt.request_id)
    finally:
        st.close()


def _headless(exe: str, page: Path, *flags: str, timeout: float = 120) -> None:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",  # root in containers and CI has no user namespace for the sandbox
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *flags,
            page.resolve().as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-2000:]}")


def screenshot(exe: str, page: Path, png: Path) -> Path:
    """A PNG of ``page`` as a screen shows it, 1240 x 1800 px (an A4 sheet at 150 dpi)."""
    _headless(
        exe,
        page,
        f"--screenshot={png.resolve()}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--force-device-scale-factor={SCALE}",
    )
    return png


def print_pdf(exe: str, page: Path, pdf: Path) -> Path:
    """A PDF of ``page`` as printed (its print stylesheet, A4), without browser headers."""
    _headless(exe, page, f"--print-to-pdf={pdf.resolve()}", "--no-pdf-header-footer")
    return pdf


def pdf_pages(data: bytes) -> int:
    """The number of pages of a PDF: its ``/Type /Page`` objects (not ``/Pages``).

    >>> pdf_pages(b"<< /Type /Pages /Kids [1 0 R] >> << /Type /Page >> <</Type/Page/X 1>>")
    2
    """
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", data))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from api import html

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(DOCS), help="where the files go (default: docs/)")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="forget-report-") as tmp:
        report = build_report(Path(tmp) / "store")
    page = out / f"{NAME}.html"
    page.write_text(html.erasure_report(report), encoding="utf-8")
    result: dict[str, Any] = {"html": str(page), "png": None, "pdf": None, "pdf_pages": None}
    exe = browser()
    if exe is None:
        print(f"{page}: no Chromium on PATH (apt-get install chromium), so no PNG or PDF")
        return result
    png = screenshot(exe, page, out / f"{NAME}.png")
    pdf = print_pdf(exe, page, out / f"{NAME}.pdf")
    result |= {"png": str(png), "pdf": str(pdf), "pdf_pages": pdf_pages(pdf.read_bytes())}
    for key in ("html", "png", "pdf"):
        print(f"{key}: {result[key]}")
    print(f"pages printed (A4): {result['pdf_pages']}")
    return result


if __name__ == "__main__":
    main()
