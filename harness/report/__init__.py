"""The files a check writes: results.json (the contract), junit.xml (CI) and report.html (people)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from harness.files import atomic_write
from harness.report import html, junit


def _default(x: Any) -> Any:
    import numpy as np  # here, not above: the comparison and suite pages import this package, and need no numpy

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot write {type(x).__name__} to results.json")


_ENCODER = msgspec.json.Encoder(enc_hook=_default)


def results_json(results: dict[str, Any]) -> str:
    """results.json's text, indented. msgspec rather than json: a big history's anomaly lists made
    the standard library's pure-Python indenting encoder the slowest step of `onceproof check`."""
    return msgspec.json.format(_ENCODER.encode(results), indent=1).decode() + "\n"


def write_reports(results: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write results.json, junit.xml and report.html into `out_dir`; return their paths."""
    out_dir = Path(out_dir)
    paths = {
        "results": out_dir / "results.json",
        "junit": out_dir / "junit.xml",
        "report": out_dir / "report.html",
    }
    atomic_write(paths["results"], results_json(results))
    atomic_write(paths["junit"], junit.render(results))
    atomic_write(paths["report"], html.render(results))
    return paths
