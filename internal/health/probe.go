package health

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poolmgr/poolmgr/internal/config"
)

// Query is the one statement a probe runs. LSNs come back as text
// ("16/B374D848"), the replay age as seconds, a primary's timeline from the
// name of its current WAL file.
const Query = `SELECT pg_is_in_recovery(),
  COALESCE((CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text, '0/0'),
  COALESCE(pg_last_wal_receive_lsn()::text, '0/0'),
  EXISTS (SELECT 1 FROM pg_stat_wal_receiver),
  CASE WHEN pg_is_in_recovery() THEN 0 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  (CASE WHEN pg_is_in_recovery() THEN COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) ELSE 0 END)::float8`

// Target is what a probe connects to.
type Target struct {
	Addr     string // "host:port" or "/socket/dir:port", as in pool.backends
	User     string
	Password string
	DBName   string
}

// Sample is one probe's result.
type Sample struct {
	InRecovery bool          // pg_is_in_recovery(): a standby
	LSN        uint64        // standby: pg_last_wal_replay_lsn(); primary: pg_current_wal_insert_lsn() (covers commits still in WAL buffers with synchronous_commit = off)
	ReceiveLSN uint64        // standby: pg_last_wal_receive_lsn(), 0 if none
	Streaming  bool          // standby: a WAL receiver runs (pg_stat_wal_receiver has a row)
	Timeline   uint32        // primary: its current timeline (0 on a standby)
	ReplayAge  time.Duration // standby: now() - pg_last_xact_replay_timestamp(), 0 if none
}

// lagSlackBytes: when the receive position sits on a WAL page boundary,
// replay may trail it by less than a page and still be caught up — the
// primary streams pages that can end in the middle of a record (seen:
// receive 0/1EE0C000, replay 0/1EE0BFE0).
const lagSlackBytes = 8192

// Lag is the standby's replication lag as the sample alone tells: 0 on a
// primary and on a standby that has replayed everything it received, else the
// age of its last replayed transaction (see the package documentation; the
// Checker also compares with the primary's LSN, see StandbyLag).
func (s Sample) Lag() time.Duration {
	if !s.InRecovery {
		return 0
	}
	// Replayed everything received, or all but the tail of a record cut at a
	// page boundary (the primary sends whole pages): no lag.
	if s.ReceiveLSN != 0 && (s.LSN >= s.ReceiveLSN ||
		(s.ReceiveLSN%lagSlackBytes == 0 && s.LSN+lagSlackBytes >= s.ReceiveLSN)) {
		return 0
	}
	return max(s.ReplayAge, 0)
}

// StandbyLag is the lag the Checker reports: s.Lag(), except for a standby
// with no WAL receiver running while a live primary (primaryLSN, measured
// before s; 0 when no primary is known) is ahead of it. Such a standby is cut
// off from the primary: having replayed all it received says nothing, so the
// age of its last replayed transaction is used. Without a live primary (it
// is down, failover pending) the standby is as fresh as it can get and keeps
// s.Lag().
func StandbyLag(s Sample, primaryLSN uint64) (lag time.Duration, cutOff bool) {
	if s.InRecovery && !s.Streaming && primaryLSN != 0 && s.LSN < primaryLSN {
		return max(s.ReplayAge, 0), true
	}
	return s.Lag(), false
}

// ProbeFunc runs one health check against t. It must return when ctx is done.
type ProbeFunc func(ctx context.Context, t Target) (Sample, error)

// ParseLSN converts a PostgreSQL pg_lsn in text form ("16/B374D848") to its
// 64-bit value.
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	return h<<32 | l, nil
}

// FormatLSN is the inverse of ParseLSN.
func FormatLSN(v uint64) string { return fmt.Sprintf("%X/%X", v>>32, uint32(v)) }

