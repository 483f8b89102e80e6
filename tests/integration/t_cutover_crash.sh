#!/usr/bin/env bash
# The agent SIGKILLed mid-cutover, with the chat workload running through PgBouncer as the
# application role, and started again on the same state directory. Before the switch point
# (PgBouncer PAUSEd with the guard lifted; or the ini rewritten but not yet confirmed by
# RELOAD) the restart rolls back: PgBouncer resumed on the source with its file restored, the
# guard back, streaming on, nothing lost, and a later cutover succeeds. After it (PgBouncer
# seen pointing at the target, the switch persisted, no RESUME yet) the restart completes the
# switch: PgBouncer resumed on the target, the application reaches it, the agent exits 0.
# Data is compared with ordered COPY output of both sides.
. "$(dirname "$0")/lib.sh"
harness_init 420

plan 45

command -v pgbouncer >/dev/null || bail_out "pgbouncer is not installed (scripts/install-deps installs it)"

ok "servers, the application role chatapp, chat schema and seed, copied to the target" chat_setup_with_app chatapp ||
	bail_out "setup failed"

# PgBouncer in front of the source; its server sessions log in as chatapp.
write_ini() { pgbouncer_write_ini chatapp; }
ok "PgBouncer is up in front of the source" pgbouncer_start chatapp

# bouncer_db COLUMN: that column of PgBouncer's SHOW DATABASES line for chat.
bouncer_db() {
	"$PGBIN/psql" -X -A -F '|' -d "$PGB_ADMIN" -c "show databases" | awk -F '|' -v col="$1" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		$1 == "chat" { print $c }'
}
pointing_at() {
	local host port
	host=$(_sy_var "$1" HOST)
	port=$(_sy_var "$1" PORT)
	grep -q "^chat = host=$host port=$port " "$PGB_INI" &&
		[ "$(bouncer_db host)|$(bouncer_db port)" = "$host|$port" ]
}
resumed_at() {
	pointing_at "$1" && [ "$(bouncer_db paused)" = 0 ]
}
# app_can_connect NAME [DBNAME]: chatapp logs in to that server's database.
app_can_connect() {
	PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -h "$(_sy_var "$1" HOST)" -p "$(_sy_var "$1" PORT)" \
		-U chatapp -d "${2:-postgres}" -c "select 1" >/dev/null 2>&1
}
app_kept_off() {
	local err
	err=$(PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -h "$(_sy_var "$1" HOST)" -p "$(_sy_var "$1" PORT)" \
		-U chatapp -d "${2:-postgres}" -c "select 1" 2>&1) && { echo "# chatapp connected"; return 1; }
	[[ $err == *"permission denied for database"* ]] || { echo "# $err"; return 1; }
}

# The agent log is appended across runs: wait for a line that appears after a mark.
log_mark() {
	LOG_MARK=$(wc -l <"$AGENT_LOG")
}
log_has() {
	tail -n +"$((LOG_MARK + 1))" "$AGENT_LOG" | grep_q -- "$1"
}

cutover() {
	timeout 180 "$SWITCHYARD" cutover --state-dir "$AGENT_STATE" --pgbouncer "$PGB_ADMIN" \
		--pgbouncer-db chat --pgbouncer-ini "$PGB_INI" --yes "$@"
}
# cutover_bg STALL_POINT: the cutover in the background, stalling at that point; its output
# goes to $SY_BASE/cutover.out, its exit status to $SY_BASE/cutover.rc.
cutover_bg() {
	rm -f "$SY_BASE/cutover.rc"
	(
		SWITCHYARD_CUTOVER_STALL_AT=$1 cutover >"$SY_BASE/cutover.out" 2>&1
		echo $? >"$SY_BASE/cutover.rc"
	) </dev/null &
	CUTOVER_PID=$!
}
# cutover_bg_wait: wait for it (in this shell: it is our child); CUTOVER_RC is its exit status.
cutover_bg_wait() {
	wait "$CUTOVER_PID" 2>/dev/null
	CUTOVER_RC=$(cat "$SY_BASE/cutover.rc" 2>/dev/null)
}

