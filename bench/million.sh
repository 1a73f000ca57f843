#!/usr/bin/env bash
# bench/million.sh — one million concurrent clients in one poolmgr process, end to end, in bounded time.
#
#   bench/million.sh                       # N=1000000, io_engine uring, SCRAM (about 10-20 minutes)
#   N=20000 bench/million.sh               # quick run
#   N=10000 ENGINE=fallback bench/million.sh   # the fallback engine (one fd per client: N <= 15000)
#
# Steps (every one with a timeout; whatever the script started is stopped on exit, even on failure
# or Ctrl-C):
#   1. preflight: root, memory, free port; raise the kernel settings (bin/pgstorm -apply-sysctls,
#      restored at exit unless RESTORE_SYSCTLS=0)
#   2. the test cluster (scripts/pgcluster start, only if it is not up; stopped at exit if we started it)
#   2b. NETNS=1 (the default from N > 100000): poolmgr and pgstorm run in a network namespace of
#      their own whose TCP established-connection hash is sized for 2N sockets
#      (net.ipv4.tcp_child_ehash_entries, set before the namespace is created; restored at exit).
#      The initial namespace's table is sized at boot (262144 buckets here, `dmesg | grep
#      "established hash"`): with 2M sockets every lookup walks chains of ~8 entries, which costs
#      the 100 active clients 10-20% of their TPS. A 1M-connection host sizes it at boot
#      (thash_entries=2097152); the namespace does the same without a reboot. Traffic stays on
#      that namespace's loopback (127.0.0.0/8); poolmgr reaches PostgreSQL through its Unix socket
#      (backend "<cluster>/sock:20000"), which is not bound to a namespace. NETNS=0: the initial
#      namespace, backend 127.0.0.1:20000.
#   3. build bin/poolmgr and bin/pgstorm
#   4. temp config: bind 127.0.0.1:$PORT, backend the primary 127.0.0.1:20000, max_client_connections
#      1048576, pool_size 20, io_engine $ENGINE, auth_file with user app:
#        AUTH=scram        the SCRAM verifier from pg_authid (stored verifier: no PBKDF2 per login)
#        AUTH=scram-plain  the plaintext password (poolmgr derives a verifier, PBKDF2, per login: slow)
#        AUTH=md5          auth_type md5, plaintext password in the userlist (poolmgr still logs in to
#                          PostgreSQL with SCRAM from it)
#   5. start poolmgr; baseline: $ACTIVE clients alone run SELECT 1 for $DURATION s (TPS with 0 idle)
#   6. ROUNDS rounds in the same poolmgr process: N clients connect (rate $RATE, $INFLIGHT in flight),
#      $ACTIVE of them run SELECT 1 for $DURATION s with the others idle (TPS with N idle), hold
#      $HOLD s, every connection runs one query (SAMPLE), all close; poolmgr's RSS and fds are
#      sampled between the phases (RSS per idle client); after each round the script waits for
#      poolmgr's next garbage collection (run with GODEBUG=gctrace=1; Go forces one within 2 minutes
#      when idle) and records the live heap: the leak check is that round 2 ends where round 1 ended.
#      (RSS after closing is reported too, but it is no leak measure for a Go process: freed memory
#      is reused, and returned to the OS only slowly, and GC pacing lets the heap reach twice the
#      live size between collections.)
#   7. the baseline again ("after"); the TPS check compares each round with the mean of the two
#      baselines, which halves the effect of load drift on a shared machine
#   8. summary table, also written to bench/out/million-<date>.txt; exit status 1 when a check fails
#
# Env: N (1000000) ENGINE (uring) AUTH (scram) PORT (6500) ACTIVE (100) DURATION (15) HOLD (10)
#      NETNS (auto: 1 when N > 100000, the kernel has tcp_child_ehash_entries and `ip` exists)
#      SAMPLE (every | none | a count) RATE (0 = as fast as possible) INFLIGHT (2048) WORKERS (2)
#      ROUNDS (2) TIMEOUT (2700 s, the whole script) TPS_RATIO_MIN (90) BUILD (1) KEEP_CLUSTER (0)
#      RESTORE_SYSCTLS (1) LEAK_MAX_PCT (5: live-heap growth from round 1 to the last round, in % of
#      the RSS the clients took) IDLE_WAIT (130 s: wait for the GC after a round; 0 = no heap check)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
command -v go >/dev/null 2>&1 || export PATH=$PATH:/usr/local/go/bin

