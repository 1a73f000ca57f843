#!/usr/bin/env bash
# bench/bench.sh — `make bench`: pgbench -S through direct PostgreSQL, poolmgr (each io engine)
# and PgBouncer, back to back in one invocation so the ratios compare like with like.
#
# Needs: the test cluster (scripts/pgcluster start), bin/poolmgr (make build), pgbouncer (apt).
# For every protocol mode (simple, extended, prepared) and repetition, every target runs in turn:
#   start the proxy fresh -> 2 s warm-up -> read proxy CPU -> measured pgbench -> read CPU -> stop.
# TPS and latency are the median over REPEAT runs; CPU/query is the proxy's utime/stime delta
# (from /proc/<pid>/stat) divided by the transactions pgbench reports (-S: 1 query each).
#
# Env:
#   DURATION   seconds per measured run (15)         REPEAT   runs per (mode, target) (1)
#   CLIENTS    pgbench -c (10)                       THREADS  pgbench -j (2)
#   ENGINES    poolmgr io engines ("fallback uring" when internal/engine/uringengine exists, else "fallback")
#   MODES      pgbench -M modes ("simple extended prepared")
#   TARGETS    which targets ("direct poolmgr pgbouncer haproxy"); haproxy is HAProxy in TCP mode,
#              a 1:1 byte forwarder with no pooling and no parsing: the floor cost of one proxy hop
#              on this machine (what ANY proxy pays in kernel TCP and wake-ups), not a competitor
#   WARMUP     warm-up seconds before each measured run (2)
#   BACKEND    how the proxies reach PostgreSQL: tcp (127.0.0.1:20000, default) or unix (the test
#              cluster's Unix socket, .cluster/sock/.s.PGSQL.20000); clients always use TCP
# Output: a table on stdout, also written to bench/out/results-<date>.txt.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PGBIN=/usr/lib/postgresql/15/bin
POOLMGR=${POOLMGR_BIN:-$ROOT/bin/poolmgr}
PGBOUNCER=$(command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer)
HAPROXY=$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)

DURATION=${DURATION:-15}
REPEAT=${REPEAT:-1}
CLIENTS=${CLIENTS:-10}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
MODES=${MODES:-simple extended prepared}
TARGETS=${TARGETS:-direct poolmgr pgbouncer haproxy}
METRICS_PORT=${METRICS_PORT:-6439}
BACKEND=${BACKEND:-tcp}
if [ -z "${ENGINES:-}" ]; then
	if [ -d "$ROOT/internal/engine/uringengine" ]; then ENGINES="fallback uring uring+metrics uring+replicas"; else ENGINES="fallback"; fi
fi

DIRECT_PORT=20000
POOLMGR_PORT=6433
PGBOUNCER_PORT=6434
HAPROXY_PORT=6435
HOST=127.0.0.1
TICK=$(getconf CLK_TCK)
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUTDIR=$ROOT/bench/out
OUT=$OUTDIR/results-$STAMP.txt

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

[ -x "$PGBIN/pgbench" ] || die "pgbench not found ($PGBIN); run scripts/pgcluster start"
SOCKDIR=${POOLMGR_CLUSTER_DIR:-$ROOT/.cluster}/sock
case $BACKEND in
tcp) PG_ADDR="$HOST:$DIRECT_PORT" ;;
unix)
	[ -S "$SOCKDIR/.s.PGSQL.$DIRECT_PORT" ] || die "BACKEND=unix: no socket $SOCKDIR/.s.PGSQL.$DIRECT_PORT (scripts/pgcluster start)"
	PG_ADDR="$SOCKDIR:$DIRECT_PORT"
	;;
*) die "BACKEND=$BACKEND: tcp or unix" ;;
esac
"$PGBIN/pg_isready" -q -h $HOST -p $DIRECT_PORT || die "test cluster not running on $HOST:$DIRECT_PORT (scripts/pgcluster start)"
for p in $POOLMGR_PORT $PGBOUNCER_PORT $HAPROXY_PORT; do
	if (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then die "port $p is already in use; stop whatever listens there"; fi
done

TMP=$(mktemp -d /tmp/poolmgr-bench.XXXXXX)
chmod 0755 "$TMP"
PROXY_PID=""
cleanup() {
	stop_proxy || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# targets: "direct", "poolmgr-<engine>", "pgbouncer"

target_list=()
for t in $TARGETS; do
	case $t in
	direct | pgbouncer | haproxy) target_list+=("$t") ;;
	poolmgr) for e in $ENGINES; do target_list+=("poolmgr-$e"); done ;;
	poolmgr-*) target_list+=("$t") ;;
	*) die "unknown target $t" ;;
	esac
