"""The queue workload's effect store for targets whose consumers keep their effects client-side (NATS,
RabbitMQ): a SQLite database in the run's directory, shared by every consumer process (and read back by the
harness at the end). Each target names its file (`nats-effects.sqlite`, `rabbitmq-effects.sqlite`).

Why SQLite, and why the idempotent step is atomic. The brokers give at-least-once delivery; an effect
happens exactly once only when the consumer's dedup record and its effect commit in one atomic step of a
store (../shared/research/patterns.md §0, §2). Here both are one row and one balance update written in one
SQLite transaction (`BEGIN IMMEDIATE` ... `COMMIT`):
- the transaction takes the database's write lock before it reads, so two consumers handed the same
  message (a redelivery after AckWait, nats-server#4786; a requeue after a lost channel) are serialised: the
  second one finds the id and changes nothing;
- the database is in WAL mode with `synchronous=FULL`, so a commit is one fsynced append to the WAL
  ending in a commit frame: a consumer SIGKILLed in the middle leaves a WAL without that frame, which the
  next reader ignores, so either the dedup record and the effect are both there or neither is.
The non-idempotent profiles apply the same effect without the check: every application counts.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_S = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (id TEXT PRIMARY KEY, applied INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, amount INTEGER NOT NULL);
"""


def path(state_dir: Path, file: str) -> Path:
    return Path(state_dir) / file


def read_counts(state_dir: Path, file: str) -> dict[str, int]:
    """Every id's application count, as the harness reads them back after the drain (`Target.read_effects`)."""
    store = EffectStore(state_dir, file)
    try:
        return store.counts()
    finally:
        store.close()


class EffectStore:
    """Per-id application counts and per-account balances."""

    def __init__(self, state_dir: Path, file: str, create: bool = False):
        p = path(state_dir, file)
        if not create and not p.exists():
            raise FileNotFoundError(f"{p}: the effect store was never created")
        self.db = sqlite3.connect(p, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self.db.execute("PRAGMA synchronous=FULL")
        if create:
            self.db.execute("PRAGMA journal_mode=WAL")  # persistent: every later connection uses the WAL
            self.db.executescript(SCHEMA)

    def apply(self, mid: str, key: str, amount: int) -> None:
        """Apply the effect, counting every application (a redelivery applies it again)."""
        with self._transaction() as db:
            db.execute("INSERT INTO effects (id, applied) VALUES (?, 1) "
                       "ON CONFLICT (id) DO UPDATE SET applied = applied + 1", (mid,))
            self._credit(db, key, amount)

    def apply_once(self, mid: str, key: str, amount: int) -> bool:
        """Apply the effect unless the id was applied before: dedup record and effect in one transaction.
        Returns whether it applied."""
        with self._transaction() as db:
            fresh = db.execute("INSERT INTO effects (id, applied) VALUES (?, 1) ON CONFLICT (id) DO NOTHING",
                               (mid,)).rowcount == 1
            if fresh:
                self._credit(db, key, amount)
            return fresh

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT id, applied FROM effects").fetchall())

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def _credit(db: sqlite3.Connection, key: str, amount: int) -> None:
        db.execute("INSERT INTO balances (account, amount) VALUES (?, ?) "
                   "ON CONFLICT (account) DO UPDATE SET amount = amount + excluded.amount", (key, amount))

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    """BEGIN IMMEDIATE (the write lock first) ... COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self.db.in_transaction:  # not when BEGIN itself failed (say, the lock was not had in time)
            self.db.execute("ROLLBACK")
