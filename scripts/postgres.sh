#!/usr/bin/env bash
# Make Debian's PostgreSQL server binaries available for the catalog tests (testkit/postgres.py runs them
# as a plain process on a free port; the package's own cluster service is never started by the tests).
# Idempotent: does nothing when /usr/lib/postgresql/*/bin/postgres exists or FLOE_POSTGRES_BINDIR is set.
set -euo pipefail

if [[ -n "${FLOE_POSTGRES_BINDIR:-}" ]] || compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "postgres.sh: no PostgreSQL server found; install Debian's postgresql package (apt-get install" \
    "postgresql) or set FLOE_POSTGRES_BINDIR to a directory with initdb, postgres and pg_isready" >&2
  exit 1
fi
echo "Installing Debian's postgresql package..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d 101: the package must not start its own cluster service here.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
