"""Render ``report.html`` to PNG pages, to look at the report as a reader would.

Not a dependency of jaxgrad: install the two renderers in a throwaway environment,

    python -m venv /tmp/shotvenv && /tmp/shotvenv/bin/pip install weasyprint pypdfium2
    /tmp/shotvenv/bin/python tools/screenshot_report.py results/report.html /tmp/shots

WeasyPrint lays the page out without a browser (no JavaScript; ``<details>`` are drawn
open) at a 1100-px page width, close to a browser window showing the report's 1000-px
column; pdfium rasterises each page to ``OUT/pageNN.png``. Use a headless Chromium
(``chromium --headless --screenshot``) instead where one is installed.
"""

import sys
from pathlib import Path


def main(html: str, out: str, width_px: int = 1100, height_px: int = 1600) -> int:
    import pypdfium2
    import weasyprint

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    pdf = folder / "report.pdf"
    page = weasyprint.CSS(string=f"@page {{ size: {width_px}px {height_px}px; margin: 0 }}")
    weasyprint.HTML(filename=html).write_pdf(pdf, stylesheets=[page])
    document = pypdfium2.PdfDocument(pdf)
    for i in range(len(document)):
        document[i].render(scale=1).to_pil().save(folder / f"page{i:02d}.png")
    print(f"{len(document)} pages in {folder}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tools/screenshot_report.py REPORT.html OUT_DIR")
    sys.exit(main(sys.argv[1], sys.argv[2]))
