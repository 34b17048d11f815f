"""The results vocabulary: the one home of the words results.json, the CLI, JUnit and HTML reports share.

Guarantees a profile may claim, the delivery checker's counts and anomaly classes, the log checker's
kinds, the verdict words and exit codes. The checkers define what the words mean (contract v1, `docs/`);
everything that prints or writes results imports them from here instead of spelling them again.
"""

from __future__ import annotations

import re
from typing import Any

GUARANTEES = ("at-most-once", "at-least-once", "exactly-once")

# The delivery checker's counts (contract v1), in the order reports list them.
DELIVERY_COUNTS = ("attempted", "acknowledged", "failed", "indeterminate", "delivered", "lost", "duplicated",
                   "unexpected", "aborted_read", "recovered", "unresolved", "lost_effects", "duplicated_effects")
ANOMALIES = ("lost", "duplicated", "unexpected", "aborted_read", "lost_effects", "duplicated_effects")

# The idempotency checker's anomaly classes (docs/payments-contract.md): what an API's answers must not be.
IDEMPOTENCY_ANOMALIES = ("key_reuse_accepted",)
IDEMPOTENCY_COUNTS = ("requests", "keys", "reused", *IDEMPOTENCY_ANOMALIES)

# The log checker's kinds: the first two fail a run, the last two are reported only.
LOG_KINDS = ("inconsistent_offsets", "duplicates", "nonmonotonic", "skips")
LOG_FAILING = ("inconsistent_offsets", "duplicates")

VERDICT_WORDS = {True: "VALID", False: "INVALID", "unknown": "UNKNOWN"}
EXIT_CODES = {True: 0, False: 1, "unknown": 2}  # `onceproof check` / `run`: valid, invalid, unknown
VERDICT_NAMES = ("valid", "invalid", "unknown")  # the same verdicts in suite files, suite.json and comparisons


def verdict_word(valid: Any) -> str:
    """VALID, INVALID or UNKNOWN for a results `valid` field (anything but True/False is unknown)."""
    return VERDICT_WORDS[valid] if isinstance(valid, bool) else VERDICT_WORDS["unknown"]


def verdict_name(valid: Any) -> str:
    """valid, invalid or unknown for a results `valid` field: the word suites expect and record."""
    return verdict_word(valid).lower()


def exit_code(valid: Any) -> int:
    return EXIT_CODES[valid] if isinstance(valid, bool) else EXIT_CODES["unknown"]


def failing_anomalies(guarantee: str, effects: bool) -> frozenset[str]:
    """The anomaly classes that break `guarantee` (contract v1, 'Verdict'): with an effects read, the effect
    store decides loss and duplication; unexpected and aborted reads break every guarantee."""
    kinds = {"unexpected", "aborted_read"}
    if guarantee in ("at-most-once", "exactly-once"):
        kinds.add("duplicated_effects" if effects else "duplicated")
    if guarantee in ("at-least-once", "exactly-once"):
        kinds.add("lost_effects" if effects else "lost")
    if guarantee not in GUARANTEES:
        kinds.update(ANOMALIES)
    return frozenset(kinds)


def failing_idempotency(guarantee: str) -> frozenset[str]:
    """The idempotency anomalies that break `guarantee`: the key is an exactly-once claim's mechanism, so a key
    that did not guard a reused payload breaks that claim; claims of less report it without failing."""
    return frozenset(IDEMPOTENCY_ANOMALIES) if guarantee not in ("at-most-once", "at-least-once") else frozenset()


def counts_of(results: dict[str, Any]) -> dict[str, Any]:
    """A results dict's counts in one mapping: the delivery checker's, and the idempotency checker's anomalies
    where it applied (what suite expectations and comparisons read)."""
    counts = dict((results.get("delivery") or {}).get("counts") or {})
    idem = results.get("idempotency") or {}
    if idem.get("applicable"):
        counts.update({k: (idem.get("counts") or {}).get(k, 0) for k in IDEMPOTENCY_ANOMALIES})
    return counts


def holds_of(results: dict[str, Any]) -> dict[str, Any]:
    """Which guarantees a results dict's history satisfies: by every checker that judges guarantees (`holds`),
    or by the delivery checker alone in results written before there was more than one."""
    holds = results.get("holds")
    return dict(holds) if isinstance(holds, dict) else dict((results.get("delivery") or {}).get("holds") or {})


def check_guarantee(guarantee: str) -> None:
    """ValueError naming the valid guarantees when `guarantee` is not one of them."""
    if guarantee not in GUARANTEES:
        raise ValueError(f"unknown guarantee {guarantee!r}; valid: {', '.join(GUARANTEES)}")


_RUNS = re.compile(r"(\d+)")


def id_order(message_id: str) -> tuple[tuple[int, int, str], ...]:
    """How results sort message ids: naturally, digits by their value ("p0-9" before "p0-10", "788" before
    "1000"), the rest as text. Every id list in results.json and the reports is in this order."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in _RUNS.split(message_id) if t)
