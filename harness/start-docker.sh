#!/bin/sh
# Make sure a docker engine answers: install Debian's docker.io if dockerd is missing, and start dockerd
# (storage driver vfs, no iptables management: it works inside VMs and containers without overlayfs, and
# leaves the host's firewall alone) when no engine runs. Root only; idempotent.
set -eu
say() { printf 'start-docker: %s\n' "$*" >&2; }
inst() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}
if docker info >/dev/null 2>&1 && { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; }; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then docker info >/dev/null 2>&1 && exit 0; say "no docker engine answers and we are not root"; exit 1; fi
if ! command -v dockerd >/dev/null 2>&1; then
    say "installing docker.io"
    inst docker.io
fi
command -v iptables >/dev/null 2>&1 || inst iptables
command -v nsenter >/dev/null 2>&1 || inst util-linux
# compose, for the compose files' own tests: the v2 plugin if present, else Debian's docker-compose
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 ||
    inst docker-compose || say "no compose tool"
if docker info >/dev/null 2>&1; then exit 0; fi
log=/var/log/onceproof-dockerd.log
say "starting dockerd (vfs, --iptables=false); log in $log"
nohup dockerd --storage-driver=vfs --iptables=false >"$log" 2>&1 &
i=0
while ! docker info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 60 ]; then say "dockerd did not answer within 30 s:"; tail -20 "$log" >&2; exit 1; fi
    sleep 0.5
done
say "docker engine up"
