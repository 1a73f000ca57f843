package sqlscan

// Kind is the type of a statement, taken from its leading keyword(s).
type Kind uint8

// Statement kinds. The zero Kind is KindOther.
const (
	KindOther      Kind = iota // not recognised (Unsure is set), or CHECKPOINT, LOAD ...
	KindEmpty                  // no statement: only white space, comments or ';'
	KindSelect                 // SELECT, WITH ... SELECT, (SELECT ...), SELECT INTO
	KindInsert                 // INSERT, WITH ... INSERT
	KindUpdate                 // UPDATE, WITH ... UPDATE
	KindDelete                 // DELETE, WITH ... DELETE
	KindMerge                  // MERGE
	KindCopyFrom               // COPY ... FROM
	KindCopyTo                 // COPY ... TO
	KindDDL                    // CREATE ALTER DROP TRUNCATE COMMENT REINDEX CLUSTER REFRESH SECURITY GRANT REVOKE IMPORT REASSIGN
	KindBegin                  // BEGIN, START TRANSACTION
	KindCommit                 // COMMIT, END
	KindRollback               // ROLLBACK, ABORT (not ROLLBACK TO)
	KindSavepoint              // SAVEPOINT, RELEASE, ROLLBACK TO
	KindTwoPhase               // PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED
	KindSet                    // SET, RESET, SET TRANSACTION, SET SESSION CHARACTERISTICS
	KindShow                   // SHOW
	KindPrepare                // PREPARE name AS ...
	KindExecute                // EXECUTE
	KindDeallocate             // DEALLOCATE
	KindDiscard                // DISCARD
	KindListen                 // LISTEN
	KindNotify                 // NOTIFY
	KindUnlisten               // UNLISTEN
	KindExplain                // EXPLAIN
	KindValues                 // VALUES
	KindTable                  // TABLE name
	KindCall                   // CALL
	KindDo                     // DO
	KindLock                   // LOCK
	KindVacuum                 // VACUUM, ANALYZE
	KindCursor                 // DECLARE, FETCH, MOVE, CLOSE
	numKinds
)

var kindNames = [numKinds]string{
	KindOther: "OTHER", KindEmpty: "EMPTY", KindSelect: "SELECT", KindInsert: "INSERT",
	KindUpdate: "UPDATE", KindDelete: "DELETE", KindMerge: "MERGE", KindCopyFrom: "COPY FROM",
	KindCopyTo: "COPY TO", KindDDL: "DDL", KindBegin: "BEGIN", KindCommit: "COMMIT",
	KindRollback: "ROLLBACK", KindSavepoint: "SAVEPOINT", KindTwoPhase: "TWO-PHASE",
	KindSet: "SET", KindShow: "SHOW", KindPrepare: "PREPARE", KindExecute: "EXECUTE",
	KindDeallocate: "DEALLOCATE", KindDiscard: "DISCARD", KindListen: "LISTEN",
	KindNotify: "NOTIFY", KindUnlisten: "UNLISTEN", KindExplain: "EXPLAIN", KindValues: "VALUES",
	KindTable: "TABLE", KindCall: "CALL", KindDo: "DO", KindLock: "LOCK", KindVacuum: "VACUUM",
	KindCursor: "CURSOR",
}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "Kind(?)"
}

// Route says where a statement may run. The zero Route is RoutePrimary.
type Route uint8

const (
	RoutePrimary   Route = iota // must run on the primary (writes, locks, session state, anything unsure)
	RouteReplicaOK              // provably read-only: a hot standby can run it
)

func (r Route) String() string {
	if r == RouteReplicaOK {
		return "replica-ok"
	}
	return "primary"
}

// Hint is a set of poolmgr directives found in comments of a statement, such
// as /* poolmgr:replica */ or -- poolmgr:primary,nocache.
type Hint uint8

const (
	HintPrimary Hint = 1 << iota // poolmgr:primary
	HintReplica                  // poolmgr:replica (never set together with HintPrimary)
	HintCache                    // poolmgr:cache
	HintNoCache                  // poolmgr:nocache (never set together with HintCache)
)

