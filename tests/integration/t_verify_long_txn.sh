#!/usr/bin/env bash
# A long source transaction (a batch job, a report with an xid) while verify takes its common
# point: CREATE_REPLICATION_SLOT waits for it to end. Replication must not stop meanwhile,
# verify must stay interruptible, a verify killed there must leave no hold behind, and a verify
# whose agent is killed under it must say so (exit 7), not blame the target.
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 8

ok "servers, chat schema and seed, copied to the target" chat_setup || bail_out "setup failed"
agent_start_chat
ok "the agent streams" wait_slot SRC 30 || bail_out "no slot"
CHAT_SCRIPTS=(counter.sql@1)
chat_workload_start SRC 100 -R 50

long_transaction() {   # SECONDS: an open source transaction that holds an xid
	bg_start "long.$1" psql_on SRC "BEGIN; CREATE TEMP TABLE t_long (i int); SELECT pg_sleep($1); COMMIT;"
}
verify_bg() {   # NAME: switchyard verify in the background, VPID
	"$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_CONN" --target "$DST_CONN" \
		>"$SY_BASE/verify.$1.out" 2>&1 &
	VPID=$!
}
applier_moves() {   # the applied LSN advances within 3 s
	local a b
	a=$(status_get applied_lsn) && sleep 3 && b=$(status_get applied_lsn) && [ -n "$a" ] && [ "$a" != "$b" ]
}
exits_within() {   # SECONDS PID
	local deadline=$((SECONDS + $1))
	while kill -0 "$2" 2>/dev/null; do
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

# 1. verify waits for the transaction; the applier goes on; SIGTERM ends verify at once
long_transaction 20
sleep 1
verify_bg term
sleep 3
ok "while verify waits for a long source transaction, the applier goes on" applier_moves
kill -TERM "$VPID"
ok "verify ends on SIGTERM while it waits" exits_within 5 "$VPID"
wait "$VPID"

# 2. a verify killed while it waits holds nothing afterwards
verify_bg kill
sleep 3
kill -KILL "$VPID"
wait "$VPID" 2>/dev/null
ok "after verify was killed the applier goes on" applier_moves
long_gone() {
	[ "$(psql_on SRC "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()")" = 0 ]
}
wait_for 30 "the long transaction to end" long_gone

# 3. once the transaction ends, verify finishes at a common point
long_transaction 6
sleep 1
verify_bg done
wait "$VPID"
vrc=$?
ok "a verify that waited for a long transaction ends clean (exit $vrc)" eval '[ "$vrc" -eq 0 ] && grep_q "agent.s applier held at the same point" "$SY_BASE/verify.done.out" && grep_q "result: equal" "$SY_BASE/verify.done.out"'

# 4. the agent killed under a waiting verify: exit 7, the agent named
long_transaction 8
sleep 1
verify_bg lost
sleep 2
agent_kill9
wait "$VPID"
vrc=$?
ok "verify whose agent was killed exits 7 (exit $vrc) and says the agent stopped" \
	eval '[ "$vrc" -eq 7 ] && grep_q "stopped during verify" "$SY_BASE/verify.lost.out"'
agent_restart
ok "the agent restarted, stop exits 0" eval 'wait_applied "$(source_lsn SRC)" 60 && agent_stop 60'