N=${N:-1000000}
ENGINE=${ENGINE:-uring}
AUTH=${AUTH:-scram}
PORT=${PORT:-6500}
ACTIVE=${ACTIVE:-100}
DURATION=${DURATION:-15}
HOLD=${HOLD:-10}
SAMPLE=${SAMPLE:-every}
RATE=${RATE:-0}
INFLIGHT=${INFLIGHT:-2048}
WORKERS=${WORKERS:-2}
ROUNDS=${ROUNDS:-2}
TIMEOUT=${TIMEOUT:-2700}
TPS_RATIO_MIN=${TPS_RATIO_MIN:-90}
LEAK_MAX_PCT=${LEAK_MAX_PCT:-5}
IDLE_WAIT=${IDLE_WAIT:-130}
BUILD=${BUILD:-1}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
RESTORE_SYSCTLS=${RESTORE_SYSCTLS:-1}
NETNS=${NETNS:-auto}

HOST=127.0.0.1
PGPORT=20000
PGBIN=/usr/lib/postgresql/15/bin
POOLMGR=$ROOT/bin/poolmgr
PGSTORM=$ROOT/bin/pgstorm
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUTDIR=$ROOT/bench/out
OUT=$OUTDIR/million-$STAMP.txt
START=$(date +%s)
DEADLINE=$((START + TIMEOUT))
SYSCTL_KEYS=(net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.core.netdev_max_backlog fs.file-max
	net.ipv4.tcp_mem net.ipv4.tcp_tw_reuse net.ipv4.tcp_max_orphans net.netfilter.nf_conntrack_max
	net.ipv4.ip_local_port_range net.ipv4.tcp_child_ehash_entries)

log() { printf 'million: [%4ds] %s\n' $(($(date +%s) - START)) "$*" >&2; }
die() {
	printf 'million: error: %s\n' "$*" >&2
	exit 1
}
isnum() { case $1 in '' | *[!0-9]*) return 1 ;; esac }

# budget WANT: seconds a step may take: WANT, capped by what is left of TIMEOUT minus a reserve for
# the teardown.
budget() {
	local l=$((DEADLINE - $(date +%s) - 90))
	[ "$l" -gt 10 ] || die "out of time (TIMEOUT=$TIMEOUT s); nothing more is started"
	echo $(($1 < l ? $1 : l))
}

# ---------------------------------------------------------------------------------------------
# preflight

for v in N PORT ACTIVE DURATION HOLD INFLIGHT WORKERS ROUNDS TIMEOUT TPS_RATIO_MIN LEAK_MAX_PCT IDLE_WAIT; do
	isnum "${!v}" || die "$v=${!v} is not a number"
done
[ "$N" -ge 1 ] || die "N must be >= 1"
[ "$ACTIVE" -le "$N" ] || die "ACTIVE ($ACTIVE) > N ($N)"
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be >= 1"
case $ENGINE in uring | fallback | auto) ;; *) die "ENGINE=$ENGINE: uring, fallback or auto" ;; esac
case $AUTH in scram | scram-plain | md5) ;; *) die "AUTH=$AUTH: scram, scram-plain or md5" ;; esac
case $SAMPLE in every) SAMPLE_FLAG=(-sample-every) ;; none) SAMPLE_FLAG=() ;; *)
	isnum "$SAMPLE" || die "SAMPLE=$SAMPLE: every, none or a count"
	SAMPLE_FLAG=(-sample "$SAMPLE") ;;
esac
[ "$(id -u)" -eq 0 ] || die "run as root (kernel settings; see docs/pgstorm.md for what is changed)"
if [ "$NETNS" = auto ]; then
	NETNS=0
	if [ "$N" -gt 100000 ] && [ -e /proc/sys/net/ipv4/tcp_child_ehash_entries ] && command -v ip >/dev/null; then NETNS=1; fi
fi
case $NETNS in 0 | 1) ;; *) die "NETNS=$NETNS: auto, 0 or 1" ;; esac
if [ "$NETNS" = 1 ]; then
	[ -e /proc/sys/net/ipv4/tcp_child_ehash_entries ] || die "NETNS=1: this kernel has no net.ipv4.tcp_child_ehash_entries (Linux >= 6.1)"
	command -v ip >/dev/null || die "NETNS=1: the ip command (iproute2) is needed"
