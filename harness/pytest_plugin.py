"""A pytest plugin (entry point `pytest11`): a user's own tests run a certification and assert on it.

    def test_my_profile(onceproof):
        results = onceproof.certify("mq", "exactly-once", faults=["ack-loss", "kill-consumer"], seed=3,
                                    expect="valid", time=20)

    @pytest.mark.onceproof(target="mq", profile="r1-memory", faults=["kill-leader"],
                           expect={"verdict": "invalid", "lost": ">0"})
    def test_r1_loses(onceproof_case):
        assert onceproof_case["log"]["counts"]["inconsistent_offsets"] >= 0

(`mq` stands for any registered target.) A run whose answer is not the expected one fails the test with
the verdict, the counts and the report's path.
Runs go to --onceproof-store (default: pytest's temporary directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--onceproof-store", metavar="DIR", help="where onceproof runs go (default: pytest's tmp dir)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "onceproof(target, profile, faults=(), seed=1, expect='valid', **options): "
                                       "run this onceproof case; the onceproof_case fixture holds its results")


class Onceproof:
    """What the `onceproof` fixture hands a test."""

    def __init__(self, store: Path):
        self.store = store

    def certify(self, target: str, profile: str, faults: list[str] | tuple[str, ...] = (), seed: int = 1,
                expect: str | dict[str, Any] | None = "valid", **options: Any) -> dict[str, Any]:
        """Run one case (options: any `onceproof run` option, such as time, rate, runtime); fail the test
        unless its answer is `expect` (None: no expectation). Returns results.json's content."""
        results, failure = self.run(target, profile, faults, seed, expect, **options)
        if failure:
            pytest.fail(failure, pytrace=False)
        return results

    def run(self, target: str, profile: str, faults: list[str] | tuple[str, ...] = (), seed: int = 1,
            expect: str | dict[str, Any] | None = "valid", **options: Any) -> tuple[dict[str, Any], str | None]:
        """Like certify, but returns (results, why the answer was not the expected one, or None)."""
        from checkers.vocabulary import counts_of, verdict_name
        from harness.certify import RunFailed, certify
        from harness.config import ConfigError, RunConfig
        from harness.suites.results import counts_line
        from harness.suites.spec import SuiteError, parse_expectation

        where = f"onceproof case {target}/{profile}"
        try:
            wanted = parse_expectation(where, expect) if expect is not None else None
            cfg = RunConfig(target=target, profile=profile, faults=list(faults), seed=seed, store=str(self.store))
            for k, v in options.items():
                if k not in accepted():
                    raise ConfigError(f"unknown option {k!r}; valid options: {', '.join(accepted())}")
                cfg.set(k, v)
            cfg.validate()
        except (SuiteError, ConfigError) as e:
            pytest.fail(f"{where}: {e}", pytrace=False)
        try:
            done = certify(cfg)
        except RunFailed as e:
            pytest.fail(f"{where}: the harness could not run it: {e}", pytrace=False)
        r = done.results
        verdict = verdict_name(r["valid"])
        unmet = wanted.unmet(verdict, counts_of(r)) if wanted else []
        if unmet:
            return r, (f"{where} seed {seed} under {', '.join(faults) or 'no faults'}: "
                       f"{'; '.join(unmet)} ({counts_line(counts_of(r))}; "
                       f"{'; '.join(r.get('reasons', []))})\n"
                       f"report: {done.paths['report']}")
        return r, None


def accepted() -> tuple[str, ...]:
    """The keyword options `certify` and the marker take: every run option but the case's own (target, profile,
    faults, seed, store: parameters of their own here), from their declarations (harness/options.py)."""
    from harness.config import run_options

    return tuple(run_options())


@pytest.fixture
def onceproof(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Onceproof:
    store = request.config.getoption("--onceproof-store")
    return Onceproof(Path(store) if store else tmp_path_factory.mktemp("onceproof"))


@pytest.fixture
def onceproof_case(request: pytest.FixtureRequest, onceproof: Onceproof) -> dict[str, Any]:
    marker = request.node.get_closest_marker("onceproof")
    if marker is None:
        pytest.fail("onceproof_case needs @pytest.mark.onceproof(target=..., profile=..., ...)", pytrace=False)
    results, failure = onceproof.run(*marker.args, **marker.kwargs)
    request.node.stash[_FAILURE] = failure  # failed in the test's call, not as a setup error
    return results


_FAILURE = pytest.StashKey[str | None]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    failure = item.stash.get(_FAILURE, None)
    if failure:
        pytest.fail(failure, pytrace=False)
