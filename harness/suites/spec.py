"""Suite files (TOML): their shape, and every mistake refused before anything starts.

    [defaults]                   # any `onceproof run` option
    time = 20
    [[case]]
    name = "mq-eos"              # optional; default target-profile-faults
    target = "mq"                # a registered target
    profile = "exactly-once"
    faults = ["ack-loss", "kill-consumer"]
    seeds = [1, 2, 3]            # one run per seed (or seed = 1)
    expect = "valid"             # or {verdict = "invalid", lost = ">0", "lost+lost_effects" = ">0"}
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import targets
from checkers.vocabulary import ANOMALIES, DELIVERY_COUNTS, IDEMPOTENCY_ANOMALIES, VERDICT_NAMES
from harness.config import ConfigError, RunConfig, run_options

# `onceproof run` options a suite may set, in [defaults] or in a case (hyphens allowed, as on the command line):
# every run option but the case's own keys, from their declarations (harness/options.py)
OPTIONS = tuple(run_options())
CASE_KEYS = ("name", "kind", "target", "profile", "faults", "seed", "seeds", "expect", "profiles", "find_rate",
             *OPTIONS)
KINDS = ("run", "cost")  # a certification run per seed, or `onceproof cost` over the target's profiles
COUNTABLE = tuple(dict.fromkeys((*DELIVERY_COUNTS, *ANOMALIES, "lost_middle", *IDEMPOTENCY_ANOMALIES)))
_CONDITION = re.compile(r"^\s*(>=|<=|==|>|<|=)?\s*(\d+)\s*$")


class SuiteError(Exception):
    """A suite file that cannot run: the message names the file, the line or case, and what is valid."""


@dataclass(frozen=True)
class Condition:
    """`lost = ">0"`: a count (or a sum of counts joined by +) compared with a number."""

    counts: tuple[str, ...]
    op: str
    n: int

    def holds(self, c: dict[str, Any]) -> bool:
        v = sum(int(c.get(k) or 0) for k in self.counts)
        return {">": v > self.n, ">=": v >= self.n, "<": v < self.n, "<=": v <= self.n, "==": v == self.n}[self.op]

    def __str__(self) -> str:
        return f"{'+'.join(self.counts)} {self.op} {self.n}"


@dataclass(frozen=True)
class Expectation:
    verdict: str
    conditions: tuple[Condition, ...] = ()

    def unmet(self, verdict: str, counts: dict[str, Any]) -> list[str]:
        """What did not come true (empty: the expectation was met)."""
        out = [] if verdict == self.verdict else [f"verdict {verdict}, expected {self.verdict}"]
        for cond in self.conditions:
            if not cond.holds(counts):
                got = sum(int(counts.get(k) or 0) for k in cond.counts)
                out.append(f"{'+'.join(cond.counts)} was {got}, expected {cond.op} {cond.n}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, **{"+".join(c.counts): f"{c.op}{c.n}" for c in self.conditions}}

    def __str__(self) -> str:
        return ", ".join([self.verdict, *map(str, self.conditions)])


@dataclass(frozen=True)
class Case:
    name: str
    target: str
    profile: str
    faults: tuple[str, ...]
    seeds: tuple[int, ...]
    expect: Expectation
    options: dict[str, Any] = field(default_factory=dict)
    line: int = 0  # of its [[case]] header
    kind: str = "run"
    profiles: tuple[str, ...] = ()  # a cost case's profiles
    find_rate: bool = False  # a cost case searches each profile's sustainable rate

    def config(self, seed: int, store: str) -> RunConfig:
        cfg = RunConfig(target=self.target, profile=self.profile, faults=list(self.faults), seed=seed, store=store)
        for k, v in self.options.items():
            cfg.set(k, v)
        return cfg


@dataclass(frozen=True)
class Item:
    """One run of a suite: a case at one seed. `index` orders the whole suite (shards keep it)."""

    index: int
    case: Case
    seed: int

    @property
    def key(self) -> str:
        return f"{self.case.name}[seed {self.seed}]"


@dataclass(frozen=True)
class Suite:
    path: Path
    name: str
    cases: tuple[Case, ...]

    def items(self) -> list[Item]:
        out: list[Item] = []
        for c in self.cases:
            for s in c.seeds:
                out.append(Item(len(out), c, s))
        return out


def _lines(text: str) -> tuple[int, list[int]]:
    """The line of [defaults] (0 if none) and of each [[case]] header, 1-based."""
    defaults, cases = 0, []
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if re.match(r"^\[\s*defaults\s*\]", s):
            defaults = i
        elif re.match(r"^\[\[\s*case\s*\]\]", s):
            cases.append(i)
    return defaults, cases


def _key_line(text: str, start: int, key: str) -> int:
    """The line of `key = ...` in the table starting at line `start` (the header's line if not found)."""
    lines = text.splitlines()
    for i in range(start, len(lines)):
        s = lines[i].strip()
        if s.startswith("["):
            break
        if re.match(rf'^"?{re.escape(key)}"?\s*=', s):
            return i + 1
    return start


def _norm(key: str) -> str:
    return key.replace("-", "_")


def _option(where: str, key: str, value: Any) -> Any:
    """A run option's value as its declaration's kind, or SuiteError naming the file, line and key."""
    try:
        return run_options()[key].option.coerce(value)
    except ValueError as e:
        raise SuiteError(f"{where}: {e}") from None


def parse_expectation(where: str, raw: Any) -> Expectation:
    """`expect`'s value: a verdict word, or a table of the verdict and count conditions."""
    if isinstance(raw, str):
        raw = {"verdict": raw}
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: expect must be one of {', '.join(map(repr, VERDICT_NAMES))} or a table such as "
                         '{verdict = "invalid", lost = ">0"}' + f" (got {raw!r})")
    verdict = raw.get("verdict")
    if verdict not in VERDICT_NAMES:
        raise SuiteError(f"{where}: expect's verdict must be one of {', '.join(map(repr, VERDICT_NAMES))} "
                         f"(got {verdict!r})")
    conds = []
    for key, spec in raw.items():
        if key == "verdict":
            continue
        names = tuple(k.strip() for k in key.split("+"))
        bad = [k for k in names if k not in COUNTABLE]
        if bad:
            raise SuiteError(f"{where}: expect: unknown count {', '.join(map(repr, bad))}; valid counts: "
                             f"{', '.join(COUNTABLE)} (several may be summed: \"lost+lost_effects\")")
        m = _CONDITION.match(str(spec)) if isinstance(spec, str | int) and not isinstance(spec, bool) else None
        if not m:
            raise SuiteError(f"{where}: expect: {key} must be a number or a comparison such as \">0\", \"0\", "
                             f"\"<=5\" (got {spec!r})")
        op = {None: "==", "=": "=="}.get(m.group(1), m.group(1))
        conds.append(Condition(names, op, int(m.group(2))))
    return Expectation(verdict, tuple(conds))


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; every target, profile, fault and option is checked here, so that a
    mistake in the last case is found before the first one runs."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SuiteError(f"{path}: {e.strerror or e}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SuiteError(f"{path}: not valid TOML: {e}") from e
    defaults_line, case_lines = _lines(text)
    unknown_top = [k for k in data if k not in ("defaults", "case", "name")]
    if unknown_top:
        raise SuiteError(f"{path}: unknown top-level key {unknown_top[0]!r}; a suite holds name, [defaults] and "
                         "[[case]] tables")
    defaults: dict[str, Any] = {}
    raw_defaults = data.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        raise SuiteError(f"{path}: defaults must be a table ([defaults])")
    for key, value in raw_defaults.items():
        at = f"{path}:{_key_line(text, defaults_line, key)}: [defaults]"
        k = _norm(key)
        if k not in OPTIONS:
            raise SuiteError(f"{at}: unknown key {key!r}; valid keys: {', '.join(OPTIONS)}")
        defaults[k] = _option(at, k, value)
    raw_cases = data.get("case")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise SuiteError(f"{path}: no [[case]] tables: a suite needs at least one case")
    cases: list[Case] = []
    names: dict[str, int] = {}
    for i, raw in enumerate(raw_cases):
        line = case_lines[i] if i < len(case_lines) else 0
        if not isinstance(raw, dict):
            raise SuiteError(f"{path}:{line}: case {i + 1} must be a table ([[case]]), got {raw!r}")
        raw = {_norm(k): v for k, v in raw.items()}  # find-rate and find_rate alike, as on the command line
        label = f"case {i + 1}" + (f" ({raw['name']})" if isinstance(raw.get("name"), str) else "")

        def where(key: str | None = None, line: int = line, label: str = label) -> str:
            return f"{path}:{_key_line(text, line, key) if key else line}: {label}"

        for key in raw:
            if _norm(key) not in CASE_KEYS:
                raise SuiteError(f"{where(key)}: unknown key {key!r}; valid keys: {', '.join(CASE_KEYS)}")
        kind = raw.get("kind", "run")
        if kind not in KINDS:
            raise SuiteError(f"{where('kind')}: kind must be one of {', '.join(map(repr, KINDS))} (got {kind!r})")
        if kind == "cost":
            cases.append(_cost_case(raw, defaults, where, line, names, i))
            continue
        for key in ("profiles", "find_rate"):
            if key in raw:
                raise SuiteError(f"{where(key)}: {key} belongs to kind = \"cost\" cases")
        for key in ("target", "profile", "expect"):
            if key not in raw:
                raise SuiteError(f"{where()}: missing key {key!r}")
        target = raw["target"]
        if target not in targets.names():
            raise SuiteError(f"{where('target')}: unknown target {target!r}; valid targets: "
                             f"{', '.join(targets.names())}")
        faults = raw.get("faults", [])
        if isinstance(faults, str):
            faults = [f for f in faults.split(",") if f and f != "none"]
        if not isinstance(faults, list) or not all(isinstance(f, str) for f in faults):
            raise SuiteError(f"{where('faults')}: faults must be a list of fault names (got {faults!r})")
        if "seed" in raw and "seeds" in raw:
            raise SuiteError(f"{where('seed')}: give seed or seeds, not both")
        seeds = raw.get("seeds", [raw.get("seed", 1)])
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
            raise SuiteError(f"{where('seeds')}: seeds must be a non-empty list of integers (got {seeds!r})")
        if len(set(seeds)) != len(seeds):
            raise SuiteError(f"{where('seeds')}: a seed is listed twice ({seeds})")
        options = _options(raw, defaults, where)
        name = _name(raw, f"{target}-{raw['profile']}-{'+'.join(faults) or 'none'}", where, names, i)
        case = Case(name, target, raw["profile"], tuple(faults), tuple(seeds), parse_expectation(where("expect"),
                    raw["expect"]), options, line)
        try:
            case.config(seeds[0], "store").validate()
        except ConfigError as e:
            msg = str(e)
            key = next((k for k in raw if f"--{_norm(k).replace('_', '-')} " in msg), None)
            key = key or next((k for k in ("profile", "faults", "runtime", "workload") if k.rstrip("s") in msg
                               and k in raw), None)
            raise SuiteError(f"{where(key)}: {e}") from e
        cases.append(case)
    name = data.get("name") or path.stem
    return Suite(path, str(name), tuple(cases))