fi
if [ "$ENGINE" = fallback ] && [ "$N" -gt 15000 ]; then
	die "ENGINE=fallback holds one fd per client and RLIMIT_NOFILE is $(ulimit -Hn): use N <= 15000, or ENGINE=uring"
fi
command -v jq >/dev/null || die "jq is needed (apt-get install -y jq)"
[ -x "$PGBIN/pg_isready" ] || die "PostgreSQL 15 is not installed: run scripts/pgcluster start once"
# Memory: ~4 KB kernel per socket on each end + ~1 KB per armed multishot recv, poolmgr's own
# per-client state and pgstorm's (~0.2 KB); 14 KB per client leaves headroom.
avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
need_kb=$((N * 14 + 1048576))
[ "$avail_kb" -ge "$need_kb" ] || die "MemAvailable $((avail_kb / 1024)) MB < $((need_kb / 1024)) MB needed for N=$N"
if [ "$NETNS" = 0 ] && (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then die "port $PORT is in use; set PORT"; fi
if [ "$N" -gt 10000 ]; then
	kv=$(uname -r)
	kmaj=${kv%%.*}
	kmin=${kv#*.}
	kmin=${kmin%%.*}
	if [ "$kmaj" -lt 6 ] || { [ "$kmaj" -eq 6 ] && [ "$kmin" -lt 11 ]; }; then
		die "kernel $kv: binding many source addresses needs IORING_OP_BIND (Linux >= 6.11)"
	fi
fi
mkdir -p "$OUTDIR"

TMP=$(mktemp -d /tmp/poolmgr-million.XXXXXX)
chmod 0755 "$TMP"
POOLMGR_PID=""
STARTED_CLUSTER=0
NS=""     # the network namespace (NETNS=1)
NSX=()    # command prefix that runs in it
declare -A SAVED_SYSCTL=()

stop_poolmgr() {
	[ -n "$POOLMGR_PID" ] || return 0
	if kill -0 "$POOLMGR_PID" 2>/dev/null; then
		# SIGTERM: graceful shutdown (a background job of a script ignores SIGINT).
		kill -TERM "$POOLMGR_PID" 2>/dev/null || true
		for _ in $(seq 1 400); do
			kill -0 "$POOLMGR_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$POOLMGR_PID" 2>/dev/null; then
			log "poolmgr (pid $POOLMGR_PID) still running after 40 s: SIGKILL"
			kill -KILL "$POOLMGR_PID" 2>/dev/null || true
		fi
	fi
	wait "$POOLMGR_PID" 2>/dev/null || true
	POOLMGR_PID=""
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	stop_poolmgr
	if [ -n "$NS" ]; then
		ip netns del "$NS" 2>/dev/null || log "could not delete network namespace $NS"
	fi
	if [ "$RESTORE_SYSCTLS" = 1 ] && [ ${#SAVED_SYSCTL[@]} -gt 0 ]; then
		# Let the kernel finish tearing the sockets down before lowering tcp_mem again.
		for _ in $(seq 1 60); do
			inuse=$(awk '/^TCP:/ { print $3 }' /proc/net/sockstat)
			[ "${inuse:-0}" -lt 20000 ] && break
			sleep 1
		done
		for k in "${!SAVED_SYSCTL[@]}"; do
			sysctl -qw "$k=${SAVED_SYSCTL[$k]}" >/dev/null 2>&1 || log "could not restore $k"
		done
		log "kernel settings restored"
	fi
	if [ "$STARTED_CLUSTER" = 1 ] && [ "$KEEP_CLUSTER" != 1 ]; then
		log "stopping the test cluster (this script started it; KEEP_CLUSTER=1 keeps it)"
		scripts/pgcluster stop >/dev/null 2>&1 || true
	fi
	if [ $rc -ne 0 ] && [ -d "$TMP" ]; then
		cp -r "$TMP" "$OUTDIR/million-$STAMP-failed" 2>/dev/null && log "logs kept in $OUTDIR/million-$STAMP-failed"
	fi
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# 1-3: build, kernel settings, cluster

if [ "$BUILD" = 1 ]; then
	log "building bin/poolmgr and bin/pgstorm"
	timeout "$(budget 600)" go build -o "$POOLMGR" ./cmd/poolmgr || die "go build ./cmd/poolmgr failed"
	timeout "$(budget 600)" go build -o "$PGSTORM" ./cmd/pgstorm || die "go build ./cmd/pgstorm failed"
fi
[ -x "$POOLMGR" ] && [ -x "$PGSTORM" ] || die "bin/poolmgr or bin/pgstorm missing (BUILD=1)"

for k in "${SYSCTL_KEYS[@]}"; do
	if v=$(sysctl -n "$k" 2>/dev/null); then SAVED_SYSCTL[$k]=$(echo $v); fi
done
log "kernel settings (pgstorm -apply-sysctls):"
"$PGSTORM" -apply-sysctls -sysctls-only -n "$N" || die "could not apply kernel settings"
BACKEND=$HOST:$PGPORT
if [ "$NETNS" = 1 ]; then
	# A power of two >= 2N (both ends of every connection), at most the kernel's 16M.
	ehash=65536
	while [ "$ehash" -lt $((2 * N)) ] && [ "$ehash" -lt 16777216 ]; do ehash=$((ehash * 2)); done
	sysctl -qw "net.ipv4.tcp_child_ehash_entries=$ehash" || die "could not set net.ipv4.tcp_child_ehash_entries"
	NS=poolmgr-million-$$
	ip netns add "$NS" || die "ip netns add $NS failed"
	ip -n "$NS" link set lo up || die "could not bring up lo in $NS"
	NSX=(ip netns exec "$NS")
	log "network namespace $NS: TCP established hash $ehash buckets (net.ipv4.tcp_child_ehash_entries; the initial namespace's: $(dmesg 2>/dev/null | sed -n 's/.*TCP established hash table entries: \([0-9]*\).*/\1/p' | head -1))"
	log "kernel settings inside $NS:"
	"${NSX[@]}" "$PGSTORM" -apply-sysctls -sysctls-only -n "$N" || die "could not apply kernel settings in $NS"
	BACKEND=$ROOT/.cluster/sock:$PGPORT
	if "${NSX[@]}" bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null; then die "port $PORT is in use in $NS"; fi
fi

if ! "$PGBIN/pg_isready" -q -h $HOST -p $PGPORT; then
	log "starting the test cluster"
	STARTED_CLUSTER=1
	timeout "$(budget 300)" scripts/pgcluster start >&2 || die "scripts/pgcluster start failed"
fi
"$PGBIN/pg_isready" -q -h $HOST -p $PGPORT || die "PostgreSQL is not up on $HOST:$PGPORT"

# ---------------------------------------------------------------------------------------------
# 4-5: config, poolmgr

auth_type=scram-sha-256
case $AUTH in
scram)
	secret=$(PGPASSWORD=postgres PGCONNECT_TIMEOUT=5 timeout 30 "$PGBIN/psql" -X -h $HOST -p $PGPORT -U postgres -d postgres -Atc \
		"select rolpassword from pg_authid where rolname='app'") || die "could not read app's verifier from pg_authid"
	case $secret in SCRAM-SHA-256\$*) ;; *) die "app's password in pg_authid is not a SCRAM verifier" ;; esac
	printf '"app" "%s"\n' "$secret" >"$TMP/userlist.txt"
	;;
scram-plain) printf '"app" "app"\n' >"$TMP/userlist.txt" ;;
md5)
	auth_type=md5
	printf '"app" "app"\n' >"$TMP/userlist.txt"
	;;
