package admin

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/metrics"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

type showFunc func(h *Handler, r *reply, c Command) *cmdError

var shows map[string]showFunc

// showHelp is the SHOW HELP text (also the order of the subjects).
const showHelp = `Console usage
  SHOW HELP|POOLS|CLIENTS|SERVERS|STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS|DATABASES|CONFIG|VERSION|LISTS|STATE
  SHOW BACKENDS|CACHE|ENGINE
  PAUSE [db]
  RESUME [db]
  RELOAD
  SHUTDOWN
  KILL db
  RECONNECT [db]
  DRAIN backend
  UNDRAIN backend`

func init() {
	shows = map[string]showFunc{
		"HELP":           (*Handler).showHelp,
		"POOLS":          (*Handler).showPools,
		"CLIENTS":        (*Handler).showClients,
		"SERVERS":        (*Handler).showServers,
		"STATS":          (*Handler).showStats,
		"STATS_TOTALS":   (*Handler).showStats,
		"STATS_AVERAGES": (*Handler).showStats,
		"TOTALS":         (*Handler).showTotals,
		"DATABASES":      (*Handler).showDatabases,
		"CONFIG":         (*Handler).showConfig,
		"VERSION":        (*Handler).showVersion,
		"LISTS":          (*Handler).showLists,
		"STATE":          (*Handler).showState,
		"BACKENDS":       (*Handler).showBackends,
		"CACHE":          (*Handler).showCache,
		"ENGINE":         (*Handler).showEngine,
	}
}

func (h *Handler) show(r *reply, c Command) *cmdError {
	f := shows[c.What]
	if f == nil {
		switch c.What {
		case "FDS", "SOCKETS", "ACTIVE_SOCKETS", "MEM", "DNS_HOSTS", "DNS_ZONES", "PEERS", "PEER_POOLS", "USERS":
			return errorf(codeNotSupported, "SHOW %s is not supported by poolmgr", c.What)
		}
		return &cmdError{code: codeSyntax, msg: fmt.Sprintf("unknown SHOW subject %q", strings.ToLower(c.What)),
			hint: "SHOW HELP lists them."}
	}
	if len(c.Args) > 0 {
		return errorf(codeSyntax, "SHOW %s takes no argument", c.What)
	}
	return f(h, r, c)
}

func (h *Handler) showHelp(r *reply, c Command) *cmdError {
	r.notice("%s", showHelp)
	r.complete("SHOW")
	return nil
}

func (h *Handler) showVersion(r *reply, c Command) *cmdError {
	res := NewResult("version")
	res.Add("poolmgr " + h.o.Version)
	r.result(res)
	return nil
}

func (h *Handler) poolMode() string {
	switch h.o.Shared.Options().PoolMode {
	case proxy.ModeSession:
		return "session"
	case proxy.ModeStatement:
		return "statement"
	}
	return "transaction"
}

// showPools: PgBouncer's SHOW POOLS columns. cl_active counts clients linked
// to a server or idle; cl_waiting those queued (or waiting for the pool's
// first login); sv_tested counts servers being reset; sv_being_canceled
// servers held for an in-flight cancel; sv_used is always 0. "paused" is ours.
func (h *Handler) showPools(r *reply, c Command) *cmdError {
	pools, err := h.pools()
	if err != nil {
		return errorf(codeTimeout, "SHOW POOLS: %v", err)
	}
	res := NewResult("database", "user", "cl_active:int", "cl_waiting:int", "cl_active_cancel_req:int",
		"cl_waiting_cancel_req:int", "sv_active:int", "sv_active_cancel:int", "sv_being_canceled:int", "sv_idle:int",
		"sv_used:int", "sv_tested:int", "sv_login:int", "maxwait:int", "maxwait_us:int", "pool_mode",
		"load_balance_hosts", "paused:int")
	for _, p := range pools {
		cl, sv := p.Clients, p.Servers
		wait := time.Duration(p.MaxWaitNanos)
		mode := h.poolMode()
		if isAdminDB(p.Database) {
			mode = "statement" // like PgBouncer's own pool
		}
		res.Add(p.Database, p.User,
			cl[proxy.ClientActive]+cl[proxy.ClientIdle]+cl[proxy.ClientAdmin], cl[proxy.ClientWaiting]+cl[proxy.ClientWelcome], 0, 0,
			sv[proxy.ServerActive], 0, sv[proxy.ServerHeld], sv[proxy.ServerIdle],
			0, sv[proxy.ServerResetting], sv[proxy.ServerConnecting]+sv[proxy.ServerLogin],
			int64(wait/time.Second), int64((wait%time.Second)/time.Microsecond), mode, nil, p.Paused)
	}
	r.result(res)
	return nil
}

