#!/usr/bin/env bash
# Memory does not grow with transaction size: one transaction inserts 1,000,000 rows and
# updates 250,000 of them (with a savepoint rolled back inside it), while small transactions
# commit around it; then a 333,000-row update, a 100,000-row delete and a 300,000-row
# transaction that is rolled back. The source streams big transactions in chunks
# (logical_decoding_work_mem = 4MB). The agent's peak RSS stays under 64 MB, its spool is
# cleaned up once applied, and the target equals the source.
. "$(dirname "$0")/lib.sh"
harness_init 175

plan 9

ok "source and target start" eval 'pg_start SRC logical_decoding_work_mem=4MB && pg_start DST' ||
	bail_out "setup failed"
psql_on SRC "create table big (id bigint primary key, payload text not null, n int not null default 0)" \
	"create table small (id serial primary key, note text not null, at timestamptz default now())" >/dev/null
ok "schema copied to the target" copy_schema SRC DST

agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN"
ok "the agent creates its replication slot" wait_slot SRC 30

cat >"$SY_BASE/big.sql" <<'SQL'
BEGIN;
INSERT INTO big SELECT g, md5(g::text), 0 FROM generate_series(1, 1000000) g;
SAVEPOINT s1;
INSERT INTO big SELECT g, 'rolled back to the savepoint', 0 FROM generate_series(2000001, 2100000) g;
ROLLBACK TO SAVEPOINT s1;
UPDATE big SET n = 1, payload = payload || '+' WHERE id % 4 = 0;
SELECT pg_sleep(2);
COMMIT;
SQL
start=$SECONDS
bg_start bigtx psql_file SRC "$SY_BASE/big.sql"
bigtx=$BG_PID
# Small transactions that begin after the big one and commit before it.
for i in $(seq 1 20); do
	psql_on SRC "insert into small (note) values ('during the big transaction $i')" >/dev/null
	sleep 0.3
done
wait "$bigtx"
ok "the big transaction commits" test $? -eq 0
psql_on SRC "update big set n = n + 1 where id % 3 = 0" \
	"delete from big where id % 10 = 0" \
	"begin; insert into big select g, 'aborted', 0 from generate_series(3000001, 3300000) g; rollback;" \
	"insert into small (note) values ('after')" >/dev/null
diag "source work took $((SECONDS - start))s"

end=$(source_lsn SRC)
ok "the agent applies everything up to $end" wait_applied "$end" 120
rss=$(agent_rss_kb)
diag "agent peak RSS (VmHWM): ${rss:-unknown} kB; state dir: $(state_dir_kb) kB"
if [ "${rss:-999999}" -ge 65536 ] && grep -qE "__asan_init|__tsan_init" "$SWITCHYARD"; then
	# ASan (its quarantine holds freed memory) or TSan (its shadow memory): peak RSS measures nothing here
	ok "agent peak RSS ${rss:-unknown} kB < 65536 kB # SKIP sanitizer build"
else
	ok "agent peak RSS ${rss:-unknown} kB < 65536 kB" test "${rss:-999999}" -lt 65536
fi

ok "the spool is cleaned up once applied (state dir < 64 MB within 30 s)" \
	wait_for 30 "the spool to shrink" eval '[ "$(state_dir_kb)" -lt 65536 ]' ||
	diag "state dir: $(state_dir_kb) kB"
ok "the target equals the source" compare_databases SRC DST
ok "switchyard stop: the agent exits 0" agent_stop 60