esac
cat >"$TMP/poolmgr.toml" <<EOF
# written by bench/million.sh
[pool]
backends = ["$BACKEND"]
bind = "$HOST:$PORT"
max_client_connections = 1048576
pool_size = 20
io_engine = "$ENGINE"

[auth]
auth_type = "$auth_type"
auth_file = "userlist.txt"

[log]
level = "warn"
EOF
"$POOLMGR" check-config -c "$TMP/poolmgr.toml" >&2 || die "poolmgr rejects the generated config"

log "starting poolmgr (io_engine $ENGINE, auth $AUTH) on $HOST:$PORT${NS:+ in $NS}, backend $BACKEND"
GODEBUG=gctrace=1 "${NSX[@]}" "$POOLMGR" -c "$TMP/poolmgr.toml" >"$TMP/poolmgr.log" 2>&1 &
POOLMGR_PID=$!
echo "$POOLMGR_PID" >"$TMP/poolmgr.pid"
for _ in $(seq 1 300); do
	"${NSX[@]}" bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null && break
	kill -0 "$POOLMGR_PID" 2>/dev/null || { cat "$TMP/poolmgr.log" >&2; die "poolmgr exited"; }
	sleep 0.1
done
"${NSX[@]}" bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null || die "poolmgr does not listen on $HOST:$PORT after 30 s"

