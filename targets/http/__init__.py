"""Your own payments API, certified against `docs/payments-contract.md`: `--target http --service-cmd "CMD"`
runs `sh -c "CMD"` as the service node, in the directory onceproof was started from and with its environment
(so relative paths and your PATH's `python` work as in your shell; signals go to its process group, so kill,
pause and restart reach your process), with PORT,
DATABASE_URL (a PostgreSQL 15 cluster the harness initialises in the run's directory) and PROVIDER_URL (the
harness's payment provider, whose durable records are the effect store) in its environment, each address a
Toxiproxy proxy. The nodes and the workload are the payments target's: `http-db`, `http-provider`,
`http-service-1` (and `-2` with `--nodes 2`: the command runs twice, on two ports).

The profile is the guarantee your service claims: `exactly-once` (no payment charged twice, none lost) or
`at-least-once` (charged at least once when the client was told it was; twice is allowed).
"""

from __future__ import annotations

import os
import shlex
from urllib.parse import urlsplit

from plugin.imaging import Image
from plugin.needs import SetupError
from plugin.options import Option
from plugin.target import Abilities, Deployment, NodeInfo, NodeRoles, Profile, Runner, Target, has_role
from targets.payments import (
    DEFAULT_FAULTS,
    PaymentsCluster,
    client_facing,
    database_url,
    infrastructure_argv,
    names_of,
    no_layout,
    provider_url,
    python_argv,
    remove_cluster,
    setup_db_and_provider,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("exactly-once", "exactly-once", "Your service claims every payment is charged exactly once when the "
            "client was told it succeeded, at most once otherwise.", {}),
    Profile("at-least-once", "at-least-once", "Your service claims every payment the client was told succeeded "
            "is charged, perhaps more than once.", {}),
)}


OPTIONS = (
    Option("service_cmd", str, "", "your payments service, run as a node with PORT, DATABASE_URL and PROVIDER_URL "
           "in its environment, in the directory onceproof was started from (docs/payments-contract.md)", "CMD"),
    Option("service_url", str, "", "a payments service you run yourself, reached through a forwarder node (network "
           "faults only); needs --provider-port", "URL"),
    Option("provider_port", int, 0, "with --service-url: the local port where your service finds the provider "
           "(PROVIDER_URL=http://127.0.0.1:P), through its proxy", "P", low=0, high=65535),
)


def external_address(url: str) -> str:
    """host:port of a service URL (http only: the workload speaks plain HTTP)."""
    u = urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise SetupError(f"--service-url {url!r}: expected http://HOST:PORT")
    return f"{u.hostname}:{u.port or 80}"


class Http(PaymentsCluster):
    """The user's service (`--service-cmd`), its database and the provider."""

    name = "http"
    profiles = PROFILES
    ready_timeout = 60.0  # a user's service may take its time to start
    image = Image("http", "http.yml", no_layout, local_only=True)
    options = OPTIONS
    abilities = Abilities(roles=NodeRoles(names_of("http"), client_facing), default_faults=DEFAULT_FAULTS,
                          cleanup=remove_cluster)

    def setup_nodes(self, d: Deployment, run: Runner) -> None:
        o = d.options
        if bool(o.get("service_cmd")) == bool(o.get("service_url")):
            raise SetupError("--target http needs one of --service-cmd \"CMD\" (the harness starts your service) "
                             "or --service-url URL with --provider-port P (you run it) (docs/payments-contract.md)")
        if o.get("service_url") and not o.get("provider_port"):
            raise SetupError("--service-url needs --provider-port P: your service must be charging through the "
                             "run's provider at http://127.0.0.1:P")
        if o.get("service_url"):
            external_address(o["service_url"])  # a clear error now, not a node that never gets ready
        setup_db_and_provider(d)

    def node_argv(self, d: Deployment, node: NodeInfo) -> list[str]:
        o = d.options
        argv = infrastructure_argv(d, node)
        if argv is not None:
            if has_role(node.name, "provider") and o.get("provider_port"):  # a fixed address, through the proxy
                return ["env", f"FORWARD_PORT={o['provider_port']}",
                        f"FORWARD_TO={node.proxy_host}:{node.proxy_port}", *argv]
            return argv
        if o.get("service_url"):  # the user's running service, behind a forwarder this node runs
            return python_argv("targets.payments.forward", {}, str(node.port), node.bind,
                               external_address(o["service_url"]))
        env = {"PORT": str(node.port), "DATABASE_URL": database_url(d), "PROVIDER_URL": provider_url(d)}
        # the node's own directory is its data directory: the command runs where the user started onceproof
        cmd = f"cd {shlex.quote(os.getcwd())} && {o['service_cmd']}"
        return ["env", *(f"{k}={v}" for k, v in env.items()), "sh", "-c", cmd]


TARGET: Target = Http()
