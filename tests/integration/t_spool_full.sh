#!/usr/bin/env bash
# A full spool (--spool-max 8MB, below even the 64 MB segment being written). While the
# applier is behind (paused), the agent lets go of the source: a walsender left blocked on
# an unread socket could not be stopped, so the source's shutdown and the checkpoint that
# invalidates a slot would wait for it. Once the applier resumes, the agent reconnects and
# catches up. A single transaction larger than the bound goes through (nothing can be freed
# before it is whole), and the source still stops with -m fast while the agent streams. A
# pause given right after the start holds the applier too.
. "$(dirname "$0")/lib.sh"
harness_init 150

plan 13

ok "servers, chat schema and seed, copied to the target" chat_setup || bail_out "setup failed"
psql_on SRC "create table bulk (id bigserial primary key, payload text)" &&
	psql_on DST "create table bulk (id bigserial primary key, payload text)" >/dev/null ||
	bail_out "bulk table"

# bulk_insert ROWS: one transaction of ROWS x 2 kB of incompressible text
bulk_insert() {
	psql_on SRC "insert into bulk (payload) select string_agg(md5(random()::text), '')
		from generate_series(1, 64) g, generate_series(1, $1) r group by r" >/dev/null
}

slot_active() {
	psql_on SRC "select active from pg_replication_slots where slot_type = 'logical'"
}

agent_start_chat --spool-max 8MB
ok "the agent creates its replication slot" wait_slot SRC 30

# ---- full while the applier is behind; paused at once, before anything is durable (such a
# pause used to hold nothing: its LSN 0 meant "release")
ok "switchyard pause" timeout 30 "$SWITCHYARD" pause --state-dir "$AGENT_STATE"
psql_on SRC "insert into bulk (payload) values ('while paused')" >/dev/null
sleep 2
is "$(psql_on DST "select count(*) from bulk")" 0 "the paused applier applies nothing"
# 1 MB transactions until the agent lets go (it looks when the source sends more)
written=0
while [ "$written" -lt 40 ] && [ "$(slot_active)" != f ]; do
	bulk_insert 500
	written=$((written + 1))
	sleep 0.2
done
ok "the spool fills behind a paused applier (${written} MB written): the agent lets go of the source" \
	wait_for 10 "the slot to be inactive" eval '[ "$(slot_active)" = f ]'
like "$(grep 'spool is full' "$AGENT_LOG" | head -n 1)" "disconnected from the source" \
	"the log says why"
ok "switchyard resume" timeout 30 "$SWITCHYARD" resume --state-dir "$AGENT_STATE"
end=$(source_lsn SRC)
ok "the agent reconnects and applies everything up to $end" wait_applied "$end" 60
ok "the target equals the source" compare_databases SRC DST

# ---- one transaction larger than the bound, the applier idle
bulk_insert 8000
psql_on SRC "insert into bulk (payload) values ('after')" >/dev/null
end=$(source_lsn SRC)
ok "a 16 MB transaction over an 8 MB bound is applied, and the one after it (up to $end)" \
	wait_applied "$end" 60
ok "the target equals the source" compare_databases SRC DST
ok "the agent never stopped" agent_alive
t0=$SECONDS
ok "the source stops (pg_ctl stop -m fast) while the agent streams" pg_stop SRC fast
diag "the source's stop took $((SECONDS - t0)) s"