poolmgr_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$POOLMGR_PID/status" 2>/dev/null || echo 0; }
poolmgr_fds() { ls "/proc/$POOLMGR_PID/fd" 2>/dev/null | wc -l; }
# gctrace lines: "gc 9 @28.344s 6%: ... 210->214->92 MB, 219 MB goal, ..." (92 = live heap after GC)
gc_count() { grep -c '^gc ' "$TMP/poolmgr.log" || true; }
gc_live_mb() { grep '^gc ' "$TMP/poolmgr.log" | tail -1 | sed -n 's/.*->\([0-9]*\) MB, [0-9]* MB goal.*/\1/p'; }
# idle_heap NAME: wait (up to IDLE_WAIT s) for a GC that starts after the clients are gone; record
# its live heap and poolmgr's RSS then.
declare -A HEAP_MB=() IDLE_RSS=()
idle_heap() {
	local name=$1 n0 end
	[ "$IDLE_WAIT" -gt 0 ] || return 0
	n0=$(gc_count)
	end=$(($(date +%s) + $(budget "$IDLE_WAIT")))
	log "waiting (up to ${IDLE_WAIT}s) for poolmgr's next garbage collection to measure its idle heap"
	while [ "$(date +%s)" -lt "$end" ]; do
		if [ "$(gc_count)" -gt "$n0" ]; then
			HEAP_MB[$name]=$(gc_live_mb)
			log "$name: poolmgr live heap after GC ${HEAP_MB[$name]} MB, RSS $(($(poolmgr_rss_kb) / 1024)) MB"
			# poolmgr returns the free heap to the OS within 10 s of that GC (internal/app
			# memtrim.go) and the emptied rings' buffers within 2 s of the last close.
			sleep 15
			IDLE_RSS[$name]=$(poolmgr_rss_kb)
			log "$name: poolmgr RSS 15 s later $((${IDLE_RSS[$name]} / 1024)) MB"
			return 0
		fi
		sleep 1
	done
	log "$name: no garbage collection within ${IDLE_WAIT}s"
}

# storm NAME MAXSECONDS PGSTORM-FLAGS...: runs pgstorm against poolmgr, report in $TMP/NAME.{txt,json}.
# The run bounds itself (-timeout); `timeout` backs it up (SIGINT closes connections, SIGKILL 60 s later).
storm() {
	local name=$1 want=$2 b rc
	shift 2
	b=$(budget "$want")
	log "pgstorm $name: $*"
	set +e
	timeout --foreground -s INT -k 60 "$b" "${NSX[@]}" "$PGSTORM" -addr "$HOST:$PORT" -user app -password app -db app \
		-target-pidfile "$TMP/poolmgr.pid" -timeout "$((b - 30))s" -progress 5s -json "$TMP/$name.json" \
		-workers "$WORKERS" "$@" >"$TMP/$name.txt"
	rc=$?
	set -e
	cat "$TMP/$name.txt" >&2
	kill -0 "$POOLMGR_PID" 2>/dev/null || { tail -50 "$TMP/poolmgr.log" >&2; die "poolmgr died during $name"; }
	[ -s "$TMP/$name.json" ] || die "pgstorm $name produced no report (exit $rc)"
	return 0
}

# ---------------------------------------------------------------------------------------------
# 5: baseline — the active clients alone

IDLE_RSS0=$(poolmgr_rss_kb)
IDLE_FDS0=$(poolmgr_fds)
storm baseline $((DURATION + 120)) -n "$ACTIVE" -active "$ACTIVE" -duration "${DURATION}s" -src none -settle 10s

