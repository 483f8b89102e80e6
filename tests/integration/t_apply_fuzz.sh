#!/usr/bin/env bash
# A randomized differential test of the applier's grouping (apply_groupable, apply_update_slot,
# apply_group_add, apply_before_change, apply_send_updates_of): a reproducible random workload
# of many small source transactions over tables with small key spaces, so one batch hits the
# same rows again and again: rows inserted, updated under several column sets (TOASTed values
# left unchanged), deleted and inserted again with other values, keys changed into keys a
# delete just freed, unique values traded through a spare or moved from a deleted row to an
# inserted one, duplicates of a REPLICA IDENTITY FULL table, rows moved between partitions,
# a table whose target fires a trigger in replica mode (ordered) and is truncated now and then,
# a replica identity index, char(n) values; subtransactions rolled back, whole transactions
# rolled back, big transactions the source streams. Run three ways: as a backlog built while the applier is paused (big batches),
# streamed live while the workload runs, and after a restart with --endpos. After each, the
# target must equal the source (compare_databases: ordered COPY output) and the agent must
# have logged no error, no constraint violation and no missing row.
#
# The seed is fixed (CI stays deterministic); SWITCHYARD_FUZZ_SEED=N runs another one; SWITCHYARD_FUZZ_TXNS=N scales the rounds (default 1500).
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 18

SEED=${SWITCHYARD_FUZZ_SEED:-20261129}
TXNS=${SWITCHYARD_FUZZ_TXNS:-1500}
diag "fuzz seed $SEED (replay: SWITCHYARD_FUZZ_SEED=$SEED), $TXNS source transactions in the first round"

# setseed() takes [-1, 1]: one value per round, from the seed
round_seed() {
	awk -v s="$SEED" -v r="$1" 'BEGIN { printf "%.9f", ((s * 7919 + r * 104729) % 1999993) / 1999993.0 - 0.5 }'
}

# A small logical_decoding_work_mem: the source streams the bigger transactions in chunks,
# with their rolled-back subtransactions cut out of the stream by STREAM ABORT.
ok "source and target start" eval 'pg_start SRC logical_decoding_work_mem=64kB && pg_start DST' ||
	bail_out "setup failed"

ok "schema, workload functions and first rows on the source" psql_file SRC - <<'SQL'
-- incompressible values above the TOAST threshold
CREATE TABLE fz_pool (i int PRIMARY KEY, s text NOT NULL);
INSERT INTO fz_pool SELECT i, (SELECT string_agg(md5(i || ':' || j), '') FROM generate_series(1, 100) j)
FROM generate_series(1, 16) i;

-- (a) plain key, two TOASTable columns (four column sets for updates), char(n), bit(n), nullable int
CREATE TABLE fz_plain (id int PRIMARY KEY, t1 text, t2 text, n int, tag char(8), v bigint NOT NULL DEFAULT 0,
	flags bit(4) NOT NULL DEFAULT B'0000');
-- (b) a second unique column: updates go one statement each, values traded between rows
CREATE TABLE fz_uniq (id int PRIMARY KEY, u int NOT NULL UNIQUE, note text);
-- (c) composite key, changed by updates
CREATE TABLE fz_comp (a int, b int, val text, x int, PRIMARY KEY (a, b));
-- (d) no key, duplicates allowed
CREATE TABLE fz_full (k int, t text, n int);
ALTER TABLE fz_full REPLICA IDENTITY FULL;
-- (e) rows moving between partitions (a delete in one, an insert in another)
CREATE TABLE fz_part (id int, g int, v int, PRIMARY KEY (id, g)) PARTITION BY LIST (g);
CREATE TABLE fz_part_0 PARTITION OF fz_part FOR VALUES IN (0);
CREATE TABLE fz_part_1 PARTITION OF fz_part FOR VALUES IN (1);
CREATE TABLE fz_part_d PARTITION OF fz_part DEFAULT;
-- (f) the target fires a trigger in replica mode: its changes keep their order
CREATE TABLE fz_trig (id int PRIMARY KEY, v int);
CREATE FUNCTION fz_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER fz_trig_noop AFTER INSERT OR UPDATE OR DELETE ON fz_trig FOR EACH ROW EXECUTE FUNCTION fz_noop();
ALTER TABLE fz_trig ENABLE ALWAYS TRIGGER fz_trig_noop;
-- (g) replica identity on a unique index that is not the primary key; its key changes too
CREATE TABLE fz_ri (code int NOT NULL, id int NOT NULL, v int, t text);
CREATE UNIQUE INDEX fz_ri_code ON fz_ri (code);
ALTER TABLE fz_ri REPLICA IDENTITY USING INDEX fz_ri_code;

