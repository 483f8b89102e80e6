#!/usr/bin/env bash
# A randomized chaos test of the streaming path: a --no-copy migration streams the chat
# workload (restarted whenever a server restart cuts it short), plus transactions big enough
# for the source to stream them in chunks (one with a rolled-back subtransaction, one rolled
# back whole), for 60-85 s while a seeded random sequence of 8-12 events, 1-6 s apart, hits
# it: the agent killed with SIGKILL and run again with the same command, the agent frozen
# with SIGSTOP for 1-4 s, the target restarted with -m immediate or stopped for 2-8 s, the
# source restarted with -m fast (or -m immediate followed by a CHECKPOINT: the slot may go
# back and changes arrive a second time), "switchyard pause" then "switchyard resume" (tried
# again while a verify holds the applier, which the agent refuses), and "switchyard verify"
# in the background (half of them with the next event following at once, while it runs).
# Every kind of event happens at least once per seed; each is logged with its time (also to
# events.log in the temp dir).
#
# Afterwards the agent must catch up with the source by itself, and independent checks must
# agree: the target equals the source (compare_databases: ordered COPY of both sides), every
# counter increment arrived exactly once (chat_check_counters), "switchyard verify" finds no
# difference at a common point, no agent exited by itself, no verify during the chaos reported
# a difference it should not have, and "switchyard stop" ends the agent with exit status 0.
#
# The seed is fixed (CI stays deterministic); SWITCHYARD_CHAOS_SEED=N runs another one.
# SWITCHYARD_TEST_KEEP=1 keeps the temp dir (agent.log, events.log, verify.*, server logs).
. "$(dirname "$0")/lib.sh"
harness_init 175

plan 12

SEED=${SWITCHYARD_CHAOS_SEED:-20261201}
diag "chaos seed $SEED (replay: SWITCHYARD_CHAOS_SEED=$SEED)"

WORKLOAD_MIN=60       # seconds of workload at least
WORKLOAD_MAX=85       # and at most
EVENTS_UNTIL=72       # no event starts after this many seconds of workload

# A small logical_decoding_work_mem: the source streams its bigger transactions (protocol 2
# streaming), so stream chunks, STREAM COMMIT and STREAM ABORT go through the chaos too.
ok "servers, chat schema and seed, copied to the target" chat_setup logical_decoding_work_mem=64kB ||
	bail_out "setup failed"

agent_start_chat
ok "the agent creates its replication slot" wait_slot SRC 30 || bail_out "the agent did not start"

# ---- the schedule: drawn up front from the seed, so it does not depend on what happens ----

# pg_start's port search draws from RANDOM too: seed only now, in this shell
RANDOM=$SEED
KINDS=(kill9 sigstop target_crash target_stop source_restart pause verify)
EV_KIND=() EV_GAP=() EV_ARG=() EV_MODE=()
nev=$((8 + RANDOM % 5))
# every kind once, then random kinds (an agent kill twice as likely as the others), shuffled
for k in "${KINDS[@]}"; do
	EV_KIND+=("$k")
done
while [ "${#EV_KIND[@]}" -lt "$nev" ]; do
	r=$((RANDOM % (${#KINDS[@]} + 1)))
	[ "$r" -ge "${#KINDS[@]}" ] && r=0
	EV_KIND+=("${KINDS[$r]}")
done
for ((i = nev - 1; i > 0; i--)); do
	j=$((RANDOM % (i + 1)))
	t=${EV_KIND[$i]}
	EV_KIND[i]=${EV_KIND[$j]}
	EV_KIND[j]=$t
done
for ((i = 0; i < nev; i++)); do
	EV_GAP+=("$((1 + RANDOM % 5)).$((RANDOM % 10))")        # 1.0-5.9 s before the event
	case ${EV_KIND[$i]} in
	sigstop) EV_ARG+=("$((1 + RANDOM % 3)).$((RANDOM % 10))") ;;       # frozen 1.0-3.9 s
	target_stop) EV_ARG+=("$((2 + RANDOM % 6)).$((RANDOM % 10))") ;;   # down 2.0-7.9 s
	pause) EV_ARG+=("$((2 + RANDOM % 3)).$((RANDOM % 10))") ;;         # paused 2.0-4.9 s
	verify) EV_ARG+=("$((RANDOM % 2))") ;;                              # 1: overlaps the next event
	*) EV_ARG+=("$((RANDOM % 10))") ;;
	esac
	EV_MODE+=(fast)
	if [ "${EV_KIND[$i]}" = source_restart ] && [ $((RANDOM % 3)) -eq 0 ]; then
		EV_MODE[i]=immediate
	fi