# ---------------------------------------------------------------------------------------------
# 6: rounds

# connect budget: 1M at a pessimistic 2K/s is 500 s; sample 1M at 10K/s 100 s; close, settle.
round_want=$((N / 2000 + N / 10000 + DURATION + HOLD + 240))
for r in $(seq 1 "$ROUNDS"); do
	storm "round$r" "$round_want" -n "$N" -rate "$RATE" -inflight "$INFLIGHT" -active "$ACTIVE" \
		-duration "${DURATION}s" -hold "${HOLD}s" "${SAMPLE_FLAG[@]}" -login-timeout 60s -settle 60s
	log "after round $r: poolmgr rss $(($(poolmgr_rss_kb) / 1024)) MB, fds $(poolmgr_fds)"
	idle_heap "round$r"
done
storm after $((DURATION + 120)) -n "$ACTIVE" -active "$ACTIVE" -duration "${DURATION}s" -src none -settle 10s
IDLE_RSS_END=$(poolmgr_rss_kb)
IDLE_FDS_END=$(poolmgr_fds)
stop_poolmgr

# ---------------------------------------------------------------------------------------------
# 8: summary

j() { jq -r "$2 // \"-\"" "$TMP/$1.json" 2>/dev/null || echo -; }
tsample() { jq -r --arg p "$2" "[.target_samples[]? | select(.phase == \$p)][0].$3 // \"-\"" "$TMP/$1.json" 2>/dev/null || echo -; }
mb() { case $1 in - | '') echo - ;; *) awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' ;; esac; }
f1() { case $1 in - | '') echo - ;; *) awk -v v="$1" 'BEGIN { printf "%.1f", v }' ;; esac; }
f0() { case $1 in - | '') echo - ;; *) awk -v v="$1" 'BEGIN { printf "%.0f", v }' ;; esac; }
f2() { case $1 in - | '') echo - ;; *) awk -v v="$1" 'BEGIN { printf "%.2f", v }' ;; esac; }
kib() { case $1 in - | '') echo - ;; *) awk -v v="$1" 'BEGIN { printf "%.2f KiB", v / 1024 }' ;; esac; }

runs=(baseline)
for r in $(seq 1 "$ROUNDS"); do runs+=("round$r"); done
runs+=(after)
REF_TPS=$(awk -v a="$(j baseline .active.tps)" -v b="$(j after .active.tps)" 'BEGIN { printf "%.1f", (a + b) / 2 }')
row() { # row LABEL FUNC: FUNC prints the cell of one run
	local label=$1 fn=$2 line
	line=$(printf '%-42s' "$label")
	for x in "${runs[@]}"; do line+=$(printf ' %18s' "$($fn "$x")"); done
	echo "$line"
}
c_est() { echo "$(j "$1" .connect.established)/$(j "$1" .n)"; }
c_ctime() { f2 "$(j "$1" .connect.seconds)"; }
c_rate() { echo "$(f0 "$(j "$1" .connect.per_sec)") / $(j "$1" .connect.peak_per_sec)"; }
c_sust() { echo "$(f0 "$(j "$1" .connect.sustained_per_sec)") / $(j "$1" .connect.min_full_second)"; }
c_cpus() { echo "$(f0 "$(j "$1" .target_cpu_per_login_us)") / $(f0 "$(j "$1" .self_cpu_per_login_us)")"; }
c_sys() { echo "$(f0 "$(j "$1" .target_sys_per_login_us)") / $(f0 "$(j "$1" .self_sys_per_login_us)")"; }
c_login() { echo "$(f1 "$(j "$1" .connect.login_latency.p50_ms)") / $(f1 "$(j "$1" .connect.login_latency.p99_ms)")"; }
c_fail() { echo "$(j "$1" .connect.auth_failures) / $(jq -r '[.errors[]?] | add // 0' "$TMP/$1.json")"; }
c_rss0() { mb "$(tsample "$1" baseline rss_kb)"; }
c_rssc() { mb "$(tsample "$1" connected rss_kb)"; }
c_rssh() { mb "$(tsample "$1" held rss_kb)"; }
c_perc() { kib "$(j "$1" .target_rss_per_client_bytes)"; }
c_fds() { tsample "$1" connected fds; }
c_cpu() { f0 "$(j "$1" .target_cpu_per_login_us)"; }
c_tps() { f0 "$(j "$1" .active.tps)"; }
c_ratio() { awk -v a="$(j "$1" .active.tps)" -v b="$REF_TPS" 'BEGIN { if (b > 0 && a != "-") printf "%.1f%%", 100 * a / b; else print "-" }'; }
c_qlat() { echo "$(f2 "$(j "$1" .active.latency.p50_ms)")/$(f2 "$(j "$1" .active.latency.p99_ms)")/$(f2 "$(j "$1" .active.latency.p99_9_ms)")"; }
c_sample() { echo "$(j "$1" .sample.ok)/$(j "$1" .sample.clients)"; }
c_drop() { j "$1" .hold.dropped; }
c_close() { echo "$(f2 "$(j "$1" .close.seconds)") / $(f2 "$(j "$1" .close.settle_seconds)")"; }
c_rssx() { mb "$(tsample "$1" closed rss_kb)"; }
c_fdsx() { tsample "$1" closed fds; }
c_slab() { kib "$(j "$1" .slab_per_connection_bytes)"; }
c_self() { kib "$(j "$1" .self_rss_per_client_bytes)"; }
c_lov() { jq -r '(.kernel_samples | (.[-1].listen_overflows - .[0].listen_overflows)) // "-"' "$TMP/$1.json" 2>/dev/null || echo -; }

