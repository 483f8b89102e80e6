#!/usr/bin/env bash
# A table first written by a big transaction, which the source streams in chunks: pgoutput
# then sends the table's Relation message only inside that stream and not again for the
# walsender's later transactions. Once the stream's spool file is applied and released, a
# restart must still find the table's columns for the later, not yet applied changes that
# were spooled before it. (Before the fix the applier stopped for good on "change for
# relation ... without a relation message".)
. "$(dirname "$0")/lib.sh"
harness_init 120

plan 8

ok "source and target start" eval 'pg_start SRC logical_decoding_work_mem=64kB && pg_start DST' ||
	bail_out "setup failed"
psql_on SRC "create table bulk (id int primary key, v text not null)" >/dev/null
ok "schema copied to the target" copy_schema SRC DST

agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN"
ok "the agent creates its replication slot" wait_slot SRC 30

psql_on SRC "insert into bulk select g, md5(g::text) from generate_series(1, 20000) g" \
	"update bulk set v = 'after the stream' where id = 1" >/dev/null
end=$(source_lsn SRC)
ok "the streamed transaction is applied up to $end" wait_applied "$end" 60
ok "... and its spool file released" \
	wait_for 30 "the stream file to go" eval '! ls "$AGENT_STATE"/spool/stream-* >/dev/null 2>&1'

# Changes spooled by the same walsender session, but not applied before the agent dies.
"$SWITCHYARD" pause --state-dir "$AGENT_STATE" >/dev/null
psql_on SRC "update bulk set v = 'spooled, not applied' where id <= 10" \
	"delete from bulk where id between 11 and 20" >/dev/null
end=$(source_lsn SRC)
wait_for 30 "the spool to hold $end" eval 'lsn_ge "$(status_get flushed_lsn)" "$end"' >/dev/null
agent_kill9 >/dev/null
agent_restart
ok "after a SIGKILL the restarted agent applies them up to $end" wait_applied "$end" 60
ok "the target equals the source" compare_databases SRC DST
unlike "$(cat "$AGENT_LOG")" 'without a relation message' "the applier never lacked the table's columns"
agent_stop 60 >/dev/null