INSERT INTO fz_plain SELECT g, 'first ' || g, CASE WHEN g % 3 = 0 THEN (SELECT s FROM fz_pool WHERE i = 1 + g % 16) END,
	g, 'tag' || g, 0 FROM generate_series(1, 30) g;
INSERT INTO fz_uniq SELECT g, g * 5, 'note ' || g FROM generate_series(1, 30) g;
INSERT INTO fz_comp SELECT a, b, 'v' || a || '/' || b, a * b FROM generate_series(1, 8) a, generate_series(1, 4) b;
INSERT INTO fz_full SELECT g % 12, CASE WHEN g % 4 = 0 THEN NULL ELSE 'r' || (g % 5) END, NULLIF(g % 3, 0)
	FROM generate_series(1, 40) g;
INSERT INTO fz_part SELECT g, g % 3, g FROM generate_series(1, 20) g;
INSERT INTO fz_trig SELECT g, g FROM generate_series(1, 20) g;
INSERT INTO fz_ri SELECT g, g * 10, g, 'ri ' || g FROM generate_series(1, 20) g;

-- ---- the workload: every random choice comes from random() after setseed(), in one session

CREATE FUNCTION fz_r(n int) RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT 1 + floor(random() * n)::int $$;

-- NULL, a short text, or a TOASTed one
CREATE FUNCTION fz_text() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	p float8 := random();
	k int;
BEGIN
	IF p < 0.1 THEN
		RETURN NULL;
	ELSIF p < 0.6 THEN
		RETURN 'short ' || fz_r(100000);
	END IF;
	k := fz_r(16);
	RETURN (SELECT s FROM fz_pool WHERE i = k) || ' #' || fz_r(100000);
END $$;

CREATE FUNCTION fz_int() RETURNS int LANGUAGE sql VOLATILE AS $$
	SELECT CASE WHEN random() < 0.2 THEN NULL ELSE fz_r(1000) END $$;

CREATE FUNCTION fz_tag() RETURNS text LANGUAGE sql VOLATILE AS $$
	SELECT (ARRAY[NULL, 'a', 'bc', 'abcdefgh', 'x y', 'tag' || fz_r(99)])[fz_r(6)] $$;

CREATE FUNCTION fz_op_plain() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	k int := fz_r(40);
	k2 int := fz_r(40);
