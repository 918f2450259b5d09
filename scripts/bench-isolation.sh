#!/usr/bin/env bash
# The cost of tenant isolation through the router (issue #30): the same
# tenant-table workload through two one-shard clusters side by side,
#   isolated: row-level security on the tables and the guard's binding
#             (shardline.enter(), a new tenant on almost every transaction)
#   open:     no row-level security, --no-guard (the router binds with SET)
# in alternating rounds; prints TPS per round and the median ratio.
#
#   scripts/bench-isolation.sh              # 5 rounds of 10 s, 32 clients
#   ROUNDS=3 T=5 CLIENTS=16 scripts/bench-isolation.sh
#
# Needs pgbench and psql on PATH and PostgreSQL server binaries; runs as
# root or a user that can run them (see the README). Everything lives in a
# temporary directory and stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}" T="${T:-10}" CLIENTS="${CLIENTS:-32}" TENANTS="${TENANTS:-100}"
say() { printf '==> %s\n' "$*" >&2; }
work="$(mktemp -d /tmp/shardline-iso-bench.XXXXXX)"
chmod 755 "$work"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/shardline" ./cmd/shardline

# start NAME BASE FLAGS...: shardline up with ports from BASE.
start() {
	local name=$1 base=$2
	shift 2
	"$work/shardline" up --dir "$work/$name" --shards 1 --replicas 0 --auth trust \
		--listen "127.0.0.1:$base" --admin "127.0.0.1:$((base + 1))" --metrics "127.0.0.1:$((base + 2))" \
		--etcd "127.0.0.1:$((base + 3))" --etcd-peer "127.0.0.1:$((base + 4))" --pg-port "$((base + 10))" "$@" \
		>"$work/$name.out" 2>"$work/$name.log" &
	pids+=($!)
	for _ in $(seq 120); do
		grep -q '^shardline ready' "$work/$name.out" 2>/dev/null && return 0
		sleep 0.5
	done
	say "$name did not start"; tail -5 "$work/$name.log" >&2; exit 1
}
start isolated 17100
start open 17200 --no-guard

schema="CREATE TABLE acc (tenant_id text NOT NULL, id int NOT NULL, balance int NOT NULL, filler text, PRIMARY KEY (tenant_id, id));"
data="INSERT INTO acc SELECT 't' || t, i, 0, repeat('x', 80) FROM generate_series(1, $TENANTS) t, generate_series(1, 1000) i;"
echo "$schema" >"$work/schema.sql"
"$work/shardline" schema apply "$work/schema.sql" --admin http://127.0.0.1:17101 --dir "$work/isolated" >/dev/null
psql -qX "host=127.0.0.1 port=17210 user=postgres dbname=app" -c "$schema" >/dev/null
for port in 17110 17210; do psql -qX "host=127.0.0.1 port=$port user=postgres dbname=app" -c "$data" -c "VACUUM ANALYZE acc" >/dev/null; done

cat >"$work/tx.sql" <<SQL
\set t random(1, $TENANTS)
\set aid random(1, 990)
\set delta random(-5000, 5000)
SET shardline.tenant = 't:t';
BEGIN;
SELECT balance FROM acc WHERE tenant_id = 't:t' AND id = :aid;
UPDATE acc SET balance = balance + :delta WHERE tenant_id = 't:t' AND id = :aid;
SELECT count(*), sum(balance) FROM acc WHERE tenant_id = 't:t' AND id BETWEEN :aid AND :aid + 9;
COMMIT;
SQL
run() { # run PORT: TPS of one pgbench run through that router
	pgbench -n -M simple -f "$work/tx.sql" -c "$CLIENTS" -j "$CLIENTS" -T "$T" "host=127.0.0.1 port=$1 user=app dbname=app" 2>&1 |
		awk '/^tps = /{print $3}'
}
say "rounds of ${T}s, $CLIENTS clients, $TENANTS tenants; a new tenant on most transactions"
ratios=()
for r in $(seq "$ROUNDS"); do
	if ((r % 2)); then a=$(run 17100); b=$(run 17200); else b=$(run 17200); a=$(run 17100); fi
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a/b}')
	ratios+=("$ratio")
	printf 'round %d: isolated %s TPS, open %s TPS, ratio %s\n' "$r" "$a" "$b" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END{printf "median ratio isolated/open: %s (%d rounds)\n", v[int((NR+1)/2)], NR}'
# The binding calls the isolated router made, from its metrics.
curl -s http://127.0.0.1:17102/metrics | grep '^shardline_router_tenant_bindings_total' || true