// socketColumns are PgBouncer's SHOW CLIENTS / SHOW SERVERS columns.
var socketColumns = []string{"type", "user", "database", "replication", "state", "addr", "port:int",
	"local_addr", "local_port:int", "connect_time", "request_time", "wait:int", "wait_us:int", "close_needed:int",
	"ptr", "link", "remote_pid:int", "tls", "application_name", "prepared_statements:int", "id:int"}

func clientState(s proxy.ClientState) string {
	switch s {
	case proxy.ClientActive, proxy.ClientAdmin:
		return "active"
	case proxy.ClientIdle:
		return "idle"
	case proxy.ClientWaiting:
		return "waiting"
	case proxy.ClientClosed:
		return "closed"
	}
	return "login" // startup, auth, welcome
}

func serverState(s proxy.ServerState) string {
	switch s {
	case proxy.ServerActive:
		return "active"
	case proxy.ServerIdle:
		return "idle"
	case proxy.ServerResetting:
		return "tested"
	case proxy.ServerHeld:
		return "being_canceled"
	case proxy.ServerClosed:
		return "closed"
	}
	return "new" // connecting, login
}

func unixTime(n int64) any {
	if n <= 0 {
		return nil
	}
	return time.Unix(0, n)
}

// splitAddr splits an address into the host and port columns of SHOW
// output (port NULL when not a number). A Unix-socket backend shows its
// directory as host, as PgBouncer does.
func splitAddr(s string) (host string, port any) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().String(), int(ap.Port())
	}
	if hst, p, err := config.SplitBackendAddr(s); err == nil {
		if n, err := strconv.Atoi(p); err == nil {
			return hst, n
		}
		return hst, nil
	}
	return s, nil
}

func (h *Handler) showClients(r *reply, c Command) *cmdError {
	res, err := perLoop(h.o.Shared, func(l *proxy.Loop) []proxy.ClientDetail {
		var out []proxy.ClientDetail
		l.EachClientDetail(func(cd proxy.ClientDetail) { out = append(out, cd) })
		return out
	})
	if err != nil {
		return errorf(codeTimeout, "SHOW CLIENTS: %v", err)
	}
	localHost, localPort := splitAddr(h.o.Config.Pool.Bind)
	now := time.Now().UnixNano()
	out := NewResult(socketColumns...)
	for _, part := range res {
		for _, cd := range part {
			host, port := splitAddr(cd.Remote)
			var wait int64
			if cd.WaitSince > 0 {
				wait = max(0, now-cd.WaitSince)
			}
			var link any
			if cd.ServerPID != 0 {
				link = fmt.Sprintf("S%d", cd.ServerPID)
			}
			app := ""
			if cd.Params != nil {
				app, _ = cd.Params.Get("application_name")
			}
			out.Add("C", cd.User, cd.Database, "none", clientState(cd.State), host, port, localHost, localPort,
				unixTime(cd.ConnectTime), unixTime(cd.Since), wait/int64(time.Second),
				(wait%int64(time.Second))/int64(time.Microsecond), 0, fmt.Sprintf("C%d", cd.PID), link, 0, "",
				app, cd.Prepared, cd.PID)
		}
	}
	r.result(out)
	return nil
}

func (h *Handler) showServers(r *reply, c Command) *cmdError {
	res, err := perLoop(h.o.Shared, func(l *proxy.Loop) []proxy.ServerDetail {
		var out []proxy.ServerDetail
		l.EachServerDetail(func(sd proxy.ServerDetail) { out = append(out, sd) })
		return out
	})
	if err != nil {
		return errorf(codeTimeout, "SHOW SERVERS: %v", err)
	}
	out := NewResult(socketColumns...)
	var rows []proxy.ServerDetail
	for _, part := range res {
		rows = append(rows, part...)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Created < rows[j].Created })
	for _, sd := range rows {
		host, port := splitAddr(sd.Backend)
		var link any
		if sd.ClientPID != 0 {
			link = fmt.Sprintf("C%d", sd.ClientPID)
		}
		app := ""
		if sd.Params != nil {
			app, _ = sd.Params.Get("application_name")
		}
		out.Add("S", sd.User, sd.Database, "none", serverState(sd.State), host, port, nil, nil,
			unixTime(sd.Created), unixTime(sd.LastUsed), 0, 0, sd.CloseNeeded, fmt.Sprintf("S%d", sd.PID), link,
			int64(sd.PID), "", app, sd.Prepared, int64(sd.PID))
	}
	r.result(out)
	return nil
}

