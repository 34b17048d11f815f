"""The `queue` workload: producers send messages with globally unique ids, consumers apply an effect.

Ids are `<producer>-<counter>`; each message credits `amount` to the account named by its key, and
the effect store counts applications per id, so a double charge shows as a duplicated effect. The
loops here are what a client *does*; the target's client says how (and maps errors to outcomes).
A retry is always a new `send` operation with the same id, never hidden inside the client.

The workload owns its client protocol: a target serves it by supplying a `QueueClients` (its `producer` and
`consumer` factories, the default `batch`, optionally a thread-safe `shared_producer`) as
`Target.clients["queue"]`. The rules every client follows are in the protocols' docstrings below and in
docs/adding-a-target.md.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, cast

from plugin.options import Option
from plugin.target import Profile
from plugin.workload import PROCESS_SPAN, Pacer, ProcessLog, WorkerContext, Workload, WorkloadBase

# --- the client protocol a target implements to serve this workload ---------------------------------------


@dataclass
class Outcome:
    """The outcome of one client operation, as it goes into the history: `ok`, `fail` (it definitely did not
    happen) or `info` (unknown: a timeout, a lost connection), with the value to record and why."""

    type: str
    value: Any = None
    error: str | None = None


@dataclass
class Delivery:
    """One message handed to a consumer; `handle` is what the client needs to acknowledge it (a stream entry
    id, an offset, ...); partition and offset where the system assigns positions (the log checker reads them)."""

    id: str
    key: Any
    amount: int
    handle: Any
    redelivered: bool = False
    partition: Any = None
    offset: int | None = None

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "partition": self.partition, "offset": self.offset,
                "redelivered": self.redelivered}


@dataclass(frozen=True)
class ClientSpec:
    """What a client in a worker process gets: `bootstrap` (the proxies, the only way in), `name` (p0, c1:
    its name in the history), `slot` (the place it fills: a replacement after a kill takes the same slot),
    `state_dir` (the run's directory, shared by every worker and the harness: client-side stores live
    there), `work_s` (a consumer's processing time per message) and `on_assign` (called with a consumer's
    new assignment after a rebalance, which the history records)."""

    bootstrap: list[str]
    profile: Profile
    name: str
    slot: str
    state_dir: Path
    work_s: float = 0.005
    on_assign: Callable[[list[Any]], None] | None = None


class Producer(Protocol):
    """Sends one message and says what became of it. Never retries on its own (the workload retries, each
    attempt its own operation), never raises: every error is an `Outcome` (`fail` only when the system
    definitely did not take it)."""

    def send(self, mid: str, key: Any, amount: int) -> Outcome: ...
    def close(self) -> None: ...


class RecordAck(Protocol):
    """Writes an `ack` operation: `record_ack("invoke", {"ids": [...]})` returns the invoke, and
    `record_ack(type, value, invoke=that)` completes it (`ok`, `fail` or `info`)."""

    def __call__(self, type_: str, value: Any, invoke: Any = None) -> Any: ...


Work = Callable[[float], None]  # work(seconds): the processing time of a message


class Consumer(Protocol):
    """Receives and processes messages.

    - `poll` waits up to `block_ms` for at most `max_messages` new messages; an error is an `Outcome` whose
      deliveries are not deliveries (the workload records the poll as `fail` or `info`).
    - `reclaim` takes over messages that other (dead) consumers received but never acknowledged; it returns an
      empty list when there are none. Drainers call it until it returns nothing before they poll, so that a
      killed consumer's messages are not left pending; a system without such a notion returns nothing.
    - `process` applies each message's effect and acknowledges it, in the profile's order, recording each
      acknowledgement with `record_ack`; it calls `work(seconds)` for each message's processing time (where a
      consumer kill usually lands: without it a kill never hits a message in hand). An exception from
      `process` means an effect's outcome is unknown: the workload retires its process id.
    """

    def poll(self, max_messages: int, block_ms: int) -> tuple[Outcome, list[Delivery]]: ...
    def reclaim(self, max_messages: int) -> tuple[Outcome, list[Delivery]]: ...
    def process(self, batch: list[Delivery], record_ack: RecordAck, work: Work) -> None: ...
    def close(self) -> None: ...


class QueueClients(Protocol):
    """What a target supplies to serve the queue workload (`Target.clients["queue"]`): a producer and a consumer
    for a worker's logical process; `batch`, the messages a consumer takes per poll by default (`--batch`:
    where every poll's acknowledgement or transaction costs round trips, a larger batch lets the consumers keep
    pace with the default load); and, where the system's client is thread-safe, `shared_producer`: one client
    that a worker's logical processes share (`--in-flight`), so a batching client batches their sends as an
    application's thread pool does (None: each logical process has its own)."""

    @property
    def batch(self) -> int: ...
    @property
    def shared_producer(self) -> Callable[[ClientSpec], Producer] | None: ...
    def producer(self, c: ClientSpec) -> Producer: ...
    def consumer(self, c: ClientSpec) -> Consumer: ...