done
sched=
for ((i = 0; i < nev; i++)); do
	sched="$sched ${EV_GAP[$i]}s:${EV_KIND[$i]}"
	case ${EV_KIND[$i]} in
	sigstop | target_stop | pause) sched="$sched(${EV_ARG[$i]}s)" ;;
	verify) [ "${EV_ARG[$i]}" = 1 ] && sched="$sched(overlapping)" ;;
	source_restart) sched="$sched(${EV_MODE[$i]})" ;;
	esac
done
diag "schedule of $nev events:$sched"

# ---- helpers -------------------------------------------------------------------------------

EVENTS_LOG=$SY_BASE/events.log
T0=${EPOCHREALTIME/[.,]/}

# now_s: seconds since the workload started, to a tenth
now_s() {
	local us=$((${EPOCHREALTIME/[.,]/} - T0))
	printf '%d.%d' $((us / 1000000)) $((us / 100000 % 10))
}

elog() {
	diag "t=$(now_s)s $*"
	echo "$(date -u +%H:%M:%S.%N) t=$(now_s)s $*" >>"$EVENTS_LOG"
}

EVENT_FAILURES=()
event_failed() {
	EVENT_FAILURES+=("event $EV_NUM (${EV_KIND[$((EV_NUM - 1))]}): $*")
	elog "  FAILED: $*"
}

UNEXPECTED_EXITS=()
# check_agent WHEN: an agent that exited by itself is a failure; it is run again so the test
# can go on (the README's answer to any failure: run the same command again).
check_agent() {
	agent_alive && return 0
	[ -n "$AGENT_PID" ] && _sy_agent_reap
	UNEXPECTED_EXITS+=("agent run #$AGENT_RUNS exited with status $AGENT_STATUS ($1)")
	elog "the agent exited by itself with status $AGENT_STATUS ($1); log tail:"
	diag_file "$AGENT_LOG" 15
	agent_restart
}

# agent_streaming: the running agent answers on its control socket and streams
agent_streaming() {
	local j
	j=$(timeout 5 "$SWITCHYARD" status --state-dir "$AGENT_STATE" --json 2>/dev/null) || return 1
	[ "$(json_get "$j" running)" = true ] && [ "$(json_get "$j" phase)" = streaming ]
}