// stats returns a fresh snapshot and the sample one stats period back.
func (h *Handler) stats() (cur, old *metrics.Snapshot, err error) {
	cur, err = metrics.Take(h.o.Shared)
	if err != nil {
		return nil, nil, err
	}
	if s := h.o.Sampler; s != nil {
		for _, x := range s.History(0) {
			if cur.Time.Sub(x.Time) <= h.o.StatsPeriod && x.Time.Before(cur.Time) {
				old = x
				break
			}
		}
	}
	return cur, old, nil
}

// statsValues are SHOW STATS' numbers: totals and averages (PgBouncer's
// meaning, one row for all databases: the core counts per loop, not per database).
type statsValues struct {
	assign, xact, query, recv, sent, xactTime, queryTime, waitTime, clientParse, serverParse, bind int64
}

func (h *Handler) statsValues() (tot, avg statsValues, err error) {
	cur, old, err := h.stats()
	if err != nil {
		return tot, avg, err
	}
	s := &cur.Stats
	tot = statsValues{assign: int64(cur.Assignments()), xact: int64(s.Transactions), query: int64(s.Queries),
		recv: int64(s.ClientBytes), sent: int64(s.ServerBytes), xactTime: int64(s.XactNanos / 1000),
		waitTime: int64(s.WaitNanos / 1000)}
	if old != nil {
		rt := metrics.RatesBetween(old, cur)
		avg = statsValues{assign: int64(rt.AssignPerSec), xact: int64(rt.TPS), query: int64(rt.QPS),
			recv: int64(rt.ClientBytesPerS), sent: int64(rt.ServerBytesPerS), xactTime: rt.AvgXact.Microseconds(),
			waitTime: rt.AvgWait.Microseconds()}
	}
	return tot, avg, nil
}

func (v statsValues) row() []any {
	return []any{v.assign, v.xact, v.query, v.recv, v.sent, v.xactTime, v.queryTime, v.waitTime,
		v.clientParse, v.serverParse, v.bind}
}

// statsAllDB is the database column of SHOW STATS' single row.
const statsAllDB = "*"

func (h *Handler) showStats(r *reply, c Command) *cmdError {
	tot, avg, err := h.statsValues()
	if err != nil {
		return errorf(codeTimeout, "SHOW %s: %v", c.What, err)
	}
	names := []string{"server_assignment_count", "xact_count", "query_count", "received", "sent", "xact_time",
		"query_time", "wait_time", "client_parse_count", "server_parse_count", "bind_count"}
	var res *Result
	row := []any{statsAllDB}
	switch c.What {
	case "STATS":
		cols := []string{"database"}
		for _, n := range names {
			cols = append(cols, "total_"+n+":int")
		}
		for _, n := range names {
			switch n {
			case "received":
				n = "recv"
			}
			cols = append(cols, "avg_"+n+":int")
		}
		res = NewResult(cols...)
		row = append(append(row, tot.row()...), avg.row()...)
	default: // STATS_TOTALS, STATS_AVERAGES: PgBouncer's unprefixed names
		cols := []string{"database"}
		for _, n := range names {
			switch n {
			case "received":
				n = "bytes_received"
			case "sent":
				n = "bytes_sent"
			}
			cols = append(cols, n+":int")
		}
		res = NewResult(cols...)
		if c.What == "STATS_TOTALS" {
			row = append(row, tot.row()...)
		} else {
			row = append(row, avg.row()...)
		}
	}
	res.Add(row...)
	r.result(res)
	return nil
}

func (h *Handler) showTotals(r *reply, c Command) *cmdError {
	tot, avg, err := h.statsValues()
	if err != nil {
		return errorf(codeTimeout, "SHOW TOTALS: %v", err)
	}
	res := NewResult("name", "value:int")
	names := []string{"server_assignment_count", "xact_count", "query_count", "received", "sent", "xact_time",
		"query_time", "wait_time", "client_parse_count", "server_parse_count", "bind_count"}
	for i, v := range tot.row() {
		res.Add("total_"+names[i], v)
	}
	for i, v := range avg.row() {
		n := names[i]
		if n == "received" {
			n = "recv"
		}
		res.Add("avg_"+n, v)
	}
	r.result(res)
	return nil
}

