#!/usr/bin/env bash
# Measures SCRAM-SHA-256's cost on connection churn: pgbench -C (a new
# connection, with its authentication, for every transaction) through the
# router and through PgBouncer (auth_type = scram-sha-256, the verifier in
# its auth_file), each also with trust as the control, in alternating
# rounds. Prints one line per run and the median TPS of each target.
#
#   scripts/scram-churn.sh                 # 3 rounds of 10 s, 8 clients
#   ROUNDS=5 DURATION=20 CLIENTS=16 scripts/scram-churn.sh
#
# Needs PostgreSQL's server binaries, pgbench and pgbouncer; run as root
# (PgBouncer and PostgreSQL run as the postgres OS user).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}" duration="${DURATION:-10}" clients="${CLIENTS:-8}"
say() { printf '==> %s\n' "$*" >&2; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

tmp="$(mktemp -d)"
chmod 755 "$tmp"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

bin="$tmp/shardline"
say "go build -o $bin ./cmd/shardline"
go build -o "$bin" ./cmd/shardline

dir="$tmp/cluster"
router=$(port) admin=$(port) metrics=$(port) etcd=$(port) peer=$(port)
say "shardline up (1 shard, no replicas) in $dir"
"$bin" up --dir "$dir" --shards 1 --replicas 0 --pool-size 8 --listen "127.0.0.1:$router" --admin "127.0.0.1:$admin" \
	--metrics "127.0.0.1:$metrics" --etcd "127.0.0.1:$etcd" --etcd-peer "127.0.0.1:$peer" --pg-port 23400 >"$tmp/up.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q '^shardline ready' "$tmp/up.log" && break; sleep 0.2; done
grep -q '^shardline ready' "$tmp/up.log" || { cat "$tmp/up.log"; exit 1; }
pgport=23400

export SHARDLINE_ADMIN="http://127.0.0.1:$admin" SHARDLINE_DIR="$dir"
password="churn-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
say "a user bound to tenant churn: its sessions need no options"
printf '%s\n' "$password" | "$bin" user add churn --tenant churn --password-stdin >/dev/null

trust=$(port) tmetrics=$(port)
say "a second router with --auth trust (the control)"
"$bin" router --auth trust --listen "127.0.0.1:$trust" --metrics "127.0.0.1:$tmetrics" --etcd "127.0.0.1:$etcd" \
	--pool-size 8 --binding-token-file "$dir/pg/binding.token" >"$tmp/router.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'shardline router ready' "$tmp/router.log" && break; sleep 0.2; done
grep -q 'shardline router ready' "$tmp/router.log" || { cat "$tmp/router.log"; exit 1; }

export PGPASSWORD="$password"
say "pgbench -i -s 1 through the router"
pgbench -i -q -s 1 "postgres://churn@127.0.0.1:$router/app?sslmode=disable" >/dev/null 2>&1

# PgBouncer's SCRAM verifier is PostgreSQL's own for the same password.
verifier=$(psql -X -At "postgres://postgres@127.0.0.1:$pgport/app?sslmode=disable" -c \
	"SET password_encryption = 'scram-sha-256'; CREATE ROLE churn_verifier PASSWORD '$password'; SELECT rolpassword FROM pg_authid WHERE rolname = 'churn_verifier'" | tail -1)
for mode in scram-sha-256 trust; do
	b="$tmp/pgbouncer-$mode"
	mkdir -p "$b"
	p=$(port)
	echo "$p" >"$b/port"
	cat >"$b/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$pgport dbname=app user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $p
unix_socket_dir =
auth_type = $mode
auth_file = $b/userlist.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 1000
logfile = $b/pgbouncer.log
log_connections = 0
log_disconnections = 0
pidfile = $b/pgbouncer.pid
EOF
	printf '"churn" "%s"\n' "$verifier" >"$b/userlist.txt"
	chown -R postgres "$b"
	runuser -u postgres -- pgbouncer "$b/pgbouncer.ini" >/dev/null 2>&1 &
	pids+=($!)
done
for mode in scram-sha-256 trust; do
	p=$(cat "$tmp/pgbouncer-$mode/port")
	for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$p" && break; sleep 0.1; done
done

declare -A dsn=(
	[router-scram]="postgres://churn@127.0.0.1:$router/app?sslmode=disable"
	[router-trust]="postgres://churn@127.0.0.1:$trust/app?sslmode=disable"
	[pgbouncer-scram]="postgres://churn@127.0.0.1:$(cat "$tmp/pgbouncer-scram-sha-256/port")/app?sslmode=disable"
	[pgbouncer-trust]="postgres://churn@127.0.0.1:$(cat "$tmp/pgbouncer-trust/port")/app?sslmode=disable"
)
order=(router-scram pgbouncer-scram router-trust pgbouncer-trust)
declare -A results
for r in $(seq "$rounds"); do
	for target in "${order[@]}"; do
		tps=$(pgbench -C -n -S -c "$clients" -j "$clients" -T "$duration" "${dsn[$target]}" 2>&1 | awk '/^tps = /{print $3}')
		printf 'round %d  %-16s %s tps\n' "$r" "$target" "$tps"
		results[$target]+="$tps "
	done
done
echo
for target in "${order[@]}"; do
	printf '%-16s median %s tps (runs: %s)\n' "$target" "$(tr ' ' '\n' <<<"${results[$target]}" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" "${results[$target]% }"
done