class QueueClientsBase:
    """The queue clients' defaults: 10 messages per poll, no shared producer."""

    batch: int = 10
    shared_producer: Callable[[ClientSpec], Producer] | None = None


# --- the workload -------------------------------------------------------------------------------------------

WORK_MS = Option("work_ms", float, 5.0, "a consumer's processing time per message, where a consumer kill "
                 "usually lands (default: 5)", "MS", low=0)
BATCH = Option("batch", int, None, "messages a consumer takes per poll, and so per acknowledgement or "
               "transaction (default: the target's)", "N", low=1, high=1000)


@dataclass
class QueueConfig:
    rate: float = 200.0  # messages per second, all producers together
    producers: int = 2
    consumers: int = 2
    keys: int = 8
    batch: int = 10  # messages per poll
    block_ms: int = 100
    claim_every_s: float = 1.0
    work_ms: float = 5.0  # processing time per message: where a consumer kill usually lands
    retry_backoff_s: float = 0.05
    in_flight: int = 1  # sends in flight per producer worker: logical processes (threads), one send each


def encode_message(mid: str, key: Any, amount: int) -> bytes:
    """A message's body where the system carries one opaque payload (NATS, RabbitMQ, MQTT): JSON with its id, key
    and amount."""
    return json.dumps({"id": mid, "key": key, "amount": amount}).encode()


def decode_message(body: bytes | str, where: str) -> tuple[str, Any, int]:
    """(id, key, amount) of a body `encode_message` made; one that is not becomes the id `<undecodable {where}>`
    (an unexpected delivery in the history, never a consumer's crash)."""
    try:
        v = json.loads(body)
        return str(v["id"]), v.get("key"), int(v.get("amount", 1))
    except (ValueError, KeyError, TypeError):
        return f"<undecodable {where}>", None, 0


def message_id(producer: str, n: int) -> str:
    return f"{producer}-{n}"


def run_producer(client: Producer, log: ProcessLog, cfg: QueueConfig, producer: str, retries: int,
                 stop: Callable[[], bool], start_counter: int = 0) -> int:
    """Send messages at this producer's share of the rate until `stop()`; returns messages attempted."""
    pace = Pacer(cfg.producers / cfg.rate if cfg.rate > 0 else 0.0)  # rate 0: as fast as the system answers
    n = start_counter
    while not stop():
        mid = message_id(producer, n)
        key = f"k{n % cfg.keys}"
        amount = 1 + n % 5
        for attempt in range(retries + 1):
            log.invoke("send", {"id": mid, "key": key, "producer": producer})
            out = client.send(mid, key, amount)
            value = out.value if out.type == "ok" else None
            log.complete(out.type, "send", value, out.error)
            if out.type == "ok" or stop():
                break
            if attempt < retries:
                time.sleep(cfg.retry_backoff_s)
        n += 1
        pace.wait()
    return n - start_counter