// primaryAddr is the backend new server connections go to: the detected
// primary, else the first backend.
func (h *Handler) primaryAddr() string {
	bs := h.o.Shared.Backends()
	for _, b := range bs {
		if b.Role() == proxy.RolePrimary {
			return b.Addr
		}
	}
	if len(bs) > 0 {
		return bs[0].Addr
	}
	return ""
}

func (h *Handler) showDatabases(r *reply, c Command) *cmdError {
	pools, err := h.pools()
	if err != nil {
		return errorf(codeTimeout, "SHOW DATABASES: %v", err)
	}
	type dbAgg struct {
		clients, servers   int
		pools, pausedPools int
	}
	dbs := map[string]*dbAgg{}
	var names []string
	for _, p := range pools {
		a := dbs[p.Database]
		if a == nil {
			a = &dbAgg{}
			dbs[p.Database] = a
			names = append(names, p.Database)
		}
		for st, n := range p.Clients {
			if proxy.ClientState(st) != proxy.ClientClosed {
				a.clients += n
			}
		}
		for st, n := range p.Servers {
			if proxy.ServerState(st) != proxy.ServerClosed {
				a.servers += n
			}
		}
		a.pools++
		if p.Paused {
			a.pausedPools++
		}
	}
	sort.Strings(names)
	o := h.o.Shared.Options()
	host, port := splitAddr(h.primaryAddr())
	res := NewResult("name", "host", "port:int", "database", "force_user", "pool_size:int", "min_pool_size:int",
		"reserve_pool_size:int", "server_lifetime:int", "pool_mode", "load_balance_hosts", "max_connections:int",
		"current_connections:int", "max_client_connections:int", "current_client_connections:int", "paused:int",
		"disabled:int")
	for _, db := range names {
		a := dbs[db]
		if isAdminDB(db) { // the console itself, like PgBouncer's "pgbouncer" row
			_, bindPort := splitAddr(h.o.Config.Pool.Bind)
			res.Add(db, nil, bindPort, db, "pgbouncer", 2, 0, 0, 0, "statement", nil, 0, 0,
				o.MaxClients, a.clients, false, false)
			continue
		}
		res.Add(db, host, port, db, nil, o.PoolSize, h.o.Config.Pool.MinPoolSize, 0,
			int64(o.ServerLifetime/time.Second), h.poolMode(), nil, o.MaxServersPerBackend, a.servers,
			o.MaxClients, a.clients, a.pools > 0 && a.pausedPools == a.pools, false)
	}
	r.result(res)
	return nil
}

func (h *Handler) showLists(r *reply, c Command) *cmdError {
	snap, err := metrics.Take(h.o.Shared)
	if err != nil {
		return errorf(codeTimeout, "SHOW LISTS: %v", err)
	}
	dbs, users := map[string]bool{}, map[string]bool{}
	for _, p := range h.o.Shared.Pools() {
		dbs[p.Database], users[p.User] = true, true
	}
	login := 0
	for _, lc := range snap.Loops {
		login += lc.LoginQueue
	}
	res := NewResult("list", "items:int")
	for _, kv := range []struct {
		k string
		v int
	}{{"databases", len(dbs)}, {"users", len(users)}, {"peers", 0}, {"pools", snap.Pools}, {"peer_pools", 0},
		{"free_clients", 0}, {"used_clients", snap.ClientsTotal()}, {"login_clients", login}, {"free_servers", 0},
		{"used_servers", snap.ServersTotal()}, {"dns_names", 0}, {"dns_zones", 0}, {"dns_queries", 0}, {"dns_pending", 0}} {
		res.Add(kv.k, kv.v)
	}
	r.result(res)
	return nil
}

func (h *Handler) showState(r *reply, c Command) *cmdError {
	pools := h.o.Shared.Pools()
	paused := 0
	for _, p := range pools {
		if p.Paused() {
			paused++
		}
	}
	yesno := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	res := NewResult("key", "value")
	res.Add("active", yesno(!h.o.Shared.ShuttingDown() && (paused == 0 || paused < len(pools))))
	res.Add("paused", yesno(len(pools) > 0 && paused == len(pools)))
	res.Add("suspended", "no")
	res.Add("shutting_down", yesno(h.o.Shared.ShuttingDown()))
	res.Add("paused_pools", strconv.Itoa(paused))
	r.result(res)
	return nil
}

