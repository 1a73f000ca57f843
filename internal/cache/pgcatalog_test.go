package cache

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPgxResolverLive creates relations of every kind in a scratch schema
// of the test cluster's app database and checks what the resolver reports.
func TestPgxResolverLive(t *testing.T) {
	addr := pgAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString(addr, "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	p := fmt.Sprintf("ct%d_", os.Getpid()) // bare names are merged over schemas: keep them unique
	schema := p + "schema"
	ddl := "CREATE SCHEMA " + schema + ";" + strings.NewReplacer("S.", schema+".", "P_", p).Replace(`
CREATE TABLE S.P_base (id int PRIMARY KEY, v text);
CREATE TABLE S.P_other (id int);
CREATE VIEW S.P_view AS SELECT id, v FROM S.P_base;
CREATE VIEW S.P_view2 AS SELECT v.id, o.id AS oid FROM S.P_view v JOIN S.P_other o ON o.id = v.id;
CREATE VIEW S.P_volatile AS SELECT id, now() AS at FROM S.P_base;
CREATE VIEW S.P_over_volatile AS SELECT id FROM S.P_volatile;
CREATE MATERIALIZED VIEW S.P_mat AS SELECT count(*) FROM S.P_base;
CREATE TABLE S.P_child (base_id int REFERENCES S.P_base (id) ON DELETE CASCADE);
CREATE TABLE S.P_parted (k int, x text) PARTITION BY RANGE (k);
CREATE TABLE S.P_part1 PARTITION OF S.P_parted FOR VALUES FROM (0) TO (100);
CREATE TABLE S.P_rls (id int);
ALTER TABLE S.P_rls ENABLE ROW LEVEL SECURITY;
CREATE SEQUENCE S.P_seq;
CREATE FUNCTION S.P_trig() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN INSERT INTO `+schema+`.`+p+`other VALUES (1); RETURN NEW; END';
CREATE TABLE S.P_triggered (id int);
CREATE TRIGGER P_t AFTER INSERT ON S.P_triggered FOR EACH ROW EXECUTE FUNCTION S.P_trig();
CREATE FUNCTION S.P_next() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
CREATE TABLE S.P_defaulted (id int DEFAULT S.P_next());
`)
	if _, err := conn.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")

	r, err := NewPgxResolver(connString(addr, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cat, err := r.Load(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	rels := map[string]Relation{}
	for _, rel := range cat.Relations {
		if strings.HasPrefix(rel.Name, p) {
			rels[strings.TrimPrefix(rel.Name, p)] = rel
		}
	}
	check := func(name string, noCache, writesAll bool, reads, changes []string) {
		t.Helper()
		rel, ok := rels[name]
		if !ok {
			t.Errorf("%s missing", name)
			return
		}
		strip := func(l []string) []string {
			var out []string
			for _, s := range l {
				out = append(out, strings.TrimPrefix(s, p))
			}
			slices.Sort(out)
			return slices.Compact(out)
		}
		if rel.NoCache != noCache || rel.WritesAnywhere != writesAll ||
			!slices.Equal(strip(rel.Reads), reads) || !slices.Equal(strip(rel.Changes), changes) {
			t.Errorf("%s = nocache %v writesAll %v reads %v changes %v; want %v %v %v %v", name,
				rel.NoCache, rel.WritesAnywhere, strip(rel.Reads), strip(rel.Changes), noCache, writesAll, reads, changes)
		}
	}
	check("base", false, false, nil, []string{"child"})
	check("other", false, false, nil, nil)
	check("view", false, true, []string{"base"}, nil)
	check("view2", false, true, []string{"other", "view"}, nil)
	check("volatile", true, true, []string{"base"}, nil)
	check("over_volatile", false, true, []string{"volatile"}, nil) // NoCache spreads in applyCatalog
	check("mat", false, false, nil, nil)
	check("child", false, false, nil, nil)
	check("parted", false, false, []string{"part1"}, []string{"part1"})
	check("part1", false, false, nil, nil)
	check("rls", true, false, nil, nil)
	check("seq", true, false, nil, nil)
	check("triggered", false, true, nil, nil)
	check("defaulted", false, true, nil, nil)

	// End to end with a Cache: the loop loads app, a write to base
	// invalidates view2 (through view), over_volatile is not cacheable.
	c := newTestCache(t, Config{})
	if err := c.StartCatalog(ctx, connString(addr, "postgres")); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool {
		s := c.Snapshot("app", tbl(p+"view2"))
		return s.Cacheable()
	}) {
		t.Fatalf("catalog not loaded: %+v", c.Stats())
	}
	put(c, "app", "v2", "x", p+"view2")
	c.Invalidate("app", []Table{{Schema: schema, Name: p + "base"}})
	if _, ok := get(c, "app", "v2"); ok {
		t.Error("write to base did not invalidate a view over a view over it")
	}
	if s := c.Snapshot("app", tbl(p+"over_volatile")); s.Cacheable() {
		t.Error("view over a volatile view cacheable")
	}
	// A table created through poolmgr: InvalidateDatabase reloads at once.
	if _, err := conn.Exec(ctx, "CREATE TABLE "+schema+"."+p+"late (id int)"); err != nil {
		t.Fatal(err)
	}
	c.InvalidateDatabase("app")
	if !waitFor(10*time.Second, func() bool {
		s := c.Snapshot("app", tbl(p+"late"))
		return s.Cacheable()
	}) {
		t.Fatal("new table not cacheable after the reload")
	}
}