BEGIN
	CASE fz_r(13)
	WHEN 1 THEN
		INSERT INTO fz_plain VALUES (k, fz_text(), fz_text(), fz_int(), fz_tag(), 0) ON CONFLICT DO NOTHING;
	WHEN 2 THEN
		UPDATE fz_plain SET v = v + 1 WHERE id = k;              -- TOASTed values unchanged
	WHEN 3 THEN
		UPDATE fz_plain SET t1 = fz_text() WHERE id = k;         -- t2 unchanged
	WHEN 4 THEN
		UPDATE fz_plain SET t2 = fz_text(), n = fz_int() WHERE id = k;
	WHEN 5 THEN
		UPDATE fz_plain SET n = fz_int(), tag = fz_tag(), flags = (fz_r(16) - 1)::bit(4) WHERE id = k;
	WHEN 6 THEN
		DELETE FROM fz_plain WHERE id = k;
	WHEN 7 THEN                                                  -- the same key, other values
		DELETE FROM fz_plain WHERE id = k;
		INSERT INTO fz_plain VALUES (k, fz_text(), fz_text(), fz_int(), fz_tag(), fz_r(9));
	WHEN 8 THEN                                                  -- insert, update, delete, insert
		IF NOT EXISTS (SELECT 1 FROM fz_plain WHERE id = k) THEN
			INSERT INTO fz_plain VALUES (k, fz_text(), fz_text(), fz_int(), fz_tag(), 0);
			UPDATE fz_plain SET v = v + 5, n = fz_int() WHERE id = k;
			DELETE FROM fz_plain WHERE id = k;
			INSERT INTO fz_plain VALUES (k, fz_text(), NULL, fz_int(), fz_tag(), 7);
			UPDATE fz_plain SET t2 = fz_text() WHERE id = k;
		END IF;
	WHEN 9 THEN                                                  -- key change
		UPDATE fz_plain SET id = k2 WHERE id = k AND NOT EXISTS (SELECT 1 FROM fz_plain WHERE id = k2);
	WHEN 10 THEN                                                 -- into a key a delete just freed
		IF k <> k2 THEN
			DELETE FROM fz_plain WHERE id = k2;
			UPDATE fz_plain SET id = k2, v = v + 1 WHERE id = k;
		END IF;
	WHEN 11 THEN
		INSERT INTO fz_plain VALUES (k, fz_text(), fz_text(), fz_int(), fz_tag(), 0)
		ON CONFLICT (id) DO UPDATE SET v = fz_plain.v + 10, tag = EXCLUDED.tag;
	WHEN 12 THEN                                                 -- several rows, one statement
		UPDATE fz_plain SET v = v + 1, n = CASE WHEN n IS NULL THEN 0 END WHERE id BETWEEN k AND k + 6;
	ELSE                                                         -- updated twice, the same column set
		UPDATE fz_plain SET n = fz_int() WHERE id = k;
		UPDATE fz_plain SET v = v + 2 WHERE id = k2;
		UPDATE fz_plain SET n = coalesce(n, 0) + 1, tag = fz_tag() WHERE id = k;
	END CASE;
END $$;

CREATE FUNCTION fz_op_uniq() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	k int;
	k2 int;
	k3 int;
	u1 int;
	u2 int;
	u3 int;
	x int := fz_r(200);
	n int := fz_r(40);
	p1 int := fz_r(40);
	p2 int := fz_r(40);
	p3 int := fz_r(40);
