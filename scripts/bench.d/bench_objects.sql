-- bench: tables and procedures the benchmark adds to the chat database (source and target).
-- Load after tests/fixtures/chat/schema.sql.

-- A marker row ends each catch-up backlog: once it is visible on the target, everything
-- committed before it on the source is applied (both contenders apply in commit order).
CREATE TABLE bench_marker (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());

-- Lag probes: inserted on the source every few ms, watched for on the target.
CREATE TABLE bench_probe (id bigserial PRIMARY KEY, src_at timestamptz NOT NULL);

-- The memory section's big transaction writes here.
CREATE TABLE bench_big (id bigint PRIMARY KEY, payload text NOT NULL, n int NOT NULL DEFAULT 0);

-- On the target: wait (polling every 2 ms, committing between polls so no snapshot is held)
-- until marker ID is visible; fails after TIMEOUT_S seconds.
CREATE PROCEDURE bench_wait_marker(marker int, timeout_s float8)
LANGUAGE plpgsql AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + timeout_s * interval '1 second';
BEGIN
	LOOP
		EXIT WHEN EXISTS (SELECT 1 FROM bench_marker WHERE id = marker);
		IF clock_timestamp() > deadline THEN
			RAISE EXCEPTION 'marker % not visible after % s', marker, timeout_s;
		END IF;
		COMMIT;
		PERFORM pg_sleep(0.002);
	END LOOP;
END $$;

-- On the source: a probe row every INTERVAL_MS for SECS seconds, each its own transaction;
-- src_at is the source clock at the INSERT (just before its COMMIT).
CREATE PROCEDURE bench_probe_loop(secs float8, interval_ms float8)
LANGUAGE plpgsql AS $$
DECLARE
	t_end timestamptz := clock_timestamp() + secs * interval '1 second';
BEGIN
	WHILE clock_timestamp() < t_end LOOP
		INSERT INTO bench_probe (src_at) VALUES (clock_timestamp());
		COMMIT;
		PERFORM pg_sleep(interval_ms / 1000.0);
	END LOOP;
END $$;

-- On the target: for SECS seconds, poll every ~1 ms for probe rows that became visible and
-- note (now - src_at) for each, in ms (both servers run on this machine: one clock). Result:
-- "seen p50 p99 max at" (ms; at: seconds from the start of the watch to the probe with the
-- highest lag), then "at:lag,..." for the probes over 20 ms. Commits between polls, so it
-- holds no snapshot.
CREATE PROCEDURE bench_watch(secs float8, INOUT result text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
	t_end timestamptz := clock_timestamp() + secs * interval '1 second';
	last bigint;
	m bigint;
	lags float8[] := '{}';
	ats float8[] := '{}';
	t_start timestamptz := clock_timestamp();
BEGIN
	SELECT coalesce(max(id), 0) INTO last FROM bench_probe;
	COMMIT;
	WHILE clock_timestamp() < t_end LOOP
		SELECT max(id) INTO m FROM bench_probe WHERE id > last;
		IF m IS NOT NULL THEN
			lags := lags || ARRAY(SELECT extract(epoch FROM clock_timestamp() - src_at) * 1000
			                      FROM bench_probe WHERE id > last AND id <= m ORDER BY id);
			ats := ats || ARRAY(SELECT extract(epoch FROM src_at - t_start)
			                    FROM bench_probe WHERE id > last AND id <= m ORDER BY id);
			last := m;
		END IF;
		COMMIT;
		PERFORM pg_sleep(0.001);
	END LOOP;
	SELECT format('%s %s %s %s %s', count(*),
	              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric, 3),
	              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric, 3),
	              round(max(l)::numeric, 3),
	              round((array_agg(a ORDER BY l DESC))[1]::numeric, 1))
	  INTO result FROM unnest(lags, ats) u(l, a);
	-- then the spikes (over 20 ms), "at:lag" (s:ms), at most 40, for the log
	result := result || coalesce(' ' || (SELECT string_agg(format('%s:%s', round(a::numeric, 2), round(l::numeric, 1)), ',' ORDER BY a)
	                                     FROM (SELECT * FROM unnest(lags, ats) u(l, a) WHERE l > 20 ORDER BY a LIMIT 40) x), '');
END $$;
