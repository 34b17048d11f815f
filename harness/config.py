"""A run's configuration: defaults, validation before anything starts, and its resolved form on disk."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import targets
import workloads
from harness.faults import SELECTABLE, candidates, fault_of, split_fault
from harness.runtime import RUNTIMES, runtime_class
from plugin.target import Profile, Target, node_names

DEFAULT_TARGET = "redis"  # the one place the harness names a system: what `onceproof run` runs by default


DEFAULT_FAULTS = ("ack-loss", "kill-consumer", "kill-producer", "restart")
# run options only some targets read (Deployment.options)
TARGET_OPTIONS = ("service_cmd", "service_url", "provider_port")


def default_profile(t: Target) -> str:
    """What a run without --profile certifies: the target's `exactly-once`, or its first profile claiming it."""
    if "exactly-once" in t.profiles:
        return "exactly-once"
    return next((p.name for p in t.profiles.values() if p.guarantee == "exactly-once"), next(iter(t.profiles)))


class ConfigError(Exception):
    """A configuration that cannot run; the message names the field and lists the valid values."""


@dataclass
class RunConfig:
    target: str = DEFAULT_TARGET
    profile: str = ""  # "": the target's "exactly-once", or else its first profile that claims exactly-once
    workload: str = ""  # "": the target's first (its default)
    faults: list[str] | None = None  # None: the target's default_faults, or DEFAULT_FAULTS it has
    time: float = 20.0  # seconds of load under faults
    rate: float = 200.0  # messages/s, all producers together
    seed: int = 1
    store: str = "store"
    producers: int = 2
    consumers: int = 2
    quiet: float | None = None  # drain ends after this long without a new delivery (target's default)...
    drain_deadline: float | None = None  # ...or after this long in any case (target's default)
    runtime: str = "local"
    work_ms: float = 5.0  # consumer processing time per message
    nodes: int | None = None  # nodes of the target; None: the target's default
    in_flight: int = 1  # sends in flight per producer process (logical processes in threads)
    service_cmd: str = ""  # a target's own service as a node (where the target reads it: Abilities.options)
    service_url: str = ""  # ... or one running already, behind a forwarder node
    provider_port: int = 0  # a fixed local port for the provider, for a service the harness does not start
    native: bool = False  # after the drain, run the target's own benchmark tool at this load (cost runs)
    batch: int | None = None  # messages a consumer takes per poll (per acknowledgement or transaction); the target's

    def validate(self) -> None:
        """Refuse unknown names and impossible numbers, listing what is valid; fill in target defaults."""
        if self.target not in targets.names():
            raise ConfigError(f"unknown target {self.target!r}; valid targets: {', '.join(targets.names())}")
        t = targets.load(self.target)
        self.profile = self.profile or default_profile(t)
        if self.faults is None:
            self.faults = list(t.abilities.default_faults) or [f for f in DEFAULT_FAULTS if f in t.faults]
        for name in TARGET_OPTIONS:
            if getattr(self, name) and name not in t.abilities.options:
                takers = [n for n in targets.names() if name in targets.load(n).abilities.options]
                raise ConfigError(f"--{name.replace('_', '-')} is not an option of target {self.target} (targets "
                                  f"that take it: {', '.join(takers) or 'none'})")
        if self.profile not in t.profiles:
            raise ConfigError(f"unknown profile {self.profile!r} for target {self.target}; valid profiles: "
                              f"{', '.join(t.profiles)}")
        self.workload = self.workload or t.workloads[0]
        if self.workload not in workloads.names():
            raise ConfigError(f"unknown workload {self.workload!r}; valid workloads: "
                              f"{', '.join(workloads.names())}")
        if self.workload not in t.workloads:
            raise ConfigError(f"target {self.target} does not serve the {self.workload} workload; valid workloads "
                              f"for it: {', '.join(t.workloads)}")
        bad = [f for f in self.faults if split_fault(f)[0] not in t.faults]
        if bad:
            raise ConfigError(f"unknown fault{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} for "
                              f"target {self.target}; valid faults: {', '.join(t.faults)}")
        lacking = [f for f in self.faults if fault_of(f).kind in ("leader", "controller")
                   and getattr(t.abilities, fault_of(f).kind) is None]
        if lacking:
            raise ConfigError(f"target {self.target} cannot tell which node {' or '.join(lacking)} should hit "
                              f"(it declares no such ability)")
        if self.nodes is None:
            self.nodes = t.node_counts[0]
        if self.quiet is None:
            self.quiet = t.drain.quiet
        if self.drain_deadline is None:
            self.drain_deadline = t.drain.deadline
        if self.batch is None:
            self.batch = t.batch
        if self.nodes not in t.node_counts:
            raise ConfigError(f"--nodes {self.nodes} is not supported by {self.target}; valid: "
                              f"{', '.join(map(str, t.node_counts))}")
        names = node_names(t, self.nodes)
        for f in self.faults:
            role = split_fault(f)[1]
            if role is None:
                continue
            if fault_of(f).kind not in SELECTABLE:
                raise ConfigError(f"fault {f!r}: only network and process faults can be aimed at nodes with @role "
                                  f"({fault_of(f).name} picks its own)")
            if not candidates(f, names):
                raise ConfigError(f"fault {f!r}: no node of {self.target} has the role {role!r}; its nodes: "
                                  f"{', '.join(names)}")
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"unknown runtime {self.runtime!r}; valid runtimes: {', '.join(RUNTIMES)}")
        cutting = [r for r in RUNTIMES if runtime_class(r).can_partition]
        if t.image.local_only and self.runtime != "local":
            raise ConfigError(f"target {self.target} runs with --runtime local only (it has no container image yet)")
        can_cut = runtime_class(self.runtime).can_partition
        need = [f for f in self.faults if fault_of(f).needs_partitions and not can_cut]
        if need:
            raise ConfigError(f"{', '.join(need)} need{'s' if len(need) == 1 else ''} --runtime "
                              f"{' or '.join(cutting)}: nodes of the {self.runtime} runtime share one network "
                              "interface, so node-to-node traffic cannot be cut")
        for name in ("time", "rate", "quiet", "drain_deadline"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive (got {getattr(self, name)})")
        for name in ("producers", "consumers", "in_flight"):
            if not 1 <= getattr(self, name) <= 64:
                raise ConfigError(f"--{name.replace('_', '-')} must be between 1 and 64 (got {getattr(self, name)})")
        if not 1 <= self.batch <= 1000:
            raise ConfigError(f"--batch must be between 1 and 1000 (got {self.batch})")

    @property
    def guarantee(self) -> str:
        return targets.load(self.target).profiles[self.profile].guarantee

    @property
    def test_name(self) -> str:
        return f"{self.target}-{self.profile}-{self.workload}"

    def resolved(self, profile: Profile | None = None) -> dict[str, Any]:
        """Everything that decides the run, as written to config.json (`profile`: the run's own; default: the
        registered target's)."""
        prof = profile or targets.load(self.target).profiles[self.profile]
        return {**asdict(self), "guarantee": prof.guarantee, "profile_settings": prof.settings,
                "profile_description": prof.description}