# wait_agent_streaming TIMEOUT: after a restart, the agent is up again
wait_agent_streaming() {
	local deadline=$((SECONDS + $1))
	until agent_streaming; do
		agent_alive || return 1
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

# The workload: the chat mix in 5 s runs of pgbench (a server restart cuts one short) until
# $SY_BASE/workload.stop appears or MAX seconds have passed. The counter script weighs more:
# it is the exactly-once probe. Two more scripts make transactions big enough for the source
# to stream them: 400 ticks of one counter with a rolled-back subtransaction in the middle
# (its rows must not arrive), and 300 ticks rolled back whole.
CHAT_SCRIPTS+=(counter.sql@4)
cat >"$SY_BASE/bulk_counter.sql" <<'SQL'
\set c random(1, 10)
BEGIN;
UPDATE counters SET n = n + 400 WHERE id = :c;
INSERT INTO ticks (counter_id, n) SELECT id, g FROM counters, generate_series(n - 399, n - 200) g WHERE id = :c;
SAVEPOINT s;
INSERT INTO ticks (counter_id, n) SELECT :c, -g FROM generate_series(1, 300) g;
ROLLBACK TO SAVEPOINT s;
INSERT INTO ticks (counter_id, n) SELECT id, g FROM counters, generate_series(n - 199, n) g WHERE id = :c;
COMMIT;
SQL
cat >"$SY_BASE/bulk_abort.sql" <<'SQL'
\set c random(1, 10)
BEGIN;
UPDATE counters SET n = n + 300 WHERE id = :c;
INSERT INTO ticks (counter_id, n) SELECT id, g FROM counters, generate_series(n - 299, n) g WHERE id = :c;
ROLLBACK;
SQL
chaos_pgbench() {
	local s args=()
	for s in "${CHAT_SCRIPTS[@]}"; do
		args+=(-f "$CHAT/$s")
	done
	pgbench_on SRC -n -T "$1" -c 4 -j 2 -D scale="$CHAT_SCALE" --max-tries=5 "${args[@]}" \
		-f "$SY_BASE/bulk_counter.sql@1" -f "$SY_BASE/bulk_abort.sql@1"
}
chat_workload_chaos() {
	local deadline=$((SECONDS + $1)) runs=0 failed=0 left
	while [ ! -e "$SY_BASE/workload.stop" ] && [ "$SECONDS" -lt "$deadline" ]; do
		runs=$((runs + 1))
		left=$((deadline - SECONDS))
		chaos_pgbench "$((left > 5 ? 5 : (left > 0 ? left : 1)))" || { failed=$((failed + 1)); sleep 0.5; }
	done
	echo "workload: $runs pgbench runs, $failed cut short"
}

# Verify in the background: its JSON, stderr, exit status and start/end times in verify.N.*
VERIFY_PID=
VERIFY_N=0
verify_bg() {
	local f=$SY_BASE/verify.$1
	echo "${EPOCHREALTIME/[.,]/}" >"$f.start"
	timeout -k 5 60 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_CONN" \
		--target "$DST_CONN" --jobs 2 --json >"$f.json" 2>"$f.err"
	echo $? >"$f.rc"
	echo "${EPOCHREALTIME/[.,]/}" >"$f.end"
}
verify_reap() {
	[ -n "$VERIFY_PID" ] || return 0
	wait "$VERIFY_PID" 2>/dev/null
	VERIFY_PID=
	local f=$SY_BASE/verify.$VERIFY_N s e
	s=$(cat "$f.start" 2>/dev/null) e=$(cat "$f.end" 2>/dev/null)
	elog "verify $VERIFY_N had ended at t=$(( (e - T0) / 1000000 )).$(( (e - T0) / 100000 % 10 ))s after $(( (e - s) / 1000000 )).$(( (e - s) / 100000 % 10 ))s: exit $(cat "$f.rc" 2>/dev/null)"
}

# Disruptions, as "start end" in microseconds since the epoch: a verify overlapping one may
# fail with a server or agent error (exit 3, 4, 7), never report a difference at a common point.
DISRUPTIONS=()

# ---- the chaos -------------------------------------------------------------------------------

bg_start pgbench.chat chat_workload_chaos "$WORKLOAD_MAX"
workload=$BG_PID
elog "workload started (pgbench runs of 5 s, at most ${WORKLOAD_MAX}s)"

EV_NUM=0
done_events=0
skipped=0
overlap=0
for ((e = 0; e < nev; e++)); do
	EV_NUM=$((e + 1))
	if [ "$overlap" = 1 ]; then
		sleep "0.$((2 + e % 7))"     # the verify just started is still running
	else
		sleep "${EV_GAP[$e]}"
	fi
	if (( (${EPOCHREALTIME/[.,]/} - T0) / 1000000 >= EVENTS_UNTIL )); then
		skipped=$((nev - e))
		elog "out of time: the last $skipped events are skipped"
		break
	fi
	check_agent "before event $EV_NUM"
	kind=${EV_KIND[$e]} arg=${EV_ARG[$e]}
	ev_start=${EPOCHREALTIME/[.,]/}
	case $kind in
	kill9)
		elog "event $EV_NUM/$nev: SIGKILL the agent (pid $AGENT_PID), then the same command again"
		agent_kill9 >/dev/null || event_failed "the agent was not running"
		agent_restart
		if ! wait_agent_streaming 30; then
			event_failed "the restarted agent is not streaming after 30 s"
		else
			elog "  agent run #$AGENT_RUNS streams again"
		fi
		;;
	sigstop)
		elog "event $EV_NUM/$nev: SIGSTOP the agent (pid $AGENT_PID) for ${arg}s, then SIGCONT"
		kill -STOP "$AGENT_PID" || event_failed "kill -STOP failed"
		sleep "$arg"
		kill -CONT "$AGENT_PID" || event_failed "kill -CONT failed"
		;;
	target_crash)
		elog "event $EV_NUM/$nev: target restarted with -m immediate"
		out=$(pg_restart DST immediate 2>&1) || event_failed "pg_restart DST immediate: $out"
		;;
	target_stop)
		elog "event $EV_NUM/$nev: target stopped for ${arg}s"
		out=$(pg_stop DST fast 2>&1) || event_failed "pg_stop DST: $out"
		sleep "$arg"
		out=$(_sy_pg_ctl_start DST 2>&1) || event_failed "starting DST again: $out"
		elog "  target up again"
		;;
	source_restart)
		elog "event $EV_NUM/$nev: source restarted with -m ${EV_MODE[$e]}"
		out=$(pg_restart SRC "${EV_MODE[$e]}" 2>&1) || event_failed "pg_restart SRC ${EV_MODE[$e]}: $out"
		if [ "${EV_MODE[$e]}" = immediate ]; then
			psql_on SRC checkpoint >/dev/null 2>&1 || event_failed "CHECKPOINT on the source failed"
		fi
		;;
	pause)
		elog "event $EV_NUM/$nev: switchyard pause, resume ${arg}s later"
		# a pause is refused while a verify holds the applier: the operator tries again
		deadline=$((SECONDS + 130))
		while :; do
			out=$(timeout 30 "$SWITCHYARD" pause --state-dir "$AGENT_STATE" 2>&1) && break
			rc=$?
			# exit 8: declined for now
			if [ "$rc" -ne 8 ] || [[ $out != *"a verify holds the applier"* ]] || [ "$SECONDS" -ge "$deadline" ]; then
				event_failed "switchyard pause exited $rc: $out"
				break
			fi
			elog "  pause refused (exit $rc): $out; again in 0.5 s"
			sleep 0.5
		done
		sleep "$arg"
		p=$(status_get paused 2>/dev/null)
		[ "$p" = true ] || event_failed "status says paused=$p during the pause"
		out=$(timeout 30 "$SWITCHYARD" resume --state-dir "$AGENT_STATE" 2>&1) ||
			event_failed "switchyard resume exited $?: $out"
		p=$(status_get paused 2>/dev/null)
		[ "$p" = false ] || event_failed "status says paused=$p after the resume"
		;;
	verify)
		verify_reap
		VERIFY_N=$((VERIFY_N + 1))
		elog "event $EV_NUM/$nev: switchyard verify $VERIFY_N starts in the background$([ "$arg" = 1 ] && echo ", the next event comes while it runs")"
		bg_start "verify.$VERIFY_N.bg" verify_bg "$VERIFY_N"
		VERIFY_PID=$BG_PID
		;;
	esac
	overlap=0
	[ "$kind" = verify ] && overlap=$arg
	[ "$kind" = verify ] || DISRUPTIONS+=("$ev_start ${EPOCHREALTIME/[.,]/}")
	done_events=$((done_events + 1))