def _options(raw: dict[str, Any], defaults: dict[str, Any], where: Any) -> dict[str, Any]:
    """The case's run options: [defaults], then its own."""
    options = dict(defaults)
    for key, value in raw.items():
        if key in OPTIONS:
            options[key] = _option(where(key), key, value)
    return options


def _name(raw: dict[str, Any], default: str, where: Any, names: dict[str, int], i: int) -> str:
    """The case's name (given or derived), unique in the file; recorded in `names`."""
    name = raw.get("name") or default
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$", name):
        raise SuiteError(f"{where('name')}: name must be letters, digits and - _ . + = (got {name!r})")
    if name in names:
        raise SuiteError(f"{where('name')}: two cases are named {name!r} (the other is case {names[name]}); "
                         "give one a name")
    names[name] = i + 1
    return name


def _cost_case(raw: dict[str, Any], defaults: dict[str, Any], where: Any, line: int, names: dict[str, int],
               i: int) -> Case:
    """A `kind = "cost"` case: `onceproof cost` for one target (profiles: all unless listed)."""
    if "target" not in raw:
        raise SuiteError(f"{where()}: missing key 'target'")
    for key in ("profile", "faults", "seed", "seeds"):
        if key in raw:
            raise SuiteError(f"{where(key)}: a cost case runs without faults, once per profile: no {key} "
                             "(use profiles = [...])")
    target = raw["target"]
    if target not in targets.names():
        raise SuiteError(f"{where('target')}: unknown target {target!r}; valid targets: {', '.join(targets.names())}")
    known = list(targets.load(target).profiles)
    profiles = raw.get("profiles", known)
    if not isinstance(profiles, list) or not profiles or not all(isinstance(x, str) for x in profiles):
        raise SuiteError(f"{where('profiles')}: profiles must be a non-empty list of profile names")
    bad = [x for x in profiles if x not in known]
    if bad:
        raise SuiteError(f"{where('profiles')}: unknown profile {', '.join(map(repr, bad))} for target {target}; "
                         f"valid profiles: {', '.join(known)}")
    find_rate = raw.get("find_rate", False)
    if not isinstance(find_rate, bool):
        raise SuiteError(f"{where('find_rate')}: find_rate must be true or false")
    options = _options(raw, defaults, where)
    name = _name(raw, f"{target}-cost", where, names, i)
    expect = parse_expectation(where("expect"), raw.get("expect", "valid"))
    if expect.conditions:
        raise SuiteError(f"{where('expect')}: a cost case has a verdict only (valid: every profile kept pace and "
                         "its claim without faults), no counts")
    case = Case(name, target, profiles[0], (), (1,), expect, options, line, "cost", tuple(profiles), find_rate)
    try:
        case.config(1, "store").validate()
    except ConfigError as e:
        raise SuiteError(f"{where()}: {e}") from e
    return case


