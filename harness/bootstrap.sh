#!/bin/sh
# Bootstrap onceproof on a fresh Debian machine (as root): a Python >= 3.11 virtualenv in .venv with
# onceproof installed in it, what the default target needs (`onceproof setup redis`: redis-server and a
# pinned Toxiproxy built with go install, cached), and with --test the test tools, Debian's chromium and a
# docker engine for the docker runtime's tests (Debian's docker.io; started with the vfs storage driver
# when none runs).
# Idempotent and quick when everything is already there.
set -eu
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

say() { printf 'bootstrap: %s\n' "$*" >&2; }
apt_install() {
    missing=""
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"; done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then say "need root to install:$missing"; exit 1; fi
    say "installing Debian packages:$missing"
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' 2>/dev/null | head -1)" ] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; }
}

py=""
for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 &&
        "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        py=$(command -v "$cand"); break
    fi
done
if [ -z "$py" ]; then apt_install python3; py=$(command -v python3); fi
if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then apt_install python3-venv; fi

if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $py"
    "$py" -m venv .venv
fi
stamp=.venv/.onceproof-installed
extras=""
[ "$want_test" = 1 ] && extras="[test]"
uptodate() { [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ]; }
if ! uptodate "$stamp$extras" && ! uptodate "$stamp[test]"; then
    say "installing onceproof$extras into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras"
    touch "$stamp$extras"
fi
# the history reader's C fast path (checkers/history/canon.c): optional, the reader falls back to numpy
if ! command -v cc >/dev/null 2>&1; then
    { [ "$(id -u)" = 0 ] && apt_install gcc libc6-dev; } || say "no C compiler: the reader uses its numpy path"
fi
.venv/bin/python -c 'from checkers.history import native; native.available() or print("bootstrap: reader fast path:", native.status())' >&2
if [ "$want_test" = 1 ]; then
    command -v chromium >/dev/null 2>&1 || apt_install chromium
    sh harness/start-docker.sh || say "no docker engine: the docker runtime's tests will be skipped"
fi
.venv/bin/onceproof setup redis >&2
say "ready: .venv/bin/onceproof"
