"""A payments API with idempotency keys (patterns.md §1): the reference service (`service.py`) on PostgreSQL 15,
charging through a payment provider (`provider.py`, the "card network") whose durable records are the effect
store. Every node sits behind its own proxy, and the service reaches the database and the provider through
theirs, so a fault can be aimed at one hop: `ack-loss@service` (client to service), `ack-loss@provider`
(service to provider), `kill@service`, `restart@db`, `pause-long@service`.

Nodes: `payments-db`, `payments-provider`, then `payments-service-1` (and `-2` with `--nodes 2`: two service
processes behind the clients' round-robin). Clients talk only to the service nodes. Local runtime only.
"""

from __future__ import annotations

import http.client
import json
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from plugin.imaging import Image, Layout
from plugin.needs import Debian, Needs, SetupError
from plugin.target import (
    Abilities,
    Deployment,
    Drain,
    NodeInfo,
    NodeRoles,
    Profile,
    Runner,
    Target,
    TargetBase,
    has_role,
)
from targets.payments import postgres
from workloads.payments import HTTP

ROOT = Path(__file__).resolve().parents[2]  # the project, on the nodes' PYTHONPATH
CHARGES = "charges.jsonl"  # the provider's records, in its node directory
WORK_MS = 20  # the service's bookkeeping between the provider's answer and the commit
MARKER_TTL_S = 2.0  # cache-marker's in-flight marker: shorter than pause-long (6-8 s)
# cache-marker's bookkeeping. Its double charge under pause-long needs the pause to land inside a charge, after
# the marker and before the cached answer; with 20 ms that was about half of each 40 ms cycle, and whether a
# run's two pauses hit it depended on where startup put the producers' phase (a CI run missed both).
MARKER_WORK_MS = 250

_S = {"work_ms": WORK_MS, "marker_ttl_s": MARKER_TTL_S}
PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("idempotency-key", "exactly-once",
            "The key is locked (transaction-scoped advisory lock: a second request with it gets 409) and stored "
            "with its payload's fingerprint and the response in the same transaction as the ledger row; the key is "
            "passed on to the provider, so a retry after a crash gets the provider's first charge back; a key "
            "reused with another payload gets 422.", dict(_S)),
    Profile("no-key", "at-least-once",
            "The Idempotency-Key header is ignored: every request charges. A retry after a lost response charges "
            "again.", dict(_S), expected_unsafe_under=("ack-loss",)),
    Profile("cache-marker", "exactly-once",
            "An in-process marker with a 2 s TTL outside the database transaction and an in-process response "
            "cache, as idempotency middleware does by default; no key to the provider. A second service process "
            "has its own markers, and a pause longer than the TTL lets a retry run the charge again.",
            dict(_S, work_ms=MARKER_WORK_MS),
            expected_unsafe_under=("ack-loss", "pause-long")),
    Profile("claim-first", "exactly-once",
            "A recovery point: the key is claimed and committed before the provider is called (without the key), "
            "and the answer recorded after; a retry that finds the claim unanswered gets 409. Never charges twice "
            "while committed claims survive.", dict(_S)),
    Profile("claim-first-async-commit", "exactly-once",
            "claim-first on PostgreSQL with synchronous_commit=off: a commit returns before its WAL is flushed, so "
            "a database crash forgets the claims of its last fraction of a second, and their retries charge "
            "again.", dict(_S, synchronous_commit="off"), expected_unsafe_under=("kill",)),
    Profile("provider-unsynced", "exactly-once",
            "The idempotency-key service, with a provider that does not fsync its record: an executed charge is "
            "answered before it is on disk. A power loss of the provider forgets charges the client was told "
            "about.", dict(_S, provider_fsync=False), expected_unsafe_under=("power-loss",)),
    Profile("provider-in-txn", "exactly-once",
            "The key row is claimed first in the transaction and the response stored, but the provider is called "
            "inside the open transaction without a key (a well-known tutorial's code). A kill between the "
            "provider's answer and the commit rolls the claim back; the retry charges again.", dict(_S),
            expected_unsafe_under=("kill",)),
)}

# profiles that run another profile's service code on other infrastructure settings
SERVICE_MODE = {"claim-first-async-commit": "claim-first", "provider-unsynced": "idempotency-key"}

FAULTS = ("ack-loss", "latency", "reset", "partition-client", "kill", "pause", "pause-long", "restart", "power-loss")


DEFAULT_FAULTS = ("ack-loss@service", "ack-loss@provider", "kill@service", "restart@db")


def names_of(target: str) -> Callable[[int], list[str]]:
    """A payments cluster's nodes: `<target>-db`, `<target>-provider`, then n `<target>-service-<i>`."""
    return lambda n: [f"{target}-db", f"{target}-provider", *(f"{target}-service-{i}" for i in range(1, n + 1))]


def client_facing(name: str) -> bool:
    return has_role(name, "service")


def by_role(d: Deployment, role: str) -> NodeInfo:
    """The node of a role (payments-db, http-db: db)."""
    return next(n for n in d.nodes if has_role(n.name, role))


