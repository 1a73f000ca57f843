#!/usr/bin/env bash
# bench/cache.sh — the query result cache under a hot-read pgbench load.
#
# Script (100 hot rows):   \set id random(1, 100)
#                          SELECT abalance FROM pgbench_accounts WHERE aid = :id;
# For each pgbench -M mode (simple, prepared) it runs, in turn:
#   direct      PostgreSQL primary 127.0.0.1:20000
#   cache-off   poolmgr, cache_ttl_ms = 0
#   cache-on    poolmgr, cache_ttl_ms = 60000
# each time: start poolmgr fresh -> WARMUP s of the same load -> measured DURATION s.
# Prints TPS, average latency, cache-on/direct and cache-on/cache-off ratios, the hit
# ratio of the measured run (SHOW CACHE deltas on the admin console) and, to show that
# hits reach no backend, the growth of pg_stat_database.xact_commit of the bench
# database summed over the three nodes during the measured run, next to poolmgr's own
# count of server transactions (SHOW STATS total_xact_count).
#
# The data lives in its own database (qc_bench, owner app; created with pgbench -i -s 1
# when missing and then dropped at exit unless KEEP_DB=1) so that other sessions on the shared
# test cluster do not show up in its xact_commit.
#
# Needs: the test cluster (scripts/pgcluster start) and bin/poolmgr (or $POOLMGR_BIN).
# PostgreSQL flushes an idle backend's statistics up to 10 s late: the cache-on runs sample
# xact_commit after SETTLE (11) s of quiet on both sides; the other runs after 1.5 s (their
# XACT_COMMIT may be off by up to a second of traffic).
# Env: DURATION (10)  WARMUP (3)  CLIENTS (10)  THREADS (2)  MODES ("simple prepared")  SETTLE (11)
#      BACKENDS ("127.0.0.1:20000 127.0.0.1:20001 127.0.0.1:20002")  DB (qc_bench)  KEEP_DB (0)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PGBIN=/usr/lib/postgresql/15/bin
POOLMGR=${POOLMGR_BIN:-$ROOT/bin/poolmgr}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CLIENTS=${CLIENTS:-10}
THREADS=${THREADS:-2}
MODES=${MODES:-simple prepared}
BACKENDS=${BACKENDS:-127.0.0.1:20000 127.0.0.1:20001 127.0.0.1:20002}
DB=${DB:-qc_bench}
HOST=127.0.0.1
DIRECT_PORT=20000
NODES="20000 20001 20002"

log() { printf 'cache-bench: %s\n' "$*" >&2; }
die() { printf 'cache-bench: error: %s\n' "$*" >&2; exit 1; }

[ -x "$PGBIN/pgbench" ] || die "pgbench not found in $PGBIN"
[ -x "$POOLMGR" ] || die "$POOLMGR not built (go build -o bin/poolmgr ./cmd/poolmgr)"
"$PGBIN/pg_isready" -q -h $HOST -p $DIRECT_PORT || die "test cluster not running (scripts/pgcluster start)"