// secondsToDuration converts a (possibly fractional) number of seconds.
func secondsToDuration(s float64) time.Duration {
	switch {
	case math.IsNaN(s) || s <= 0:
		return 0
	case s >= float64(math.MaxInt64)/float64(time.Second):
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

// PgxProber probes with pgx, keeping one connection per backend address
// between checks. Probe may be called concurrently for different addresses,
// not for the same one.
type PgxProber struct {
	mu    sync.Mutex
	conns map[string]*probeConn
}

type probeConn struct {
	t Target
	c *pgx.Conn
}

// NewPgxProber returns a prober with no connections yet.
func NewPgxProber() *PgxProber { return &PgxProber{conns: map[string]*probeConn{}} }

// Probe runs Query on t.Addr, reusing the connection of the previous probe
// when its target is unchanged. If a reused connection fails with anything
// but a server error, it is replaced by a new one once (a connection closed
// by the server while idle is not a failed check).
func (p *PgxProber) Probe(ctx context.Context, t Target) (Sample, error) {
	p.mu.Lock()
	pc := p.conns[t.Addr]
	delete(p.conns, t.Addr)
	p.mu.Unlock()
	if pc != nil && (pc.t != t || pc.c.IsClosed()) {
		closeConn(pc.c)
		pc = nil
	}
	reused := pc != nil
	if pc == nil {
		c, err := connect(ctx, t)
		if err != nil {
			return Sample{}, err
		}
		pc = &probeConn{t: t, c: c}
	}
	s, err := runQuery(ctx, pc.c)
	if err != nil && reused && ctx.Err() == nil && !isServerError(err) {
		closeConn(pc.c)
		c, cerr := connect(ctx, t)
		if cerr != nil {
			return Sample{}, cerr
		}
		pc.c = c
		s, err = runQuery(ctx, pc.c)
	}
	if err != nil {
		closeConn(pc.c)
		return Sample{}, err
	}
	p.mu.Lock()
	if old := p.conns[t.Addr]; old != nil { // cannot happen with one probe per address
		closeConn(old.c)
	}
	p.conns[t.Addr] = pc
	p.mu.Unlock()
	return s, nil
}

// Retain closes the connections of addresses for which keep returns false.
func (p *PgxProber) Retain(keep func(addr string) bool) {
	p.mu.Lock()
	var drop []*probeConn
	for a, pc := range p.conns {
		if !keep(a) {
			drop = append(drop, pc)
			delete(p.conns, a)
		}
	}
	p.mu.Unlock()
	for _, pc := range drop {
		closeConn(pc.c)
	}
}

// Close closes every connection. The prober stays usable.
func (p *PgxProber) Close() { p.Retain(func(string) bool { return false }) }

// Conns returns the number of open connections (tests).
func (p *PgxProber) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = c.Close(ctx)
}

// kv quotes a value for a keyword/value connection string.
func kv(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, `'`, `\'`)
	return "'" + v + "'"
}

func connect(ctx context.Context, t Target) (*pgx.Conn, error) {
	// A Unix-socket backend's host is its directory: pgx connects to the
	// socket file in it (host=/var/run/postgresql port=5432).
	host, port, err := config.SplitBackendAddr(t.Addr)
	if err != nil {
		return nil, err
	}
	cs := fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable application_name=poolmgr-health",
		kv(host), kv(port), kv(t.User), kv(t.DBName))
	cfg, err := pgx.ParseConfig(cs)
	if err != nil {
		return nil, err
	}
	cfg.Password = t.Password // not in the string: keeps it out of error messages
	cfg.Fallbacks = nil
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.StatementCacheCapacity = 0
	cfg.DescriptionCacheCapacity = 0
	return pgx.ConnectConfig(ctx, cfg)
}

func runQuery(ctx context.Context, c *pgx.Conn) (Sample, error) {
	var (
		s          Sample
		lsn, recvd string
		tli        int32
		replayAgeS float64
	)
	if err := c.QueryRow(ctx, Query).Scan(&s.InRecovery, &lsn, &recvd, &s.Streaming, &tli, &replayAgeS); err != nil {
		return Sample{}, err
	}
	s.Timeline = uint32(tli)
	var err error
	if s.LSN, err = ParseLSN(lsn); err != nil {
		return Sample{}, err
	}
	if s.ReceiveLSN, err = ParseLSN(recvd); err != nil {
		return Sample{}, err
	}
	s.ReplayAge = secondsToDuration(replayAgeS)
	return s, nil
}

// isServerError reports whether err is an error the server sent.
func isServerError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// IsConfigError reports whether err says the health check is misconfigured
// (authentication, unknown database, privileges) rather than the backend
// unavailable. Such errors do not count as failed checks.
func IsConfigError(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return strings.HasPrefix(pe.Code, "28") || pe.Code == "3D000" || pe.Code == "42501"
}
