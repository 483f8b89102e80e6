#!/usr/bin/env bash
# Rows that trade a unique value between them: list positions swapped through a spare value,
# a booking moved between time slots under an exclusion constraint, e-mails swapped under a
# unique index on lower(email), positions rotated in a partitioned table. The source passes
# through no state where two rows hold one value; the applier must not either, though it
# batches many source transactions into one target transaction and groups rows into
# multi-row statements. Before the fix, the applier sent such updates as one multi-row
# UPDATE, which met the unique check mid-statement and retried the same failure forever.
. "$(dirname "$0")/lib.sh"
harness_init 150

plan 8

ok "source and target start" eval 'pg_start SRC && pg_start DST' || bail_out "setup failed"

ok "schema and rows on the source" psql_file SRC - <<'SQL'
CREATE TABLE queue_slots (id int PRIMARY KEY, pos int NOT NULL UNIQUE, label text);
INSERT INTO queue_slots SELECT g, g, 'item ' || g FROM generate_series(1, 60) g;

CREATE TABLE bookings (id int PRIMARY KEY, during tstzrange NOT NULL,
	EXCLUDE USING gist (during WITH &&));
INSERT INTO bookings SELECT g, tstzrange(timestamptz '2026-01-01' + g * interval '1 hour',
	timestamptz '2026-01-01' + (g + 1) * interval '1 hour') FROM generate_series(1, 20) g;

CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL);
CREATE UNIQUE INDEX people_email_lower ON people (lower(email));
INSERT INTO people SELECT g, 'Person' || g || '@example.test' FROM generate_series(1, 20) g;

CREATE TABLE ranked (id int, region text, pos int NOT NULL, PRIMARY KEY (id, region),
	UNIQUE (region, pos)) PARTITION BY LIST (region);
CREATE TABLE ranked_eu PARTITION OF ranked FOR VALUES IN ('eu');
CREATE TABLE ranked_us PARTITION OF ranked FOR VALUES IN ('us');
INSERT INTO ranked SELECT g, (ARRAY['eu', 'us'])[1 + g % 2], g FROM generate_series(1, 40) g;

-- the whole key inside the only other unique index: updates of distinct rows commute
CREATE TABLE scores (id int PRIMARY KEY, x int NOT NULL, UNIQUE (x, id));
INSERT INTO scores SELECT g, g FROM generate_series(1, 20) g;
SQL
ok "schema and rows copied to the target" copy_database SRC DST

agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN"
ok "the agent creates its replication slot" wait_slot SRC 30

# Each swap is three transactions: a -> spare, b -> a's old value, a -> b's old value.
ok "values traded between rows on the source, one transaction per step" psql_file SRC - <<'SQL'
DO $$
DECLARE
	p int;
	q int;
BEGIN
	FOR k IN 1 .. 25 LOOP
		UPDATE queue_slots SET pos = 1000 WHERE id = k;
		COMMIT;
		UPDATE queue_slots SET pos = k WHERE id = k + 30;
		COMMIT;
		UPDATE queue_slots SET pos = k + 30 WHERE id = k;
		COMMIT;
	END LOOP;
	FOR k IN 1 .. 8 LOOP
		UPDATE bookings SET during = tstzrange('2030-01-01', '2030-01-02') WHERE id = k;
		COMMIT;
		UPDATE bookings SET during = tstzrange(timestamptz '2026-01-01' + k * interval '1 hour',
			timestamptz '2026-01-01' + (k + 1) * interval '1 hour') WHERE id = k + 10;
		COMMIT;
		UPDATE bookings SET during = tstzrange(timestamptz '2026-01-01' + (k + 10) * interval '1 hour',
			timestamptz '2026-01-01' + (k + 11) * interval '1 hour') WHERE id = k;
		COMMIT;
	END LOOP;
	FOR k IN 1 .. 8 LOOP
		UPDATE people SET email = 'spare@example.test' WHERE id = k;
		COMMIT;
		UPDATE people SET email = upper('Person' || k || '@example.test') WHERE id = k + 10;
		COMMIT;
		UPDATE people SET email = 'Person' || (k + 10) || '@example.test' WHERE id = k;
		COMMIT;
	END LOOP;
	FOR k IN 1 .. 10 LOOP
		UPDATE ranked SET pos = 1000 WHERE id = 2 * k AND region = 'eu';
		COMMIT;
		UPDATE ranked SET pos = 2 * k WHERE id = 2 * k + 20 AND region = 'eu';
		COMMIT;
		UPDATE ranked SET pos = 2 * k + 20 WHERE id = 2 * k AND region = 'eu';
		COMMIT;
	END LOOP;
	FOR k IN 1 .. 10 LOOP
		UPDATE scores SET x = x + 100 WHERE id = k;
		UPDATE scores SET x = x - 100 WHERE id = k + 10;
		COMMIT;
	END LOOP;
	-- deletes, which the applier also groups: a freed value taken by an update and by an
	-- insert, a key deleted and inserted again, a row updated and then deleted
	FOR k IN 41 .. 50 LOOP
		SELECT pos INTO p FROM queue_slots WHERE id = k;
		SELECT pos INTO q FROM queue_slots WHERE id = k + 10;
		DELETE FROM queue_slots WHERE id = k;
		COMMIT;
		UPDATE queue_slots SET pos = p WHERE id = k + 10;
		COMMIT;
		INSERT INTO queue_slots VALUES (k, q, 'again');
		COMMIT;
	END LOOP;
	FOR k IN 1 .. 10 LOOP
		UPDATE scores SET x = x + 1 WHERE id = k;
		COMMIT;
		DELETE FROM scores WHERE id = k;
		COMMIT;
		INSERT INTO scores VALUES (k, k * 1000);
		COMMIT;
		DELETE FROM scores WHERE id = k + 10;
		COMMIT;
	END LOOP;
END
$$;
SQL

end=$(source_lsn SRC)
ok "the agent applies everything up to $end" wait_applied "$end" 60
ok "the target equals the source" compare_databases SRC DST
unlike "$(cat "$AGENT_LOG")" 'violates|ERROR|not found' "the agent met no constraint violation and no missing row on the target" ||
	diag_file "$AGENT_LOG" 20
agent_stop 60 >/dev/null
