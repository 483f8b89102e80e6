#!/usr/bin/env bash
# A randomized differential test of switchyard verify (agent/verify.c, agent/parity.c): tables
# whose keys are of awkward types (text under "C" and under the database's collation with
# non-ASCII, case, spaces, trailing spaces and ''; char(n); varchar(n); numeric with trailing
# zeros and NaN; float8 with NaN and infinities; timestamptz with infinity and BC; uuid;
# bytea; composite (text, int) and (date, numeric); a bigint with huge gaps; a partitioned
# table; a keyless table with duplicate rows) and non-key columns of many types (json, jsonb,
# arrays, an enum, a domain over char(n), numeric(p,s), interval, bit(n), TOASTed text,
# NULL versus '' and versus an empty bytea), filled from a seed, copied to the target, then
# divergences injected on the target only: rows deleted, extra rows, one or two columns
# changed (a char(n) or text value only in its last character, NULL and '' swapped, a TOASTed
# value in its middle, numeric 1.5 -> 1.51, whitespace in json), duplicate or missing copies in
# the keyless table, and values changed in a way their type calls equal (numeric 1.5 -> 1.50
# also in keys, float8 0 -> -0 also in keys, jsonb 1.5 -> 1.50, interval 1 day -> 24 hours), alone
# or in a row that also has a real change: those are no difference (switchyard compares by the
# type's equality: row hashes by the type's hash function, the text form only for types without
# one), and never a changed column. The injector records what it did; verify must report
# exactly that (kind, key, changed columns), --repair must make verify clean, and the target
# must then equal the source byte for byte (compare_databases; the type-equal values are put
# back first). Then verify runs under a light source workload and must find nothing.
#
# The seed is fixed (CI stays deterministic); SWITCHYARD_FUZZ_SEED=N runs another one.
. "$(dirname "$0")/lib.sh"
harness_init 150

plan 14

SEED=${SWITCHYARD_FUZZ_SEED:-20261130}
# setseed() takes [-1, 1]: one value per use, from the seed
sql_seed() {
	awk -v s="$SEED" -v r="$1" 'BEGIN { printf "%.9f", ((s * 7919 + r * 104729) % 1999993) / 1999993.0 - 0.5 }'
}
# a few rows per leaf: several leaves per table, a physical pass, drilling by key ranges
LEAF_ROWS=$(awk -v s="$SEED" 'BEGIN { print 15 + (s * 31) % 90 }')
export SWITCHYARD_PARITY_LEAF_ROWS=$LEAF_ROWS
diag "fuzz seed $SEED (replay: SWITCHYARD_FUZZ_SEED=$SEED), $LEAF_ROWS rows per leaf"

# ---- the source: schema and seeded rows ----------------------------------------------------

fill_source() {
	psql_file SRC - -v seed="$(sql_seed 1)" <<'SQL'
SELECT setseed(:seed);
CREATE TYPE fz_mood AS ENUM ('sad', 'ok', 'happy', 'ecstatic');
CREATE DOMAIN fz_code AS char(6);
CREATE TABLE fz_text (k text PRIMARY KEY, v text, n numeric(10,2), code fz_code);
CREATE TABLE fz_textc (k text COLLATE "C" PRIMARY KEY, v text COLLATE "C", j json);
CREATE TABLE fz_char (k char(5) PRIMARY KEY, label fz_code, v varchar(20));
CREATE TABLE fz_varchar (k varchar(12) PRIMARY KEY, a int[], t text[]);
CREATE TABLE fz_num (k numeric PRIMARY KEY, v numeric, iv interval);
CREATE TABLE fz_float (k float8 PRIMARY KEY, v float8, m fz_mood);
CREATE TABLE fz_ts (k timestamptz PRIMARY KEY, d date, jb jsonb);
CREATE TABLE fz_uuid (k uuid PRIMARY KEY, big text, b bytea);
ALTER TABLE fz_uuid ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE fz_bytea (k bytea PRIMARY KEY, v text, flags bit(4));
CREATE TABLE fz_comp1 (a text, b int, v text, PRIMARY KEY (a, b));
CREATE TABLE fz_comp2 (d date, n numeric, v int, iv interval, PRIMARY KEY (d, n));
CREATE TABLE fz_sparse (id bigint PRIMARY KEY, v text, n numeric(12,4));
CREATE TABLE fz_part (id int, region text, v numeric(8,3), tags text[], PRIMARY KEY (id, region))
	PARTITION BY LIST (region);
CREATE TABLE fz_part_eu PARTITION OF fz_part FOR VALUES IN ('eu', 'EU');
CREATE TABLE fz_part_us PARTITION OF fz_part FOR VALUES IN ('us');
CREATE TABLE fz_part_other PARTITION OF fz_part DEFAULT;
CREATE TABLE fz_bag (g int NOT NULL, t text, n numeric, m fz_mood);
ALTER TABLE fz_bag REPLICA IDENTITY FULL;

CREATE FUNCTION pg_temp.pick(a text[]) RETURNS text LANGUAGE sql VOLATILE AS
	$$ SELECT a[1 + floor(random() * array_length(a, 1))::int] $$;
CREATE FUNCTION pg_temp.pool() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
	'', ' ', '  ', 'a', 'A', 'a ', 'a  ', ' a', 'ab', 'AB', 'Ab', 'é', 'É', 'e' || chr(769), 'ß', 'ss',
	'SS', 'ø', 'Ø', '日本', '日本語', '😀', 'z', 'Z', '_', '-', 'a-b', 'a b', 'a_b', 'x' || chr(9) || 'y',
	'İ', 'ı', 'ﬁ', 'fi', '0', '00', '1', '10', '9', 'NULL', 'null', '\', '"', '''', 'ä', 'a' || chr(776),
	'line' || chr(10) || 'break', 'Zürich', 'zurich']::text[] $$;