done
verify_reap

# the workload runs for WORKLOAD_MIN seconds at least
while (( (${EPOCHREALTIME/[.,]/} - T0) / 1000000 < WORKLOAD_MIN )); do
	sleep 0.5
done
touch "$SY_BASE/workload.stop"
wait "$workload"
elog "$(grep '^workload:' "$SY_BASE/pgbench.chat.log")"
check_agent "after the chaos"

is "$(( ${#EVENT_FAILURES[@]} )) failed, $done_events of $((nev - skipped)) done" \
	"0 failed, $((nev - skipped)) of $((nev - skipped)) done" "every chaos event was carried out" ||
	diag "$(printf '%s\n' "${EVENT_FAILURES[@]}")"

# ---- the verifies run during the chaos --------------------------------------------------------

# verify_judge N: prints why verify N is wrong, if it is
verify_judge() {
	local n=$1 f=$SY_BASE/verify.$1 rc vs ve d ds de overlapped=0 cp tot
	rc=$(cat "$f.rc" 2>/dev/null)
	vs=$(cat "$f.start" 2>/dev/null)
	ve=$(cat "$f.end" 2>/dev/null)
	[ -n "$rc" ] || { echo "verify $n: no exit status"; return; }
	for d in "${DISRUPTIONS[@]}"; do
		read -r ds de <<<"$d"
		# a disruption and the 5 s after it (an agent killed comes back, a server recovers)
		if [ "$ds" -le "$ve" ] && [ "$((de + 5000000))" -ge "$vs" ]; then
			overlapped=1
		fi
	done
	VOUT=$(cat "$f.json")
	cp=$(json_get "$VOUT" common_point 2>/dev/null)
	case $rc in
	0)
		tot=$(total 2>/dev/null)
		[ "$tot" = 0 ] || echo "verify $n: exit 0 with $tot differences"
		;;
	5)
		if [ "$cp" = true ]; then
			echo "verify $n: exit 5 at a common point: $(differences | head -n 5 | tr '\n' ';')"
		fi
		;;
	3 | 4 | 7)
		[ "$overlapped" -eq 1 ] ||
			echo "verify $n: exit $rc with no disruption during it: $(tail -n 3 "$f.err" | tr '\n' ' ')"
		;;
	*)
		echo "verify $n: exit $rc: $(tail -n 3 "$f.err" | tr '\n' ' ')"
		;;
	esac
}
verify_bad=
for ((n = 1; n <= VERIFY_N; n++)); do
	diag "verify $n: exit $(cat "$SY_BASE/verify.$n.rc" 2>/dev/null), common_point=$(json_get "$(cat "$SY_BASE/verify.$n.json")" common_point 2>/dev/null), $(grep -E '^(ERROR|error)|ERROR' "$SY_BASE/verify.$n.err" | head -n 1 | cut -c1-200)"
	verify_bad="$verify_bad$(verify_judge "$n")"
