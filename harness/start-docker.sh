#!/bin/sh
# Make sure a docker engine answers: install Debian's docker.io if dockerd is missing, and start dockerd
# (storage driver vfs, no iptables management: it works inside VMs and containers without overlayfs, and
# leaves the host's firewall alone) when no engine runs. Root only; idempotent.
set -eu
say() { printf 'start-docker: %s\n' "$*" >&2; }
if docker info >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then say "no docker engine answers and we are not root"; exit 1; fi
if ! command -v dockerd >/dev/null 2>&1; then
    say "installing docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; }
fi
command -v iptables >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
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
