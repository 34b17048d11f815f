"""Workload `payments`: clients charge a payments API with idempotency keys (docs/payments-contract.md).

Each logical process POSTs charges `{"id", "account", "amount"}` with an `Idempotency-Key` header at its
share of the rate, and retries an unknown outcome with the same key and body, each attempt its own `send`
(same id) in the history:
- 2xx is `ok`; 400, 402, 409 and 422 are `fail` (this request applied nothing; after a 409, the key's first
  request is still running, so the client retries); 5xx, timeouts and dropped connections are `info`;
- attempts go round-robin over the service's nodes, as a load balancer would;
- every REUSE_EVERY-th charge is followed by its key with two other payloads, each of which must get a 4xx
  and change nothing: the same payment id with another amount (a service that executes it charges the
  payment twice: a duplicated effect), and a new payment id `<id>.reuse` (a service that answers 2xx without
  charging it, replaying the first answer, told the client a payment succeeded that never happened: a lost
  effect);
- every BURST_EVERY-th charge is sent BURST times at once with one key, from as many logical processes
  (at most one charge may result).

The provider's executed charges are the deliveries (followed during the load by one consumer, then by the
drain, at most READ_EVERY_S after each was executed: the reader goes to the provider past its proxy, so no
fault on the provider's hop delays it, and each entry says when the provider executed it, `executed_at`) and
the effects (read by the target at the end): a double charge is a duplicated effect, an acknowledged payment
never charged a lost one. The answers themselves are judged by the idempotency checker (checkers/idempotency.py):
a 2xx to the key with another payload is `key_reuse_accepted`.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol, cast

from plugin.target import has_role
from plugin.workload import PROCESS_SPAN, Pacer, ProcessLog, WorkerContext, Workload, WorkloadBase

REQUEST_TIMEOUT_S = 3.0  # longer than the reference service's own provider timeout (2 s): its 502 comes first
RETRY_FOR_S = 20.0  # how long a client keeps retrying one charge (a killed service restarts within it)
RETRY_BACKOFF_S = 0.3
REUSE_EVERY = 10
BURST_EVERY = 10
BURST = 3
ACCOUNTS = 8
HELPER_BLOCK = 1000
FAIL_CODES = (400, 402, 409, 422)  # definitely applied nothing
READ_EVERY_S = 0.2  # how often the reader polls the provider's record
READER, DRAIN_READER = "consumer-0", "drainer-0"  # the slots that read it
READER_MARK = "provider-reader.next"  # in the run directory: how far the reader got


@dataclass
class PaymentsConfig:
    rate: float = 50.0  # charges per second, all producers together
    producers: int = 2
    in_flight: int = 1  # logical processes per producer worker


def classify(status: int | None) -> str:
    if status is not None and 200 <= status < 300:
        return "ok"
    if status in FAIL_CODES:
        return "fail"
    return "info"


def execution(c: dict[str, Any], start_ns: int) -> dict[str, Any]:
    """A charge of the provider's record as a delivery entry: the payment, what was charged, when."""
    e = {"id": c["payment_id"], "key": c.get("account"), "charge_id": c.get("charge_id"),
         "idempotency_key": c.get("key"), "amount": c.get("amount")}
    if isinstance(c.get("at_ns"), int):
        e["executed_at"] = c["at_ns"] - start_ns
    return e


class PaymentsClient(Protocol):
    """One logical process's client of a payments service: POSTs a charge with its key to the next service node,
    and says what came back, (status, answer, error): status None when no answer came (a timeout, a dropped
    connection). It never retries on its own: the workload retries, each attempt its own operation."""

    def post(self, body: dict[str, Any], key: str) -> tuple[int | None, Any, str | None]: ...


class PaymentsClients(Protocol):
    """What a target supplies to serve the payments workload (`Target.clients["payments"]`): a client of the
    service nodes whose proxies are `services` (attempts go round-robin over them, as a load balancer would).
    A service that follows docs/payments-contract.md is served by `HTTP`, the workload's own HTTP client."""

    def client(self, services: list[str]) -> PaymentsClient: ...


