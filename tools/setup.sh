#!/usr/bin/env bash
# tools/setup.sh: install, once, what building and testing um needs on Debian 12.
#
# Idempotent: packages already present are left alone and apt is not touched
# at all when nothing is missing.  Debian's postgresql packages would create and
# start a "main" cluster on port 5432; um never uses it, so when the server is
# not installed yet we ask postgresql-common not to create one.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
packages=(
  "postgresql-$PG_MAJOR"                 # server: initdb, postgres, pg_ctl
  "postgresql-server-dev-$PG_MAJOR"      # PGXS, headers, pg_regress, pg_isolation_regress
  "postgresql-$PG_MAJOR-pgtap"           # pgTAP
  libtap-parser-sourcehandler-pgtap-perl # pg_prove
  libipc-run-perl                        # PostgreSQL::Test::Cluster (TAP tests)
  pgbouncer                              # the transaction-pooling test (test/t/003_pgbouncer.pl)
  make gcc cppcheck
  python3-psycopg python3-psycopg-pool   # the example backends (test/examples/run.sh), for /usr/bin/python3
)
# The Node example needs node and npm.  Install Debian's only when they are
# missing: a machine with nodesource's nodejs has both, and Debian's npm
# package conflicts with that nodejs.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run as root (or install them) first" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! dpkg-query -W -f='${Status}' "postgresql-$PG_MAJOR" 2>/dev/null | grep -q 'install ok installed'; then
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/um-no-main-cluster.conf
fi
# Packages must not start services (pgbouncer's would listen on port 6432):
# a policy-rc.d that refuses every start, only while apt runs.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
