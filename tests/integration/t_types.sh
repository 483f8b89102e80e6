#!/usr/bin/env bash
# Values and DDL shapes that replication gets wrong: every usual type with its edge values
# (NaN and infinities, NULL vs empty, arrays with NULLs, hostile enum labels, big TOASTed
# values left unchanged by an update), a generated column, dropped columns, a primary key
# update, REPLICA IDENTITY FULL with exact duplicate rows and a json column, TRUNCATE of
# several tables with CASCADE and RESTART IDENTITY, ADD COLUMN mid-stream, and a
# cross-partition UPDATE; then, with the applier paused so that rows go out in multi-row
# statements, every value moved to another row and a key of char(n), bit(n), numeric(p,s),
# timestamp(0) and varchar(n) updated and deleted by. All of it is written after the slot
# exists, so all of it is streamed.
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 17

ok "source and target start" eval 'pg_start SRC && pg_start DST' || bail_out "setup failed"

ok "schema on the source" psql_file SRC - <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'say "hi"', 'it''s, like, ü');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text, c numeric);
CREATE TABLE alltypes (
	id int PRIMARY KEY,
	dropped_first text,
	n numeric, n2 numeric(12,3), f4 real, f8 double precision,
	i2 smallint, i8 bigint, b boolean,
	t text, vc varchar(10), ch char(5),
	ts timestamp, tstz timestamptz, d date, tm time, tmtz timetz, iv interval,
	ba bytea, u uuid, j json, jb jsonb,
	ia int[], ta text[], ia2 int[][], e mood, ea mood[], dom posint, comp pair,
	ip inet, net cidr, mac macaddr, bits varbit(16), mon money, pt point,
	r int4range, tsr tstzrange, tsv tsvector, x xml,
	gen bigint GENERATED ALWAYS AS (id * 10 + coalesce(i2, 0)) STORED,
	dropped_last text
);
ALTER TABLE alltypes DROP COLUMN dropped_first, DROP COLUMN dropped_last;

CREATE TABLE dupes (a int, b text, j json, f float8);
ALTER TABLE dupes REPLICA IDENTITY FULL;

CREATE TABLE parent_t (id serial PRIMARY KEY, v text);
CREATE TABLE child_t (id serial PRIMARY KEY, parent_id int NOT NULL REFERENCES parent_t (id), v text);
CREATE TABLE other_t (id bigserial PRIMARY KEY, v text);

-- a key of types whose names carry a length or precision (char(n), bit(n), numeric(p,s), ...)
CREATE TABLE typed_keys (c char(6), b bit(4), n numeric(8,2), ts timestamp(0), v varchar(5), payload char(8),
	PRIMARY KEY (c, b, n, ts, v));

CREATE TABLE measurements (id int, region text, v numeric, PRIMARY KEY (id, region))
	PARTITION BY LIST (region);
CREATE TABLE measurements_eu PARTITION OF measurements FOR VALUES IN ('eu');
CREATE TABLE measurements_us PARTITION OF measurements FOR VALUES IN ('us');
CREATE TABLE measurements_other PARTITION OF measurements DEFAULT;
SQL
ok "schema copied to the target (without the dropped columns)" copy_schema SRC DST

agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN"
ok "the agent creates its replication slot" wait_slot SRC 30

ok "edge values inserted, updated, deleted on the source" psql_file SRC - <<'SQL'
-- All NULL; all empty; special numbers; text and bytea with every escape; dates at the edges;
-- arrays with NULLs and quotes; json kept byte for byte; composites; big TOASTed values.
INSERT INTO alltypes (id) VALUES (1);
INSERT INTO alltypes (id, t, vc, ch, ba, ta, ia, j, jb, bits, tsv, x, comp, ea)
VALUES (2, '', '', '', '', '{}', '{}', '""', '{}', B'', '', '', ROW(NULL, '', NULL), '{}');
INSERT INTO alltypes (id, n, n2, f4, f8, i2, i8, b, mon, dom)
VALUES (3, 'NaN', -0.001, 'NaN', 'Infinity', 32767, -9223372036854775808, false, -12.34, 1),
       (4, 'Infinity', 999999999.999, '-Infinity', '-Infinity', -32768, 9223372036854775807, true, 0, 2147483647),
       (5, '-Infinity', 0, '-0', 4.9e-324, 0, 0, NULL, NULL, NULL),
       (6, '12345678901234567890.123456789012345678901234567890', 1.5, 3.4028235e38, 1.7976931348623157e308,
        NULL, NULL, NULL, 92233720368547758.07, 42);