class Client:
    """One logical process's HTTP client: a fresh connection after any error (no reuse of a connection in an
    unknown state), no retries of its own."""

    def __init__(self, services: list[str]):
        self.services = services
        self.turn = 0

    def post(self, body: dict[str, Any], key: str) -> tuple[int | None, Any, str | None]:
        host, port = self.services[self.turn % len(self.services)].rsplit(":", 1)
        self.turn += 1
        conn = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT_S)
        try:
            conn.request("POST", "/charges", body=json.dumps(body),
                         headers={"Content-Type": "application/json", "Idempotency-Key": key})
            r = conn.getresponse()
            raw = r.read()
            try:
                out = json.loads(raw)
            except ValueError:
                out = {"body": raw[:200].decode(errors="replace")}
            return r.status, out, None if 200 <= r.status < 300 else f"HTTP {r.status}: {out}"
        except (OSError, http.client.HTTPException) as e:
            return None, None, f"{type(e).__name__}: {e}"
        finally:
            conn.close()


class HttpClients:
    """The workload's own clients: plain HTTP/1.1 to the contract's `POST /charges`."""

    def client(self, services: list[str]) -> PaymentsClient:
        return Client(services)


HTTP: PaymentsClients = HttpClients()


def charge(client: PaymentsClient, log: ProcessLog, body: dict[str, Any], key: str, producer: str,
           stop: Callable[[], bool], retry: bool = True, extra: dict[str, Any] | None = None) -> str:
    """One charge, retried with the same key while its outcome is unknown (or its key is busy: 409); each
    attempt is a `send`. Returns the last attempt's outcome."""
    deadline = time.monotonic() + RETRY_FOR_S
    while True:
        log.invoke("send", {"id": body["id"], "key": body["account"], "producer": producer,
                            "idempotency_key": key, "amount": body["amount"], **(extra or {})})
        status, out, error = client.post(body, key)
        kind = classify(status)
        value = {"id": body["id"], "key": body["account"], "status": status,
                 **({"charge_id": out.get("charge_id")} if isinstance(out, dict) and out.get("charge_id") else {})}
        log.complete(kind, "send", value if kind == "ok" else {"status": status}, error)
        if kind == "ok" or not retry or stop() or time.monotonic() > deadline:
            return kind
        if kind == "fail" and status != 409:
            return kind
        time.sleep(RETRY_BACKOFF_S)


