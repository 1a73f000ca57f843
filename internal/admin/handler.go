package admin

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/metrics"
	"github.com/poolmgr/poolmgr/internal/pgproto"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// SQLSTATE codes the console answers with.
const (
	codeSyntax          = "42601" // syntax_error: unknown command, bad arguments
	codeInsufficient    = "42501" // insufficient_privilege: a stats user running a command
	codeUndefinedObject = "42704" // unknown database or backend
	codeNotSupported    = "0A000" // feature_not_supported
	codeInternal        = "XX000"
	codeTimeout         = "57014"
)

// Options configure the console.
type Options struct {
	Shared  *proxy.Shared
	Sampler *metrics.Sampler // SHOW STATS averages; may be nil
	// Config is the configuration poolmgr started with: static keys and the
	// listener address. Reloadable values are read from Shared.Options().
	Config  *config.Config
	Version string
	Engine  string // io engine in use
	Log     *slog.Logger
	// Signal sends a signal to this process (RELOAD, SHUTDOWN); default
	// syscall.Kill(os.Getpid(), sig).
	Signal func(syscall.Signal) error
	// PauseWait bounds how long PAUSE waits for running transactions of the
	// paused pools to finish (default 30 s).
	PauseWait time.Duration
	// StatsPeriod is the window of SHOW STATS' avg_ columns (default 60 s).
	StatsPeriod time.Duration
}

// Handler is the admin console: it implements proxy.AdminHandler.
type Handler struct {
	o Options
}

var _ proxy.AdminHandler = (*Handler)(nil)

// New returns the console handler.
func New(o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Signal == nil {
		o.Signal = func(sig syscall.Signal) error { return syscall.Kill(os.Getpid(), sig) }
	}
	if o.PauseWait <= 0 {
		o.PauseWait = 30 * time.Second
	}
	if o.StatsPeriod <= 0 {
		o.StatsPeriod = 60 * time.Second
	}
	if o.Config == nil {
		o.Config = config.Default()
	}
	return &Handler{o: o}
}

// Query implements proxy.AdminHandler: the work runs on its own goroutine
// (it inspects the loops, which must not be done from a loop) and answers
// with sess.Reply.
func (h *Handler) Query(sess *proxy.AdminSession, sql string) {
	go func() {
		resp, closeAfter, after := h.Exec(sess.User, sess.Admin, sql)
		sess.Reply(resp, closeAfter)
		if after != nil {
			after()
		}
	}()
}

// cmdError is an ErrorResponse to send.
type cmdError struct {
	code, msg, hint string
}

func (e *cmdError) Error() string { return e.msg }

func errorf(code, format string, args ...any) *cmdError {
	return &cmdError{code: code, msg: fmt.Sprintf(format, args...)}
}

// reply accumulates the messages of one answer.
type reply struct {
	buf        []byte
	closeAfter bool
	after      func()
}

func (r *reply) result(res *Result) { r.buf = AppendResult(r.buf, res) }
func (r *reply) complete(tag string) {
	r.buf = pgproto.AppendCommandComplete(r.buf, tag)
}
func (r *reply) notice(format string, args ...any) {
	r.buf = pgproto.AppendNotice(r.buf, "NOTICE", "00000", fmt.Sprintf(format, args...))
}
func (r *reply) warning(format string, args ...any) {
	r.buf = pgproto.AppendNotice(r.buf, "WARNING", "01000", fmt.Sprintf(format, args...))
}

// Exec runs the statements of one simple Query for user (admin: admin_users,
// else stats_users) and returns the messages to send before ReadyForQuery,
// whether to end the session afterwards and what to do after replying.
func (h *Handler) Exec(user string, admin bool, sql string) (resp []byte, closeAfter bool, after func()) {
	r := &reply{}
	defer func() {
		if p := recover(); p != nil {
			h.o.Log.Error("admin console: internal error", "query", sql, "panic", p, "stack", string(debug.Stack()))
			r.buf = pgproto.AppendError(r.buf, pgproto.SevError, codeInternal, fmt.Sprintf("internal error: %v", p))
			resp, closeAfter, after = r.buf, false, nil
		}
	}()
	cmds, err := Parse(sql)
	if err != nil {
		r.buf = pgproto.AppendErrorDetail(r.buf, pgproto.SevError, codeSyntax, err.Error(), "SHOW HELP lists the commands.")
		return r.buf, false, nil
	}
	if len(cmds) == 0 {
		r.buf = append(r.buf, pgproto.MsgEmptyQuery, 0, 0, 0, 4)
		return r.buf, false, nil
	}
	for _, c := range cmds {
		if err := h.exec(r, user, admin, c); err != nil {
			r.buf = pgproto.AppendErrorDetail(r.buf, pgproto.SevError, err.code, err.msg, err.hint)
			break // like PostgreSQL: the rest of a multi-statement query is not run
		}
	}
	return r.buf, r.closeAfter, r.after
}

