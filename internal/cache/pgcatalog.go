package cache

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolmgr/poolmgr/internal/sqlscan"
)

// PgxResolver loads catalogs from PostgreSQL (the primary), keeping one
// connection per database between loads. Any user that can connect will do:
// only pg_catalog is read.
type PgxResolver struct {
	cfg *pgx.ConnConfig

	mu    sync.Mutex
	conns map[string]*pgx.Conn
	scan  *sqlscan.Scanner
}

// NewPgxResolver parses connString (a URL or key=value DSN; its dbname is
// replaced by the database being loaded).
func NewPgxResolver(connString string) (*PgxResolver, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("cache: catalog connection: %w", err)
	}
	prepare(cfg)
	return &PgxResolver{cfg: cfg, conns: map[string]*pgx.Conn{}, scan: sqlscan.NewScanner(nil)}, nil
}

// prepare sets what the cache's own connections need.
func prepare(cfg *pgx.ConnConfig) {
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 10*time.Second {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "poolmgr-cache"
	}
}

// Catalog queries. Relations of every schema but the system ones, temporary
// schemas included (their names are uncacheable: a session's temporary
// table hides a table of the same name).
const (
	relationsSQL = `SELECT n.nspname, c.relname, c.relkind::text, c.relpersistence::text, c.relrowsecurity,
  EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal),
  EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename <> '_RETURN'),
  EXISTS (SELECT 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid
          WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.provolatile = 'v'
            AND ((d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                  AND d.objid IN (SELECT a.oid FROM pg_catalog.pg_attrdef a WHERE a.adrelid = c.oid))
              OR (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                  AND d.objid IN (SELECT k.oid FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid)))),
  CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`

	// View -> relations its query reads (pg_depend of its _RETURN rule).
	viewDepsSQL = `SELECT DISTINCT v.relname, b.relname
FROM pg_catalog.pg_rewrite r
JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> r.ev_class
JOIN pg_catalog.pg_class b ON b.oid = d.refobjid`

	// Child -> parent (inheritance and partitions).
	inheritsSQL = `SELECT c.relname, p.relname FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid JOIN pg_catalog.pg_class p ON p.oid = i.inhparent`

	// Referenced -> referencing (foreign keys).
	foreignKeysSQL = `SELECT DISTINCT r.relname, c.relname FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
WHERE k.contype = 'f'`
)

// Load reads the catalog of db.
func (p *PgxResolver) Load(ctx context.Context, db string) (*Catalog, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	conn := p.conns[db]
	if conn == nil || conn.IsClosed() {
		cfg := p.cfg.Copy()
		cfg.Database = db
		var err error
		conn, err = pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		p.conns[db] = conn
	}
	cat, err := p.load(ctx, conn)
	if err != nil {
		closeConn(conn)
		delete(p.conns, db)
		return nil, err
	}
	return cat, nil
}

func (p *PgxResolver) load(ctx context.Context, conn *pgx.Conn) (*Catalog, error) {
	var rels []Relation
	ix := map[string][]int{} // name -> indexes in rels
	rows, err := conn.Query(ctx, relationsSQL)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var schema, name, kind, persistence string
		var rls, triggers, rules, userFuncs bool
		var viewdef *string
		if err := rows.Scan(&schema, &name, &kind, &persistence, &rls, &triggers, &rules, &userFuncs, &viewdef); err != nil {
			rows.Close()
			return nil, err
		}
		r := Relation{Schema: schema, Name: name}
		switch kind {
		case "f", "S": // foreign data, sequences: change without writes through us
			r.NoCache = true
		case "v": // writes through a view reach its relations or triggers
			r.WritesAnywhere = true
			if viewdef == nil || p.volatileView(*viewdef) {
				r.NoCache = true
			}
		}
		if persistence == "t" || rls {
			r.NoCache = true
		}
		if triggers || rules || userFuncs {
			r.WritesAnywhere = true
		}
		ix[name] = append(ix[name], len(rels))
		rels = append(rels, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	edges := func(sql string, add func(a, b string)) error {
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a, b string
			if err := rows.Scan(&a, &b); err != nil {
				return err
			}
			add(a, b)
		}
		return rows.Err()
	}
	each := func(name string, f func(r *Relation)) {
		for _, i := range ix[name] {
			f(&rels[i])
		}
	}
	if err := edges(viewDepsSQL, func(view, base string) {
		each(view, func(r *Relation) { r.Reads = append(r.Reads, base) })
	}); err != nil {
		return nil, err
	}
	if err := edges(inheritsSQL, func(child, parent string) {
		each(parent, func(r *Relation) {
			r.Reads = append(r.Reads, child)
			r.Changes = append(r.Changes, child)
		})
	}); err != nil {
		return nil, err
	}
	if err := edges(foreignKeysSQL, func(referenced, referencing string) {
		each(referenced, func(r *Relation) { r.Changes = append(r.Changes, referencing) })
	}); err != nil {
		return nil, err
	}
	return &Catalog{Relations: rels}, nil
}

// volatileView reports whether a view's definition (pg_get_viewdef) calls
// a function that makes its result change without a write: volatile or
// stable built-ins (now(), random(), current_user ...) and every unknown
// (user-defined) function.
func (p *PgxResolver) volatileView(def string) bool {
	st := p.scan.ClassifyOne([]byte(def))
	return st.Volatile || st.Unsure || st.Write
}

// Close closes the connections.
func (p *PgxResolver) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for db, c := range p.conns {
		closeConn(c)
		delete(p.conns, db)
	}
	return nil
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