class Payments(WorkloadBase):
    name: ClassVar[str] = "payments"
    client: ClassVar[type] = PaymentsClients
    reads: ClassVar[tuple[str, ...]] = ("rate", "producers", "in_flight")

    def run(self, role: str, ctx: WorkerContext) -> dict[str, Any]:
        known = {f.name for f in fields(PaymentsConfig)}
        cfg = PaymentsConfig(**{k: v for k, v in ctx.settings.items() if k in known})
        if role == "producer":
            return {"attempted": self._produce(ctx, cfg), "acked": ctx.writer.counts.get(("ok", "send"), 0)}
        if role == "consumer":
            # one reader follows the provider's record (the first consumer, then the first drainer, from where
            # the reader before it stopped); other consumers idle: the provider is what is consumed
            if ctx.slot in (READER, DRAIN_READER):
                self._follow_provider(ctx)
            while not ctx.stop():
                time.sleep(0.1)
            return {"polls": ctx.writer.counts.get(("ok", "poll"), 0)}
        raise ValueError(f"the payments workload has no role {role!r}")

    @staticmethod
    def _follow_provider(ctx: WorkerContext) -> None:
        """Poll the provider's record every READ_EVERY_S until stopped, recording each new charge as a delivery
        of its payment id, at about the time it was executed (so a report can place a second charge against
        the faults). Where it got to is kept in the run directory for the drain's reader."""
        provider = [a for n, a in (ctx.direct or ctx.addresses).items() if has_role(n, "provider")]
        if not provider:
            raise RuntimeError("no provider node: the payments workload needs a target with a `provider` node")
        host, port = provider[0].rsplit(":", 1)
        mark = ctx.run_dir / READER_MARK
        seen = int(mark.read_text()) if mark.exists() else 0
        log = ctx.log
        while not ctx.stop():
            log.invoke("poll", {"consumer": "provider-reader", "after": seen})
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            try:
                conn.request("GET", f"/charges?after={seen}")
                doc = json.loads(conn.getresponse().read())
                charges, seen_next = doc["charges"], int(doc["next"])
            except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
                log.complete("info", "poll", None, f"{type(e).__name__}: {e}")
                time.sleep(READ_EVERY_S)
                continue
            finally:
                conn.close()
            log.complete("ok", "poll", {"messages": [execution(c, ctx.writer.start_ns) for c in charges]})
            seen = seen_next
            mark.write_text(str(seen))
            time.sleep(READ_EVERY_S)

    def _produce(self, ctx: WorkerContext, cfg: PaymentsConfig) -> int:
        threads_n = max(1, cfg.in_flight)
        stride = PROCESS_SPAN // (2 * threads_n)  # the lower half for the logical processes...
        # ...the upper half for the bursts' helpers: a block each, room for the ids its `info`s retire
        helpers = iter(range(ctx.log.process + PROCESS_SPAN // 2, ctx.log.process + PROCESS_SPAN, HELPER_BLOCK))
        helper_lock = threading.Lock()
        interval = cfg.producers * threads_n / cfg.rate
        sent = [0] * threads_n
        errors: list[BaseException] = []

        def fresh() -> int:
            with helper_lock:
                return next(helpers)

        def one(j: int) -> None:
            name = f"p{ctx.index}.{j}" if threads_n > 1 else f"p{ctx.index}"
            log = ProcessLog(ctx.writer, ctx.log.process + j * stride)
            client = cast(PaymentsClients, ctx.clients).client(list(ctx.bootstrap))
            pace = Pacer(interval)
            n = 0
            try:
                while not ctx.stop():
                    pid = f"{name}-{n}"
                    body: dict[str, Any] = {"id": pid, "account": f"acct{n % ACCOUNTS}", "amount": 100 + n % 7}
                    key = f"key-{pid}"
                    if n % BURST_EVERY == BURST_EVERY // 2:
                        self._burst(ctx, body, key, name, fresh)
                    else:
                        kind = charge(client, log, body, key, name, ctx.stop)
                        if kind == "ok" and n % REUSE_EVERY == 0:  # the key with other payloads: 4xx, no charge
                            charge(client, log, {**body, "amount": body["amount"] + 1}, key, name, ctx.stop,
                                   retry=False, extra={"reuse": True})
                            charge(client, log, {**body, "id": f"{pid}.reuse", "amount": body["amount"] + 2}, key,
                                   name, ctx.stop, retry=False, extra={"reuse": True})
                    n += 1
                    pace.wait()
            except BaseException as e:
                errors.append(e)
            sent[j] = n

        threads = [threading.Thread(target=one, args=(j,), daemon=True) for j in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return sum(sent)

    @staticmethod
    def _burst(ctx: WorkerContext, body: dict[str, Any], key: str, name: str, fresh: Callable[[], int]) -> None:
        """BURST requests with one key at once, each from a logical process of its own (fresh ids)."""
        def send(i: int) -> None:
            log = ProcessLog(ctx.writer, fresh())
            services = list(ctx.bootstrap)[i:] + list(ctx.bootstrap)[:i]
            charge(cast(PaymentsClients, ctx.clients).client(services), log, body, key, name, ctx.stop,
                   extra={"burst": True})

        threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(BURST)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


WORKLOAD: Workload = Payments()
