#!/usr/bin/env bash
# tools/load.sh (make load): test/shell/load_pgbench.sh on a throwaway
# cluster, longer: DURATION=30 CLIENTS=8 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH=$("$PG_CONFIG" --bindir):$PATH
make -s >/dev/null && make -s install >/dev/null
source tools/cluster.sh
cluster_start "shared_buffers = '512MB'" "max_connections = 50" >/dev/null
DURATION=${DURATION:-30} CLIENTS=${CLIENTS:-8} bash test/shell/load_pgbench.sh