done

declare -A UNAVAILABLE=()
for t in "${target_list[@]}"; do
	case $t in
	poolmgr-*) [ -x "$POOLMGR" ] || UNAVAILABLE[$t]="bin/poolmgr not built" ;;
	pgbouncer) [ -x "$PGBOUNCER" ] || UNAVAILABLE[$t]="pgbouncer not installed" ;;
	haproxy) [ -x "$HAPROXY" ] || UNAVAILABLE[$t]="haproxy not installed (apt-get install haproxy)" ;;
	esac
done

port_of() {
	case $1 in
	direct) echo $DIRECT_PORT ;;
	poolmgr-*) echo $POOLMGR_PORT ;;
	pgbouncer) echo $PGBOUNCER_PORT ;;
	haproxy) echo $HAPROXY_PORT ;;
	esac
}

wait_port() { # wait_port PORT PID SECONDS
	local i
	for i in $(seq 1 $(($3 * 10))); do
		(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

write_poolmgr_config() { # engine[+metrics|+replicas]
	# Variants: "ENGINE+metrics" scrapes /metrics every second during the run
	# (cost of collecting metrics); "ENGINE+replicas" routes reads over the
	# two standbys too (read scaling).
	local eng=${1%%+*} backends="\"$PG_ADDR\"" extra=""
	case $1 in
	*+replicas) backends="\"$PG_ADDR\", \"${PG_ADDR%:*}:$((DIRECT_PORT + 1))\", \"${PG_ADDR%:*}:$((DIRECT_PORT + 2))\"" ;;
	*+metrics) extra=$'\n[admin]\nmetrics_bind = "'$HOST:$METRICS_PORT'"' ;;
	esac
	printf '"app" "app"\n"postgres" "postgres"\n' >"$TMP/userlist.txt"
	cat >"$TMP/poolmgr-$1.toml" <<EOF
[pool]
backends = [$backends]
bind = "$HOST:$POOLMGR_PORT"
pool_mode = "transaction"
pool_size = 10
max_server_connections = 20
io_engine = "$eng"
max_replica_lag_ms = 0

[auth]
auth_type = "scram-sha-256"
auth_file = "userlist.txt"

[log]
level = "warn"
$extra
EOF
}

write_pgbouncer_config() {
	local d=$TMP/pgbouncer
	mkdir -p "$d"
	printf '"app" "app"\n' >"$d/userlist.txt"
	cat >"$d/pgbouncer.ini" <<EOF
[databases]
app = host=${PG_ADDR%:*} port=$DIRECT_PORT dbname=app

[pgbouncer]
listen_addr = $HOST
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $d/userlist.txt
pool_mode = transaction
default_pool_size = 10
max_client_conn = 200
max_db_connections = 20
ignore_startup_parameters = extra_float_digits
logfile = $d/pgbouncer.log
pidfile = $d/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
	if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$d"; fi
	chmod 0700 "$d"
}

