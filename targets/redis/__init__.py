"""Redis Streams (Debian's redis-server 7.0) as a queue: XADD, consumer groups, XACK, XAUTOCLAIM.

Facts behind the profiles: ../shared/research/brokers.md §1.1. Consumer groups give at-least-once
delivery: XREADGROUP puts an entry in the group's pending list, XACK removes it, and XAUTOCLAIM hands
a dead consumer's pending entries to a live one. Redis 7.0 has no idempotent XADD and no per-write
fsync confirmation, so exactly-once is built here the only way it can be: producer-side dedup by
message id in a Lua script (SET NX + XADD, atomic), and an idempotent consumer whose effect, dedup
record and XACK are one Lua script, on a node with `appendonly yes` and `appendfsync always`.

The effect store (per-id application counts and account balances) lives on the same node so that
the exactly-once profile can apply the effect and acknowledge atomically.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping
from typing import Any, ClassVar

from plugin.imaging import PATH, Image, Layout, find_binary
from plugin.needs import Debian, Needs
from plugin.target import Abilities, BenchFigure, BenchLoad, Deployment, Drain, NodeInfo, Profile, Target, TargetBase
from targets.redis.bench import redis_benchmark
from workloads.queue import ClientSpec, Delivery, Outcome, QueueClients, QueueClientsBase, RecordAck, Work

STREAM = "onceproof:stream"
GROUP = "onceproof"
EFFECTS = "onceproof:effects"  # hash: message id -> times applied
BALANCES = "onceproof:balances"  # hash: account key -> credited amount
APPLIED = "onceproof:applied"  # set of applied ids (the idempotent consumer's dedup record)
SENT_PREFIX = "onceproof:sent:"  # producer dedup: one key per message id

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("at-most-once", "at-most-once",
            "XACK before processing; no producer retries. A consumer killed between the XACK and the "
            "effect loses the message's effect, never applies it twice.",
            {"appendonly": "yes", "appendfsync": "always", "ack": "before-effect"}),
    Profile("at-least-once", "at-least-once",
            "Effect, then XACK; producers retry unknown outcomes; a dead consumer's pending entries are "
            "reclaimed with XAUTOCLAIM. Kills between effect and XACK apply an effect twice.",
            {"appendonly": "yes", "appendfsync": "always", "ack": "after-effect"}, producer_retries=3),
    Profile("exactly-once", "exactly-once",
            "Idempotent producer (Lua: SET NX + XADD) and idempotent consumer (Lua: dedup record, effect "
            "and XACK in one script), appendonly with appendfsync always.",
            {"appendonly": "yes", "appendfsync": "always", "ack": "atomic", "producer_dedup": True},
            producer_retries=3),
    Profile("at-least-once-everysec", "at-least-once",
            "The at-least-once clients on AOF with appendfsync everysec, Redis's default fsync policy once AOF is on: "
            "an XADD is acknowledged before it is fsynced, and the AOF is fsynced once a second. Survives a kill "
            "(the page cache keeps what was written); a power loss takes about the last second of acknowledged "
            "writes, as the Redis docs say.",
            {"appendonly": "yes", "appendfsync": "everysec", "ack": "after-effect"},
            expected_unsafe_under=("power-loss",), producer_retries=3),
    Profile("at-least-once-debian-defaults", "at-least-once",
            "The at-least-once client on Debian's default persistence (appendonly no, RDB snapshots only): "
            "a careful user's mistake. A killed broker forgets every acknowledged XADD since the last "
            "snapshot.",
            {"appendonly": "no", "appendfsync": "everysec", "ack": "after-effect"},
            expected_unsafe_under=("kill",), producer_retries=3),
)}

FAULTS = ("ack-loss", "latency", "reset", "partition-client", "kill", "pause", "restart",
          "kill-consumer", "kill-producer", "power-loss")

# KEYS: stream, sent-key; ARGV: id, key, amount. Returns the entry id, or false when already sent.
PRODUCE_DEDUP = """
if redis.call('SET', KEYS[2], '1', 'NX') then
  return redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'key', ARGV[2], 'amount', ARGV[3])