BEGIN
	SELECT id, u INTO k, u1 FROM fz_uniq WHERE id >= p1 ORDER BY id LIMIT 1;
	SELECT id, u INTO k2, u2 FROM fz_uniq WHERE id <= p2 ORDER BY id DESC LIMIT 1;
	SELECT id, u INTO k3, u3 FROM fz_uniq WHERE id >= p3 ORDER BY id LIMIT 1;
	CASE fz_r(11)
	WHEN 1 THEN                                                  -- swap through a spare value
		IF k <> k2 THEN
			UPDATE fz_uniq SET u = -k WHERE id = k;
			UPDATE fz_uniq SET u = u1 WHERE id = k2;
			UPDATE fz_uniq SET u = u2 WHERE id = k;
		END IF;
	WHEN 2 THEN                                                  -- rotate three
		IF k <> k2 AND k2 <> k3 AND k <> k3 THEN
			UPDATE fz_uniq SET u = -k WHERE id = k;
			UPDATE fz_uniq SET u = u1 WHERE id = k2;
			UPDATE fz_uniq SET u = u2 WHERE id = k3;
			UPDATE fz_uniq SET u = u3 WHERE id = k;
		END IF;
	WHEN 3 THEN                                                  -- from a deleted row to an inserted one
		IF k IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fz_uniq WHERE id = n) THEN
			DELETE FROM fz_uniq WHERE id = k;
			INSERT INTO fz_uniq VALUES (n, u1, 'took ' || u1);
		END IF;
	WHEN 4 THEN                                                  -- from a deleted row to another row
		IF k <> k2 THEN
			DELETE FROM fz_uniq WHERE id = k;
			UPDATE fz_uniq SET u = u1 WHERE id = k2;
		END IF;
	WHEN 5 THEN
		UPDATE fz_uniq SET note = 'note ' || fz_r(1000) WHERE id = k;
	WHEN 6 THEN
		UPDATE fz_uniq SET u = x WHERE id = k AND NOT EXISTS (SELECT 1 FROM fz_uniq WHERE u = x);
	WHEN 7 THEN
		INSERT INTO fz_uniq VALUES (n, x, 'new') ON CONFLICT DO NOTHING;
	WHEN 8 THEN                                                  -- key change
		UPDATE fz_uniq SET id = n WHERE id = k AND NOT EXISTS (SELECT 1 FROM fz_uniq WHERE id = n);
	WHEN 9 THEN                                                  -- deleted and inserted again, other values
		IF k IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fz_uniq WHERE u = x) THEN
			DELETE FROM fz_uniq WHERE id = k;
			INSERT INTO fz_uniq VALUES (k, x, 'again');
		END IF;
	WHEN 10 THEN                                                 -- inserted, then traded
		IF k IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fz_uniq WHERE id = n OR u = x) THEN
			INSERT INTO fz_uniq VALUES (n, x, 'fresh');
			UPDATE fz_uniq SET u = -n WHERE id = n;
			UPDATE fz_uniq SET u = x WHERE id = k;
			UPDATE fz_uniq SET u = u1 WHERE id = n;
		END IF;
	ELSE                                                         -- a value freed and taken back
		IF k <> k2 THEN
			UPDATE fz_uniq SET u = -k WHERE id = k;
			UPDATE fz_uniq SET note = 'between' WHERE id = k2;
			UPDATE fz_uniq SET u = u1 WHERE id = k;
		END IF;
	END CASE;
END $$;

CREATE FUNCTION fz_op_comp() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	a1 int := fz_r(8);
	a2 int := fz_r(8);
	b1 int := fz_r(5);
	b2 int := fz_r(5);
BEGIN
	CASE fz_r(9)
	WHEN 1 THEN
		INSERT INTO fz_comp VALUES (a1, b1, fz_text(), fz_int()) ON CONFLICT DO NOTHING;
	WHEN 2 THEN
		UPDATE fz_comp SET val = fz_text(), x = fz_int() WHERE a = a1 AND b = b1;
	WHEN 3 THEN
		UPDATE fz_comp SET x = coalesce(x, 0) + 1 WHERE a = a1 AND b = b1;
	WHEN 4 THEN                                                  -- key change
		UPDATE fz_comp SET b = b2 WHERE a = a1 AND b = b1
			AND NOT EXISTS (SELECT 1 FROM fz_comp WHERE a = a1 AND b = b2);
	WHEN 5 THEN                                                  -- into a key a delete just freed
		IF b1 <> b2 THEN
			DELETE FROM fz_comp WHERE a = a1 AND b = b2;
			UPDATE fz_comp SET b = b2, x = fz_int() WHERE a = a1 AND b = b1;
		END IF;
	WHEN 6 THEN                                                  -- keys swapped through a spare one
		IF b1 <> b2 THEN
			UPDATE fz_comp SET b = 0 WHERE a = a1 AND b = b1;
			UPDATE fz_comp SET b = b1 WHERE a = a1 AND b = b2;
			UPDATE fz_comp SET b = b2 WHERE a = a1 AND b = 0;
		END IF;
	WHEN 7 THEN
		DELETE FROM fz_comp WHERE a = a1 AND b = b1;
	WHEN 8 THEN
		UPDATE fz_comp SET a = a2 WHERE a = a1 AND b = b1
			AND NOT EXISTS (SELECT 1 FROM fz_comp WHERE a = a2 AND b = b1);
	ELSE
		UPDATE fz_comp SET x = coalesce(x, 0) + 1 WHERE a = a1;
	END CASE;
END $$;