def parse_seeds(text: str) -> tuple[int, ...]:
    """`1-10`, `1,2,5` or a mix (`1-3,7`): the seeds every case runs with instead of its own."""
    seeds: list[int] = []
    for part in (text or "").split(","):
        m = re.match(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise SuiteError(f"--seeds must be numbers and ranges such as 1-10 or 1,2,5 (got {text!r})")
        seeds += range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1)
    if len(set(seeds)) != len(seeds):
        raise SuiteError(f"--seeds lists a seed twice ({text!r})")
    return tuple(seeds)


def with_seeds(suite: Suite, seeds: tuple[int, ...]) -> Suite:
    """The suite with every case run at `seeds` (a many-seed certification of a short suite)."""
    return Suite(suite.path, suite.name, tuple(c if c.kind == "cost" else replace(c, seeds=seeds)
                                               for c in suite.cases))


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` with 1 <= K <= N."""
    m = re.match(r"^\s*(\d+)\s*/\s*(\d+)\s*$", text or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise SuiteError(f"--shard must be K/N with 1 <= K <= N, such as 1/3 (got {text!r})")
    return int(m.group(1)), int(m.group(2))


def shard(items: list[Item], k: int, n: int) -> list[Item]:
    """Shard k of n: every n-th item from the (k-1)-th, so each shard gets a share of every case's seeds."""
    return [it for it in items if it.index % n == k - 1]
