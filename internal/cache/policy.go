package cache

import (
	"bytes"
	"time"

	"github.com/poolmgr/poolmgr/internal/sqlscan"
)

// Cacheable reports whether the result of a classified statement may be
// cached: a SELECT, VALUES or TABLE that is provably read-only
// (RouteReplicaOK), writes nothing, is not Unsure, reads no system
// relation, and is not volatile (now(), random(), current_user ...). The
// hint poolmgr:cache lets a volatile read be cached for the TTL anyway (the
// user accepts a result up to TTL old); poolmgr:nocache is never cached.
// The caller also checks Enabled and that the statement runs in its own
// implicit transaction (see doc.go, "Caller contract").
func Cacheable(st *sqlscan.Statement) bool {
	if st.Hint&sqlscan.HintNoCache != 0 || st.Write || st.Unsure || st.Route != sqlscan.RouteReplicaOK {
		return false
	}
	switch st.Kind {
	case sqlscan.KindSelect, sqlscan.KindValues, sqlscan.KindTable:
	default:
		return false
	}
	if st.Volatile && st.Hint&sqlscan.HintCache == 0 {
		return false
	}
	for i := range st.Tables {
		if st.Tables[i].System {
			return false
		}
	}
	return true
}

// writeScope says how far a statement's writes reach; ok is false when it
// writes nothing.
func writeScope(st *sqlscan.Statement) (sc scope, ok bool) {
	switch st.Kind {
	case sqlscan.KindPrepare, sqlscan.KindDeallocate, sqlscan.KindBegin, sqlscan.KindRollback,
		sqlscan.KindSavepoint, sqlscan.KindCommit, sqlscan.KindEmpty:
		return 0, false // PREPARE writes when EXECUTEd (Unsure: whole database)
	case sqlscan.KindDDL:
		// TRUNCATE and REFRESH MATERIALIZED VIEW change data, not the schema.
		if (hasPrefixFold(st.Text, "truncate") || hasPrefixFold(st.Text, "refresh")) && hasWriteRef(st) {
			return scopeTables, true
		}
		return scopeSchema, true
	case sqlscan.KindDo, sqlscan.KindCall, sqlscan.KindExecute, sqlscan.KindOther, sqlscan.KindTwoPhase:
		return scopeSchema, true // unknown code ran: anything may have changed
	case sqlscan.KindInsert, sqlscan.KindUpdate, sqlscan.KindDelete, sqlscan.KindMerge, sqlscan.KindCopyFrom,
		sqlscan.KindSelect, sqlscan.KindValues, sqlscan.KindTable, sqlscan.KindExplain, sqlscan.KindCopyTo:
		switch {
		case !st.Write:
			return 0, false
		case st.Unsure:
			return scopeSchema, true // calls an unknown function
		case !hasWriteRef(st):
			return scopeData, true // a known write function (nextval, lo_*, dblink ...)
		}
		return scopeTables, true
	}
	if st.Write {
		return scopeSchema, true
	}
	return 0, false
}

func hasWriteRef(st *sqlscan.Statement) bool {
	for i := range st.Tables {
		if st.Tables[i].Write {
			return true
		}
	}
	return false
}

func hasPrefixFold(b []byte, lower string) bool {
	return len(b) >= len(lower) && bytes.EqualFold(b[:len(lower)], []byte(lower))
}

// InvalidateStatement applies a committed statement that ran outside a
// transaction block: tables it writes (InvalidateRefs), a whole database
// for writes of unknown reach (known write functions: InvalidateData), and
// a whole database plus a catalog reload for DDL, DO, CALL, EXECUTE, two-
// phase commits and calls of unknown functions (InvalidateDatabase). Reads
// do nothing. Inside transaction blocks use Writes.
func (c *Cache) InvalidateStatement(db string, st *sqlscan.Statement) {
	sc, ok := writeScope(st)
	if !ok {
		return
	}
	switch sc {
	case scopeTables:
		if hasSystemWrite(st) {
			c.InvalidateData(db)
			return
		}
		c.InvalidateRefs(db, st.Tables)
	case scopeData:
		c.InvalidateData(db)
	default:
		c.InvalidateDatabase(db)
	}
}

func hasSystemWrite(st *sqlscan.Statement) bool {
	for i := range st.Tables {
		if r := &st.Tables[i]; r.Write && (r.System || isSystem(bstr(r.Schema), bstr(r.Name))) {
			return true
		}
	}
	return false
}

// Writes collects the writes of a transaction block, to be applied with
// InvalidateWrites when it commits (or when its outcome is unknown: a lost
// connection during COMMIT). A rolled-back transaction is just Reset. It
// copies names into its own buffer and allocates nothing once grown. Not
// safe for concurrent use.
type Writes struct {
	scope scope
	any   bool
	arena []byte
	ends  []int
}

// Reset empties w.
func (w *Writes) Reset() {
	w.scope, w.any = scopeTables, false
	w.arena = w.arena[:0]
	w.ends = w.ends[:0]
}

// Empty reports whether nothing was written.
func (w *Writes) Empty() bool { return !w.any }

// Add records the writes of one statement of the transaction.
func (w *Writes) Add(st *sqlscan.Statement) {
	sc, ok := writeScope(st)
	if !ok {
		return
	}
	w.any = true
	if sc == scopeTables && hasSystemWrite(st) {
		sc = scopeData
	}
	if sc > w.scope {
		w.scope = sc
	}
	if w.scope != scopeTables {
		w.arena, w.ends = w.arena[:0], w.ends[:0]
		return
	}
	for i := range st.Tables {
		if r := &st.Tables[i]; r.Write {
			w.arena = append(w.arena, r.Name...)
			w.ends = append(w.ends, len(w.arena))
		}
	}
}

// AddDatabase records a write of unknown reach (whole database, catalog
// reloaded), e.g. for a statement the caller could not classify.
func (w *Writes) AddDatabase() {
	w.any = true
	w.scope = scopeSchema
	w.arena, w.ends = w.arena[:0], w.ends[:0]
}

// InvalidateWrites applies the writes of a committed transaction of db.
// It does not Reset w.
func (c *Cache) InvalidateWrites(db string, w *Writes) {
	if !w.any {
		return
	}
	now := time.Now().UnixNano()
	if w.scope != scopeTables {
		c.invalidate(db, w.scope, 0, nil, now, true)
		return
	}
	c.invalidate(db, scopeTables, len(w.ends), func(i int) (string, string) {
		start := 0
		if i > 0 {
			start = w.ends[i-1]
		}
		return "", bstr(w.arena[start:w.ends[i]])
	}, now, true)
}
