"""report.html (placeholder: being written)."""

from typing import Any


def render(results: dict[str, Any]) -> str:
    return f"<html><body><h1>{results['valid']}</h1></body></html>"