-- an awkward string: one or two pieces of the pool, sometimes a number, sometimes trailing spaces
CREATE FUNCTION pg_temp.s() RETURNS text LANGUAGE sql VOLATILE AS $$
	SELECT pg_temp.pick(pg_temp.pool()) ||
	       CASE WHEN random() < 0.6 THEN pg_temp.pick(pg_temp.pool()) ELSE '' END ||
	       CASE WHEN random() < 0.4 THEN floor(random() * 1000)::text ELSE '' END ||
	       CASE WHEN random() < 0.15 THEN '  ' ELSE '' END $$;
-- a value for a text column: NULL, '', or awkward
CREATE FUNCTION pg_temp.v() RETURNS text LANGUAGE sql VOLATILE AS $$
	SELECT CASE WHEN random() < 0.12 THEN NULL WHEN random() < 0.12 THEN '' ELSE pg_temp.s() END $$;
-- numeric with 0 to 3 trailing zeros: 1.5, 1.50, 2, 2.000...
CREATE FUNCTION pg_temp.num(hi float8) RETURNS numeric LANGUAGE sql VOLATILE AS $$
	SELECT CASE WHEN random() < 0.5 THEN trim_scale(x) ELSE x END
	FROM (SELECT round((random() * hi - hi / 4)::numeric, floor(random() * 4)::int) AS x) s $$;
CREATE FUNCTION pg_temp.mood() RETURNS fz_mood LANGUAGE sql VOLATILE AS $$
	SELECT (enum_range(NULL::fz_mood))[1 + floor(random() * 4)::int] $$;
CREATE FUNCTION pg_temp.iv() RETURNS interval LANGUAGE sql VOLATILE AS $$
	SELECT CASE WHEN random() < 0.1 THEN NULL
	            ELSE make_interval(months => floor(random() * 3)::int, days => floor(random() * 3)::int,
	                               secs => round((random() * 100000)::numeric, 3)::float8) END $$;
CREATE FUNCTION pg_temp.big(i int) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(md5(i || ':' || j), '') FROM generate_series(1, 40 + i % 60) j $$;

INSERT INTO fz_text VALUES ('', 'empty key', 1.5, 'code');
INSERT INTO fz_text SELECT pg_temp.s(), pg_temp.v(), CASE WHEN random() < 0.1 THEN NULL ELSE pg_temp.num(1000) END,
	CASE WHEN random() < 0.15 THEN NULL ELSE left(pg_temp.s(), 6) END
	FROM generate_series(1, 400) ON CONFLICT DO NOTHING;
INSERT INTO fz_textc SELECT pg_temp.s(), pg_temp.v(),
	CASE WHEN random() < 0.1 THEN NULL ELSE format('{"a": %s,  "b" : [1, 2.50], "s": %s}', g, to_json(pg_temp.s()))::json END
	FROM generate_series(1, 400) g ON CONFLICT DO NOTHING;
INSERT INTO fz_char SELECT left(pg_temp.s(), 5), CASE WHEN random() < 0.1 THEN NULL ELSE left(pg_temp.s(), 6) END,
	left(pg_temp.v(), 20) FROM generate_series(1, 400) ON CONFLICT DO NOTHING;
INSERT INTO fz_varchar SELECT left(pg_temp.s(), 12),
	CASE WHEN random() < 0.1 THEN NULL ELSE ARRAY[g, NULL, -g] END,
	CASE WHEN random() < 0.1 THEN NULL ELSE ARRAY[pg_temp.s(), pg_temp.v(), ''] END
	FROM generate_series(1, 400) g ON CONFLICT DO NOTHING;
INSERT INTO fz_num VALUES ('NaN', 'NaN', '1 day'), (0, 0, '24:00:00'), (-1e20, 1e-20, '1 mon');
INSERT INTO fz_num SELECT pg_temp.num(100), CASE WHEN random() < 0.1 THEN NULL ELSE pg_temp.num(1e6) END, pg_temp.iv()
	FROM generate_series(1, 400) ON CONFLICT DO NOTHING;
INSERT INTO fz_float VALUES ('NaN', 'NaN', 'ok'), (0, 0, 'sad'), ('Infinity', '-Infinity', NULL),
	('-Infinity', 1e-300, 'happy'), (0.1::float8 + 0.2::float8, 1e300, 'ecstatic');