su_psql() { # PORT DB SQL...: superuser psql, unaligned, tuples only
	local port=$1 db=$2
	shift 2
	PGPASSWORD=postgres "$PGBIN/psql" -X -q -h $HOST -p "$port" -U postgres -d "$db" -v ON_ERROR_STOP=1 -Atc "$*"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

TMP=$(mktemp -d /tmp/poolmgr-cache-bench.XXXXXX)
PROXY_PID=""
CREATED=0 # the database is dropped at exit only if this run created it
stop_proxy() {
	[ -n "$PROXY_PID" ] || return 0
	kill -INT "$PROXY_PID" 2>/dev/null || true
	for _ in $(seq 1 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$PROXY_PID" 2>/dev/null || true
	wait "$PROXY_PID" 2>/dev/null || true
	PROXY_PID=""
}
cleanup() {
	stop_proxy
	if [ "$CREATED" = 1 ] && [ "${KEEP_DB:-0}" != 1 ]; then su_psql $DIRECT_PORT postgres "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- data -------------------------------------------------------------------------------
if [ "$(su_psql $DIRECT_PORT postgres "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 0 ]; then
	log "creating database $DB (owner app) and pgbench -i -s 1"
	su_psql $DIRECT_PORT postgres "CREATE DATABASE $DB OWNER app"
	CREATED=1
	PGPASSWORD=app "$PGBIN/pgbench" -i -q -s 1 -h $HOST -p $DIRECT_PORT -U app "$DB" >"$TMP/init.log" 2>&1 ||
		{ cat "$TMP/init.log" >&2; die "pgbench -i failed"; }
fi
# the standbys must have the data before reads go there
lsn=$(su_psql $DIRECT_PORT postgres "SELECT pg_current_wal_lsn()")
for p in 20001 20002; do
	for _ in $(seq 1 100); do
		[ "$(su_psql "$p" postgres "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && break
		sleep 0.1
	done
done

cat >"$TMP/hot.sql" <<'EOF'
\set id random(1, 100)
SELECT abalance FROM pgbench_accounts WHERE aid = :id;
EOF

# --- poolmgr ----------------------------------------------------------------------------
PORT=""
start_poolmgr() { # TTL_MS
	PORT=$(free_port)
	printf '"app" "app"\n"postgres" "postgres"\n' >"$TMP/userlist.txt"
	local be="" b
	for b in $BACKENDS; do be="$be${be:+, }\"$b\""; done
	cat >"$TMP/poolmgr.toml" <<EOF
[pool]
backends = [$be]
bind = "$HOST:$PORT"
pool_mode = "transaction"
pool_size = 10
max_server_connections = 20
cache_ttl_ms = $1

[auth]
auth_type = "scram-sha-256"
auth_file = "userlist.txt"

[log]
level = "warn"

[admin]
admin_users = ["postgres"]
EOF
	"$POOLMGR" -c "$TMP/poolmgr.toml" </dev/null >>"$TMP/poolmgr.log" 2>&1 &
	PROXY_PID=$!
	for _ in $(seq 1 150); do
		(exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null && return 0
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 20 "$TMP/poolmgr.log" >&2
	die "poolmgr did not start"
}

console() { PGPASSWORD=postgres "$PGBIN/psql" -X -q -h $HOST -p "$PORT" -U postgres -d pgbouncer -AtF '|' -c "$1"; }
cache_counters() { console "SHOW CACHE" | awk -F'|' '{print $5, $6}'; }        # hits misses
server_xacts() { console "SHOW STATS" | awk -F'|' 'NR == 1 {print $3}'; } # total_xact_count (one row: every database)
# xact_commit SECONDS: the sum over the nodes after SECONDS of quiet. An idle backend flushes
# statistics it could not flush at its last transaction (PostgreSQL 15: at most once a
# second) only 10 s later, so the all-hit runs wait 11 s on both sides.
xact_commit() {
	sleep "$1"
	local sum=0 n p
	for p in $NODES; do
		n=$(su_psql "$p" postgres "SELECT xact_commit FROM pg_stat_database WHERE datname = '$DB'")
		sum=$((sum + n))
	done
	echo $sum
}

cpu_ticks() { # utime+stime of PID in clock ticks
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo $((${12} + ${13}))
}
TICK=$(getconf CLK_TCK)

run_pgbench() { # PORT MODE SECONDS OUT
	PGPASSWORD=app PGCONNECT_TIMEOUT=10 timeout -k 5 $(($3 + 60)) "$PGBIN/pgbench" -h $HOST -p "$1" -U app -n \
		-f "$TMP/hot.sql" -M "$2" -c "$CLIENTS" -j "$THREADS" -T "$3" "$DB" >"$4" 2>&1 </dev/null
}

declare -A TPS LAT HIT XC SX NQ CPU
measure() { # MODE TARGET
	local mode=$1 tgt=$2 port key="$1|$2" out="$TMP/$1-$2.out" h0 m0 h1 m1 x0 x1 s0 s1 n c0=0 c1=0
	case $tgt in
	direct) port=$DIRECT_PORT ;;
	cache-off) start_poolmgr 0; port=$PORT ;;
	cache-on) start_poolmgr 60000; port=$PORT ;;
	esac
	run_pgbench "$port" "$mode" "$WARMUP" "$out.warmup" || { cat "$out.warmup" >&2; die "$key: warm-up failed"; }
	if [ "$tgt" = cache-on ]; then read -r h0 m0 < <(cache_counters); fi
	[ "$tgt" = direct ] || s0=$(server_xacts)
	local settle=1.5
	[ "$tgt" = cache-on ] && settle=${SETTLE:-11}
	x0=$(xact_commit "$settle")
	[ -z "$PROXY_PID" ] || c0=$(cpu_ticks "$PROXY_PID")
	run_pgbench "$port" "$mode" "$DURATION" "$out" || { cat "$out" >&2; die "$key: pgbench failed"; }
	[ -z "$PROXY_PID" ] || c1=$(cpu_ticks "$PROXY_PID")
	x1=$(xact_commit "$settle")
	[ "$tgt" = direct ] || s1=$(server_xacts)
	TPS[$key]=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | tail -1)
	LAT[$key]=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | tail -1)
	NQ[$key]=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | tail -1)
	XC[$key]=$((x1 - x0))
	CPU[$key]=-
	[ -z "$PROXY_PID" ] || CPU[$key]=$(awk -v t=$((c1 - c0)) -v hz="$TICK" -v n="${NQ[$key]}" 'BEGIN { printf "%.2f", t / hz / n * 1e6 }')
	SX[$key]=-
	[ "$tgt" = direct ] || SX[$key]=$((${s1:-0} - ${s0:-0}))
	HIT[$key]=-
	if [ "$tgt" = cache-on ]; then
		read -r h1 m1 < <(cache_counters)
		n=$((h1 - h0 + m1 - m0))
		HIT[$key]=$(awk -v h=$((h1 - h0)) -v n=$n 'BEGIN { if (n > 0) printf "%.4f", h / n; else print "-" }')
		log "  SHOW CACHE: $(console 'SHOW CACHE' | cut -d'|' -f3-)"
	fi
	stop_proxy
	log "  -M $mode $tgt: tps ${TPS[$key]}, latency ${LAT[$key]} ms, hit ratio ${HIT[$key]}, xact_commit +${XC[$key]}"
}