func (h *Handler) exec(r *reply, user string, admin bool, c Command) *cmdError {
	if c.Verb == "SHOW" {
		return h.show(r, c)
	}
	if c.Verb == "SET" {
		// Clients (JDBC, some poolers' probes) send SETs on connect; PgBouncer accepts them.
		r.notice("SET ignored: poolmgr settings change in the config file, then RELOAD")
		r.complete("SET")
		return nil
	}
	if _, known := commands[c.Verb]; !known {
		return &cmdError{code: codeSyntax, msg: fmt.Sprintf("unknown admin command %q", c.Text),
			hint: "SHOW HELP lists the commands."}
	}
	if !admin {
		return errorf(codeInsufficient, "permission denied: %s needs an admin user (user %q is in stats_users: SHOW commands only)", c.Verb, user)
	}
	h.o.Log.Info("admin command", "user", user, "command", c.Text)
	return commands[c.Verb](h, r, c)
}

type commandFunc func(h *Handler, r *reply, c Command) *cmdError

var commands map[string]commandFunc

func init() {
	commands = map[string]commandFunc{
		"PAUSE":       (*Handler).cmdPause,
		"RESUME":      (*Handler).cmdResume,
		"RELOAD":      (*Handler).cmdReload,
		"SHUTDOWN":    (*Handler).cmdShutdown,
		"KILL":        (*Handler).cmdKill,
		"RECONNECT":   (*Handler).cmdReconnect,
		"DRAIN":       (*Handler).cmdDrain,
		"UNDRAIN":     (*Handler).cmdDrain,
		"SUSPEND":     (*Handler).cmdUnsupported,
		"DISABLE":     (*Handler).cmdUnsupported,
		"ENABLE":      (*Handler).cmdUnsupported,
		"WAIT_CLOSE":  (*Handler).cmdUnsupported,
		"KILL_CLIENT": (*Handler).cmdUnsupported,
	}
}

// args checks the number of arguments.
func args(c Command, lo, hi int, usage string) *cmdError {
	if len(c.Args) < lo || len(c.Args) > hi {
		return &cmdError{code: codeSyntax, msg: fmt.Sprintf("wrong number of arguments to %s", c.Verb), hint: "Usage: " + usage}
	}
	return nil
}

func isAdminDB(db string) bool { return db == "poolmgr" || db == "pgbouncer" }

func (h *Handler) cmdUnsupported(r *reply, c Command) *cmdError {
	return errorf(codeNotSupported, "%s is not supported by poolmgr", c.Verb)
}