INSERT INTO fz_float SELECT CASE WHEN random() < 0.5 THEN round((random() * 100)::numeric, 1)::float8
	                         ELSE random() * 1e6 - 5e5 END,
	CASE WHEN random() < 0.1 THEN NULL WHEN random() < 0.1 THEN 0 ELSE random() * 1000 - 500 END,
	pg_temp.mood() FROM generate_series(1, 400) ON CONFLICT DO NOTHING;
INSERT INTO fz_ts VALUES ('infinity', NULL, '{"n": 1.5}'), ('-infinity', '4713-01-01 BC', 'null'),
	('0044-03-15 12:00:00+00 BC', 'infinity', '[]');
INSERT INTO fz_ts SELECT timestamptz '2024-01-01 00:00:00+00' + random() * interval '900 days',
	CASE WHEN random() < 0.1 THEN NULL ELSE date '2000-01-01' + floor(random() * 20000)::int END,
	CASE WHEN random() < 0.1 THEN NULL
	     ELSE jsonb_build_object('n', pg_temp.num(100), 's', pg_temp.s(), 'a', jsonb_build_array(g, pg_temp.v())) END
	FROM generate_series(1, 400) g ON CONFLICT DO NOTHING;
INSERT INTO fz_uuid SELECT md5('u' || g || random())::uuid,
	CASE WHEN random() < 0.1 THEN NULL WHEN random() < 0.1 THEN '' ELSE pg_temp.big(g) END,
	CASE WHEN random() < 0.1 THEN NULL WHEN random() < 0.1 THEN '\x'::bytea ELSE decode(md5(g::text), 'hex') END
	FROM generate_series(1, 150) g;
INSERT INTO fz_bytea VALUES ('\x', 'empty', B'0000'), ('\x00', 'zero byte', NULL);
INSERT INTO fz_bytea SELECT substr(decode(md5(random()::text), 'hex'), 1, 1 + floor(random() * 6)::int), pg_temp.v(),
	CASE WHEN random() < 0.1 THEN NULL ELSE (floor(random() * 16)::int)::bit(4) END
	FROM generate_series(1, 300) ON CONFLICT DO NOTHING;
INSERT INTO fz_comp1 SELECT pg_temp.pick(pg_temp.pool()), floor(random() * 11)::int - 5, pg_temp.v()
	FROM generate_series(1, 400) ON CONFLICT DO NOTHING;
INSERT INTO fz_comp2 SELECT date '2024-02-27' + floor(random() * 5)::int, pg_temp.num(10),
	floor(random() * 1000)::int, pg_temp.iv() FROM generate_series(1, 400) ON CONFLICT DO NOTHING;
INSERT INTO fz_sparse VALUES (-9223372036854775808, 'min', 0), (9223372036854775807, 'max', NULL), (0, '', 1);
INSERT INTO fz_sparse SELECT CASE WHEN random() < 0.3 THEN g ELSE ((random() * 2 - 1) * 9e18)::bigint END,
	pg_temp.v(), CASE WHEN random() < 0.1 THEN NULL ELSE pg_temp.num(1e5) END
	FROM generate_series(1, 400) g ON CONFLICT DO NOTHING;
INSERT INTO fz_part SELECT floor(random() * 150)::int, pg_temp.pick(ARRAY['eu', 'EU', 'us', 'apac', 'latam ', '']),
	CASE WHEN random() < 0.1 THEN NULL ELSE pg_temp.num(1000) END,
	CASE WHEN random() < 0.1 THEN NULL ELSE ARRAY[pg_temp.s(), NULL] END
	FROM generate_series(1, 400) ON CONFLICT DO NOTHING;
-- many duplicates; values that differ only in numeric scale are kept out (their copies would
-- be one group, and a repair may write either text form)
INSERT INTO fz_bag SELECT floor(random() * 12)::int, pg_temp.pick(ARRAY[NULL, '', 'a', 'a ', 'A', 'é', 'x y']),
	(ARRAY[1.5, 2, 2.25, 3.10, NULL]::numeric[])[1 + floor(random() * 5)::int], pg_temp.mood()
	FROM generate_series(1, 300);
ANALYZE;
SELECT 'rows: ' || string_agg(format('%s %s', c.relname, c.reltuples::int), ', ' ORDER BY c.relname)
FROM pg_class c WHERE c.relname LIKE 'fz\_%' AND c.relkind = 'r';
SQL
}

setup() {
	pg_start SRC && pg_start DST && fill_source | sed 's/^/# /' && copy_database SRC DST
}
ok "servers, fuzz schema and seeded rows on the source, copied to the target" setup ||
	bail_out "setup failed"

agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN"
ok "the agent streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]' ||
	bail_out "the agent does not stream"

# the values of the changed columns the report shows, for the diagnostics of a failure
shown_values() {
	report_sql "SELECT coalesce(string_agg(format('%s %s %s: %s | %s', t->>'table', d->'key', c->>'column',
		left(coalesce(c->>'source', 'NULL'), 40), left(coalesce(c->>'target', 'NULL'), 40)), E'\n'), '')
		FROM jsonb_array_elements(:'r'::jsonb->'tables') t, jsonb_array_elements(t->'differences') d,
		     jsonb_array_elements(d->'columns') c"
}