def database_url(d: Deployment) -> str:
    db = by_role(d, "db")
    assert db.proxy_port is not None
    return postgres.url(db.proxy_host, db.proxy_port)


def provider_url(d: Deployment) -> str:
    p = by_role(d, "provider")
    return f"http://{p.proxy_host}:{p.proxy_port}"


def python_argv(module: str, env: dict[str, str], *args: str) -> list[str]:
    """Our module run by this interpreter, with its environment set by `env` (which execs: the node's pid is
    the server's, so signals reach it)."""
    return ["env", f"PYTHONPATH={ROOT}", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", module, *args]


def http_ready(node: NodeInfo) -> bool:
    conn = http.client.HTTPConnection(node.host, node.port, timeout=1)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def setup_db_and_provider(d: Deployment) -> None:
    """The database cluster (and its `payments` database) and the provider's empty record, before any start."""
    if any(n.in_container for n in d.nodes):
        raise SetupError("the payments targets run with the local runtime only (no images yet)")
    db = by_role(d, "db")
    assert db.data_dir is not None
    postgres.initdb(db.data_dir)
    provider = by_role(d, "provider")
    assert provider.data_dir is not None
    (provider.data_dir / CHARGES).touch()


def remove_cluster(d: Deployment) -> None:
    """The database's cluster lives outside the run's directory (postgres.CLUSTERS): removed at teardown."""
    db = by_role(d, "db")
    if db.data_dir is not None:
        postgres.remove(db.data_dir)


def provider_argv(node: NodeInfo, fsync: bool = True) -> list[str]:
    assert node.data_dir is not None
    return python_argv("targets.payments.provider", {} if fsync else {"FSYNC": "0"}, str(node.port),
                       str(node.data_dir / CHARGES), node.bind)


def infrastructure_argv(d: Deployment, node: NodeInfo) -> list[str] | None:
    """The database's or the provider's command line (as the profile's `synchronous_commit` and `provider_fsync`
    have them: durable unless a profile says otherwise); None for a service node."""
    s = d.profile.settings
    if has_role(node.name, "db"):
        assert node.data_dir is not None
        return postgres.argv(node.data_dir, node.port, node.bind, s.get("synchronous_commit", "on"))
    if has_role(node.name, "provider"):
        return provider_argv(node, s.get("provider_fsync", True))
    return None


def read_charges(d: Deployment) -> dict[str, int]:
    """The provider's executed charges per payment id, from its durable record."""
    provider = by_role(d, "provider")
    assert provider.data_dir is not None
    counts: Counter[str] = Counter()
    for line in (provider.data_dir / CHARGES).read_text().splitlines():
        try:
            counts[json.loads(line)["payment_id"]] += 1
        except (ValueError, KeyError):
            continue  # a torn last line was never acknowledged to anyone
    return dict(counts)


def no_layout() -> Layout:
    raise SetupError("the payments targets have no container image yet: run them with --runtime local")


class PaymentsCluster(TargetBase):
    """What the payments targets share: a database, the provider and service nodes, the payments workload with its
    own HTTP client (the services speak docs/payments-contract.md), the provider's record as the effect store. A
    target adds its name, profiles, image, abilities and how its service nodes start."""

    faults = FAULTS
    clients: ClassVar[Mapping[str, object]] = {"payments": HTTP}
    node_counts = (1, 2)  # service processes
    drain = Drain(quiet=1.0, deadline=30.0)  # the drain reads the provider's record once
    needs = Needs(debian=(Debian("postgresql", "pg_ctlcluster"), Debian("util-linux", "setpriv")),
                  python=("psycopg",))

    def ready(self, node: NodeInfo) -> bool:
        """The database answers a query; the provider or a service answers GET /health."""
        return postgres.ready(node.host, node.port) if has_role(node.name, "db") else http_ready(node)

    def read_effects(self, d: Deployment) -> dict[str, int]:
        return read_charges(d)


class Payments(PaymentsCluster):
    """The reference payments service, its database and the provider."""

    name = "payments"
    profiles = PROFILES
    image = Image("payments", "payments.yml", no_layout, local_only=True)
    abilities = Abilities(roles=NodeRoles(names_of("payments"), client_facing), default_faults=DEFAULT_FAULTS,
                          cleanup=remove_cluster)

    def setup_nodes(self, d: Deployment, run: Runner) -> None:
        setup_db_and_provider(d)

    def node_argv(self, d: Deployment, node: NodeInfo) -> list[str]:
        argv = infrastructure_argv(d, node)
        if argv is not None:
            return argv
        s = d.profile.settings
        return python_argv("targets.payments.service", {
            "PORT": str(node.port), "BIND": node.bind, "DATABASE_URL": database_url(d),
            "PROVIDER_URL": provider_url(d), "PROFILE": SERVICE_MODE.get(d.profile.name, d.profile.name),
            "WORK_MS": str(s["work_ms"]), "MARKER_TTL_S": str(s["marker_ttl_s"])})


TARGET: Target = Payments()