def run_consumer(client: Consumer, log: ProcessLog, cfg: QueueConfig, name: str, stop: Callable[[], bool],
                 drain: bool = False, on_delivery: Callable[[int], None] | None = None) -> None:
    """Poll, record deliveries, process them; reclaim entries of dead consumers now and then."""

    def record_ack(type_: str, value: Any, invoke: Any = None) -> Any:
        if type_ == "invoke":
            return log.invoke("ack", value)
        log.complete(type_, "ack", value)
        return None

    def work(seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def handle(f_value: dict, fetch: Callable[[], tuple[Any, list]]) -> int:
        log.invoke("poll", f_value)
        out, batch = fetch()
        if out.type != "ok":
            log.complete(out.type, "poll", None, out.error)
            return 0
        log.complete("ok", "poll", {"messages": [d.record() for d in batch]})
        if batch and on_delivery:
            on_delivery(len(batch))
        try:
            client.process(batch, record_ack, work)
        except Exception:  # the effect's outcome is unknown; the history already says so
            log.process += 1
        return len(batch)

    if drain:  # take over what dead consumers left pending (idle ones only: not a fellow drainer's batch)
        while not stop() and handle({"consumer": name, "claim": True}, lambda: client.reclaim(cfg.batch)):
            pass
    last_claim = time.monotonic()
    while not stop():
        if time.monotonic() - last_claim >= cfg.claim_every_s:
            last_claim = time.monotonic()
            handle({"consumer": name, "claim": True}, lambda: client.reclaim(cfg.batch))
            continue
        handle({"consumer": name}, lambda: client.poll(cfg.batch, cfg.block_ms))


CLIENT_SETUP_S = 60.0  # how long a worker keeps trying to set up its client (a cluster still electing, ...)

C = TypeVar("C")


def open_client(make: Callable[[], C], stop: Callable[[], bool], within: float = CLIENT_SETUP_S) -> C:
    """The client `make` builds, tried again every second while it fails (bounded). Setting up a client is
    no operation of the history: nothing is sent, so trying again hides nothing; a worker that gives up
    ends with an error, which the run reports as its own failure."""
    deadline = time.monotonic() + within
    while True:
        try:
            return make()
        except Exception as e:
            if stop() or time.monotonic() > deadline:
                raise
            print(f"worker: setting up the client failed ({type(e).__name__}: {e}); trying again in 1 s",
                  file=sys.stderr, flush=True)
            time.sleep(1.0)


class Queue(WorkloadBase):
    """The `queue` workload: producers and consumers of one queue."""

    name: ClassVar[str] = "queue"
    client: ClassVar[type] = QueueClients
    options: ClassVar[tuple[Option, ...]] = (WORK_MS, BATCH)
    reads: ClassVar[tuple[str, ...]] = ("rate", "producers", "consumers", "in_flight")

    def option_defaults(self, clients: Any) -> Mapping[str, Any]:
        return {"batch": cast(QueueClients, clients).batch}

    def run(self, role: str, ctx: WorkerContext) -> dict[str, Any]:
        known = {f.name for f in fields(QueueConfig)}
        cfg = QueueConfig(**{k: v for k, v in ctx.settings.items() if k in known})
        clients = cast(QueueClients, ctx.clients)
        name = f"{role[0]}{ctx.index}"
        log = ctx.log

        def on_assign(partitions: list) -> None:  # a rebalance: the log checker restarts its tracking
            log.invoke("assign", {"partitions": partitions})
            log.complete("ok", "assign", {"partitions": partitions})

        spec = ClientSpec(ctx.bootstrap, ctx.profile, name, ctx.slot, ctx.run_dir, work_s=cfg.work_ms / 1000,
                          on_assign=on_assign)
        if role == "producer":
            retries = ctx.profile.producer_retries
            if cfg.in_flight <= 1:
                sent = self._produce(ctx, clients, spec, log, cfg, name, retries)
            else:
                sent = self._produce_in_flight(ctx, clients, spec, cfg, name, retries)
            return {"attempted": sent, "acked": ctx.writer.counts.get(("ok", "send"), 0)}
        if role == "consumer":
            consumer = open_client(lambda: clients.consumer(spec), ctx.stop)
            try:
                run_consumer(consumer, log, cfg, name, ctx.stop, drain=ctx.drain)
            finally:
                consumer.close()
            return {"polls": ctx.writer.counts.get(("ok", "poll"), 0)}
        raise ValueError(f"the queue workload has no role {role!r}")

    @staticmethod
    def _produce(ctx: WorkerContext, clients: QueueClients, spec: ClientSpec, log: ProcessLog, cfg: QueueConfig,
                 name: str, retries: int, stop: Callable[[], bool] | None = None,
                 shared: Producer | None = None) -> int:
        """One logical process's sends, on its own client (opened and closed here) or on `shared`."""
        stop = stop or ctx.stop
        if shared is not None:
            return run_producer(shared, log, cfg, name, retries, stop)
        producer = open_client(lambda: clients.producer(spec), stop)
        try:
            return run_producer(producer, log, cfg, name, retries, stop)
        finally:
            producer.close()

    def _produce_in_flight(self, ctx: WorkerContext, clients: QueueClients, spec: ClientSpec, cfg: QueueConfig,
                           name: str, retries: int) -> int:
        """`in_flight` logical processes in threads, each with its own process ids and message ids (`p0.1-17`),
        each one send at a time as the contract requires; together they keep `in_flight` sends open, as an
        application with a thread pool does. Each paces itself at its share of the rate. Where the target's
        clients have a `shared_producer`, they share that one client (a batching client batches their sends, as it would
        in the application); otherwise each has its own."""
        share = replace(cfg, producers=cfg.producers * cfg.in_flight)
        stride = PROCESS_SPAN // cfg.in_flight
        sent = [0] * cfg.in_flight
        errors: list[BaseException] = []
        failed = threading.Event()

        def stop() -> bool:  # one thread's failure stops them all, so the worker ends by itself while the run
            return ctx.stop() or failed.is_set()  # goes on, and the run reports it (never a verdict on less load)

        make_shared = clients.shared_producer
        shared = open_client(lambda: make_shared(spec), stop) if make_shared is not None else None

        def one(j: int) -> None:
            try:
                log = ProcessLog(ctx.writer, ctx.log.process + j * stride)
                sub = replace(spec, name=f"{name}.{j}", slot=f"{spec.slot}.{j}")
                sent[j] = self._produce(ctx, clients, sub, log, share, f"{name}.{j}", retries, stop, shared)
            except BaseException as e:
                errors.append(e)
                failed.set()

        threads = [threading.Thread(target=one, args=(j,), name=f"{name}.{j}", daemon=True)
                   for j in range(cfg.in_flight)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        finally:
            if shared is not None:
                shared.close()
        if errors:
            raise errors[0]
        return sum(sent)


WORKLOAD: Workload = Queue()  # mypy checks that it satisfies the protocol
