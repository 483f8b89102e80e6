#!/usr/bin/env bash
# Exactly once across agent crashes: the chat workload runs for 40 s while the agent is
# killed with SIGKILL at 10 random moments and restarted with the same command each time.
# Afterwards a run with --endpos catches up, and the target must equal the source with every
# counter increment present exactly once (a lost change or a replayed one shows there or as
# a duplicate key in ticks).
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 8

ok "servers, chat schema and seed, copied to the target" chat_setup || bail_out "setup failed"

agent_start_chat
ok "the agent creates its replication slot" wait_slot SRC 30

# The counter script weighs more here: it is the exactly-once probe.
CHAT_SCRIPTS+=(counter.sql@4)
chat_workload_start SRC 40

kills=0
for i in $(seq 1 10); do
	sleep "$((1 + RANDOM % 2)).$((RANDOM % 10))"
	if agent_kill9; then
		kills=$((kills + 1))
	else
		diag "kill $i: the agent was not running; its log:"
		diag_file "$AGENT_LOG" 15
	fi
	agent_restart
done
is "$kills" 10 "the agent was running at each of the 10 SIGKILLs (each restart survived)"

ok "the chat workload ran without errors" workload_wait "$WORKLOAD_PID" pgbench.chat
end=$(source_lsn SRC)
ok "switchyard stop after the last restart: the agent exits 0" agent_stop 60

agent_start_chat --endpos "$end"
ok "run --endpos $end catches up and exits 0" agent_wait 100

ok "the target equals the source" compare_databases SRC DST
ok "every counter increment arrived exactly once" chat_check_counters DST