verdicts=()
fail=0
check() { # check OK? TEXT
	if [ "$1" = 1 ]; then verdicts+=("PASS  $2"); else
		verdicts+=("FAIL  $2")
		fail=1
	fi
}
for x in "${runs[@]}"; do
	est=$(j "$x" .connect.established)
	n=$(j "$x" .n)
	ok=$(j "$x" .ok)
	check "$([ "$est" = "$n" ] && [ "$ok" = true ] && echo 1 || echo 0)" \
		"$x: $est/$n clients connected, held and closed cleanly ($(jq -r '.problems // [] | join("; ")' "$TMP/$x.json"))"
done
for r in $(seq 1 "$ROUNDS"); do
	ratio=$(awk -v a="$(j "round$r" .active.tps)" -v b="$REF_TPS" 'BEGIN { if (b > 0 && a != "-") printf "%.1f", 100 * a / b; else print 0 }')
	check "$(awk -v r="$ratio" -v m="$TPS_RATIO_MIN" 'BEGIN { print (r >= m) ? 1 : 0 }')" \
		"round$r: $ACTIVE active clients with $N idle held run at $ratio% of their TPS alone ($REF_TPS, mean of before and after; want >= $TPS_RATIO_MIN%)"
done
if [ "$ROUNDS" -ge 2 ]; then
	h1=${HEAP_MB[round1]:-}
	h2=${HEAP_MB[round$ROUNDS]:-}
	c1=$(tsample round1 connected rss_kb)
	b1=$(tsample round1 baseline rss_kb)
	if isnum "$h1" && isnum "$h2" && isnum "$c1" && isnum "$b1"; then
		grown=$(awk -v a="$h1" -v b="$h2" -v c="$c1" -v z="$b1" 'BEGIN { d = (c - z) / 1024; if (d < 1) d = 1; printf "%.1f", 100 * (b - a) / d }')
		check "$(awk -v g="$grown" -v m="$LEAK_MAX_PCT" 'BEGIN { print (g <= m) ? 1 : 0 }')" \
			"no leak: poolmgr live heap when idle after round 1 $h1 MB, after round $ROUNDS $h2 MB ($grown% of the $(mb $((c1 - b1))) MB the clients took; want <= $LEAK_MAX_PCT%)"
	elif [ "$IDLE_WAIT" -gt 0 ]; then
		check 0 "no leak: no idle garbage collection observed after each round (IDLE_WAIT=$IDLE_WAIT s)"
	fi
	r1=${IDLE_RSS[round1]:-}
	r2=${IDLE_RSS[round$ROUNDS]:-}
	if isnum "$r1" && isnum "$r2" && isnum "$c1" && isnum "$b1"; then
		grown=$(awk -v a="$r1" -v b="$r2" -v c="$c1" -v z="$b1" 'BEGIN { d = c - z; if (d < 1024) d = 1024; printf "%.1f", 100 * (b - a) / d }')
		check "$(awk -v g="$grown" -v m="$LEAK_MAX_PCT" 'BEGIN { print (g <= m) ? 1 : 0 }')" \
			"no leak: poolmgr RSS when idle after round 1 $(mb "$r1") MB, after round $ROUNDS $(mb "$r2") MB ($grown% of the $(mb $((c1 - b1))) MB the clients took; want <= $LEAK_MAX_PCT%; idle before any client $(mb "$IDLE_RSS0") MB)"
	fi
	f1x=$(tsample round1 closed fds)
	f2x=$(tsample "round$ROUNDS" closed fds)
	check "$([ "$f1x" = "$f2x" ] && echo 1 || echo 0)" "no fd leak: poolmgr fds after closing, round 1 $f1x, round $ROUNDS $f2x"