log "pgbench -f hot.sql -c $CLIENTS -j $THREADS -T $DURATION (+${WARMUP}s warm-up); backends: $BACKENDS; db $DB"
for mode in $MODES; do
	for tgt in direct cache-off cache-on; do
		log "run: -M $mode -> $tgt"
		measure "$mode" "$tgt"
	done
done

echo "poolmgr query cache benchmark $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(nproc) CPUs; poolmgr backends: $BACKENDS"
echo "pgbench -n -c $CLIENTS -j $THREADS -T $DURATION, script: \\set id random(1, 100); SELECT abalance FROM pgbench_accounts WHERE aid = :id"
echo "XACT_COMMIT = growth of pg_stat_database.xact_commit ($DB) over the 3 nodes during the measured run;"
echo "SERVER_XACTS = transactions poolmgr ran on servers (SHOW STATS); QUERIES = transactions pgbench completed;"
echo "CPU_US/Q = poolmgr utime+stime per pgbench transaction"
printf '%-9s %-10s %10s %9s %9s %9s %9s %12s %13s %10s %9s\n' MODE TARGET TPS LAT_MS VS_DIRECT VS_NOCACHE HIT_RATIO XACT_COMMIT SERVER_XACTS QUERIES CPU_US/Q
for mode in $MODES; do
	d=${TPS[$mode|direct]} o=${TPS[$mode|cache-off]}
	for tgt in direct cache-off cache-on; do
		k="$mode|$tgt"
		vd=$(awk -v a="${TPS[$k]}" -v b="$d" 'BEGIN { printf "%.2fx", a / b }')
		vo=-
		[ "$tgt" = cache-on ] && vo=$(awk -v a="${TPS[$k]}" -v b="$o" 'BEGIN { printf "%.2fx", a / b }')
		printf '%-9s %-10s %10.0f %9.3f %9s %9s %9s %12s %13s %10s %9s\n' "$mode" "$tgt" "${TPS[$k]}" "${LAT[$k]}" "$vd" "$vo" \
			"${HIT[$k]}" "${XC[$k]}" "${SX[$k]}" "${NQ[$k]}" "${CPU[$k]}"
	done
done