CREATE FUNCTION fz_op_full() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	k1 int := fz_r(12);
BEGIN
	CASE fz_r(8)
	WHEN 1 THEN
		INSERT INTO fz_full VALUES (k1, CASE WHEN random() < 0.3 THEN NULL ELSE 'r' || fz_r(4) END, fz_int());
	WHEN 2 THEN                                                  -- an exact duplicate
		INSERT INTO fz_full SELECT k, t, n FROM fz_full WHERE k = k1 ORDER BY n NULLS FIRST, t NULLS FIRST LIMIT 1;
	WHEN 3 THEN
		DELETE FROM fz_full WHERE ctid = (SELECT ctid FROM fz_full WHERE k = k1
			ORDER BY n NULLS FIRST, t NULLS FIRST LIMIT 1);
	WHEN 4 THEN
		UPDATE fz_full SET n = coalesce(n, 0) + 1 WHERE ctid = (SELECT ctid FROM fz_full WHERE k = k1
			ORDER BY n DESC NULLS LAST, t LIMIT 1);
	WHEN 5 THEN                                                  -- sometimes TOASTed
		UPDATE fz_full SET t = fz_text() WHERE ctid = (SELECT ctid FROM fz_full WHERE k = k1
			ORDER BY n NULLS FIRST, t NULLS FIRST LIMIT 1);
	WHEN 6 THEN
		DELETE FROM fz_full WHERE k = k1;
	WHEN 7 THEN                                                  -- every duplicate at once
		UPDATE fz_full SET n = NULL WHERE k = k1;
	ELSE
		UPDATE fz_full SET k = fz_r(12) WHERE ctid = (SELECT ctid FROM fz_full WHERE k = k1
			ORDER BY n NULLS FIRST, t NULLS FIRST LIMIT 1);
	END CASE;
END $$;

CREATE FUNCTION fz_op_part() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	i1 int := fz_r(20);
	g1 int := fz_r(3) - 1;
	g2 int := fz_r(3) - 1;
BEGIN
	CASE fz_r(6)
	WHEN 1 THEN
		INSERT INTO fz_part VALUES (i1, g1, fz_int()) ON CONFLICT DO NOTHING;
	WHEN 2 THEN                                                  -- to another partition
		UPDATE fz_part SET g = g2 WHERE id = i1 AND g = g1
			AND NOT EXISTS (SELECT 1 FROM fz_part WHERE id = i1 AND g = g2);
	WHEN 3 THEN
		UPDATE fz_part SET v = fz_int() WHERE id = i1;
	WHEN 4 THEN
		DELETE FROM fz_part WHERE id = i1 AND g = g1;
	WHEN 5 THEN                                                  -- there and back
		IF g1 <> g2 AND NOT EXISTS (SELECT 1 FROM fz_part WHERE id = i1 AND g = g2) THEN
			UPDATE fz_part SET g = g2, v = coalesce(v, 0) + 1 WHERE id = i1 AND g = g1;
			UPDATE fz_part SET g = g1 WHERE id = i1 AND g = g2;
		END IF;
	ELSE                                                         -- into a key a delete just freed
		IF g1 <> g2 THEN
			DELETE FROM fz_part WHERE id = i1 AND g = g2;
			UPDATE fz_part SET g = g2 WHERE id = i1 AND g = g1;
		END IF;
	END CASE;
END $$;

CREATE FUNCTION fz_op_trig() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	k int := fz_r(25);
BEGIN
	CASE fz_r(40)
	WHEN 1 THEN                                                  -- a barrier for every group
		TRUNCATE fz_trig;
	WHEN 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 THEN
		INSERT INTO fz_trig VALUES (k, 0) ON CONFLICT (id) DO UPDATE SET v = fz_trig.v + 1;
	WHEN 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27 THEN
		UPDATE fz_trig SET v = v * 2 WHERE id = k;
	ELSE
		DELETE FROM fz_trig WHERE id = k;
	END CASE;
END $$;

CREATE FUNCTION fz_op_ri() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	c1 int := fz_r(30);
	c2 int := fz_r(30);
