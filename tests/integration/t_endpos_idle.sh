#!/usr/bin/env bash
# --endpos finishes on an idle source: the last transaction ends before the end position
# (a checkpoint or a non-transactional message follows it, nothing to decode), so only the
# keepalives' WAL position can tell the agent it is there. Each run must exit 0 within
# seconds, again with a later end position, and at once with one already reached.
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 11

ok "source and target start" eval 'pg_start SRC && pg_start DST' || bail_out "setup failed"
psql_on SRC "create table t (id serial primary key, v text, at timestamptz default now())" \
	"insert into t (v) select 'seed ' || g from generate_series(1, 100) g" >/dev/null
ok "database copied to the target" copy_database SRC DST

# First run: slot, publication and origin, some changes, then a clean stop.
agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN"
ok "the agent creates its replication slot" wait_slot SRC 30
psql_on SRC "insert into t (v) select 'first ' || g from generate_series(1, 10) g" >/dev/null
ok "switchyard stop: the agent exits 0" agent_stop 60

# run_to ENDPOS LIMIT: a run with --endpos must exit 0 within LIMIT seconds.
run_to() {
	local t0=$SECONDS rc
	agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN" --endpos "$1"
	agent_wait "$2"
	rc=$?
	echo "# exit status $rc after $((SECONDS - t0))s"
	return "$rc"
}

psql_on SRC "insert into t (v) select 'second ' || g from generate_series(1, 10) g" "checkpoint" >/dev/null
lsn1=$(source_lsn SRC)
ok "run --endpos $lsn1 on an idle source exits 0 within 20 s" run_to "$lsn1" 20
ok "status of the stopped agent shows applied_lsn >= $lsn1" eval \
	'lsn_ge "$(status_get applied_lsn)" "$lsn1"'
ok "the target equals the source" compare_databases SRC DST

psql_on SRC "update t set v = v || ' (updated)' where id % 7 = 0" \
	"select pg_logical_emit_message(false, 'switchyard-test', 'not a transaction')" >/dev/null
sleep 1
lsn2=$(source_lsn SRC)
ok "a second run with a later --endpos $lsn2 exits 0 within 20 s" run_to "$lsn2" 20
ok "the target equals the source" compare_databases SRC DST

ok "a run whose --endpos is already applied exits 0 within 10 s" run_to "$lsn1" 10
ok "a run with --endpos before the slot was created exits 0 within 10 s" run_to 0/1000000 10
