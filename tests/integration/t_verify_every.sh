#!/usr/bin/env bash
# Continuous parity: `run --verify-every` re-verifies the tables in turn while the chat
# workload writes; the latest result per table (when, at which LSN, rows, differences) is in
# the state directory and in `switchyard status --json`, and a difference made on the target
# shows up in the next round.
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 6

ok "servers, chat schema and seed, copied to the target" chat_setup || bail_out "setup failed"
agent_start_chat --verify-every 10s
ok "the agent streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'
chat_workload_start SRC 40 -R 100
parity_ready() {
	[ "$(json_get "$(agent_status)" parity)" != null ] && [ -n "$(json_get "$(agent_status)" parity)" ]
}
ok "a periodic verify ran under the workload and its result is in status --json" wait_for 60 "parity" parity_ready
status=$(agent_status)
ok "... with every table equal (readiness parity ok)" test "$(json_get "$(json_get "$status" readiness)" parity)" = ok ||
	diag "$status"
ok "the latest result per table is kept in the state directory" test -s "$AGENT_STATE/parity/latest.json"
# A difference made on the target behind the agent's back shows in a later round.
psql_on DST "set session_replication_role = replica; delete from agents where id = 1" >/dev/null
ok "a later round finds the difference made on the target" wait_for 60 "parity failed" \
	eval '[ "$(json_get "$(json_get "$(agent_status)" readiness)" parity)" = failed ]'
