"""What every figure shares: the atomic PDF + PNG save."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from headlab.io.atomic import atomic_paths

PNG_DPI = 150


def save_figure(figure: Figure, output_pdf: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write `figure` to `output_pdf` and to a PNG with the same stem, both atomically."""
    pdf_path = Path(output_pdf)
    png_path = pdf_path.with_suffix(".png")
    with atomic_paths(pdf_path, png_path) as (pdf_tmp, png_tmp):
        figure.savefig(pdf_tmp, format="pdf")
        figure.savefig(png_tmp, format="png", dpi=PNG_DPI)
    return pdf_path, png_path
