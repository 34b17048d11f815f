"""A run's configuration: defaults, validation before anything starts, and its resolved form on disk."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import targets
import workloads
from harness import lossyfs
from harness.faults import SELECTABLE, candidates, fault_of, split_fault
from harness.options import Declared, from_field, gather, harness_option
from harness.runtime import RUNTIMES, runtime_class
from plugin.check import PluginError
from plugin.target import Profile, Target, node_names, workloads_of

DEFAULT_TARGET = "redis"  # the one place the harness names a system: what `onceproof run` runs by default


DEFAULT_FAULTS = ("ack-loss", "kill-consumer", "kill-producer", "restart")


def default_profile(t: Target) -> str:
    """What a run without --profile certifies: the target's `exactly-once`, or its first profile claiming it."""
    if "exactly-once" in t.profiles:
        return "exactly-once"
    return next((p.name for p in t.profiles.values() if p.guarantee == "exactly-once"), next(iter(t.profiles)))


class ConfigError(Exception):
    """A configuration that cannot run; the message names the field and lists the valid values."""


@dataclass
class RunConfig:
    """A run's configuration. Each field is a run option of the harness's own, declared here once (harness/options.py
    makes the command line, suite keys and pytest keywords of them); `extra` holds the values of the options
    workloads and targets declare (`--batch`, `--service-cmd`), set with `set` and read with `value`."""

    target: str = harness_option(DEFAULT_TARGET, f"system under test (default: {DEFAULT_TARGET})")
    profile: str = harness_option("", "configuration claiming a guarantee (default: the target's exactly-once, or "
                                      "its first profile claiming exactly-once)")
    workload: str = harness_option("", "what clients do (default: the target's first)")
    faults: list[str] | None = harness_option(
        None, "faults, comma-separated, or 'none' (default: the target's; for queues ack-loss,kill-consumer,"
              "kill-producer,restart); a network or process fault aimed at nodes of one role: kill@db, "
              "ack-loss@provider", "F1,F2", kind=list)
    time: float = harness_option(20.0, "seconds of load under faults (default: 20)", "S", positive=True)
    rate: float = harness_option(200.0, "messages (or requests) per second, all producers together (default: 200)",
                                 "R", positive=True)
    seed: int = harness_option(1, "fault-schedule seed (default: 1)", "N")
    store: str = harness_option("store", "where runs are written (default: ./store)", "DIR")
    producers: int = harness_option(2, "producer processes (default: 2)", "N", low=1, high=64)
    consumers: int = harness_option(2, "consumer processes (default: 2)", "N", low=1, high=64)
    in_flight: int = harness_option(1, "sends in flight per producer process: N logical processes (threads), each "
                                       "one send at a time (default: 1)", "N", low=1, high=64)
    quiet: float | None = harness_option(None, "drain ends after S seconds without a delivery (default: the "
                                               "target's)", "S", kind=float, positive=True)
    drain_deadline: float | None = harness_option(None, "drain ends after S seconds anyway (default: the target's)",
                                                  "S", kind=float, positive=True)
    runtime: str = harness_option("local", "where nodes and workers run: local processes, or docker containers "
                                           "(see `onceproof images build`) (default: local)")
    nodes: int | None = harness_option(None, "nodes of the target (default: the target's)", "N", kind=int)
    lossy_disks: bool = harness_option(
        False, "put the nodes' data directories on lossy disks even when no fault drops them (the power-loss faults "
               "do it anyway): a kill then runs on the same disks as a power loss, whose fsync returns at once "
               "(default: off)")
    synced_setup: bool = harness_option(True, "with the power-loss faults: count everything written before the load "
                                              "(setup, prepare) as fsynced; --no-synced-setup leaves it at the disks' "
                                              "mercy, so a power loss soon after creation can lose it (default: on)")
    extra: dict[str, Any] = field(default_factory=dict)  # workload and target options: name -> value

    def value(self, name: str) -> Any:
        """Any run option's value: a field, else a workload's or target's option (its default when not set)."""
        if name in _FIELDS:
            return getattr(self, name)
        if name in self.extra:
            return self.extra[name]
        known = declared().get(name)
        if known is None:
            raise KeyError(name)
        return known.option.default

    def set(self, name: str, value: Any) -> None:
        """Set a run option by name, as the command line, a suite or the pytest plugin gives it (checked against
        its declared kind: ConfigError naming what is expected)."""
        known = declared().get(name)
        if known is None:
            raise ConfigError(f"unknown option {name!r}; valid options: {', '.join(declared())}")
        try:
            value = known.option.coerce(value)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if name in _FIELDS:
            setattr(self, name, value)
        else:
            self.extra[name] = value

    def validate(self) -> None:
        """Refuse unknown names and impossible numbers, listing what is valid; fill in target defaults."""
        if self.target not in targets.names():
            raise ConfigError(f"unknown target {self.target!r}; valid targets: {', '.join(targets.names())}")
        try:
            t = targets.load(self.target)
            declared()
        except PluginError as e:
            raise ConfigError(str(e)) from None
        self.profile = self.profile or default_profile(t)
        if self.faults is None:
            self.faults = list(t.abilities.default_faults) or [f for f in DEFAULT_FAULTS if f in t.faults]
        options = declared()
        for name, value in self.extra.items():
            d = options[name]
            if d.owner == "target" and value not in (None, "", 0) and self.target not in d.by:
                raise ConfigError(f"{d.option.flag} is not an option of target {self.target} (targets that take "
                                  f"it: {', '.join(d.by)})")
        if self.profile not in t.profiles:
            raise ConfigError(f"unknown profile {self.profile!r} for target {self.target}; valid profiles: "
                              f"{', '.join(t.profiles)}")
        served = workloads_of(t)
        self.workload = self.workload or served[0]
        if self.workload not in workloads.names():
            raise ConfigError(f"unknown workload {self.workload!r}; valid workloads: "
                              f"{', '.join(workloads.names())}")
        if self.workload not in served:
            raise ConfigError(f"target {self.target} does not serve the {self.workload} workload; valid workloads "
                              f"for it: {', '.join(served)}")
        w = workloads.load(self.workload)
        for name, default in w.option_defaults(t.clients[self.workload]).items():
            if self.extra.get(name) is None:
                self.extra[name] = default
        for o in w.options:
            self.extra.setdefault(o.name, o.default)
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
        lossy = [f for f in self.faults if fault_of(f).needs_lossy_disk]
        lossy += ["--lossy-disks"] if self.lossy_disks else []
        if lossy:
            works, missing = lossyfs.available()
            if not works:
                raise ConfigError(f"{', '.join(lossy)} need{'s' if len(lossy) == 1 else ''} lossy disks (FUSE), which "
                                  f"do not work here: {missing}")
        can_cut = runtime_class(self.runtime).can_partition
        need = [f for f in self.faults if fault_of(f).needs_partitions and not can_cut]
        if need:
            raise ConfigError(f"{', '.join(need)} need{'s' if len(need) == 1 else ''} --runtime "
                              f"{' or '.join(cutting)}: nodes of the {self.runtime} runtime share one network "
                              "interface, so node-to-node traffic cannot be cut")
        for name, d in options.items():
            out_of_bounds = d.option.check(self.value(name))
            if out_of_bounds:
                raise ConfigError(out_of_bounds)

    @property
    def guarantee(self) -> str:
        return targets.load(self.target).profiles[self.profile].guarantee

    @property
    def test_name(self) -> str:
        return f"{self.target}-{self.profile}-{self.workload}"

    def target_options(self) -> dict[str, Any]:
        """The values of the target's own options that are set (`Deployment.options`)."""
        mine = {o.name for o in targets.load(self.target).options}
        return {k: v for k, v in self.extra.items() if k in mine and v not in (None, "", 0)}

    def workload_settings(self) -> dict[str, Any]:
        """The run options the workload reads (`WorkerContext.settings`): the harness's it names, and its own."""
        w = workloads.load(self.workload)
        return {name: self.value(name) for name in (*w.reads, *(o.name for o in w.options))}

    def resolved(self, profile: Profile | None = None, target: Target | None = None) -> dict[str, Any]:
        """Everything that decides the run, as written to config.json (`profile` and `target`: the run's own;
        default: the registered target's): every option by name, the workload's and the target's among them."""
        t = target or targets.load(self.target)
        prof = profile or t.profiles[self.profile]
        plain = {k: v for k, v in asdict(self).items() if k != "extra"}
        return {**plain, **self.extra, "system": self.system(t), "guarantee": prof.guarantee,
                "profile_settings": prof.settings, "profile_retries": prof.producer_retries,
                "profile_description": prof.description}

    def system(self, target: Target | None = None) -> str:
        """What ran, as reports and comparisons name it: the target, and the values of its options that say
        which system it was (a server version)."""
        named = [str(self.value(o.name)) for o in (target or targets.load(self.target)).options
                 if o.identifies and self.value(o.name) not in (None, "", 0)]
        return " ".join([self.target, *named])


_FIELDS = {f.name for f in fields(RunConfig) if f.name != "extra"}

# options that name what a run is rather than how it runs: a suite case has keys of its own for them (seeds
# for seed), the pytest plugin takes them as parameters, and `store` is the suite's or the test's
CASE = ("target", "profile", "faults", "seed", "store")


@functools.cache
def declared() -> dict[str, Declared]:
    """Every run option by name: the harness's (RunConfig's fields), then the workloads' and the targets'."""
    return gather([from_field(f) for f in fields(RunConfig) if "option" in f.metadata])


def run_options() -> dict[str, Declared]:
    """The options a suite case or the pytest plugin may set besides the case's own keys (CASE)."""
    return {k: v for k, v in declared().items() if k not in CASE}
