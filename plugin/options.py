"""Run options as data: each is declared once, by whoever reads it (the harness, a workload or a target), and
the command line, `RunConfig`, suite files and the pytest plugin all take their names, types, defaults and
help from that declaration (harness/options.py gathers them).

A target's options are offered only to runs of that target (`--service-cmd` for the `http` target); a
workload's only matter to runs of that workload but are accepted for any (they are load settings, like
`--batch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OWNERS = ("harness", "workload", "target")
KINDS: dict[type, str] = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                          list: "a list of names (or one string of names joined by commas)"}


@dataclass(frozen=True)
class Option:
    """One run option: `name` (snake_case: `--name-with-dashes` on the command line, `name` in suite files and
    the pytest plugin), its `kind` (str, int, float, bool, or list: of names, comma-separated on the command
    line, where `none` is the empty list), `default` (None: decided when the run is
    configured, say from the target), `help` (one sentence, with the default in words where it is not plain),
    `metavar` for the command line, `low`/`high` bounds for numbers (inclusive; `positive` for > 0), and for a
    target's option, whether it `identifies` what ran (results and comparisons name the system with it)."""

    name: str
    kind: type
    default: Any
    help: str
    metavar: str = ""
    low: float | None = None
    high: float | None = None
    positive: bool = False
    identifies: bool = False  # a target's option that says which system ran (a server version): shown with its name

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: kind must be one of {', '.join(k.__name__ for k in KINDS)}")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def coerce(self, value: Any) -> Any:
        """`value` as this option's kind, or ValueError saying what is expected (an int is a number; nothing
        else is converted: a suite's "20" is a mistake to report, not to guess)."""
        if self.kind is list:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return list(value)
            raise ValueError(f"{self.name} must be {KINDS[list]} (got {value!r})")
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (isinstance(value, bool) and self.kind is not bool):
            raise ValueError(f"{self.name} must be {KINDS[self.kind]} (got {value!r})")
        return value

    def check(self, value: Any) -> str | None:
        """Why `value` is out of bounds (naming the flag), or None."""
        if value is None or self.kind not in (int, float):
            return None
        if self.positive and not value > 0:
            return f"{self.flag} must be positive (got {value})"
        if self.low is not None and self.high is not None and not self.low <= value <= self.high:
            return f"{self.flag} must be between {self.low:g} and {self.high:g} (got {value})"
        if self.low is not None and value < self.low:
            return f"{self.flag} must be at least {self.low:g} (got {value})"
        return None