BEGIN
	CASE fz_r(6)
	WHEN 1 THEN
		INSERT INTO fz_ri VALUES (c1, fz_r(1000), fz_int(), fz_text()) ON CONFLICT DO NOTHING;
	WHEN 2 THEN
		UPDATE fz_ri SET v = fz_int() WHERE code = c1;
	WHEN 3 THEN
		UPDATE fz_ri SET t = fz_text(), v = coalesce(v, 0) + 1 WHERE code = c1;
	WHEN 4 THEN                                                  -- key change
		UPDATE fz_ri SET code = c2 WHERE code = c1 AND NOT EXISTS (SELECT 1 FROM fz_ri WHERE code = c2);
	WHEN 5 THEN
		DELETE FROM fz_ri WHERE code = c1;
	ELSE
		UPDATE fz_ri SET id = id + 1 WHERE code = c1;
	END CASE;
END $$;

CREATE FUNCTION fz_op() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	t int := fz_r(100);
BEGIN
	IF t <= 22 THEN
		PERFORM fz_op_plain();
	ELSIF t <= 42 THEN
		PERFORM fz_op_uniq();
	ELSIF t <= 57 THEN
		PERFORM fz_op_comp();
	ELSIF t <= 72 THEN
		PERFORM fz_op_full();
	ELSIF t <= 84 THEN
		PERFORM fz_op_part();
	ELSIF t <= 90 THEN
		PERFORM fz_op_trig();
	ELSE
		PERFORM fz_op_ri();
	END IF;
END $$;

