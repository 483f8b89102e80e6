#!/usr/bin/env bash
# The cutover's parity compares only the rows the stream touched since each table's last clean
# verify: first before the fence at a common point (applier held), then inside the fence only
# what was touched after that. A difference in such a row is found and aborts the cutover;
# after a restart of the agent (touched keys unknown) the tables are compared in full before
# the fence; with a fresh verify the cutover switches, having compared only touched rows. Data
# is then compared by ordered COPY of both sides.
. "$(dirname "$0")/lib.sh"
harness_init 300

plan 17

ok "servers, chat schema and seed, copied to the target" chat_setup || bail_out "setup failed"
agent_start_chat
ok "the agent streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'

verify() { timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_CONN" --target "$DST_CONN" "$@"; }
# --fence manual: the test itself stops writing before each cutover
cutover() { timeout 120 "$SWITCHYARD" cutover --state-dir "$AGENT_STATE" --fence manual --yes "$@"; }
latest_report() { ls -t "$AGENT_STATE"/parity/2*.json | head -n 1; }
# rows_by TABLE: how the last report compared it ("touched keys" or "all rows")
rows_by() {
	python3 -c 'import json, sys
for t in json.load(open(sys.argv[1]))["tables"]:
    if t["table"] == sys.argv[2]:
        print(t["rows_by"], t.get("touched_keys", ""), t["rows_source"])' "$(latest_report)" "$1"
}

ok "a verify under load sets the baseline" eval 'chat_workload_start SRC 8 && sleep 2 && verify >/dev/null && workload_wait "$WORKLOAD_PID" pgbench.chat'
ok "the stream catches up" catch_up SRC 60

# A row the stream wrote after the baseline, changed on the target behind the agent's back.
touched_id=$(psql_on DST "select max(id) from messages")
psql_on DST "set session_replication_role = replica; update messages set body = 'tampered' where id = $touched_id" >/dev/null
cout=$(cutover 2>&1); crc=$?
is "$crc" 6 "a difference in a touched row aborts the cutover (exit 6)" || diag "$cout"
like "$(rows_by public.messages)" '^all rows' "... found by the touched keys, then named by a full compare of that table" ||
	diag "$(rows_by public.messages)"
like "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tables"])' "$(latest_report)")" "tampered" \
	"... the report names the changed row" || diag "$(latest_report)"
ok "verify --repair makes the target equal again" eval 'verify --repair >/dev/null'

# A new agent process does not know what its predecessor applied after the last verify:
# every table in full.
chat_pgbench SRC 3 >/dev/null 2>&1
catch_up SRC 60 >/dev/null
agent_stop
agent_restart
ok "the restarted agent streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'
cout=$(SWITCHYARD_CUTOVER_FAIL_AT=lift-guard cutover 2>&1); crc=$?
ok "after a restart the final parity compares in full (and the forced failure after it rolls back)" eval \
	'[ "$crc" = 6 ] && grep -q "compares public.messages in full: the last clean verify is older than this run" "$AGENT_LOG"' ||
	diag "$cout"

# A verify in this process, more writes, then the real cutover: only touched rows compared.
ok "a fresh verify under load" eval 'chat_workload_start SRC 6 && sleep 2 && verify >/dev/null && workload_wait "$WORKLOAD_PID" pgbench.chat'
catch_up SRC 60 >/dev/null
total=$(psql_on SRC "select count(*) from messages")
cout=$(cutover --dry-run 2>&1)
like "$cout" 'compares 10 of 11 tables by the [0-9]+ keys the stream touched.*webhook_events \(it has no key\)' \
	"--dry-run says which tables the final parity compares by touched keys, and why the others in full"
cout=$(cutover 2>&1); crc=$?
is "$crc" 0 "the cutover switches (exit 0)" || diag "$cout"
read -r mode touched rows <<<"$(rows_by public.messages | sed 's/touched keys/touched_keys/')"
ok "inside the fence messages was compared by its touched keys: $touched keys, $rows rows of $total" eval \
	'[ "$mode" = touched_keys ] && [ "$rows" -le "$touched" ] && [ "$rows" -lt "$total" ]'
ok "... after the rows touched until then were compared before the fence" \
	grep -q "parity before the fence: equal, .* (10 by the keys touched since their last verify, 1 in full)" "$AGENT_LOG"
diag "$(grep 'final parity:' "$AGENT_LOG" | tail -n 1)"
ok "the agent ended after the switch" agent_wait 30
ok "source and target hold the same rows (ordered COPY of both)" compare_databases SRC DST
