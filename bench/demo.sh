#!/usr/bin/env bash
# bench/demo.sh [start|stop] — `make demo` / `make demo-stop`.
#
# start: (cluster must be up and bin/poolmgr built — the Makefile does both) starts bin/poolmgr
#        with ./poolmgr.toml in the background (pid bin/poolmgr-demo.pid, log bin/poolmgr-demo.log),
#        waits for 127.0.0.1:6432, runs a 10 s read-only pgbench with 20 clients through it while
#        sampling the server connections on the cluster, prints a summary and leaves poolmgr running.
# stop:  stops the demo poolmgr.
#
# Env: DEMO_CONFIG (./poolmgr.toml), DEMO_ADDR (127.0.0.1:6432), DEMO_CLIENTS (20), DEMO_SECONDS (10)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PGBIN=/usr/lib/postgresql/15/bin
BIN=$ROOT/bin/poolmgr
PIDFILE=$ROOT/bin/poolmgr-demo.pid
LOGFILE=$ROOT/bin/poolmgr-demo.log
CONFIG=${DEMO_CONFIG:-$ROOT/poolmgr.toml}
ADDR=${DEMO_ADDR:-127.0.0.1:6432}
HOSTP=${ADDR%:*}
PORTP=${ADDR##*:}
CLIENTS=${DEMO_CLIENTS:-20}
SECONDS_RUN=${DEMO_SECONDS:-10}
NODE_PORTS=(20000 20001 20002)
PROBE=poolmgr-demo-probe

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

demo_pid() {
	local pid
	[ -f "$PIDFILE" ] || return 1
	pid=$(cat "$PIDFILE")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	# make sure the pid still is our poolmgr
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q poolmgr || return 1
	echo "$pid"
}

stop_demo() {
	local pid i
	if pid=$(demo_pid); then
		kill -TERM "$pid"
		for i in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "demo: poolmgr (pid $pid) still running after 10s, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		echo "demo: stopped poolmgr (pid $pid)"
	else
		echo "demo: no demo poolmgr running"
	fi
	rm -f "$PIDFILE"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# One sample of server connections, printed as "mine n0 n1 n2 all":
#   n0..n2 = client backends of db app on each node (pg_stat_activity, this probe excluded) whose
#            client_port is a socket of the demo poolmgr (ss), mine = their sum,
#   all    = every client backend of db app on the cluster (other engineers' tests included).
sample() {
	local pid=$1 i p ports c a mine=0 all=0 out=""
	for i in 0 1 2; do
		p=${NODE_PORTS[$i]}
		ports=$(ss -Htnp state established "( dport = :$p )" 2>/dev/null | grep "pid=$pid," |
			awk '{ n = split($3, a, ":"); print a[n] }' | paste -sd, -)
		read -r c a <<<"$(PGPASSWORD=postgres PGAPPNAME=$PROBE PGCONNECT_TIMEOUT=2 "$PGBIN/psql" -X -A -t -q -F ' ' \
			-h 127.0.0.1 -p "$p" -U postgres -d postgres -c "SELECT count(*) FILTER (WHERE client_port IN (${ports:-0})), count(*)
				FROM pg_stat_activity WHERE datname='app' AND backend_type='client backend' AND application_name <> '$PROBE'" \
			2>/dev/null || echo '0 0')"
		mine=$((mine + ${c:-0}))
		all=$((all + ${a:-0}))
		out="$out ${c:-0}"
	done
	echo "$mine$out $all"
}

start_demo() {
	[ -x "$BIN" ] || die "$BIN not built (run make build)"
	[ -f "$CONFIG" ] || die "config $CONFIG not found"
	"$PGBIN/pg_isready" -q -h 127.0.0.1 -p 20000 || die "test cluster not running (scripts/pgcluster start)"
	if demo_pid >/dev/null; then
		echo "demo: restarting the running demo poolmgr"
		stop_demo >/dev/null
	fi
	if port_open "$HOSTP" "$PORTP"; then
		die "$ADDR is already in use by another process; stop it first"
	fi
	"$BIN" check-config -c "$CONFIG" >/dev/null || die "config check failed: $BIN check-config -c $CONFIG"
	mkdir -p "$(dirname "$PIDFILE")"
	# setsid + nohup: the proxy outlives make and the terminal.
	setsid nohup "$BIN" -c "$CONFIG" </dev/null >>"$LOGFILE" 2>&1 &
	echo $! >"$PIDFILE"
	local i
	for i in $(seq 1 100); do
		port_open "$HOSTP" "$PORTP" && break
		if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
			tail -n 20 "$LOGFILE" >&2 || true
			rm -f "$PIDFILE"
			die "poolmgr exited during start-up (log: $LOGFILE)"
		fi
		sleep 0.1
	done
	port_open "$HOSTP" "$PORTP" || { stop_demo >/dev/null; die "poolmgr did not listen on $ADDR within 10s (log: $LOGFILE)"; }
	echo "demo: poolmgr running (pid $(cat "$PIDFILE")) on $ADDR with $CONFIG, log $LOGFILE"

	local out tmp maxfile
	tmp=$(mktemp -d)
	maxfile=$tmp/max
	echo "0 0 0 0 0" >"$maxfile"
	local pmpid
	pmpid=$(cat "$PIDFILE")
	# Sample server connections on the cluster while pgbench runs.
	(
		m=(0 0 0 0 0)
		while [ ! -f "$tmp/done" ]; do
			read -r -a s <<<"$(sample "$pmpid")"
			for k in 0 1 2 3 4; do
				if [ "${s[$k]:-0}" -gt "${m[$k]}" ]; then m[$k]=${s[$k]}; fi
			done
			echo "${m[*]}" >"$maxfile.new" && mv "$maxfile.new" "$maxfile"
			sleep 0.25
		done
	) &
	local sampler=$!
	echo "demo: pgbench -h $HOSTP -p $PORTP -U app -c $CLIENTS -j 2 -T $SECONDS_RUN -S app"
	set +e
	out=$(PGPASSWORD=app timeout $((SECONDS_RUN + 60)) "$PGBIN/pgbench" -h "$HOSTP" -p "$PORTP" -U app \
		-c "$CLIENTS" -j 2 -T "$SECONDS_RUN" -S -n app 2>&1)
	local rc=$?
	set -e
	touch "$tmp/done"
	wait "$sampler" || true
	read -r -a mx <"$maxfile"
	rm -rf "$tmp"
	if [ $rc -ne 0 ]; then
		echo "$out" | tail -n 20 >&2
		die "pgbench through poolmgr failed (exit $rc); poolmgr left running, log $LOGFILE (make demo-stop)"
	fi
	local tps lat clients xacts
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | tail -1)
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$out")
	clients=$(sed -n 's/^number of clients: \([0-9]*\).*/\1/p' <<<"$out")
	xacts=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	cat <<EOF

=== poolmgr demo ===
TPS (pgbench -S, simple protocol):  ${tps:-?}
average latency:                    ${lat:-?} ms
transactions:                       ${xacts:-?}
client connections (pgbench):       ${clients:-$CLIENTS}
server connections used (max seen): ${mx[0]}   (primary :20000 ${mx[1]}, standby :20001 ${mx[2]}, standby :20002 ${mx[3]};
                                    pg_stat_activity backends of this poolmgr; all clients of db app: ${mx[4]})

poolmgr is still running (pid $(cat "$PIDFILE"), log $LOGFILE). Connect with:
  psql "host=$HOSTP port=$PORTP user=app dbname=app password=app"
Admin console:  psql "host=$HOSTP port=$PORTP user=postgres dbname=pgbouncer password=postgres" -c "SHOW POOLS"   (SHOW HELP)
Status page:    http://$(sed -n 's/^[[:space:]]*metrics_bind[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$CONFIG" | tail -n 1 | sed 's/^:/127.0.0.1:/')/   (Prometheus: /metrics)
Stop it with:
  make demo-stop
EOF
}

case ${1:-start} in
start) start_demo ;;
stop) stop_demo ;;
*) die "usage: $0 [start|stop]" ;;
esac