-- a subtransaction, rolled back half of the time, maybe nested
CREATE FUNCTION fz_sub(depth int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		FOR i IN 1 .. fz_r(4) LOOP
			IF depth < 3 AND random() < 0.25 THEN
				PERFORM fz_sub(depth + 1);
			ELSE
				PERFORM fz_op();
			END IF;
		END LOOP;
		IF random() < 0.5 THEN
			RAISE EXCEPTION 'fuzz rollback' USING ERRCODE = 'FZ001';
		END IF;
	EXCEPTION WHEN SQLSTATE 'FZ001' THEN
		NULL;
	END;
END $$;

-- txns source transactions; a pause of pause_ms after every tenth
CREATE PROCEDURE fz_run(seed float8, txns int, pause_ms int DEFAULT 0) LANGUAGE plpgsql AS $$
DECLARE
	nops int;
	k int;
	k2 int;
	u1 int;
	u2 int;
	p1 int;
	p2 int;
BEGIN
	PERFORM setseed(seed);
	FOR tx IN 1 .. txns LOOP
		IF random() < 0.05 THEN
			nops := 60 + fz_r(120);                              -- big: the source may stream it
		ELSE
			nops := fz_r(8);
		END IF;
		FOR i IN 1 .. nops LOOP
			IF random() < 0.12 THEN
				PERFORM fz_sub(1);
			ELSE
				PERFORM fz_op();
			END IF;
		END LOOP;
		IF random() < 0.03 THEN
			ROLLBACK;
		ELSE
			COMMIT;
		END IF;
		IF random() < 0.02 THEN                                  -- a swap spread over three transactions
			p1 := fz_r(40);
			p2 := fz_r(40);
			SELECT id, u INTO k, u1 FROM fz_uniq WHERE id >= p1 ORDER BY id LIMIT 1;
			SELECT id, u INTO k2, u2 FROM fz_uniq WHERE id <= p2 ORDER BY id DESC LIMIT 1;
			IF k <> k2 THEN
				UPDATE fz_uniq SET u = -k WHERE id = k;
				COMMIT;
				UPDATE fz_uniq SET u = u1 WHERE id = k2;
				COMMIT;
				UPDATE fz_uniq SET u = u2 WHERE id = k;
			END IF;
			COMMIT;
		END IF;
		IF pause_ms > 0 AND tx % 10 = 0 THEN
			PERFORM pg_sleep(pause_ms / 1000.0);
		END IF;
	END LOOP;
END $$;
SQL
ok "schema and rows copied to the target" copy_database SRC DST

# fz_run ROUND TXNS [PAUSE_MS]: one round of the workload on the source, in one session. Its
# commits do not wait for the WAL flush; a last transaction that does (an xid, no row) makes
# source_lsn afterwards cover every one of them.
fz_run() {
	psql_on SRC "set synchronous_commit = off" "call fz_run($(round_seed "$1"), $2, ${3:-0})" \
		"set synchronous_commit = on" "select pg_logical_emit_message(true, 'fuzz', 'round $1') is not null" \
		>/dev/null
}

# the source's change counts per table, for the log
fz_counts() {
	psql_on SRC "select string_agg(format('%s %s/%s/%s', relname, n_tup_ins, n_tup_upd, n_tup_del), ', ' order by relname)
		from pg_stat_user_tables where relname like 'fz\_%' and relname <> 'fz_pool'"
}

# no error, constraint violation or missing row in the agent's log so far (the guard's
# warnings about our own psql sessions on the target aside)
log_clean() {
	local bad
	bad=$(grep -nE 'ERROR|FATAL|PANIC|WARNING|violates|not found on the target|retry' "$AGENT_LOG" |
		grep -v 'target guard violation: foreign session' | head -n 20)
	if [ -n "$bad" ]; then
		printf '%s\n' "$bad" | cut -c1-300 | sed 's/^/# /'
		return 1
	fi
}

STALLED=0
# caught_up LSN TIMEOUT: wait_applied, or fail at once if an earlier round already stalled
caught_up() {
	if [ "$STALLED" -eq 1 ]; then
		echo "# skipped: an earlier round did not catch up"
		return 1
	fi
	wait_applied "$1" "$2" || { STALLED=1; return 1; }
}

agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN"
ok "the agent creates its replication slot" wait_slot SRC 30

# ---- round 1: a backlog, applied in big batches
ok "the applier pauses" timeout 30 "$SWITCHYARD" pause --state-dir "$AGENT_STATE"
t0=$SECONDS
ok "round 1: $TXNS source transactions while the applier is paused" fz_run 1 "$TXNS"
end=$(source_lsn SRC)
diag "round 1 took $((SECONDS - t0))s; source changes so far (ins/upd/del): $(fz_counts)"
ok "the applier resumes" timeout 30 "$SWITCHYARD" resume --state-dir "$AGENT_STATE"
ok "round 1: the backlog is applied up to $end" caught_up "$end" 45
ok "round 1: the target equals the source" compare_databases SRC DST

# ---- round 2: streamed while the workload runs
t0=$SECONDS
bg_start fuzz.live fz_run 2 $((TXNS / 2)) 20
LIVE_PID=$BG_PID
ok "round 2: $((TXNS / 2)) source transactions streamed live" wait "$LIVE_PID"
end=$(source_lsn SRC)
diag "round 2 took $((SECONDS - t0))s"
ok "round 2: applied up to $end" caught_up "$end" 45
ok "round 2: the target equals the source" compare_databases SRC DST

# ---- round 3: written while the agent is stopped, applied by a restarted agent up to --endpos
ok "the agent stops (exit 0)" agent_stop 60
ok "round 3: $((TXNS / 2)) source transactions while the agent is stopped" fz_run 3 $((TXNS / 2))
end=$(source_lsn SRC)
agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN" --endpos "$end"
if [ "$STALLED" -eq 1 ]; then
	fail "round 3: run --endpos $end applies the backlog and exits 0"
	diag "skipped: an earlier round did not catch up"
	agent_stop 10 >/dev/null
else
	ok "round 3: run --endpos $end applies the backlog and exits 0" agent_wait 45
fi
ok "round 3: the target equals the source" compare_databases SRC DST
diag "source changes in all (ins/upd/del): $(fz_counts)"
diag "transactions the source streamed (count/chunks): $(psql_on SRC "select stream_txns || '/' || stream_count
	from pg_stat_replication_slots order by slot_name limit 1")"

ok "the agent logged no error, constraint violation, missing row or retry" log_clean
is "$STALLED" 0 "no round stalled (each caught up within its bound)"
