#!/bin/sh
# Installs the Fleetwave agent executable the way its self-update expects:
#   <prefix>/opt/fleetwave/versions/<version>/fleetwave-agent
#   <prefix>/opt/fleetwave/bin/fleetwave-agent -> ../versions/<version>/fleetwave-agent
#   <prefix>/etc/fleetwave/agent.yaml            (copied from --config when absent; never overwritten)
#   <prefix>/var/lib/fleetwave                    (the state directory: outbox, update state)
#   <prefix>/etc/systemd/system/fleetwave-agent{,-rollback}.service
# and, unless told not to, creates the system user `fleetwave` and enables the service.
#
# usage: install.sh --exe <fleetwave-agent-linux-ARCH> [--config <agent.yaml>] [--prefix <dir>] [--no-user] [--no-systemd]
set -eu

exe= config= prefix= user=yes systemd=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --exe) exe=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --no-user) user=no; shift ;;
    --no-systemd) systemd=no; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$exe" ] || { echo "install.sh: --exe <fleetwave-agent-linux-ARCH> is required" >&2; exit 2; }
[ -x "$exe" ] || chmod 0755 "$exe"
here=$(cd "$(dirname "$0")" && pwd)

version=$("$exe" --version) || { echo "install.sh: $exe does not run on this machine (wrong architecture? glibc >= 2.34 needed)" >&2; exit 1; }
root="$prefix/opt/fleetwave"
install -d -m 0755 "$root/bin" "$root/versions/$version"
install -m 0755 "$exe" "$root/versions/$version/fleetwave-agent"
ln -sfn "../versions/$version/fleetwave-agent" "$root/bin/fleetwave-agent.new"
mv -T "$root/bin/fleetwave-agent.new" "$root/bin/fleetwave-agent"
[ -e "$root/bin/fleetwave-agent.previous" ] || ln -sfn "../versions/$version/fleetwave-agent" "$root/bin/fleetwave-agent.previous"

install -d -m 0750 "$prefix/etc/fleetwave" "$prefix/var/lib/fleetwave"
if [ -n "$config" ] && [ ! -e "$prefix/etc/fleetwave/agent.yaml" ]; then
  install -m 0640 "$config" "$prefix/etc/fleetwave/agent.yaml"
fi
if [ -e "$prefix/etc/fleetwave/agent.yaml" ]; then
  "$root/bin/fleetwave-agent" check-config "$prefix/etc/fleetwave/agent.yaml"
else
  echo "install.sh: no $prefix/etc/fleetwave/agent.yaml yet: write one (dataDir: /var/lib/fleetwave, updates.agentRoot: /opt/fleetwave)" >&2
fi

if [ "$user" = yes ]; then
  id fleetwave >/dev/null 2>&1 || useradd --system --home-dir /var/lib/fleetwave --shell /usr/sbin/nologin fleetwave
  chown -R fleetwave:fleetwave "$root" "$prefix/var/lib/fleetwave"
  chgrp fleetwave "$prefix/etc/fleetwave" && chgrp fleetwave "$prefix/etc/fleetwave/agent.yaml" 2>/dev/null || true
fi
install -d -m 0755 "$prefix/etc/systemd/system"
install -m 0644 "$here/fleetwave-agent.service" "$here/fleetwave-agent-rollback.service" "$prefix/etc/systemd/system/"
if [ "$systemd" = yes ]; then
  systemctl daemon-reload
  systemctl enable --now fleetwave-agent.service
fi
echo "installed fleetwave-agent $version in $root (bin/fleetwave-agent -> versions/$version/fleetwave-agent)"
