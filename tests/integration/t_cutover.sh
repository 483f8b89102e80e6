#!/usr/bin/env bash
# Cutover through a real PgBouncer while the chat workload runs through it at a steady rate:
# the preflight refuses bad input and changes nothing; a failure forced at each step before
# the switch rolls back (the source keeps serving, nothing lost); the real cutover gives zero
# failed client transactions, every change committed before the switch on the target, new
# ids after it without collision, and the clients' worst latency is printed.
. "$(dirname "$0")/lib.sh"
harness_init 240

plan 23

ok "servers, chat schema and seed, copied to the target" chat_setup || bail_out "setup failed"

ok "PgBouncer is up in front of the source" pgbouncer_start postgres

agent_start_chat
ok "the agent streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'
ok "a verify at a common point is clean" timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" \
	--source "$SRC_CONN" --target "$DST_CONN"

cutover() {
	timeout 120 "$SWITCHYARD" cutover --state-dir "$AGENT_STATE" --pgbouncer "$PGB_ADMIN" \
		--pgbouncer-db chat --pgbouncer-ini "$PGB_INI" --yes "$@"
}
pointing_at_source() {
	grep -q "host=$SRC_HOST port=$SRC_PORT" "$PGB_INI" &&
		"$PGBIN/psql" -X -A -t -d "$PGB_ADMIN" -c "show databases" | grep_q "^chat|$SRC_HOST|$SRC_PORT|"
}

# Bad input: the preflight refuses with the reason and changes nothing.
cout=$(cutover --pgbouncer-db nosuchdb 2>&1); crc=$?
is "$crc" 6 "a wrong PgBouncer database is refused (exit 6)"
like "$cout" 'nosuchdb' "... naming it" || diag "$cout"
cout=$(timeout 60 "$SWITCHYARD" cutover --state-dir "$AGENT_STATE" --pgbouncer "host=$PGB_DIR port=1 dbname=pgbouncer" \
	--pgbouncer-db chat --pgbouncer-ini "$PGB_INI" --yes 2>&1); crc=$?
ok "an unreachable PgBouncer is refused, PgBouncer untouched" eval '[ "$crc" = 6 ] && pointing_at_source' ||
	diag "$cout"
# the applier paused, a write on the source: the target lags behind
"$SWITCHYARD" pause --state-dir "$AGENT_STATE" >/dev/null 2>&1
psql_on SRC "insert into agents (name, email) values ('lag probe', 'lag@example.test')" >/dev/null
cout=$(cutover --max-lag 1 2>&1); crc=$?
"$SWITCHYARD" resume --state-dir "$AGENT_STATE" >/dev/null 2>&1
ok "lag above --max-lag is refused, PgBouncer untouched" eval '[ "$crc" = 6 ] && pointing_at_source' || diag "$cout"
like "$cout" 'lag' "... naming the lag" || diag "$cout"
# a dirty parity result: a difference made on the target behind the agent's back
psql_on DST "set session_replication_role = replica; update agents set name = 'tampered' where id = 2" >/dev/null
timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_CONN" --target "$DST_CONN" >/dev/null 2>&1
cout=$(cutover 2>&1); crc=$?
ok "a dirty latest verify is refused, PgBouncer untouched" eval '[ "$crc" = 6 ] && pointing_at_source' || diag "$cout"
like "$cout" 'differences' "... saying the verify found differences" || diag "$cout"
ok "verify --repair makes it clean again" timeout 120 "$SWITCHYARD" verify --repair --state-dir "$AGENT_STATE" \
	--source "$SRC_CONN" --target "$DST_CONN"
cout=$(cutover --dry-run 2>&1); crc=$?
ok "--dry-run passes the preflight and changes nothing" eval '[ "$crc" = 0 ] && pointing_at_source' || diag "$cout"

# The abort path: a failure forced at each step before the switch rolls everything back.
aborted=0
for step in fence drain sequences parity lift-guard switch; do
	cout=$(SWITCHYARD_CUTOVER_FAIL_AT=$step cutover 2>&1); crc=$?
	if [ "$crc" = 6 ] && pointing_at_source && "$PGBIN/psql" -X -d "host=$PGB_DIR port=$PGB_PORT dbname=chat user=postgres" \
		-c "insert into agents (name, email) values ('after abort at $step', 'x@example.test')" >/dev/null 2>&1; then
		aborted=$((aborted + 1))
	else
		diag "abort at $step: rc=$crc $cout"
	fi
done
is "$aborted" 6 "a failure forced at each of the 6 steps before the switch rolls back: the source serves writes"
ok "... and the agent keeps streaming them" catch_up SRC 60

# The real cutover, under a steady load through PgBouncer.
LOGDIR=$SY_BASE/pgbench-log
mkdir -p "$LOGDIR"
bg_start pgbench.cutover bash -c "cd '$LOGDIR' && exec '$PGBIN/pgbench' -h '$PGB_DIR' -p '$PGB_PORT' -U postgres \
	-n -T 16 -R 100 -c 4 -j 2 -D scale=$CHAT_SCALE --log $(printf -- '-f %s ' "${CHAT_SCRIPTS[@]/#/$CHAT/}") chat"
WORKLOAD_PID=$BG_PID
sleep 5
before_switch=$(psql_on SRC "select sum(n) from counters")
cout=$(cutover 2>&1); crc=$?
is "$crc" 0 "switchyard cutover switches (exit 0)" || diag "$cout"
diag "$(printf '%s\n' "$cout" | grep -E ' ms$|fence LSN|rows verified|sequences set|clients served' | tr -s ' ' | tr '\n' ';')"
ok "... and says how soon after RESUME PgBouncer served every held client from the target" eval \
	'printf "%s\n" "$cout" | grep_q -E "clients served [0-9.]+ ms after RESUME" &&
	 python3 -c "import json, sys; v = json.load(open(sys.argv[1]))[\"clients_served_ms\"]; sys.exit(not 0 <= v < 3000)" \
		"$AGENT_STATE/cutover-report.json"' || diag "$cout"
ok "PgBouncer now points at the target" eval '"$PGBIN/psql" -X -A -t -d "$PGB_ADMIN" -c "show databases" |
	grep_q "^chat|$DST_HOST|$DST_PORT|"'
ok "the chat workload through PgBouncer had zero failed transactions" workload_wait "$WORKLOAD_PID" pgbench.cutover
ok "every counter increment, before and after the switch, is on the target exactly once" chat_check_counters DST
ok "the source froze at the fence: the target holds all of its increments and more" eval \
	'[ "$(psql_on DST "select sum(n) from counters")" -gt "$(psql_on SRC "select sum(n) from counters")" ] &&
	 [ "$(psql_on SRC "select sum(n) from counters")" -ge "$before_switch" ]'
# Client-side latency around the switch, from pgbench's per-transaction log (microseconds).
stats=$(cat "$LOGDIR"/pgbench_log.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {
	if (NR == 0) { print "none"; exit }
	printf "n=%d p50=%.1fms p99=%.1fms max=%.1fms", NR, a[int(NR*0.5)+1]/1000, a[int(NR*0.99)+1]/1000, a[NR]/1000 }')
diag "client latency through the cutover: $stats"
max_ms=$(printf '%s' "$stats" | sed -n 's/.*max=\([0-9.]*\)ms.*/\1/p')
ok "the worst client latency stayed under 2 s ($stats)" awk -v m="${max_ms:-99999}" 'BEGIN { exit !(m < 2000) }'
ok "the agent ended its streaming after the switch (exit 0)" agent_wait 30