LOGDIR=$SY_BASE/pgbench-log
mkdir -p "$LOGDIR"
# workload_start NAME SECONDS: the chat mix through PgBouncer at a steady rate.
workload_start() {
	bg_start "pgbench.$1" bash -c "cd '$LOGDIR' && exec '$PGBIN/pgbench' -h '$PGB_DIR' -p '$PGB_PORT' \
		-U postgres -n -T $2 -R 80 -c 4 -j 2 -D scale=$CHAT_SCALE \
		$(printf -- '-f %s ' "${CHAT_SCRIPTS[@]/#/$CHAT/}") chat"
	WORKLOAD_PID=$BG_PID
}

agent_start_chat --app-roles chatapp
ok "the agent streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'
ok "the guard keeps chatapp off the target" app_kept_off DST
ok "a verify at a common point is clean" timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" \
	--source "$SRC_CONN" --target "$DST_CONN"

# ---- (a) killed while PgBouncer is PAUSEd and the guard lifted, before the switch -----------
workload_start a 16
sleep 3
log_mark
cutover_bg switch
ok "(a) the cutover stalls at the switch step" wait_for 60 "the stall" log_has 'stalled at switch'
ok "(a) ... with PgBouncer paused on the source and the guard lifted" eval \
	'pointing_at SRC && [ "$(bouncer_db paused)" = 1 ] && app_can_connect DST'
ok "(a) SIGKILL the agent" agent_kill9
cutover_bg_wait
is "$CUTOVER_RC" 6 "(a) the cutover command exits 6 when the agent dies"
like "$(cat "$SY_BASE/cutover.out")" 'agent ended during the cutover \(last step: switch\)' \
	"(a) ... and says to start the agent again" || diag "$(cat "$SY_BASE/cutover.out")"
sleep 2   # the clients wait in the PAUSE while no agent runs
ok "(a) PgBouncer is still paused while the agent is down" eval '[ "$(bouncer_db paused)" = 1 ]'
log_mark
agent_restart
ok "(a) the restarted agent streams again" wait_for 60 'phase "streaming"' \
	eval '[ "$(status_get phase)" = streaming ]'
ok "(a) ... after rolling the cutover back" log_has 'interrupted cutover (at step switch) is rolled back'
ok "(a) PgBouncer is resumed on the source, its file untouched" resumed_at SRC
ok "(a) the guard is back: chatapp cannot connect to the target" app_kept_off DST
ok "(a) the progress record is gone" eval '[ ! -e "$AGENT_STATE/cutover.json" ]'
ok "(a) the workload through PgBouncer had zero failed transactions" workload_wait "$WORKLOAD_PID" pgbench.a
ok "(a) the source serves writes through PgBouncer" "$PGBIN/psql" -X -d \
	"host=$PGB_DIR port=$PGB_PORT dbname=chat user=postgres" \
	-c "insert into agents (name, email) values ('after crash a', 'a@example.test')"
ok "(a) streaming continues: the target catches up" catch_up SRC 60
ok "(a) source and target are equal (ordered COPY of every table)" compare_databases SRC DST
ok "(a) every counter increment is on the target exactly once" chat_check_counters DST

# ---- (b1) killed after the ini was rewritten, before PgBouncer confirmed it -------------------
log_mark
cutover_bg ini-rewritten
ok "(b1) the cutover stalls with the ini rewritten, before RELOAD" wait_for 60 "the stall" \
	log_has 'stalled at ini-rewritten'
ok "(b1) ... the file points at the target, PgBouncer still at the source" eval \
	'grep -q "^chat = host=$DST_HOST port=$DST_PORT " "$PGB_INI" && [ "$(bouncer_db port)" = "$SRC_PORT" ]'
ok "(b1) SIGKILL the agent" agent_kill9
cutover_bg_wait
log_mark
agent_restart
ok "(b1) the restarted agent rolls back and streams" wait_for 60 'phase "streaming"' \
	eval '[ "$(status_get phase)" = streaming ] && log_has "is rolled back"'
ok "(b1) the file is restored and PgBouncer resumed on the source; the guard is back" eval \
	'resumed_at SRC && app_kept_off DST'

# ---- a later cutover succeeds -----------------------------------------------------------------
timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_CONN" --target "$DST_CONN" >/dev/null 2>&1
workload_start later 10
sleep 3
cout=$(cutover 2>&1); crc=$?
is "$crc" 0 "a later cutover switches (exit 0)" || diag "$cout"
ok "... PgBouncer resumed on the target, chatapp may connect there" eval 'resumed_at DST && app_can_connect DST'
ok "... the workload had zero failed transactions" workload_wait "$WORKLOAD_PID" pgbench.later
ok "... every counter increment, before and after the switch, is on the target once" chat_check_counters DST
ok "... the agent ended its streaming (exit 0)" agent_wait 30

# ---- (b2) a second migration, killed after its switch point, before RESUME ---------------------
# The source is frozen since the switch; it is copied again into database chat2 on the target
# server, and PgBouncer sent back to the source for it.
export DST2_HOST=$DST_HOST DST2_PORT=$DST_PORT DST2_CONN="host=$DST_HOST port=$DST_PORT dbname=chat2 user=postgres"
ok "(b2) a second migration: source copied into database chat2, PgBouncer back on the source" eval \
	'psql_on DST "create database chat2" >/dev/null && copy_database SRC DST2 &&
	 write_ini && "$PGBIN/psql" -X -q -d "$PGB_ADMIN" -c "reload" >/dev/null && pointing_at SRC'
AGENT_STATE=$SY_BASE/state2
agent_start --no-copy --source "$SRC_CONN" --target "$DST2_CONN" --app-roles chatapp
ok "(b2) the second agent streams, the guard keeps chatapp off chat2" eval \
	'wait_for 60 streaming eval "[ \"\$(status_get phase)\" = streaming ]" && app_kept_off DST chat2'
timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_CONN" --target "$DST2_CONN" >/dev/null 2>&1
workload_start b2 14
sleep 3
log_mark
cutover_bg switched
ok "(b2) the cutover stalls after the switch point, before RESUME" wait_for 60 "the stall" \
	log_has 'stalled at switched'
ok "(b2) ... PgBouncer points at chat2 and is paused" eval \
	'[ "$(bouncer_db database)|$(bouncer_db paused)" = "chat2|1" ] && grep -q "dbname=chat2" "$PGB_INI"'
ok "(b2) at that moment source and target are equal (ordered COPY of every table)" compare_databases SRC DST2
ok "(b2) SIGKILL the agent" agent_kill9
cutover_bg_wait
is "$CUTOVER_RC" 6 "(b2) the cutover command exits 6 when the agent dies"
src_frozen=$(psql_on SRC "select sum(n) from counters")
sleep 2
log_mark
agent_restart
ok "(b2) the restarted agent completes the switch and exits 0" agent_wait 60
ok "(b2) ... saying so" log_has 'interrupted cutover is complete'
ok "(b2) PgBouncer is resumed on the target; chatapp may connect to it" eval \
	'[ "$(bouncer_db database)|$(bouncer_db paused)" = "chat2|0" ] && app_can_connect DST chat2'
ok "(b2) the report says switched" grep -q '"outcome": *"switched"' "$AGENT_STATE/cutover-report.json"
ok "(b2) the workload had zero failed transactions" workload_wait "$WORKLOAD_PID" pgbench.b2
ok "(b2) every counter increment is on the target once, and the new ones only there" eval \
	'chat_check_counters DST2 && [ "$(psql_on SRC "select sum(n) from counters")" = "$src_frozen" ] &&
	 [ "$(psql_on DST2 "select sum(n) from counters")" -gt "$src_frozen" ]'
agent_restart
agent_wait 30
is "$AGENT_STATUS" 2 "(b2) a further start refuses: the migration was cut over (exit 2)"
