"""The reference payments service: one implementation of `docs/payments-contract.md`, on PostgreSQL, with the
profiles of `targets/payments` (the right way and three ways teams get it wrong, each as it is found in the
wild: patterns.md §1). A real process the harness starts as a node, so kill, pause and restart apply.

    POST /charges {"id": payment id, "account": str, "amount": int}, header Idempotency-Key
    GET  /health

Environment: PORT, DATABASE_URL, PROVIDER_URL, PROFILE (one of PROFILES), WORK_MS (bookkeeping between
the provider's answer and the commit, spent in 5 ms slices so a pause stops it; default 20), MARKER_TTL_S
(cache-marker's in-flight marker; default 2), BIND (default 127.0.0.1).

Every profile charges through the provider and writes a ledger row in one transaction that is open while
the provider is called. They differ in what guards a retry:
- idempotency-key: a transaction-scoped advisory lock on the key (another request with it gets 409), the key
  row (fingerprint and stored response) inserted with the ledger row, the key passed on to the provider. A
  crash before the commit rolls both back, and the retry's charge is the provider's replay of the first.
- no-key: nothing. A retry charges again.
- cache-marker: an in-process marker with a short TTL, outside the database (middleware's default). Another
  process, or the same one after a pause longer than the TTL, runs the charge again.
- provider-in-txn: the key row claimed first in the transaction (a retry waits on it), but no key passed to
  the provider. A crash between the provider's answer and the commit loses the claim, not the charge.
- claim-first: the key claimed and committed before the provider is called (a recovery point), no key passed on;
  a retry that finds the claim unanswered gets 409. Safe on a durable database; with synchronous_commit=off a
  database crash forgets recent claims, and a retry charges again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import Any

import psycopg

from targets.payments.jsonhttp import JsonHandler, JsonServer

PROFILES = ("idempotency-key", "no-key", "cache-marker", "provider-in-txn", "claim-first")
PROVIDER_TIMEOUT_S = 2.0
SCHEMA_WAIT_S = 30.0
WORK_SLICE_S = 0.005

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key text PRIMARY KEY,
    fingerprint text NOT NULL,
    response_code int NOT NULL,
    response_body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ledger (
    n bigserial PRIMARY KEY,
    payment_id text NOT NULL,
    account text NOT NULL,
    amount int NOT NULL,
    charge_id text NOT NULL,
    idempotency_key text
);
"""


class Reply(Exception):
    """An answer decided before the charge: its status and body."""

    def __init__(self, code: int, body: dict[str, Any]):
        super().__init__(code)
        self.code, self.body = code, body


class ProviderUnknown(Exception):
    """The provider's answer never came: whether it charged is unknown."""


def work(seconds: float) -> None:
    """Spend the bookkeeping's time in short slices. A pause (SIGSTOP) then stops it part-way, as it would stop
    real work, and the rest still takes its time after the resume; one long sleep would have ended during the
    pause, so the paused request would finish at once and race its own retry."""
    slices, rest = divmod(seconds, WORK_SLICE_S)
    for _ in range(int(slices)):
        time.sleep(WORK_SLICE_S)
    time.sleep(rest)


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([body["id"], body["account"], body["amount"]]).encode()).hexdigest()


