"""The payment provider (the "card network") a payments run talks to: a small real HTTP server, run as its
own node behind its own proxy, that executes charges and records each one durably (appended to a JSON-lines
file and fsynced before it answers), so no fault aimed at it loses an executed charge. Its records are the
run's effect store: the charges executed per payment id.

Like real providers, it deduplicates by idempotency key when the caller passes one (`Idempotency-Key`): a
second charge with a key it has executed returns the first charge and executes nothing. A caller that
passes no key gets a new charge every time.

    POST /charges  {"payment_id": str, "account": str, "amount": int}  [Idempotency-Key: k]
                   -> 201 {"charge_id", "payment_id", "key", "amount", "account", "replayed": false}
                   -> 200 {... the key's first charge, "replayed": true} for a key it has executed, whatever
                      the body (it does not compare payloads: that is the service's job)
                   -> 400 for a body it cannot read
    GET  /charges[?after=N] -> 200 {"charges": [the executed charges after the first N, in order], "next": M};
                   each charge also has `at_ns`, when it was executed (CLOCK_MONOTONIC, which every process on
                   the machine shares: the history's clock before the run's start is subtracted)
    GET  /health   -> 200

Run: `python -m targets.payments.provider PORT RECORDS_FILE [BIND]`; FSYNC=0 in its environment makes it answer
before its record reaches the disk (a mutant, for the power-loss known answer). With FORWARD_PORT and FORWARD_TO in its
environment it also relays connections on FORWARD_PORT to FORWARD_TO (its own proxy): a fixed address for a
service the harness does not start (`--provider-port`).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from targets.payments.jsonhttp import JsonHandler, JsonServer


class Ledger:
    """Executed charges: appended and fsynced one line each, reloaded at start (a restart forgets nothing)."""

    def __init__(self, path: Path, fsync: bool = True):
        self.path, self.fsync = path, fsync
        self.lock = threading.Lock()
        self.charges: list[dict[str, Any]] = []
        self.by_key: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    try:
                        self._remember(json.loads(line))
                    except ValueError:
                        break  # a torn last line: the charge was never acknowledged, so it was never executed
        self.file = open(path, "a")  # noqa: SIM115 - open for the server's life

    def _remember(self, c: dict[str, Any]) -> None:
        self.charges.append(c)
        if c.get("key"):
            self.by_key[c["key"]] = c

    def charge(self, payment_id: str, account: str, amount: int, key: str | None) -> tuple[dict[str, Any], bool]:
        """The charge for this request and whether it was replayed (an earlier charge with the same key)."""
        with self.lock:
            if key and key in self.by_key:
                return self.by_key[key], True
            c = {"charge_id": f"ch_{len(self.charges) + 1}", "payment_id": payment_id, "account": account,
                 "amount": amount, "key": key, "at_ns": time.monotonic_ns()}
            self.file.write(json.dumps(c) + "\n")
            self.file.flush()
            if self.fsync:
                os.fsync(self.file.fileno())  # durable before anyone hears of it
            self._remember(c)
            return c, False


def handler(ledger: Ledger) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):

        def do_GET(self) -> None:
            if self.path == "/health":
                self.reply(200, {"ok": True})
            elif self.path == "/charges" or self.path.startswith("/charges?after="):
                try:
                    after = int(self.path.partition("?after=")[2] or 0)
                except ValueError:
                    self.reply(400, {"error": "after must be a number"})
                    return
                with ledger.lock:
                    charges = ledger.charges[after:]
                    n = len(ledger.charges)
                self.reply(200, {"charges": charges, "next": n})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            req = self.charge_request("payment_id")
            if req is None:
                return
            payment_id, account, amount = req
            c, replayed = ledger.charge(payment_id, account, amount, self.headers.get("Idempotency-Key") or None)
            self.reply(200 if replayed else 201, {**{k: v for k, v in c.items() if k != "at_ns"},
                                                  "replayed": replayed})

    return Handler


def serve(port: int, records: Path, bind: str = "127.0.0.1", fsync: bool = True) -> JsonServer:
    return JsonServer((bind, port), handler(Ledger(records, fsync)))


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m targets.payments.provider PORT RECORDS_FILE [BIND]", file=sys.stderr)
        return 2
    server = serve(int(argv[0]), Path(argv[1]), argv[2] if len(argv) == 3 else "127.0.0.1",
                   fsync=os.environ.get("FSYNC", "1") != "0")
    if os.environ.get("FORWARD_PORT"):
        from targets.payments import forward

        threading.Thread(target=forward.serve, daemon=True,
                         args=(int(os.environ["FORWARD_PORT"]), "127.0.0.1", os.environ["FORWARD_TO"])).start()
        print(f"provider: also on 127.0.0.1:{os.environ['FORWARD_PORT']}, through {os.environ['FORWARD_TO']}",
              flush=True)
    print(f"provider: listening on {server.server_address}, charges in {argv[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