done
is "$verify_bad" "" "the $VERIFY_N verify runs during the chaos reported no false difference and no unexplained failure"

# ---- catching up and the checks ------------------------------------------------------------

end=$(source_lsn SRC)
ok "the agent catches up to the source's $end by itself" wait_applied "$end" 60
diag "source slot statistics since its last restart: $(psql_on SRC "select format('%s transactions streamed in %s chunks, %s spilled', stream_txns, stream_count, spill_txns) from pg_stat_replication_slots where slot_name ~ '^switchyard_' and slot_name !~ '^switchyard_verify_'" 2>&1)"
ok "the target equals the source" compare_databases SRC DST
ok "every counter increment arrived exactly once on the target" chat_check_counters DST
ok "the source's counters are consistent too (the workload's own check)" chat_check_counters SRC

final_verify() {
	run_verify
	echo "# verify exit $VRC, common_point=$(json_get "$VOUT" common_point), differences: $(total)"
	[ "$VRC" -eq 0 ] && [ "$(total)" = 0 ] && [ "$(json_get "$VOUT" common_point)" = true ] || {
		differences | head -n 10 | sed 's/^/# /'
		printf '%s\n' "$VERR" | tail -n 5 | sed 's/^/# /'
		return 1
	}
}
ok "switchyard verify: no difference, at a common point" final_verify

is "${UNEXPECTED_EXITS[*]:-none}" none "no agent exited by itself (all $AGENT_RUNS runs ended by SIGKILL or are running)"

ok "the agent is alive after the chaos (run #$AGENT_RUNS)" agent_alive
ok "switchyard stop: the agent exits 0" agent_stop 60
