#!/usr/bin/env bash
# Runs `shardline bench` (PostgreSQL directly vs PgBouncer vs the router,
# side by side) and writes docs/performance/latest.md and latest.json.
# Installs PgBouncer from the system packages when it is missing (Debian and
# Ubuntu, as root), without starting the system's PgBouncer service.
#
#   scripts/bench.sh                       # the full default matrix (~40 min on 2 cores)
#   scripts/bench.sh --quick               # CI-sized: under 2 minutes
#   scripts/bench.sh --rounds 3 --duration 3s
#
# Arguments go to `shardline bench`; see `shardline bench -h` and docs/bench.md.
# OUT (default docs/performance/latest) names the report files without extension.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*" >&2; }
cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT

if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		say "pgbouncer is not installed; install it (Debian/Ubuntu: apt-get install pgbouncer) and run again"
		exit 1
	fi
	say "apt-get install pgbouncer"
	export DEBIAN_FRONTEND=noninteractive
	# Keep the package from starting its own service (it would take 6432,
	# the router's default port).
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		cleanup+=(/usr/sbin/policy-rc.d)
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
fi

tmp="$(mktemp -d)"
cleanup+=("$tmp")
bin="$tmp/shardline"
# -buildvcs=true: the report names the revision (GOFLAGS may turn it off).
say "go build -buildvcs=true -o $bin ./cmd/shardline"
go build -buildvcs=true -o "$bin" ./cmd/shardline

out="${OUT:-docs/performance/latest}"
say "shardline bench $* (report: $out.md, $out.json)"
"$bin" bench --report "$out.md" --json "$out.json" "$@"
