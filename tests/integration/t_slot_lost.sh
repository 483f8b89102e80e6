#!/usr/bin/env bash
# A migration whose slot or publication is gone cannot resume, and the agent must say so once
# and stop, not retry forever with the server's raw message (as it did): the publication
# dropped on the source while the agent streams, and the slot invalidated by
# max_slot_wal_keep_size while the agent is stopped. Each time: exit 3, an error and a hint
# that name "switchyard cleanup", and `switchyard status` still gives the reason afterwards.
. "$(dirname "$0")/lib.sh"
harness_init 150

plan 10

ok "servers (source with max_slot_wal_keep_size = 64MB), chat schema and seed, copied" \
	chat_setup max_slot_wal_keep_size=64MB || bail_out "setup failed"
psql_on SRC "create table bulk (id bigserial primary key, payload text)" &&
	psql_on DST "create table bulk (id bigserial primary key, payload text)" >/dev/null ||
	bail_out "bulk table"

# ---- the publication dropped while the agent streams
agent_start_chat
ok "the agent creates its replication slot" wait_slot SRC 30
ok "it streams" catch_up SRC 60
pub=$(psql_on SRC "select pubname from pg_publication where pubname like 'switchyard%'")
psql_on SRC "drop publication \"$pub\"" "insert into bulk (payload) values ('after the drop')" >/dev/null
agent_wait 30
is "$AGENT_STATUS" 3 "the publication dropped under it: the agent stops with exit 3"
like "$(grep -E 'HINT' "$AGENT_LOG" | grep -v guard | tail -n 1)" "switchyard cleanup" \
	"its hint says to clean up and start the migration again"
like "$("$SWITCHYARD" status --state-dir "$AGENT_STATE" 2>&1 | grep 'last error')" \
	"publication .* does not exist" "switchyard status, with the agent gone, gives the reason"

# ---- the slot invalidated while the agent is stopped (a fresh migration first)
timeout 60 "$SWITCHYARD" cleanup --state-dir "$AGENT_STATE" --source "$SRC_CONN" --target "$DST_CONN" \
	>"$SY_BASE/cleanup.out" 2>&1 || diag_file "$SY_BASE/cleanup.out"
psql_on DST "truncate bulk" >/dev/null
agent_start_chat
ok "a new migration streams" wait_slot SRC 30
agent_stop 60 >/dev/null
for i in 1 2 3 4 5 6; do
	psql_on SRC "insert into bulk (payload) select string_agg(md5(random()::text), '')
		from generate_series(1, 64) g, generate_series(1, 5000) r group by r" \
		"select pg_switch_wal()" "checkpoint" >/dev/null
done
is "$(psql_on SRC "select wal_status from pg_replication_slots where slot_type = 'logical'")" lost \
	"the source invalidated the slot (more WAL than max_slot_wal_keep_size)"
agent_start_chat
agent_wait 30
is "$AGENT_STATUS" 3 "started on a lost slot, the agent stops with exit 3"
like "$(grep -E 'HINT' "$AGENT_LOG" | grep -v guard | tail -n 1)" "switchyard cleanup" \
	"its hint says to clean up and start the migration again"
