"""A run's configuration: defaults, validation before anything starts, and its resolved form on disk."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import targets
import workloads

RUNTIMES = ("local", "docker")


class ConfigError(Exception):
    """A configuration that cannot run; the message names the field and lists the valid values."""


@dataclass
class RunConfig:
    target: str = "redis"
    profile: str = "exactly-once"
    workload: str = "queue"
    faults: list[str] = field(default_factory=lambda: ["ack-loss", "kill-consumer", "kill-producer", "restart"])
    time: float = 20.0  # seconds of load under faults
    rate: float = 200.0  # messages/s, all producers together
    seed: int = 1
    store: str = "store"
    producers: int = 2
    consumers: int = 2
    quiet: float | None = None  # drain ends after this long without a new delivery (target's default)...
    drain_deadline: float | None = None  # ...or after this long in any case (target's default, else 60)
    runtime: str = "local"
    work_ms: float = 5.0  # consumer processing time per message
    nodes: int | None = None  # broker nodes; None: the target's default

    def validate(self) -> None:
        """Refuse unknown names and impossible numbers, listing what is valid; fill in target defaults."""
        if self.target not in targets.TARGETS:
            raise ConfigError(f"unknown target {self.target!r}; valid targets: {', '.join(targets.TARGETS)}")
        t = targets.load(self.target)
        if self.profile not in t.PROFILES:
            raise ConfigError(f"unknown profile {self.profile!r} for target {self.target}; valid profiles: "
                              f"{', '.join(t.PROFILES)}")
        if self.workload not in workloads.WORKLOADS:
            raise ConfigError(f"unknown workload {self.workload!r}; valid workloads: "
                              f"{', '.join(workloads.WORKLOADS)}")
        bad = [f for f in self.faults if f not in t.FAULTS]
        if bad:
            raise ConfigError(f"unknown fault{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} for "
                              f"target {self.target}; valid faults: {', '.join(t.FAULTS)}")
        if self.nodes is None:
            self.nodes = t.NODES
        if self.quiet is None:
            self.quiet = getattr(t, "DRAIN_QUIET", 3.0)
        if self.drain_deadline is None:
            self.drain_deadline = getattr(t, "DRAIN_DEADLINE", 60.0)
        if self.nodes not in getattr(t, "NODE_COUNTS", (t.NODES,)):
            raise ConfigError(f"--nodes {self.nodes} is not supported by {self.target}; valid: "
                              f"{', '.join(map(str, getattr(t, 'NODE_COUNTS', (t.NODES,))))}")
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"unknown runtime {self.runtime!r}; valid runtimes: {', '.join(RUNTIMES)}")
        from harness.faults import FAULTS

        local_only = [f for f in self.faults if FAULTS[f].needs_containers and self.runtime != "docker"]
        if local_only:
            raise ConfigError(f"{', '.join(local_only)} need{'s' if len(local_only) == 1 else ''} --runtime docker: "
                              "local nodes share the loopback interface, so node-to-node traffic cannot be cut")
        for name in ("time", "rate", "quiet", "drain_deadline"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive (got {getattr(self, name)})")
        for name in ("producers", "consumers"):
            if not 1 <= getattr(self, name) <= 64:
                raise ConfigError(f"--{name} must be between 1 and 64 (got {getattr(self, name)})")

    @property
    def guarantee(self) -> str:
        return targets.load(self.target).PROFILES[self.profile].guarantee

    @property
    def test_name(self) -> str:
        return f"{self.target}-{self.profile}-{self.workload}"

    def resolved(self) -> dict[str, Any]:
        """Everything that decides the run, as written to config.json."""
        prof = targets.load(self.target).PROFILES[self.profile]
        return {**asdict(self), "guarantee": prof.guarantee, "profile_settings": prof.settings,
                "profile_description": prof.description}
