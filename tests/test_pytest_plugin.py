"""The pytest plugin as a user meets it: a test file of their own, run by pytest, that certifies a case."""

from __future__ import annotations

import shutil

import pytest

from plugin.needs import cache_dir

pytest_plugins = ["pytester"]
CACHE = cache_dir()  # the real one: pytester changes HOME
pytestmark = pytest.mark.integration

USER_TESTS = '''
import pytest

def test_calm_redis_is_valid(onceproof):
    r = onceproof.certify("redis", "exactly-once", faults=[], time=2, expect={"verdict": "valid", "lost": "0"})
    assert r["delivery"]["counts"]["attempted"] > 0

@pytest.mark.onceproof(target="redis", profile="exactly-once", faults=[], time=2, expect="invalid")
def test_a_wrong_expectation_fails_with_the_report(onceproof_case):
    pass

def test_a_bad_profile_fails_before_running(onceproof):
    onceproof.certify("redis", "nope")
'''


def test_a_users_test_file_certifies_and_fails_with_the_reports_path(pytester, tmp_path, monkeypatch):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (run: onceproof setup redis)")
    monkeypatch.setenv("ONCEPROOF_CACHE", str(CACHE))  # pytester gives the inner run its own HOME
    pytester.makepyfile(test_user=USER_TESTS)
    res = pytester.runpytest_subprocess("--onceproof-store", str(tmp_path), "-q")
    res.assert_outcomes(passed=1, failed=2)
    out = res.stdout.str()
    assert "verdict valid, expected invalid" in out
    assert "report: " in out and "report.html" in out
    assert "unknown profile 'nope' for target redis" in out