// showBackends is ours: one row per configured backend. Health and lag come
// from the health checker when it runs ("n/a" otherwise); weight is "n/a"
// until read/write routing lands.
func (h *Handler) showBackends(r *reply, c Command) *cmdError {
	snap, err := metrics.Take(h.o.Shared)
	if err != nil {
		return errorf(codeTimeout, "SHOW BACKENDS: %v", err)
	}
	res := NewResult("backend", "role", "health", "lag", "weight", "state", "server_connections:int",
		"active:int", "idle:int", "login:int", "busy:int", "health_checked:int", "failures:int", "last_check",
		"down_until")
	for _, b := range snap.Backends {
		var states [proxy.NumServerStates]int
		if m := snap.ByBackend[b.Addr]; m != nil {
			states = *m
		}
		be := h.backend(b.Addr)
		var failures int
		var lastCheck, downUntil any
		if be != nil {
			failures = be.Failures()
			lastCheck = unixTime(be.LastCheck())
			if d := be.DownUntil(); d.After(snap.Time) {
				downUntil = d
			}
		}
		res.Add(b.Addr, b.Role, b.Health, b.LagText(), b.Weight, b.State, b.Open, states[proxy.ServerActive],
			states[proxy.ServerIdle], states[proxy.ServerConnecting]+states[proxy.ServerLogin], b.Busy, b.Checked,
			failures, lastCheck, downUntil)
	}
	r.result(res)
	return nil
}

func (h *Handler) showCache(r *reply, c Command) *cmdError {
	res := NewResult("status", "ttl_ms:int", "entries:int", "bytes:int", "hits:int", "misses:int", "hit_ratio:num", "note")
	qc := h.o.Shared.Options().Cache
	if qc == nil {
		res.Add("disabled", h.o.Config.Pool.CacheTTLMs, 0, 0, 0, 0, nil,
			"pool.cache_ttl_ms = 0 (or session mode): the query cache is off")
	} else {
		st := qc.Stats()
		var ratio any
		if st.Hits+st.Misses > 0 {
			ratio = float64(st.Hits) / float64(st.Hits+st.Misses)
		}
		note := fmt.Sprintf("stores=%d refused=%d raced=%d invalidations=%d remote=%d evictions=%d bus_up=%v catalog_dbs=%d",
			st.Stores, st.Refused, st.Raced, st.Invalidations+st.DBInvalidations, st.Remote, st.Evictions, st.BusUp, st.CatalogDBReady)
		res.Add("enabled", h.o.Config.Pool.CacheTTLMs, st.Entries, st.Bytes, st.Hits, st.Misses, ratio, note)
	}
	r.result(res)
	return nil
}

func (h *Handler) showEngine(r *reply, c Command) *cmdError {
	snap, err := metrics.Take(h.o.Shared)
	if err != nil {
		return errorf(codeTimeout, "SHOW ENGINE: %v", err)
	}
	res := NewResult("loop:int", "engine", "clients:int", "servers:int", "pools:int", "waiting_clients:int",
		"login_queue:int", "free_buffers:int", "interned_statements:int", "auth_lookups:int",
		"transactions:int", "queries:int", "rings", "ring_entries")
	for _, lc := range snap.Loops {
		clients, servers := 0, 0
		for st, n := range lc.Clients {
			if proxy.ClientState(st) != proxy.ClientClosed {
				clients += n
			}
		}
		for st, n := range lc.Servers {
			if proxy.ServerState(st) != proxy.ServerClosed {
				servers += n
			}
		}
		res.Add(lc.ID, h.o.Engine, clients, servers, lc.Pools, lc.WaitingClients, lc.LoginQueue, lc.FreeBufs,
			lc.Stmts, lc.AuthLookups, lc.Stats.Transactions, lc.Stats.Queries, "n/a", "n/a")
	}
	r.result(res)
	return nil
}

