#!/usr/bin/env bash
# The agent rides out crashes of the servers on its own: while the chat workload runs, the
# target is restarted with -m immediate, later the source (its slot may then go back to the
# last checkpoint, so changes arrive a second time). The same agent process keeps going,
# catches up, and the target equals the source with no change lost or applied twice.
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 10

ok "servers, chat schema and seed, copied to the target" chat_setup || bail_out "setup failed"

agent_start_chat
ok "the agent creates its replication slot" wait_slot SRC 30

# pgbench gives up when the source goes away: run it again until the time is up.
chat_workload_until() {
	local deadline=$((SECONDS + $1)) runs=0 failed=0
	while [ "$SECONDS" -lt "$deadline" ]; do
		runs=$((runs + 1))
		chat_pgbench SRC "$((deadline - SECONDS > 0 ? deadline - SECONDS : 1))" || failed=$((failed + 1))
		[ "$SECONDS" -lt "$deadline" ] && sleep 0.5
	done
	echo "workload: $runs pgbench runs, $failed cut short"
}
bg_start pgbench.chat chat_workload_until 30
workload=$BG_PID

sleep 6
ok "target restarted with -m immediate" pg_restart DST immediate
sleep 8
ok "source restarted with -m immediate" pg_restart SRC immediate
sleep 2
psql_on SRC "checkpoint" >/dev/null
wait "$workload"
diag "$(grep '^workload:' "$SY_BASE/pgbench.chat.log")"

end=$(source_lsn SRC)
ok "the agent catches up to $end by itself" wait_applied "$end" 90
ok "the same agent process ran throughout" eval '[ "$AGENT_RUNS" -eq 1 ] && agent_alive'
ok "the target equals the source" compare_databases SRC DST
ok "every counter increment arrived exactly once" chat_check_counters DST
ok "switchyard stop: the agent exits 0" agent_stop 60

# restarted while the target is down: a clear refusal that says nothing is lost
pg_stop DST
resume_refused() {
	agent_run_fg "$SY_BASE/resume.out" 60 --state-dir "$AGENT_STATE" --no-copy --source "$SRC_CONN" \
		--target "$DST_CONN"
	[ $? -eq 4 ] && grep_q 'could not connect to the target' "$SY_BASE/resume.out" &&
		grep_q 'the migration resumes where it stopped' "$SY_BASE/resume.out"
}
ok "resumed with the target down: exit 4, the error and that the migration resumes later" resume_refused