INSERT INTO alltypes (id, t, vc, ch, ba, u)
VALUES (7, E'tab\there\nnewline\\backslash ''single'' "double" Grüße 日本語 🚀 \r end', 'ü"x''y\z', 'a b',
        '\x00ff5c0a0d09275c22'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
INSERT INTO alltypes (id, ts, tstz, d, tm, tmtz, iv)
VALUES (8, 'infinity', '-infinity', '4713-01-01 BC', '24:00:00', '23:59:59.999999+15:59',
        '178000000 years 11 mons -30 days 23:59:59.999999'),
       (9, '2024-02-29 12:34:56.789012', '1999-12-31 23:59:59.5+14', 'infinity', '00:00:00', '00:00:00-15:59',
        '-1 year -2 mons +3 days -04:05:06.000001');
INSERT INTO alltypes (id, ia, ta, ia2, e, ea, comp, ip, net, mac, bits, pt, r, tsr, tsv, x)
VALUES (10, '{1,NULL,3}', '{"a,b","c\"d",NULL,"NULL","",ü}', '{{1,2},{3,NULL}}', 'say "hi"',
        '{sad,"say \"hi\"","it''s, like, ü"}', ROW(1, 'a,b "c" (d)', 1.50), '::ffff:10.1.2.3/128', '10.0.0.0/8',
        '08:00:2b:01:02:03', B'1010', '(1.5,-2)', '[1,10)', '[2024-01-01 00:00+00,)',
        'fat:2A cat:1 ''sat''', '<a b="1">x &amp; y</a>');
INSERT INTO alltypes (id, j, jb)
VALUES (11, '{"a" : 1,  "a": 2 , "b":[1, 2.50, null, true],"c":"\u00fc"}',
        '{"a": {"b": [1, "x", null, true, 1.50]}, "": "", "big": 12345678901234567890}');
-- Big values stored out of line, then an update that leaves them alone (unchanged TOAST).
INSERT INTO alltypes (id, t, ba, jb, ta)
SELECT 12, string_agg(md5(g::text), ''), decode(string_agg(md5(g::text || 'b'), ''), 'hex'),
       jsonb_build_object('blob', string_agg(md5(g::text || 'j'), '')), ARRAY[string_agg(md5(g::text || 't'), '')]
FROM generate_series(1, 300) g;
UPDATE alltypes SET i2 = 7 WHERE id = 12;
UPDATE alltypes SET t = NULL, ba = NULL WHERE id = 7 AND false;   -- no row: no change
UPDATE alltypes SET t = NULL, vc = '' WHERE id = 2;              -- empty to NULL, NULL to empty
UPDATE alltypes SET f8 = 'NaN', n = 0 WHERE id = 4;
UPDATE alltypes SET id = 90 WHERE id = 9;                        -- primary key change
DELETE FROM alltypes WHERE id = 5;
INSERT INTO alltypes (id, i2) VALUES (5, 3);                     -- the same key again
SQL

ok "REPLICA IDENTITY FULL with duplicate rows, NULLs and json on the source" psql_file SRC - <<'SQL'
INSERT INTO dupes VALUES (1, 'x', '{"k": 1}', 'NaN'), (1, 'x', '{"k": 1}', 'NaN'), (1, 'x', '{"k": 1}', 'NaN'),
                         (2, NULL, NULL, NULL), (2, NULL, NULL, NULL),
                         (3, repeat(md5('z'), 200), '[1,  2]', 0);
DELETE FROM dupes WHERE ctid = (SELECT ctid FROM dupes WHERE a = 1 LIMIT 1);   -- one of three
UPDATE dupes SET b = 'y' WHERE ctid = (SELECT ctid FROM dupes WHERE a = 2 LIMIT 1);  -- one of two
UPDATE dupes SET f = 1 WHERE a = 1;                                              -- both left
UPDATE dupes SET a = 4 WHERE a = 3;                                              -- TOASTed b unchanged
SQL

ok "TRUNCATE ... RESTART IDENTITY CASCADE, then the same keys again, on the source" psql_file SRC - <<'SQL'
INSERT INTO parent_t (v) SELECT 'p' || g FROM generate_series(1, 20) g;
INSERT INTO child_t (parent_id, v) SELECT 1 + g % 20, 'c' || g FROM generate_series(1, 50) g;
INSERT INTO other_t (v) SELECT 'o' || g FROM generate_series(1, 30) g;
TRUNCATE parent_t, other_t RESTART IDENTITY CASCADE;
INSERT INTO parent_t (v) SELECT 'p2-' || g FROM generate_series(1, 5) g;
INSERT INTO child_t (parent_id, v) SELECT 1 + g % 5, 'c2-' || g FROM generate_series(1, 7) g;
INSERT INTO other_t (v) VALUES ('o2');
SQL

ok "cross-partition UPDATEs on the source" psql_file SRC - <<'SQL'
INSERT INTO measurements SELECT g, (ARRAY['eu', 'us', 'mars'])[1 + g % 3], g * 1.5 FROM generate_series(1, 30) g;
UPDATE measurements SET region = 'us' WHERE region = 'eu' AND id < 10;
UPDATE measurements SET region = 'eu', v = -v WHERE region = 'mars' AND id BETWEEN 10 AND 20;
UPDATE measurements SET v = v + 1 WHERE region = 'us';
DELETE FROM measurements WHERE id = 30;
SQL

# ADD COLUMN mid-stream: first on the target, then on the source, with rows before and after.
psql_on SRC "insert into alltypes (id, t) values (20, 'before add column')" >/dev/null
psql_on DST "alter table alltypes add column added_late text default 'dflt'" >/dev/null
ok "ADD COLUMN on the source mid-stream, rows before and after" psql_file SRC - <<'SQL'
ALTER TABLE alltypes ADD COLUMN added_late text DEFAULT 'dflt';
INSERT INTO alltypes (id, t, added_late) VALUES (21, 'after add column', 'late');
UPDATE alltypes SET added_late = NULL WHERE id = 1;
UPDATE alltypes SET added_late = 'changed' WHERE id = 12;
SQL

# With the applier paused, the changes of one statement reach it together: the rows of an
# update or a delete by key go as one multi-row statement whose parameters are cast to the
# column types (a char(n) value must keep its length, a bit(n) value its bits).
psql_on SRC "insert into typed_keys select 'k' || g, (g % 16)::bit(4), g / 3.0, timestamp '2024-01-01' + g * interval '1 day',
	'v' || g, 'pay' || g from generate_series(1, 40) g" >/dev/null
ok "the applier pauses" timeout 30 "$SWITCHYARD" pause --state-dir "$AGENT_STATE"
ok "every row's values rotated to the next row in one UPDATE, rows of a typed key updated and deleted, on the source" \
	psql_file SRC - <<'SQL'
UPDATE alltypes a SET (n, n2, f4, f8, i2, i8, b, t, vc, ch, ts, tstz, d, tm, tmtz, iv, ba, u, j, jb, ia, ta, ia2, e, ea,
	dom, comp, ip, net, mac, bits, mon, pt, r, tsr, tsv, x, added_late) =
	(SELECT n, n2, f4, f8, i2, i8, b, t, vc, ch, ts, tstz, d, tm, tmtz, iv, ba, u, j, jb, ia, ta, ia2, e, ea,
	        dom, comp, ip, net, mac, bits, mon, pt, r, tsr, tsv, x, added_late FROM alltypes o WHERE o.id = nx.next_id)
FROM (SELECT id, coalesce(lead(id) OVER (ORDER BY id), min(id) OVER ()) AS next_id FROM alltypes) nx
WHERE nx.id = a.id;
UPDATE typed_keys SET payload = 'new ' || right(c, 3);
DELETE FROM typed_keys WHERE n > 7;
SQL
ok "the applier resumes" timeout 30 "$SWITCHYARD" resume --state-dir "$AGENT_STATE"

end=$(source_lsn SRC)
ok "the agent applies everything up to $end" wait_applied "$end" 60
ok "the target equals the source" compare_databases SRC DST
is "$(psql_on DST "select string_agg(coalesce(b, '-') || ':' || coalesce(f::text, ''), ',' order by b, f) from dupes where a in (1, 2)")" \
	"x:1,x:1,y:,-:" "duplicate rows: exactly one deleted, exactly one updated"
is "$(psql_on DST "select string_agg(id || ':' || gen, ' ' order by id) from alltypes where gen = id * 10 + coalesce(i2, 0)")" \
	"$(psql_on SRC "select string_agg(id || ':' || gen, ' ' order by id) from alltypes")" "generated column computed on the target"
ok "switchyard stop: the agent exits 0" agent_stop 60