run_verify
is "$VRC/$(total)" "0/0" "verify of the equal databases finds nothing" ||
	diag "$(differences | head -n 20)" "$(printf '%s' "$VERR" | tail -n 5)"

# ---- divergence injected on the target -----------------------------------------------------
# One session on the target, seeded: each table gets 0 to 5 random operations on rows no
# earlier operation touched. Lines "E <expected difference>" and "R <SQL putting back a value
# the type calls equal>" come out.

inject() {
	psql_file DST - -v seed="$(sql_seed 2)" <<'SQL'
SET session_replication_role = replica;
SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres';
SET extra_float_digits = 3; SET bytea_output = 'hex';
SELECT setseed(:seed) \g /dev/null
-- the last character changed ('' and NULL become each other)
CREATE FUNCTION pg_temp.lastch(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN s IS NULL THEN '' WHEN s = '' THEN NULL
	            ELSE left(s, -1) || CASE WHEN right(s, 1) = 'Z' THEN 'Y' ELSE 'Z' END END $$;
-- the n-th (last) character of a char(n) value changed
CREATE FUNCTION pg_temp.lastn(s text, n int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT overlay(rpad(coalesce(s, ''), n) PLACING CASE WHEN substr(rpad(coalesce(s, ''), n), n, 1) = 'Z'
	               THEN 'Y' ELSE 'Z' END FROM n FOR 1) $$;
CREATE FUNCTION pg_temp.nullswap(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN s IS NULL THEN '' ELSE NULL END $$;
-- the same number with one more trailing zero: 1.5 -> 1.50, 2 -> 2.0
CREATE FUNCTION pg_temp.zeros(n numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
	SELECT (n::text || CASE WHEN position('.' IN n::text) > 0 THEN '0' ELSE '.0' END)::numeric $$;
CREATE FUNCTION pg_temp.nextmood(m fz_mood) RETURNS fz_mood LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE m WHEN 'sad' THEN 'ok' WHEN 'ok' THEN 'happy' WHEN 'happy' THEN 'ecstatic' ELSE 'sad' END::fz_mood $$;

-- per table: key as the report shows it (jsonb text), changes that make a difference
-- (column, expression), changes the column's type calls equal (column, expression, condition,
-- whether the column is in the key, the key's columns), and an extra row ($1: a counter)
CREATE TEMP TABLE fz_desc (tbl text, kj text, muts text[], benign text[], extra text);
INSERT INTO fz_desc VALUES
('fz_text', $$jsonb_build_object('k', k::text)::text$$,
 ARRAY[['v', 'pg_temp.lastch(v)'], ['v', 'pg_temp.nullswap(v)'], ['v', $$coalesce(v, '') || ' '$$],
       ['v', 'CASE WHEN upper(v) <> v THEN upper(v) ELSE lower(v) END'], ['n', 'coalesce(n, 0) + 0.01'],
       ['n', 'CASE WHEN n IS NULL THEN 0 END'], ['code', 'pg_temp.lastn(code::text, 6)']],
 NULL,
 $$INSERT INTO fz_text (k, v) VALUES ('extra ' || $1 || ' É  ', 'x')$$),
('fz_textc', $$jsonb_build_object('k', k::text)::text$$,
 ARRAY[['v', 'pg_temp.lastch(v)'], ['v', 'pg_temp.nullswap(v)'], ['j', $$(j::text || ' ')::json$$],
       ['j', $$CASE WHEN j IS NULL THEN '{}' END::json$$]],
 NULL,
 $$INSERT INTO fz_textc (k, v) VALUES ('Extra' || $1 || '日本', NULL)$$),
('fz_char', $$jsonb_build_object('k', k::text)::text$$,
 ARRAY[['label', 'pg_temp.lastn(label::text, 6)'], ['label', $$CASE WHEN label IS NULL THEN '' END$$],
       ['v', 'left(pg_temp.lastch(v), 20)'], ['v', 'pg_temp.nullswap(v)']],
 NULL,
 $$INSERT INTO fz_char (k, label) VALUES ('X' || $1, 'lab')$$),
('fz_varchar', $$jsonb_build_object('k', k::text)::text$$,
 ARRAY[['a', 'array_append(a, 0)'], ['a', $$CASE WHEN a IS NULL THEN '{}' END::int[]$$],
       ['t', $$CASE WHEN t IS NULL THEN ARRAY[NULL]::text[] ELSE t[1:1] || pg_temp.lastch(t[2]) || t[3:] END$$]],
 NULL,
 $$INSERT INTO fz_varchar (k, a) VALUES ('ext' || $1 || ' ', '{1}')$$),
('fz_num', $$jsonb_build_object('k', trim_scale(k)::text)::text$$,
 ARRAY[['v', 'coalesce(v, 0) + 0.01'], ['v', 'CASE WHEN v IS NULL THEN 1.5 END'],
       ['iv', $$coalesce(iv, '0') + interval '1 microsecond'$$]],
 ARRAY[['v', 'pg_temp.zeros(v)', $$v <> 'NaN'$$, 'f', ''],
       ['iv', $$iv - interval '1 day' + interval '24 hours'$$, 'extract(day FROM iv) >= 1', 'f', ''],
       ['k', 'pg_temp.zeros(k)', $$k <> 'NaN'$$, 't', 'k']],
 $$INSERT INTO fz_num (k, v) VALUES (100000 + $1 + 0.250, 1)$$),
('fz_float', $$jsonb_build_object('k', CASE WHEN k = 0 THEN '0' ELSE k::text END)::text$$,
 ARRAY[['v', $$CASE WHEN v IS NULL OR v IN ('NaN', 'Infinity', '-Infinity') THEN 1 ELSE v * 3 + 1 END$$],
       ['v', $$CASE WHEN v IS NULL THEN 'NaN' END::float8$$], ['m', 'pg_temp.nextmood(m)']],
 ARRAY[['v', $$'-0'::float8$$, 'v = 0', 'f', ''], ['k', $$'-0'::float8$$, 'k = 0', 't', 'k']],
 $$INSERT INTO fz_float (k, v) VALUES (1e6 + $1 + 0.1, 2)$$),
('fz_ts', $$jsonb_build_object('k', k::text)::text$$,
 ARRAY[['d', $$coalesce(d + 1, 'epoch')$$], ['jb', $$coalesce(jb, '{}') || '{"x": 1}'$$],
       ['jb', $$CASE WHEN jb IS NULL THEN 'null'::jsonb END$$]],
 ARRAY[['jb', $$jsonb_set(jb, '{n}', to_jsonb(pg_temp.zeros((jb->>'n')::numeric)))$$,
        $$jsonb_typeof(jb->'n') = 'number'$$, 'f', '']],
 $$INSERT INTO fz_ts (k, d) VALUES (timestamptz '2100-01-01 00:00:00.123456+00' + $1 * interval '1 day', 'today')$$),
('fz_uuid', $$jsonb_build_object('k', k::text)::text$$,
 ARRAY[['big', $$CASE WHEN length(big) > 100 THEN overlay(big PLACING CASE WHEN substr(big, length(big) / 2, 1) = 'x'
                 THEN 'y' ELSE 'x' END FROM length(big) / 2 FOR 1) ELSE pg_temp.lastch(big) END$$],
       ['big', 'pg_temp.nullswap(big)'],
       ['b', $$CASE WHEN b IS NULL THEN '\x'::bytea WHEN b = '\x' THEN NULL ELSE b || '\x00'::bytea END$$],
       ['b', $$CASE WHEN length(b) > 0 THEN set_byte(b, length(b) - 1, 255 - get_byte(b, length(b) - 1)) END$$]],
 NULL,
 $$INSERT INTO fz_uuid (k, big) VALUES (md5('extra' || $1)::uuid, repeat('big ', 1000))$$),
('fz_bytea', $$jsonb_build_object('k', k::text)::text$$,
 ARRAY[['v', 'pg_temp.lastch(v)'], ['flags', $$coalesce(~flags, B'0000')$$]],
 NULL,
 $$INSERT INTO fz_bytea (k, v) VALUES ('\xfffe'::bytea || int4send($1), 'x')$$),
('fz_comp1', $$jsonb_build_object('a', a::text, 'b', b::text)::text$$,
 ARRAY[['v', 'pg_temp.lastch(v)'], ['v', 'pg_temp.nullswap(v)']],
 NULL,
 $$INSERT INTO fz_comp1 (a, b, v) VALUES ('extra ' || $1, $1, '')$$),
('fz_comp2', $$jsonb_build_object('d', d::text, 'n', trim_scale(n)::text)::text$$,
 ARRAY[['v', 'coalesce(v, 0) + 1'], ['iv', $$coalesce(iv, '0') + interval '1 second'$$]],
 ARRAY[['n', 'pg_temp.zeros(n)', 'true', 't', 'd, n'],
       ['iv', $$iv - interval '1 day' + interval '24 hours'$$, 'extract(day FROM iv) >= 1', 'f', '']],
 $$INSERT INTO fz_comp2 (d, n, v) VALUES ('2099-12-31', $1 + 0.5, 0)$$),
('fz_sparse', $$jsonb_build_object('id', id::text)::text$$,
 ARRAY[['v', 'pg_temp.lastch(v)'], ['n', 'coalesce(n, 0) + 0.0001']],
 NULL,
 $$INSERT INTO fz_sparse (id, v) VALUES (1000000000 + $1 * 1000003, 'x')$$),
('fz_part', $$jsonb_build_object('id', id::text, 'region', region::text)::text$$,
 ARRAY[['v', 'coalesce(v, 0) + 0.001'], ['tags', $$coalesce(tags, '{}') || 'tag'::text$$]],
 NULL,
 $$INSERT INTO fz_part (id, region) VALUES (100000 + $1, (ARRAY['eu', 'us', 'mars'])[1 + $1 % 3])$$);

CREATE TEMP TABLE fz_out (kind text, line text);

DO $do$
DECLARE
	d record;
	r record;
	r2 record;
	nops int;
	kind text;
	used text[];
	cond text;
	cnt bigint;
	counter int := 0;
	mi int;
	b int;
	sets text[];
	cols text[];
	differs bool;
	same bool;
	newkj text;
	bcol text;
	oldval text;
	ident text;
	copies int;
BEGIN
	FOR d IN SELECT * FROM fz_desc ORDER BY tbl LOOP
		used := '{}';
		nops := floor(random() * 6)::int;
		FOR op IN 1..nops LOOP
			counter := counter + 1;
			kind := (ARRAY['delete', 'extra', 'change', 'change', 'change2', 'benign', 'benign', 'mixed'])
				[1 + floor(random() * 8)::int];
			IF kind IN ('benign', 'mixed') AND d.benign IS NULL THEN
				kind := 'change';
			END IF;
			IF kind = 'extra' THEN
				EXECUTE d.extra || format(' ON CONFLICT DO NOTHING RETURNING tableoid::regclass::text AS part, %s AS kj', d.kj)
					INTO r USING counter;
				IF r.kj IS NOT NULL THEN
					INSERT INTO fz_out VALUES ('E', format('public.%s extra %s', r.part, r.kj));
					used := used || r.kj;
				END IF;
				CONTINUE;
			END IF;
			-- the row: a random one no operation touched yet (and that the benign change fits)
			cond := 'true';
			IF kind IN ('benign', 'mixed') THEN
				b := 1 + floor(random() * array_length(d.benign, 1))::int;
				IF kind = 'mixed' AND d.benign[b][4] = 't' THEN
					kind := 'benign';
				END IF;
				cond := format('%I IS NOT NULL AND %s', d.benign[b][1], d.benign[b][3]);
			END IF;
			EXECUTE format('SELECT count(*) FROM %I t WHERE NOT ((%s) = ANY ($1)) AND (%s)', d.tbl, d.kj, cond)
				INTO cnt USING used;
			IF cnt = 0 THEN
				CONTINUE;
			END IF;
			EXECUTE format('SELECT tableoid::regclass::text AS part, ctid, (%s) AS kj FROM %I t
			                WHERE NOT ((%s) = ANY ($1)) AND (%s) ORDER BY (%s) COLLATE "C" OFFSET $2 LIMIT 1',
			               d.kj, d.tbl, d.kj, cond, d.kj)
				INTO r USING used, floor(random() * cnt)::bigint;
			used := used || r.kj;
			IF kind = 'delete' THEN
				EXECUTE format('DELETE FROM ONLY %s WHERE ctid = $1', r.part) USING r.ctid;
				INSERT INTO fz_out VALUES ('E', format('public.%s missing %s', r.part, r.kj));
				CONTINUE;
			END IF;
			sets := '{}';
			cols := '{}';
			-- real changes: one column (two for change2, a column not changed already)
			FOR nth IN 1 .. CASE WHEN kind = 'change2' THEN 2 WHEN kind IN ('change', 'mixed') THEN 1 ELSE 0 END LOOP
				mi := 1 + floor(random() * array_length(d.muts, 1))::int;
				CONTINUE WHEN d.muts[mi][1] = ANY (cols);
				EXECUTE format('SELECT (%s)::text IS DISTINCT FROM %I::text FROM ONLY %s t WHERE ctid = $1',
				               d.muts[mi][2], d.muts[mi][1], r.part) INTO differs USING r.ctid;
				IF differs THEN
					sets := sets || format('%I = %s', d.muts[mi][1], d.muts[mi][2]);
					cols := cols || d.muts[mi][1];
				END IF;
			END LOOP;
			bcol := NULL;
			IF kind IN ('benign', 'mixed') AND NOT d.benign[b][1] = ANY (cols) THEN
				-- another text form, equal under the type's equality (checked here)
				EXECUTE format('SELECT (%1$s)::text IS DISTINCT FROM %2$I::text AND (%1$s) = %2$I, %2$I::text
				                FROM ONLY %3$s t WHERE ctid = $1', d.benign[b][2], d.benign[b][1], r.part)
					INTO same, oldval USING r.ctid;
				IF same THEN
					sets := sets || format('%I = %s', d.benign[b][1], d.benign[b][2]);
					bcol := d.benign[b][1];
				END IF;
			END IF;
			IF array_length(sets, 1) > 0 THEN
				EXECUTE format('UPDATE ONLY %s t SET %s WHERE ctid = $1 RETURNING %s', r.part,
				               array_to_string(sets, ', '), d.kj) INTO newkj USING r.ctid;
				used := used || newkj;
			END IF;
			IF bcol IS NOT NULL THEN
				-- put back by the key after the change, before compare_databases
				INSERT INTO fz_out VALUES ('R', format('UPDATE ONLY %s t SET %I = %L WHERE (%s) = %L;',
					r.part, bcol, oldval, d.kj, newkj));
				INSERT INTO fz_out VALUES ('B', format('public.%s %s %s (was %s)%s', r.part, r.kj, bcol, oldval,
					CASE WHEN array_length(cols, 1) > 0 THEN ' in a row with a real change' ELSE '' END));
			END IF;
			IF bcol IS NOT NULL AND d.benign[b][4] = 't' THEN
				-- a key in another text form, and a real change in the rows before and after it (in
				-- its leaf, whatever the leaf's bounds): the leaf differs and is narrowed to rows
				FOR r2 IN EXECUTE format(
					'(SELECT tableoid::regclass::text AS part, ctid, (%1$s) AS kj FROM %2$I t
					  WHERE (%3$s) < (SELECT %3$s FROM %2$I t WHERE (%1$s) = $1) ORDER BY (%3$s) DESC LIMIT 1)
					 UNION ALL
					 (SELECT tableoid::regclass::text AS part, ctid, (%1$s) AS kj FROM %2$I t
					  WHERE (%3$s) > (SELECT %3$s FROM %2$I t WHERE (%1$s) = $1) ORDER BY (%3$s) LIMIT 1)',
					d.kj, d.tbl, d.benign[b][5]) USING newkj LOOP
					CONTINUE WHEN r2.kj = ANY (used);
					EXECUTE format('SELECT (%s)::text IS DISTINCT FROM %I::text FROM ONLY %s t WHERE ctid = $1',
					               d.muts[1][2], d.muts[1][1], r2.part) INTO differs USING r2.ctid;
					CONTINUE WHEN NOT differs;
					EXECUTE format('UPDATE ONLY %s t SET %I = %s WHERE ctid = $1', r2.part, d.muts[1][1], d.muts[1][2])
						USING r2.ctid;
					used := used || r2.kj;
					INSERT INTO fz_out VALUES ('E', format('public.%s changed %s %s', r2.part, r2.kj, d.muts[1][1]));
				END LOOP;
			END IF;
			IF array_length(cols, 1) > 0 THEN
				INSERT INTO fz_out VALUES ('E', format('public.%s changed %s %s', r.part, r.kj,
					(SELECT string_agg(c, ',' ORDER BY c COLLATE "C") FROM unnest(cols) c)));
			END IF;
		END LOOP;
	END LOOP;

	-- the keyless table: a row image is its values, numeric scale aside (one hash group)
	used := '{}';
	nops := 1 + floor(random() * 5)::int;
	FOR op IN 1..nops LOOP
		counter := counter + 1;
		kind := (ARRAY['dup', 'del', 'change', 'benign'])[1 + floor(random() * 4)::int];
		cond := CASE WHEN kind = 'benign' THEN $$n IS NOT NULL$$ ELSE 'true' END;
		SELECT count(DISTINCT ROW(g, t, trim_scale(n), m)::text) INTO cnt FROM fz_bag
		WHERE NOT ROW(g, t, trim_scale(n), m)::text = ANY (used) AND (kind <> 'benign' OR n IS NOT NULL);
		IF cnt = 0 THEN
			CONTINUE;
		END IF;
		SELECT i INTO ident FROM (SELECT DISTINCT ROW(g, t, trim_scale(n), m)::text AS i FROM fz_bag
		                          WHERE NOT ROW(g, t, trim_scale(n), m)::text = ANY (used)
		                            AND (kind <> 'benign' OR n IS NOT NULL)) s
		ORDER BY i COLLATE "C" OFFSET floor(random() * cnt)::bigint LIMIT 1;
		used := used || ident;
		SELECT ctid, n::text AS n INTO r FROM fz_bag WHERE ROW(g, t, trim_scale(n), m)::text = ident ORDER BY ctid LIMIT 1;
		IF kind = 'dup' THEN
			copies := 1 + floor(random() * 2)::int;
			INSERT INTO fz_bag SELECT g, t, n, m FROM fz_bag, generate_series(1, copies) WHERE ctid = r.ctid;
			INSERT INTO fz_out VALUES ('E', format('public.fz_bag extra copies=%s', copies));
		ELSIF kind = 'del' THEN
			DELETE FROM fz_bag WHERE ctid = r.ctid;
			INSERT INTO fz_out VALUES ('E', 'public.fz_bag missing copies=1');
		ELSIF kind = 'change' THEN
			UPDATE fz_bag SET t = coalesce(t, '') || '#' || counter WHERE ctid = r.ctid;
			INSERT INTO fz_out VALUES ('E', 'public.fz_bag missing copies=1'), ('E', 'public.fz_bag extra copies=1');
		ELSE
			oldval := r.n;
			UPDATE fz_bag SET n = pg_temp.zeros(n) WHERE ctid = r.ctid RETURNING ctid INTO r;
			INSERT INTO fz_out VALUES ('R', format('UPDATE fz_bag SET n = %L WHERE ctid = %L;', oldval, r.ctid));
			INSERT INTO fz_out VALUES ('B', format('public.fz_bag %s n (was %s)', ident, oldval));
		END IF;
	END LOOP;
END
$do$;

SELECT kind || ' ' || line FROM fz_out ORDER BY kind, line COLLATE "C";
SQL
}

injected=$(inject) || bail_out "the injection failed: $injected"
expected=$(printf '%s\n' "$injected" | sed -n 's/^E //p' | LC_ALL=C sort)
restore=$(printf '%s\n' "$injected" | sed -n 's/^R //p')
nexp=$(printf '%s' "$expected" | grep -c '')
diag "injected on the target: $nexp differences, $(printf '%s' "$restore" | grep -c '') values changed in a way their type calls equal"
printf '%s\n' "$injected" | sed -n 's/^B /type-equal: /p' | head -n 30 | cut -c1-200 | sed 's/^/# /'

run_verify
is "$VRC" 5 "verify exits 5 on the injected differences" || diag "$(printf '%s' "$VERR" | tail -n 5)"
got=$(differences)
if ! is "$got" "$expected" "exactly the injected rows and columns differ, no more, no fewer"; then
	diag "reported but not injected:" "$(LC_ALL=C comm -23 <(printf '%s\n' "$got" | LC_ALL=C sort) <(printf '%s\n' "$expected"))"
	diag "injected but not reported:" "$(LC_ALL=C comm -13 <(printf '%s\n' "$got" | LC_ALL=C sort) <(printf '%s\n' "$expected"))"
	diag "values shown:" "$(shown_values | head -n 40)"
fi
is "$(report_sql "SELECT count(*) FROM jsonb_array_elements(:'r'::jsonb->'tables') t,
	jsonb_array_elements(t->'differences') d WHERE d->>'kind' = 'changed' AND (d->'columns' IS NULL
	OR jsonb_array_length(d->'columns') = 0 OR EXISTS (SELECT 1 FROM jsonb_array_elements(d->'columns') c
	WHERE c->>'source' IS NOT DISTINCT FROM c->>'target'))")" 0 \
	"every changed row names its columns, each with two different values"

# ---- repair ----------------------------------------------------------------------------------

run_verify --repair
is "$VRC/$(json_get "$VOUT" result)" "0/repaired" "verify --repair exits 0" ||
	diag "$(printf '%s' "$VERR" | tail -n 5)" "$(differences | head -n 20)"
run_verify
is "$VRC/$(total)" "0/0" "verify after the repair is clean" ||
	diag "$(differences | head -n 20)" "$(printf '%s' "$VERR" | tail -n 5)"
putback() {
	[ -z "$restore" ] || printf '%s\n' "SET session_replication_role = replica;" "$restore" | psql_file DST - >/dev/null
}
ok "the values changed in a way their type calls equal are put back" putback
ok "the repaired target equals the source (ordered COPY output, without switchyard)" compare_databases SRC DST

# ---- under a light workload on the source ----------------------------------------------------

cat >"$SY_BASE/workload.sql" <<'SQL'
\set r random(1, 9)
\set i random(1, 1000000)
BEGIN;
UPDATE fz_text SET v = coalesce(v, '') || 'w', n = coalesce(n, 0) + 1
 WHERE k = (SELECT k FROM fz_text ORDER BY md5(k || :i) LIMIT 1);
UPDATE fz_num SET v = coalesce(v, 0) + 0.5 WHERE k = (SELECT k FROM fz_num ORDER BY md5(k::text || :i) LIMIT 1);
UPDATE fz_char SET label = left(md5(:i::text), 6) WHERE k = (SELECT k FROM fz_char ORDER BY md5(k || :i) LIMIT 1);
INSERT INTO fz_float (k, v, m) VALUES (:i + 0.5, :r, 'ok') ON CONFLICT (k) DO UPDATE SET v = fz_float.v + 1;
INSERT INTO fz_bag VALUES (:r, 'w' || :r, 1.5, 'sad');
DELETE FROM fz_bag WHERE ctid = (SELECT ctid FROM fz_bag WHERE g = :r ORDER BY md5(ctid::text || :i) LIMIT 1);
UPDATE fz_part SET region = CASE region WHEN 'eu' THEN 'us' ELSE 'eu' END
 WHERE (id, region) = (SELECT id, region FROM fz_part ORDER BY md5(id || region || :i) LIMIT 1)
   AND NOT EXISTS (SELECT 1 FROM fz_part p WHERE p.id = fz_part.id AND p.region IN ('eu', 'us') AND p.region <> fz_part.region);
UPDATE fz_uuid SET big = big || 'w' WHERE k = (SELECT k FROM fz_uuid ORDER BY md5(k::text || :i) LIMIT 1);
UPDATE fz_comp2 SET v = v + 1 WHERE (d, n) = (SELECT d, n FROM fz_comp2 ORDER BY md5(d || n::text || :i) LIMIT 1);
UPDATE fz_sparse SET n = coalesce(n, 0) + 1 WHERE id = (SELECT id FROM fz_sparse ORDER BY md5(id || ':' || :i) LIMIT 1);
END;
SQL
bg_start pgbench.fuzz pgbench_on SRC -n -T 15 -c 1 -j 1 -R 40 --random-seed="$SEED" -f "$SY_BASE/workload.sql"
WORKLOAD_PID=$BG_PID
sleep 1
verify_runs 3
ok "the workload is still writing after the verify runs" _sy_pid_alive "$WORKLOAD_PID"
is "$CLEAN_RUNS/3" "3/3" "verify under the source workload finds no difference" || diag "$BAD_RUNS"
ok "the workload ran without errors" workload_wait "$WORKLOAD_PID" pgbench.fuzz
ok "the agent applies everything; the target equals the source" eval 'catch_up SRC 60 && compare_databases SRC DST'