class Service:
    def __init__(self, profile: str, database_url: str, provider_url: str, work_s: float, marker_ttl_s: float):
        if profile not in PROFILES:
            raise ValueError(f"unknown PROFILE {profile!r}; valid: {', '.join(PROFILES)}")
        self.profile, self.db, self.provider = profile, database_url, provider_url.rstrip("/")
        self.work_s, self.marker_ttl_s = work_s, marker_ttl_s
        self.local = threading.local()
        self.markers: dict[str, tuple[float, tuple[int, dict[str, Any]] | None]] = {}
        self.markers_lock = threading.Lock()

    def conn(self) -> psycopg.Connection:
        """This thread's connection, made again after it broke (a database restart)."""
        c = getattr(self.local, "conn", None)
        if c is None or c.closed or c.broken:
            c = self.local.conn = psycopg.connect(self.db, connect_timeout=3)
        return c

    def create_schema(self) -> None:
        with psycopg.connect(self.db, connect_timeout=5, autocommit=True) as c:
            c.execute("SELECT pg_advisory_lock(7331)")  # several processes start at once
            c.execute(SCHEMA)
            c.execute("SELECT pg_advisory_unlock(7331)")

    def call_provider(self, body: dict[str, Any], key: str | None) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.provider}/charges", method="POST",
            data=json.dumps({"payment_id": body["id"], "account": body["account"], "amount": body["amount"]}).encode(),
            headers={"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})})
        try:
            with urllib.request.urlopen(req, timeout=PROVIDER_TIMEOUT_S) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code < 500:
                raise Reply(402, {"error": f"the provider refused the charge: {e.code}"}) from e
            raise ProviderUnknown(f"provider answered {e.code}") from e
        except (OSError, ValueError) as e:
            raise ProviderUnknown(f"{type(e).__name__}: {e}") from e

    def charge(self, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        if self.profile == "cache-marker":
            return self._with_marker(body, key)
        if self.profile == "claim-first":
            return self._claim_first(body, key)
        conn = self.conn()
        try:
            with conn.transaction():
                if self.profile in ("idempotency-key", "provider-in-txn"):
                    self._guard(conn, body, key)
                c = self.call_provider(body, key if self.profile == "idempotency-key" else None)
                work(self.work_s)  # the ledger's bookkeeping: the window between the charge and the commit
                code, out = 201, {"payment_id": body["id"], "charge_id": c["charge_id"], "amount": body["amount"]}
                conn.execute("INSERT INTO ledger (payment_id, account, amount, charge_id, idempotency_key) "
                             "VALUES (%s, %s, %s, %s, %s)",
                             (body["id"], body["account"], body["amount"], c["charge_id"], key))
                if self.profile in ("idempotency-key", "provider-in-txn"):
                    conn.execute("INSERT INTO idempotency_keys (key, fingerprint, response_code, response_body) "
                                 "VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET response_code = "
                                 "EXCLUDED.response_code, response_body = EXCLUDED.response_body",
                                 (key, fingerprint(body), code, json.dumps(out)))
            return code, out
        except Reply as r:
            return r.code, r.body

    def _guard(self, conn: psycopg.Connection, body: dict[str, Any], key: str | None) -> None:
        """Inside the charge's transaction: a request already running with this key (409), a stored answer
        to replay, or a key reused with another payload (422)."""
        if not key:
            raise Reply(400, {"error": "Idempotency-Key header is required"})
        if self.profile == "idempotency-key":
            locked = conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", (key,)).fetchone()
            if not locked or not locked[0]:
                raise Reply(409, {"error": "a request with this Idempotency-Key is in progress"})
        else:  # provider-in-txn claims the key row first; a second request waits on it until the first commits
            conn.execute("INSERT INTO idempotency_keys (key, fingerprint, response_code, response_body) "
                         "VALUES (%s, %s, 0, '') ON CONFLICT (key) DO NOTHING", (key, fingerprint(body)))
        row = conn.execute("SELECT fingerprint, response_code, response_body FROM idempotency_keys WHERE key = %s",
                           (key,)).fetchone()
        if row is None or row[1] == 0:  # nothing stored for this key (or only provider-in-txn's own claim)
            return
        if row[0] != fingerprint(body):
            raise Reply(422, {"error": "this Idempotency-Key was used with another payload"})
        raise Reply(row[1], json.loads(row[2]))

    def _claim_first(self, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        """A recovery point before the external call: the key is claimed in a transaction of its own and committed
        before the provider is called (without the key: the claim is the only guard), then the charge and the
        answer are recorded in a second one. A request that finds the claim without an answer gets 409: the
        first may still be running, or died with the charge's outcome unknown, and never charges twice. Safe
        only while a committed claim survives: with synchronous_commit=off, a database crash forgets claims
        committed in its last fraction of a second, and the retry charges again."""
        if not key:
            return 400, {"error": "Idempotency-Key header is required"}
        conn = self.conn()
        try:
            with conn.transaction():
                row = conn.execute("SELECT fingerprint, response_code, response_body FROM idempotency_keys "
                                   "WHERE key = %s FOR UPDATE", (key,)).fetchone()
                if row is not None:
                    if row[0] != fingerprint(body):
                        return 422, {"error": "this Idempotency-Key was used with another payload"}
                    if row[1] == 0:
                        return 409, {"error": "a request with this Idempotency-Key is in progress (or died)"}
                    return row[1], json.loads(row[2])
                conn.execute("INSERT INTO idempotency_keys (key, fingerprint, response_code, response_body) "
                             "VALUES (%s, %s, 0, '')", (key, fingerprint(body)))
        except psycopg.errors.UniqueViolation:
            return 409, {"error": "a request with this Idempotency-Key is in progress"}
        c = self.call_provider(body, None)
        work(self.work_s)
        out = {"payment_id": body["id"], "charge_id": c["charge_id"], "amount": body["amount"]}
        with conn.transaction():
            conn.execute("INSERT INTO ledger (payment_id, account, amount, charge_id, idempotency_key) "
                         "VALUES (%s, %s, %s, %s, %s)", (body["id"], body["account"], body["amount"], c["charge_id"],
                                                          key))
            conn.execute("UPDATE idempotency_keys SET response_code = 201, response_body = %s WHERE key = %s",
                         (json.dumps(out), key))
        return 201, out

    def _with_marker(self, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        """Middleware's default: an in-process marker and response cache, outside the database."""
        if not key:
            return 400, {"error": "Idempotency-Key header is required"}
        now = time.monotonic()
        with self.markers_lock:
            held = self.markers.get(key)
            if held and held[1] is not None:
                return held[1]
            if held and held[0] > now:
                return 409, {"error": "a request with this Idempotency-Key is in progress"}
            self.markers[key] = (now + self.marker_ttl_s, None)
        try:
            conn = self.conn()
            with conn.transaction():
                c = self.call_provider(body, None)
                work(self.work_s)
                conn.execute("INSERT INTO ledger (payment_id, account, amount, charge_id, idempotency_key) "
                             "VALUES (%s, %s, %s, %s, %s)",
                             (body["id"], body["account"], body["amount"], c["charge_id"], key))
            answer = (201, {"payment_id": body["id"], "charge_id": c["charge_id"], "amount": body["amount"]})
        except BaseException:
            with self.markers_lock:
                self.markers.pop(key, None)
            raise
        with self.markers_lock:
            self.markers[key] = (float("inf"), answer)
        return answer


def handler(svc: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):

        def do_GET(self) -> None:
            self.reply(200, {"ok": True}) if self.path == "/health" else self.reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            req = self.charge_request("id")
            if req is None:
                return
            body = {"id": req[0], "account": req[1], "amount": req[2]}
            try:
                code, out = svc.charge(body, self.headers.get("Idempotency-Key") or None)
            except ProviderUnknown as e:
                code, out = 502, {"error": f"the provider's answer was lost: {e}"}
            except psycopg.Error as e:
                code, out = 503, {"error": f"database: {type(e).__name__}: {e}"}
            self.reply(code, out)

    return Handler


def main() -> int:
    env = os.environ
    try:
        svc = Service(env.get("PROFILE", "idempotency-key"), env["DATABASE_URL"], env["PROVIDER_URL"],
                      float(env.get("WORK_MS", "20")) / 1000, float(env.get("MARKER_TTL_S", "2")))
        port = int(env["PORT"])
    except (KeyError, ValueError) as e:
        print(f"payments service: bad environment: {e} (needs PORT, DATABASE_URL, PROVIDER_URL)", file=sys.stderr)
        return 2
    deadline = time.monotonic() + SCHEMA_WAIT_S
    while True:  # the database node starts beside this one
        try:
            svc.create_schema()
            break
        except psycopg.Error as e:
            if time.monotonic() > deadline:
                print(f"payments service: no database after {SCHEMA_WAIT_S:.0f}s: {e}", file=sys.stderr)
                return 1
            time.sleep(0.3)
    server = JsonServer((env.get("BIND", "127.0.0.1"), port), handler(svc))
    print(f"payments service ({svc.profile}): listening on {server.server_address}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