// showConfig lists the settings (key, value, default, changeable) like
// PgBouncer's SHOW CONFIG. Reloadable values come from the running options,
// so they reflect the last successful RELOAD.
func (h *Handler) showConfig(r *reply, c Command) *cmdError {
	o := h.o.Shared.Options()
	cfg := h.o.Config
	def := config.Default()
	res := NewResult("key", "value", "default", "changeable")
	add := func(k string, v, d any, changeable bool) {
		vs, _ := FormatValue(v)
		ds, _ := FormatValue(d)
		ch := "no"
		if changeable {
			ch = "yes"
		}
		res.Add(k, vs, ds, ch)
	}
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
	list := func(s []string) string { return strings.Join(s, ",") }
	var backends []string
	for _, b := range h.o.Shared.Backends() {
		backends = append(backends, b.Addr)
	}
	authType := map[proxy.AuthType]string{proxy.AuthScram: config.AuthSCRAM, proxy.AuthMD5: config.AuthMD5, proxy.AuthTrust: config.AuthTrust}[o.AuthType]
	p, dp := cfg.Pool, def.Pool
	add("backends", list(backends), "", true)
	add("bind", p.Bind, dp.Bind, false)
	add("max_client_connections", o.MaxClients, dp.MaxClientConnections, true)
	add("max_server_connections", o.MaxServersPerBackend, dp.MaxServerConnections, true)
	add("max_server_logins", o.MaxServerLogins, dp.MaxServerLogins, true)
	add("routing", p.Routing, dp.Routing, false)
	add("cache_ttl_ms", p.CacheTTLMs, dp.CacheTTLMs, false)
	add("pool_mode", h.poolMode(), dp.PoolMode, true)
	add("pool_size", o.PoolSize, dp.PoolSize, true)
	add("min_pool_size", p.MinPoolSize, dp.MinPoolSize, false)
	add("server_reset_query", o.ResetQuery, dp.ServerResetQuery, true)
	add("workers", p.Workers, dp.Workers, false)
	add("io_engine", p.IOEngine, dp.IOEngine, false)
	add("max_message_size", o.MaxMessageSize, dp.MaxMessageSize, true)
	add("max_prepared_statements", o.MaxPreparedStatements, dp.MaxPreparedStatements, true)
	add("max_client_prepared_statements", o.MaxClientPreparedStatements, dp.MaxClientPreparedStatements, true)
	add("query_wait_timeout", secs(o.QueryWaitTimeout), secs(dp.QueryWaitTimeout.D()), true)
	add("server_idle_timeout", secs(o.ServerIdleTimeout), secs(dp.ServerIdleTimeout.D()), true)
	add("server_lifetime", secs(o.ServerLifetime), secs(dp.ServerLifetime.D()), true)
	add("server_connect_timeout", secs(o.ServerConnectTimeout), secs(dp.ServerConnectTimeout.D()), true)
	add("server_login_retry", secs(o.ServerLoginRetry), secs(dp.ServerLoginRetry.D()), true)
	add("idle_transaction_timeout", secs(o.IdleTxTimeout), secs(dp.IdleTransactionTimeout.D()), true)
	add("client_login_timeout", secs(o.ClientLoginTimeout), secs(dp.ClientLoginTimeout.D()), true)
	add("shutdown_timeout", secs(o.ShutdownTimeout), secs(dp.ShutdownTimeout.D()), true)
	add("auth_type", authType, def.Auth.AuthType, true)
	add("auth_file", cfg.Auth.AuthFile, def.Auth.AuthFile, true)
	add("auth_user", o.AuthUser, def.Auth.AuthUser, true)
	add("auth_query", o.AuthQuery, def.Auth.AuthQuery, true)
	add("auth_dbname", o.AuthDBName, def.Auth.AuthDBName, true)
	add("level", cfg.Log.Level, def.Log.Level, false)
	add("format", cfg.Log.Format, def.Log.Format, false)
	add("rate_limit", cfg.Log.RateLimit, def.Log.RateLimit, false)
	add("log_connections", o.LogConnections, def.Log.LogConnections, true)
	add("log_disconnections", o.LogDisconnections, def.Log.LogDisconnections, true)
	add("admin_users", list(o.AdminUsers), "", true)
	add("stats_users", list(o.StatsUsers), "", true)
	add("metrics_bind", cfg.Admin.MetricsBind, def.Admin.MetricsBind, false)
	// PgBouncer's names of the same settings (pgbouncer_exporter reads them).
	add("max_client_conn", o.MaxClients, dp.MaxClientConnections, true)
	add("default_pool_size", o.PoolSize, dp.PoolSize, true)
	r.result(res)
	return nil
}