end
return false
"""

# KEYS: stream, effects, applied, balances; ARGV: id, key, amount, group, entry id.
CONSUME_ATOMIC = """
if redis.call('SADD', KEYS[3], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
  redis.call('HINCRBY', KEYS[4], ARGV[2], ARGV[3])
end
return redis.call('XACK', KEYS[1], ARGV[4], ARGV[5])
"""


def node_argv(node: NodeInfo, profile: Profile) -> list[str]:
    """redis-server on the node's bind address with the profile's persistence, data and logs in the node's
    directory."""
    s = profile.settings
    argv = ["redis-server", "--port", str(node.port), "--bind", node.bind, "--protected-mode", "no",
            "--dir", str(node.data_dir), "--appendonly", s["appendonly"], "--appendfsync", s["appendfsync"],
            "--daemonize", "no", "--logfile", ""]
    if s["appendonly"] == "no":
        argv += ["--save", "3600 1 300 100 60 10000"]  # Debian's (and Redis') default snapshots
    else:
        argv += ["--save", ""]
    return argv


def ping(port: int, timeout: float = 0.5, host: str = "127.0.0.1") -> bool:
    """Ready = answers PING with PONG (and is not still loading its data)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _client(port: int, timeout: float, host: str = "127.0.0.1"):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # no automatic retries: a hidden retry would be an unexplained duplicate in the history
    return redis.Redis(host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
                       retry=Retry(NoBackoff(), 0), retry_on_error=[], decode_responses=True,
                       health_check_interval=0, single_connection_client=True)


def prepare(d: Deployment) -> None:
    """Create the stream and the consumer group (directly on the node, not through a proxy)."""
    import redis

    r = _client(d.nodes[0].port, 5.0, d.nodes[0].host)
    try:
        r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
    finally:
        r.close()


def backlog(d: Deployment) -> int:
    """Entries the drain still has to finish: never delivered to the group (lag), plus those delivered
    but not acknowledged where the profile reclaims them. The drain is done when this is 0; quiet alone
    is not enough (a 3 s stall of the drainers once ended a drain with 1,000 entries unread)."""
    r = _client(d.nodes[0].port, 5.0, d.nodes[0].host)
    try:
        group = next(g for g in r.xinfo_groups(STREAM) if g["name"] == GROUP)
        lag = group.get("lag")
        if lag is None:  # Redis cannot tell (e.g. after deletions): is anything past the last delivered id?
            lag = len(r.xrange(STREAM, min="(" + group["last-delivered-id"], count=1))
        pending = int(group["pending"]) if d.profile.settings["ack"] != "before-effect" else 0
        return int(lag) + pending
    finally:
        r.close()


def read_effects(d: Deployment) -> dict[str, int]:
    """Times each message id was applied, from the effect store (read directly, not through a proxy)."""
    r = _client(d.nodes[0].port, 10.0, d.nodes[0].host)
    try:
        return {k: int(v) for k, v in r.hgetall(EFFECTS).items()}
    finally:
        r.close()


def classify_error(e: BaseException) -> Outcome:
    """Map a client error to an outcome: a Redis error reply means the command did not run (fail);
    anything on the wire (timeouts, closed connections) leaves the outcome unknown (info)."""
    import redis

    if isinstance(e, redis.ResponseError) and not isinstance(e, redis.exceptions.ExecAbortError):
        return Outcome("fail", error=f"{type(e).__name__}: {e}")
    return Outcome("info", error=f"{type(e).__name__}: {e}")


class RedisProducer:
    def __init__(self, port: int, profile: Profile, timeout: float = 1.0, host: str = "127.0.0.1"):
        self.r = _client(port, timeout, host)
        self.dedup = bool(profile.settings.get("producer_dedup"))
        self.script = self.r.register_script(PRODUCE_DEDUP) if self.dedup else None

    def send(self, mid: str, key: Any, amount: int) -> Outcome:
        try:
            if self.script is not None:
                entry = self.script(keys=[STREAM, SENT_PREFIX + mid], args=[mid, key, amount])
                if entry is None:
                    return Outcome("ok", {"id": mid, "key": key, "dedup": True})
            else:
                entry = self.r.xadd(STREAM, {"id": mid, "key": key, "amount": amount})
            return Outcome("ok", {"id": mid, "key": key, "entry": entry})
        except Exception as e:  # every client error becomes an outcome, never a crash
            return classify_error(e)

    def close(self) -> None:
        self.r.close()


class RedisConsumer:
    def __init__(self, port: int, profile: Profile, name: str, timeout: float = 1.0,
                 work_s: float = 0.002, min_idle_ms: int = 1500, host: str = "127.0.0.1"):
        self.r = _client(port, timeout, host)
        self.name = name
        self.ack = profile.settings["ack"]
        self.work_s = work_s
        self.min_idle_ms = min_idle_ms
        self.atomic = self.r.register_script(CONSUME_ATOMIC) if self.ack == "atomic" else None
        self.claim_cursor = "0-0"

    @staticmethod
    def _deliveries(entries: list, redelivered: bool) -> list[Delivery]:
        out = []
        for entry_id, fields in entries:
            if not fields:  # deleted entry (XAUTOCLAIM in 7.0 reports those separately; be safe)
                continue
            out.append(Delivery(id=fields["id"], key=fields.get("key"), amount=int(fields.get("amount", 1)),
                                handle=entry_id, redelivered=redelivered))
        return out

    def poll(self, max_messages: int, block_ms: int) -> tuple[Outcome, list[Delivery]]:
        try:
            resp = self.r.xreadgroup(GROUP, self.name, {STREAM: ">"}, count=max_messages, block=block_ms)
        except Exception as e:
            if "NOGROUP" in str(e):  # the broker lost the group (no persistence): recreate it, as an app would
                with contextlib.suppress(Exception):
                    self.r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
            return classify_error(e), []
        entries = resp[0][1] if resp else []
        return Outcome("ok"), self._deliveries(entries, False)

    def reclaim(self, max_messages: int, min_idle_ms: int | None = None) -> tuple[Outcome, list[Delivery]]:
        """Take over entries another consumer read but never acknowledged (it may be dead).

        Not for at-most-once: a claim can take an entry from a consumer that is only slow (descheduled,
        paused) between its read and its XACK, and then both apply it. Such a consumer's pending
        entries stay pending: lost, never twice."""
        if self.ack == "before-effect":
            return Outcome("ok"), []
        idle = self.min_idle_ms if min_idle_ms is None else min_idle_ms
        try:
            resp = self.r.xautoclaim(STREAM, GROUP, self.name, min_idle_time=idle,
                                     start_id=self.claim_cursor, count=max_messages)
        except Exception as e:
            return classify_error(e), []
        self.claim_cursor = resp[0]
        return Outcome("ok"), self._deliveries(resp[1], True)

    def _effect(self, d: Delivery) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.hincrby(EFFECTS, d.id, 1)
        pipe.hincrby(BALANCES, str(d.key), d.amount)
        pipe.execute()

    def _xack(self, batch: list[Delivery], record_ack: RecordAck) -> bool:
        ids = [d.id for d in batch]
        inv = record_ack("invoke", {"ids": ids})
        try:
            self.r.xack(STREAM, GROUP, *[d.handle for d in batch])
        except Exception as e:
            record_ack(classify_error(e).type, {"ids": ids}, invoke=inv)
            return False
        record_ack("ok", {"ids": ids}, invoke=inv)
        return True

    def process(self, batch: list[Delivery], record_ack: RecordAck, work: Work) -> None:
        """Apply each message's effect and acknowledge it, in the profile's order.

        `work(seconds)` simulates processing time (and is where a kill usually lands);
        `record_ack(type, value)` writes ack operations to the history. Errors propagate as
        exceptions only for effects: the worker records them and retires its process id.
        """
        if not batch:
            return
        if self.ack == "before-effect":
            if not self._xack(batch, record_ack):
                return
            for d in batch:
                work(self.work_s)
                self._effect(d)
        elif self.ack == "after-effect":
            for d in batch:
                work(self.work_s)
                self._effect(d)
            self._xack(batch, record_ack)
        else:
            for d in batch:
                work(self.work_s)
                inv = record_ack("invoke", {"ids": [d.id]})
                assert self.atomic is not None
                try:
                    self.atomic(keys=[STREAM, EFFECTS, APPLIED, BALANCES],
                                args=[d.id, str(d.key), d.amount, GROUP, d.handle])
                except Exception as e:
                    record_ack(classify_error(e).type, {"ids": [d.id]}, invoke=inv)
                    raise
                record_ack("ok", {"ids": [d.id]}, invoke=inv)

    def close(self) -> None:
        self.r.close()


def _addr(bootstrap: list[str]) -> tuple[str, int]:
    host, port = bootstrap[0].rsplit(":", 1)
    return host, int(port)


def image_layout() -> Layout:
    """redis-server at /usr/local/bin, as in the public `redis` image."""
    binary = find_binary("redis-server", "onceproof setup redis")
    return Layout(moved=[(binary, "/usr/local/bin/redis-server")], elf=[binary],
                  changes=[f"ENV PATH={PATH}", 'CMD ["redis-server"]'])


def _native_bench(d: Deployment, load: BenchLoad) -> BenchFigure:
    return redis_benchmark(d, load, PRODUCE_DEDUP)


class RedisQueue(QueueClientsBase):
    """The queue workload's clients: redis-py on one connection each, no retries of its own."""

    def producer(self, c: ClientSpec) -> RedisProducer:
        host, port = _addr(c.bootstrap)
        return RedisProducer(port, c.profile, host=host)

    def consumer(self, c: ClientSpec) -> RedisConsumer:
        host, port = _addr(c.bootstrap)
        return RedisConsumer(port, c.profile, c.name, work_s=c.work_s, host=host)


QUEUE: QueueClients = RedisQueue()  # mypy checks it against the workload's protocol


class Redis(TargetBase):
    """One redis-server node; its effect store lives on it (see the module's docstring)."""

    name = "redis"
    profiles = PROFILES
    faults = FAULTS
    clients: ClassVar[Mapping[str, object]] = {"queue": QUEUE}
    node_counts = (1,)
    drain = Drain(quiet=3.0, deadline=60.0)
    needs = Needs(debian=(Debian("redis-server", "redis-server"), Debian("redis-tools", "redis-benchmark")),
                  python=("redis",))
    image = Image("redis", "redis.yml", image_layout)
    abilities = Abilities(backlog=backlog, native_bench=_native_bench)

    def node_argv(self, d: Deployment, node: NodeInfo) -> list[str]:
        return node_argv(node, d.profile)

    def ready(self, node: NodeInfo) -> bool:
        return ping(node.port, host=node.host)

    def prepare(self, d: Deployment) -> None:
        prepare(d)

    def read_effects(self, d: Deployment) -> dict[str, int]:
        return read_effects(d)


TARGET: Target = Redis()  # mypy checks that it satisfies the protocol