func (h Hint) String() string {
	var b []byte
	for i, s := range [...]string{"primary", "replica", "cache", "nocache"} {
		if h&(1<<i) != 0 {
			if b != nil {
				b = append(b, ',')
			}
			b = append(b, s...)
		}
	}
	return string(b)
}

// Access is a transaction access mode set as a session default.
type Access uint8

const (
	AccessUnchanged Access = iota // the statement does not change the default
	AccessReadOnly                // default_transaction_read_only = on
	AccessReadWrite               // default_transaction_read_only = off
	AccessReset                   // back to the server's default (RESET, SET ... TO DEFAULT, DISCARD ALL)
)

func (a Access) String() string {
	return [...]string{"unchanged", "read-only", "read-write", "reset"}[a&3]
}

// TableRef is a relation named by a statement. Names are normalised the way
// PostgreSQL does: unquoted names are folded to lower case (ASCII only),
// quoted names keep their case with "" unescaped, and names are cut to 63
// bytes. The byte slices point into the input or into the Scanner's scratch
// space: copy them to keep them past the next call.
type TableRef struct {
	Schema []byte // nil when the name is not schema-qualified (a database part is dropped)
	Name   []byte
	// Write is set when the statement targets the relation: INSERT, UPDATE,
	// DELETE, MERGE INTO, COPY FROM, SELECT INTO, TRUNCATE, LOCK, REFRESH
	// MATERIALIZED VIEW, CREATE/ALTER/DROP TABLE|VIEW|MATERIALIZED VIEW|
	// FOREIGN TABLE, CREATE INDEX|TRIGGER ... ON. Relations only read
	// (FROM, JOIN, USING, TABLE, COPY TO, also under SELECT ... FOR UPDATE)
	// have Write false. A relation named twice is listed once (in all but
	// huge statements, naming hundreds of relations).
	Write bool
	// System is set for pg_catalog, information_schema and pg_toast
	// relations and for unqualified names starting with "pg_".
	System bool
}

// Statement is the classification of one SQL statement.
type Statement struct {
	// Text is the statement from its first to its last token: no leading
	// comments, no terminating ';'. It points into the input.
	Text []byte
	// Tables lists the relations named by the statement, in order of first
	// appearance, excluding references to CTE names. Valid until the next
	// call on the Scanner.
	Tables []TableRef
	Kind   Kind
	// Route is RouteReplicaOK only when the statement is provably read-only
	// and safe on a hot standby; anything else, and anything unsure, is
	// RoutePrimary. Hints do not change Route: the caller applies them.
	Route Route
	Hint  Hint
	// DefaultAccess reports a change of the session's default transaction
	// access mode (SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY,
	// SET default_transaction_read_only ..., RESET ALL, DISCARD ALL).
	DefaultAccess Access
	// BeginsTx: BEGIN, START TRANSACTION, COMMIT/ROLLBACK AND CHAIN.
	BeginsTx bool
	// EndsTx: COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION (not
	// ROLLBACK TO SAVEPOINT, not COMMIT PREPARED).
	EndsTx bool
	// ReadOnlyTx: BEGIN/START TRANSACTION/SET TRANSACTION ... READ ONLY, or
	// SET transaction_read_only = on.
	ReadOnlyTx bool
	// Write: the statement may change database contents or schema: DML,
	// DDL, COPY FROM, SELECT INTO, CALL, DO, EXECUTE, EXPLAIN ANALYZE of a
	// write, calls of write functions, and calls of unknown functions unless
	// Options.AssumeFunctionsReadOnly. LOCK, SELECT FOR UPDATE, VACUUM, SET,
	// LISTEN/NOTIFY go to the primary without Write.
	Write bool
	// Volatile: the result may differ between two runs with the same data:
	// volatile or stable functions (now(), random(), current_user ...),
	// unknown functions, write functions, 'now'-like literals, system
	// catalog reads. A cache must not keep such results.
	Volatile bool
	// Unsure: the classifier could not classify the statement with
	// confidence (unknown statement, EXECUTE, unknown function, unterminated
	// literal or comment, a '...\'' literal whose end depends on
	// standard_conforming_strings). Route is then RoutePrimary.
	Unsure bool
}