fi

{
	echo
	echo "== bench/million.sh $STAMP: N=$N clients, poolmgr io_engine=$ENGINE, auth=$AUTH, $ROUNDS round(s), $(nproc) CPUs, kernel $(uname -r) =="
	echo "   (baseline, after: $ACTIVE clients alone, before and after the rounds; rounds: N held, $ACTIVE of them active"
	echo "    for ${DURATION}s, hold ${HOLD}s, sample=$SAMPLE)"
	if [ "$NETNS" = 1 ]; then
		echo "   network namespace $NS, TCP established hash $ehash buckets; poolmgr -> PostgreSQL over $BACKEND"
	else
		echo "   initial network namespace (TCP established hash sized at boot); poolmgr -> PostgreSQL over $BACKEND"
	fi
	printf '%-42s' ""
	for x in "${runs[@]}"; do printf ' %18s' "$x"; done
	echo
	row "clients established / asked" c_est
	row "connect phase (s)" c_ctime
	row "connects/s overall / peak second" c_rate
	row "connects/s sustained (10-90%) / min s" c_sust
	row "login latency p50 / p99 (ms)" c_login
	row "auth failures / all errors" c_fail
	row "listen queue overflows (system)" c_lov
	row "poolmgr RSS before (MB)" c_rss0
	row "poolmgr RSS with N held (MB)" c_rssc
	row "poolmgr RSS per idle client" c_perc
	row "poolmgr fds with N held" c_fds
	row "poolmgr CPU per login (us)" c_cpu
	row "CPU/login us: poolmgr / pgstorm" c_cpus
	row "  of which kernel: poolmgr / pgstorm" c_sys
	row "TPS of the $ACTIVE active clients" c_tps
	row "  vs mean of baseline+after (>= $TPS_RATIO_MIN%)" c_ratio
	row "query latency p50/p99/p99.9 (ms)" c_qlat
	row "poolmgr RSS after hold (MB)" c_rssh
	row "sample: alive / asked" c_sample
	row "idle clients dropped by poolmgr" c_drop
	row "close / settle (s)" c_close
	row "poolmgr RSS after close (MB)" c_rssx
	row "poolmgr fds after close" c_fdsx
	row "kernel Slab per connection (2 ends)" c_slab
	row "pgstorm RSS per client" c_self
	echo "poolmgr idle before the baseline: $(mb "$IDLE_RSS0") MB, $IDLE_FDS0 fds; at the end: $(mb "$IDLE_RSS_END") MB, $IDLE_FDS_END fds"
	for r in $(seq 1 "$ROUNDS"); do
		if [ -n "${HEAP_MB[round$r]:-}" ]; then
			echo "poolmgr idle after round $r: live heap ${HEAP_MB[round$r]} MB after GC, RSS 15 s later $(mb "${IDLE_RSS[round$r]}") MB"
		fi
	done
	for v in "${verdicts[@]}"; do echo "$v"; done
	echo "total time $(($(date +%s) - START)) s; full reports: $OUTDIR/million-$STAMP-*.txt|json"
} | tee "$OUT"
for x in "${runs[@]}"; do
	cp "$TMP/$x.txt" "$OUTDIR/million-$STAMP-$x.txt"
	cp "$TMP/$x.json" "$OUTDIR/million-$STAMP-$x.json"
done
cp "$TMP/poolmgr.log" "$OUTDIR/million-$STAMP-poolmgr.log"
exit $fail