# start_proxy TARGET: sets PROXY_PID (empty for direct); returns non-zero on failure.
start_proxy() {
	PROXY_PID=""
	case $1 in
	direct) return 0 ;;
	poolmgr-*)
		local eng=${1#poolmgr-}
		write_poolmgr_config "$eng"
		"$POOLMGR" -c "$TMP/poolmgr-$eng.toml" </dev/null >>"$TMP/poolmgr-$eng.log" 2>&1 &
		PROXY_PID=$!
		if [[ $eng == *+metrics ]]; then
			(while kill -0 "$PROXY_PID" 2>/dev/null; do
				curl -s -o /dev/null "http://$HOST:$METRICS_PORT/metrics" || true
				sleep 1
			done) &
		fi
		if ! wait_port $POOLMGR_PORT "$PROXY_PID" 15; then
			log "poolmgr ($eng) did not start:"
			tail -n 10 "$TMP/poolmgr-$eng.log" >&2 || true
			stop_proxy
			return 1
		fi
		;;
	pgbouncer)
		write_pgbouncer_config
		local d=$TMP/pgbouncer pid="" i
		rm -f "$d/pgbouncer.pid"
		if [ "$(id -u)" -eq 0 ]; then
			# pgbouncer refuses to run as root
			(cd / && runuser -u postgres -- "$PGBOUNCER" -d "$d/pgbouncer.ini") </dev/null >>"$TMP/pgbouncer.out" 2>&1 || true
		else
			"$PGBOUNCER" -d "$d/pgbouncer.ini" </dev/null >>"$TMP/pgbouncer.out" 2>&1 || true
		fi
		for i in $(seq 1 100); do
			[ -s "$d/pgbouncer.pid" ] && break
			sleep 0.1
		done
		pid=$(cat "$d/pgbouncer.pid" 2>/dev/null || true)
		if [ -z "$pid" ] || ! wait_port $PGBOUNCER_PORT "$pid" 15; then
			log "pgbouncer did not start:"
			cat "$TMP/pgbouncer.out" >&2 || true
			tail -n 10 "$d/pgbouncer.log" >&2 || true
			[ -n "$pid" ] && kill "$pid" 2>/dev/null
			return 1
		fi
		PROXY_PID=$pid
		;;
	haproxy)
		printf '%s\n' "global" "    maxconn 1000" "    nbthread 1" "defaults" "    mode tcp" \
			"    timeout connect 5s" "    timeout client 120s" "    timeout server 120s" \
			"frontend fe" "    bind $HOST:$HAPROXY_PORT" "    default_backend be" \
			"backend be" "    server pg $(if [ "$BACKEND" = unix ]; then echo "$SOCKDIR/.s.PGSQL.$DIRECT_PORT"; else echo "$PG_ADDR"; fi)" >"$TMP/haproxy.cfg"
		"$HAPROXY" -f "$TMP/haproxy.cfg" -db </dev/null >>"$TMP/haproxy.out" 2>&1 &
		PROXY_PID=$!
		if ! wait_port $HAPROXY_PORT "$PROXY_PID" 15; then
			log "haproxy did not start:"
			tail -n 10 "$TMP/haproxy.out" >&2 || true
			stop_proxy
			return 1
		fi
		;;
	esac
}

