-- psql script run through poolmgr by TestPsqlScript (psql -X -f psql_script.sql).
-- The schema e2e_psql is (re)created empty by the test; the script runs in the
-- test's temp dir, next to items.csv.
CREATE TABLE e2e_psql.items (
    id    integer PRIMARY KEY,
    name  text NOT NULL,
    price numeric(10,2)
);
CREATE INDEX items_name_idx ON e2e_psql.items (name);
INSERT INTO e2e_psql.items VALUES (1, 'apple', 1.50), (2, 'banana', 0.25);
\copy e2e_psql.items FROM 'items.csv' WITH (FORMAT csv, HEADER true)
SELECT id, name, price FROM e2e_psql.items ORDER BY id;
-- A failing statement: ON_ERROR_STOP is off, the script goes on.
INSERT INTO e2e_psql.items VALUES (1, 'duplicate', 0);
SELECT count(*) AS n, sum(price) AS total FROM e2e_psql.items;
BEGIN;
UPDATE e2e_psql.items SET price = price * 2 WHERE id = 1;
SELECT price FROM e2e_psql.items WHERE id = 1;
ROLLBACK;
SELECT price FROM e2e_psql.items WHERE id = 1;
BEGIN;
DELETE FROM e2e_psql.items WHERE id = 5;
COMMIT;
ALTER TABLE e2e_psql.items ADD COLUMN note text DEFAULT 'n/a';
UPDATE e2e_psql.items SET note = NULL WHERE id = 2;
\pset null '<null>'
SELECT id, note FROM e2e_psql.items WHERE id <= 3 ORDER BY id;
\copy (SELECT id, name, price FROM e2e_psql.items ORDER BY id) TO STDOUT WITH (FORMAT csv)
\copy (SELECT id, name, price, note FROM e2e_psql.items ORDER BY id) TO 'items_out.csv' WITH (FORMAT csv, HEADER true)
SELECT 'before stop' AS step \gset
\echo :step
\set ON_ERROR_STOP on
SELECT 1 / 0 AS boom;
SELECT 'not reached' AS never;