func (h *Handler) cmdPause(r *reply, c Command) *cmdError {
	if err := args(c, 0, 1, "PAUSE [db]"); err != nil {
		return err
	}
	db := ""
	if len(c.Args) == 1 {
		db = c.Args[0]
		if isAdminDB(db) {
			return errorf(codeSyntax, "cannot pause the admin database %q", db)
		}
	}
	n := h.o.Shared.SetPaused(db, true)
	if n == 0 {
		if db != "" {
			r.warning("database %q has no pool yet: nothing was paused", db)
		} else {
			r.warning("no pools yet: nothing was paused")
		}
		r.complete("PAUSE")
		return nil
	}
	// Like PgBouncer, answer once the running transactions of the paused
	// pools have finished (bounded by PauseWait).
	deadline := time.Now().Add(h.o.PauseWait)
	for {
		busy, err := h.busyServers(db)
		if err != nil {
			return errorf(codeTimeout, "PAUSE: %v", err)
		}
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			r.warning("PAUSE: %d server connection(s) still in a transaction after %v; they finish normally and no new transaction starts", busy, h.o.PauseWait)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.complete("PAUSE")
	return nil
}

// busyServers counts server connections of db ("" = all) linked to a client.
func (h *Handler) busyServers(db string) (int, error) {
	pools, err := h.pools()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pools {
		if db == "" || p.Database == db {
			n += p.Servers[proxy.ServerActive]
		}
	}
	return n, nil
}

func (h *Handler) cmdResume(r *reply, c Command) *cmdError {
	if err := args(c, 0, 1, "RESUME [db]"); err != nil {
		return err
	}
	db := ""
	if len(c.Args) == 1 {
		db = c.Args[0]
	}
	h.o.Shared.SetPaused(db, false)
	h.o.Shared.KickAll()
	r.complete("RESUME")
	return nil
}

func (h *Handler) cmdReload(r *reply, c Command) *cmdError {
	if err := args(c, 0, 0, "RELOAD"); err != nil {
		return err
	}
	if err := h.o.Signal(syscall.SIGHUP); err != nil {
		return errorf(codeInternal, "RELOAD: %v", err)
	}
	r.complete("RELOAD")
	return nil
}

func (h *Handler) cmdShutdown(r *reply, c Command) *cmdError {
	if err := args(c, 0, 1, "SHUTDOWN [WAIT_FOR_SERVERS | WAIT_FOR_CLIENTS]"); err != nil {
		return err
	}
	if len(c.Args) == 1 && c.Args[0] != "wait_for_servers" && c.Args[0] != "wait_for_clients" {
		return errorf(codeSyntax, "SHUTDOWN %s: expected WAIT_FOR_SERVERS or WAIT_FOR_CLIENTS", c.Args[0])
	}
	r.notice("poolmgr is shutting down: running transactions finish (shutdown_timeout), then it exits")
	r.complete("SHUTDOWN")
	r.closeAfter = true
	sig := h.o.Signal
	log := h.o.Log
	// SIGTERM after the reply is on its way: graceful shutdown closes admin
	// sessions too.
	r.after = func() {
		time.AfterFunc(100*time.Millisecond, func() {
			if err := sig(syscall.SIGTERM); err != nil {
				log.Error("SHUTDOWN: signal failed", "err", err)
			}
		})
	}
	return nil
}

func (h *Handler) cmdKill(r *reply, c Command) *cmdError {
	if err := args(c, 1, 1, "KILL db"); err != nil {
		return err
	}
	db := c.Args[0]
	if isAdminDB(db) {
		return errorf(codeSyntax, "cannot kill the admin database %q", db)
	}
	type counts struct{ clients, servers int }
	res, err := perLoop(h.o.Shared, func(l *proxy.Loop) counts {
		cl, sv := l.KillDatabase(db)
		return counts{cl, sv}
	})
	if err != nil {
		return errorf(codeTimeout, "KILL: %v", err)
	}
	var total counts
	for _, x := range res {
		total.clients += x.clients
		total.servers += x.servers
	}
	r.notice("KILL %s: closed %d client and %d server connection(s)", db, total.clients, total.servers)
	r.complete("KILL")
	return nil
}

func (h *Handler) cmdReconnect(r *reply, c Command) *cmdError {
	if err := args(c, 0, 1, "RECONNECT [db]"); err != nil {
		return err
	}
	db := ""
	if len(c.Args) == 1 {
		db = c.Args[0]
	}
	res, err := perLoop(h.o.Shared, func(l *proxy.Loop) int { return l.ReconnectDatabase(db) })
	if err != nil {
		return errorf(codeTimeout, "RECONNECT: %v", err)
	}
	n := 0
	for _, x := range res {
		n += x
	}
	r.notice("RECONNECT: %d server connection(s) closed or closing when released", n)
	r.complete("RECONNECT")
	return nil
}

func (h *Handler) cmdDrain(r *reply, c Command) *cmdError {
	if err := args(c, 1, 1, c.Verb+" backend"); err != nil {
		return err
	}
	b := h.backend(c.Args[0])
	if b == nil {
		return errorf(codeUndefinedObject, "%s: unknown backend %q (SHOW BACKENDS lists them)", c.Verb, c.Args[0])
	}
	// Draining: no new transaction is assigned to the backend; running
	// ones finish, then their server connections close when released
	// (idle ones at the next tick). UNDRAIN puts it back in routing.
	b.SetDraining(strings.EqualFold(c.Verb, "DRAIN"))
	r.complete(strings.ToUpper(c.Verb))
	return nil
}

// backend finds a configured backend by "host:port".
func (h *Handler) backend(addr string) *proxy.Backend {
	for _, b := range h.o.Shared.Backends() {
		if strings.EqualFold(b.Addr, addr) {
			return b
		}
	}
	return nil
}

// perLoop runs fn on every loop (bounded by metrics.InspectTimeout) and
// returns the per-loop results in loop order.
func perLoop[T any](sh *proxy.Shared, fn func(*proxy.Loop) T) ([]T, error) {
	loops := sh.Loops()
	idx := make(map[*proxy.Loop]int, len(loops))
	for i, l := range loops {
		idx[l] = i
	}
	out := make([]T, len(loops))
	err := sh.InspectWithin(metrics.InspectTimeout, func(l *proxy.Loop) {
		if i, ok := idx[l]; ok {
			out[i] = fn(l)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pools returns the pools aggregated over the loops, sorted by (database, user).
func (h *Handler) pools() ([]proxy.PoolDetail, error) {
	res, err := perLoop(h.o.Shared, func(l *proxy.Loop) []proxy.PoolDetail {
		var out []proxy.PoolDetail
		l.EachPoolDetail(func(p proxy.PoolDetail) { out = append(out, p) })
		return out
	})
	if err != nil {
		return nil, err
	}
	type key struct{ db, user string }
	m := map[key]*proxy.PoolDetail{}
	var keys []key
	for _, part := range res {
		for _, p := range part {
			k := key{p.Database, p.User}
			a := m[k]
			if a == nil {
				cp := p
				m[k] = &cp
				keys = append(keys, k)
				continue
			}
			for i := range a.Clients {
				a.Clients[i] += p.Clients[i]
			}
			for i := range a.Servers {
				a.Servers[i] += p.Servers[i]
			}
			a.MaxWaitNanos = max(a.MaxWaitNanos, p.MaxWaitNanos)
			a.Paused = a.Paused || p.Paused
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].db != keys[j].db {
			return keys[i].db < keys[j].db
		}
		return keys[i].user < keys[j].user
	})
	out := make([]proxy.PoolDetail, len(keys))
	for i, k := range keys {
		out[i] = *m[k]
	}
	return out, nil
}