stop_proxy() {
	[ -n "${PROXY_PID:-}" ] || return 0
	local pid=$PROXY_PID i
	PROXY_PID=""
	kill -INT "$pid" 2>/dev/null || true # pgbouncer: INT = safe shutdown; poolmgr: graceful
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cpu_ticks() { # "utime stime" of PID
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "0 0"; return; }
	stat=${stat##*) } # drop "pid (comm) "; fields now start at 3 (state)
	# shellcheck disable=SC2086
	set -- $stat
	echo "${12} ${13}" # utime = field 14, stime = field 15
}

# run_pgbench PORT MODE SECONDS OUTFILE: returns pgbench's exit status.
run_pgbench() {
	PGPASSWORD=app PGCONNECT_TIMEOUT=10 timeout -k 10 $(($3 + 60)) \
		"$PGBIN/pgbench" -h $HOST -p "$1" -U app -n -S -M "$2" -c "$CLIENTS" -j "$THREADS" -T "$3" app \
		>"$4" 2>&1 </dev/null
}

# ---------------------------------------------------------------------------------------------
# results: RES[mode|target] = space-separated "tps:lat:xacts:uticks:sticks" per run; ERR[...]

declare -A RES=() ERR=()

measure() { # MODE TARGET
	local mode=$1 t=$2 key="$1|$2" port f rc before after tps lat xacts
	port=$(port_of "$t")
	if [ -n "${UNAVAILABLE[$t]:-}" ]; then
		ERR[$key]=${UNAVAILABLE[$t]}
		return 0
	fi
	if ! start_proxy "$t"; then
		ERR[$key]="failed to start"
		return 0
	fi
	f=$TMP/pgbench-$mode-$t.out
	if [ "$WARMUP" -gt 0 ]; then run_pgbench "$port" "$mode" "$WARMUP" "$f.warmup" || true; fi
	before="0 0"
	[ -z "$PROXY_PID" ] || before=$(cpu_ticks "$PROXY_PID")
	set +e
	run_pgbench "$port" "$mode" "$DURATION" "$f"
	rc=$?
	set -e
	after="0 0"
	[ -z "$PROXY_PID" ] || after=$(cpu_ticks "$PROXY_PID")
	stop_proxy
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$f" | tail -1)
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$f" | tail -1)
	xacts=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$f" | tail -1)
	if [ $rc -ne 0 ] || [ -z "$tps" ] || [ -z "$xacts" ] || [ "$xacts" = 0 ]; then
		local why
		why=$(grep -m1 -iE "error|fatal|abort" "$f" | sed "s/^pgbench: error: //" | cut -c1-90 || true)
		ERR[$key]="pgbench exit $rc${why:+: $why}"
		log "  $mode $t: FAILED (pgbench exit $rc) ${why}"
		return 0
	fi
	read -r bu bs <<<"$before"
	read -r au as <<<"$after"
	RES[$key]="${RES[$key]:-} $tps:${lat:-0}:$xacts:$((au - bu)):$((as - bs))"
	log "  $mode $t: tps $tps, latency ${lat:-?} ms"
}

median() { # numbers as args
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# summarize KEY -> "tps lat us_user us_sys" (empty when no successful run)
summarize() {
	local runs=${RES[$1]:-} r tpsl=() latl=() x=0 u=0 s=0 tps lat xa ut st
	[ -n "$runs" ] || return 0
	for r in $runs; do
		IFS=: read -r tps lat xa ut st <<<"$r"
		tpsl+=("$tps")
		latl+=("$lat")
		x=$((x + xa))
		u=$((u + ut))
		s=$((s + st))
	done
	awk -v t="$(median "${tpsl[@]}")" -v l="$(median "${latl[@]}")" -v x="$x" -v u="$u" -v s="$s" -v hz="$TICK" \
		'BEGIN { printf "%s %s %.2f %.2f\n", t, l, u / hz / x * 1e6, s / hz / x * 1e6 }'
}

# ---------------------------------------------------------------------------------------------
# run

total_runs=0
for mode in $MODES; do for t in "${target_list[@]}"; do total_runs=$((total_runs + 1)); done; done
total_runs=$((total_runs * REPEAT))
log "targets: ${target_list[*]}; modes: $MODES; $REPEAT x ${DURATION}s each (+${WARMUP}s warm-up): ~$((total_runs * (DURATION + WARMUP + 2)))s"

for rep in $(seq 1 "$REPEAT"); do
	for mode in $MODES; do
		for t in "${target_list[@]}"; do
			log "run $rep/$REPEAT: -M $mode -> $t"
			measure "$mode" "$t"
		done
	done
done

# ---------------------------------------------------------------------------------------------
# report

mkdir -p "$OUTDIR"
{
	echo "poolmgr benchmark $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "host: $(nproc) CPUs, $(uname -sr); PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'); $("$PGBOUNCER" --version 2>/dev/null | head -1 || echo 'pgbouncer: n/a'); poolmgr $("$POOLMGR" version 2>/dev/null | awk '{print $2}' || echo n/a)"
	echo "pgbench -S -n -c $CLIENTS -j $THREADS -T $DURATION (median of $REPEAT run(s), ${WARMUP}s warm-up); proxies: transaction mode, pool size 10, backend $PG_ADDR (BACKEND=$BACKEND; clients connect over TCP)"
	echo "CPU us/query = proxy process utime/stime (/proc/<pid>/stat, CLK_TCK=$TICK) / transactions; direct has no proxy"
	echo
	printf '%-9s %-17s %10s %9s %9s %9s %9s %10s %12s\n' MODE TARGET TPS LAT_MS CPU_USR CPU_SYS CPU_TOT VS_DIRECT VS_PGBOUNCER
	printf '%-9s %-17s %10s %9s %9s %9s %9s %10s %12s\n' "" "" "" "" "us/q" "us/q" "us/q" "" ""
	for mode in $MODES; do
		dtps=$(summarize "$mode|direct" | awk '{print $1}')
		btps=$(summarize "$mode|pgbouncer" | awk '{print $1}')
		for t in "${target_list[@]}"; do
			key="$mode|$t"
			sum=$(summarize "$key")
			if [ -z "$sum" ]; then
				printf '%-9s %-17s %10s   %s\n' "$mode" "$t" FAILED "${ERR[$key]:-no result}"
				continue
			fi
			read -r tps lat us ss <<<"$sum"
			vd=- vb=-
			if [ "$t" != direct ]; then
				[ -n "$dtps" ] && vd=$(awk -v a="$tps" -v b="$dtps" 'BEGIN { printf "%.2fx", a / b }')
				[ -n "$btps" ] && [ "$t" != pgbouncer ] && vb=$(awk -v a="$tps" -v b="$btps" 'BEGIN { printf "%.2fx", a / b }')
			fi
			if [ "$t" = direct ]; then cu=- cs=- ct=-; else
				cu=$us cs=$ss ct=$(awk -v a="$us" -v b="$ss" 'BEGIN { printf "%.2f", a + b }')
			fi
			printf '%-9s %-17s %10.0f %9.3f %9s %9s %9s %10s %12s\n' "$mode" "$t" "$tps" "$lat" "$cu" "$cs" "$ct" "$vd" "$vb"
			if [ -n "${ERR[$key]:-}" ]; then printf '%-9s %-17s %10s   (some runs failed: %s)\n' "" "" "" "${ERR[$key]}"; fi
		done
	done
} | tee "$OUT"
echo "bench: results written to ${OUT#"$ROOT"/}" >&2
