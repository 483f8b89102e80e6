#!/usr/bin/env bash
# The in-process rollback of a cutover that fails at its last moment before the point of no
# return: PgBouncer PAUSEd, the target guard lifted, the ini rewritten and RELOADed, PgBouncer
# seen pointing at the target (SWITCHYARD_CUTOVER_FAIL_AT=reloaded).
#   (1) RELOAD of the restored ini works: PgBouncer resumes on the source, the file is the
#       original, the guard is back.
#   (1b) the session to PgBouncer's console breaks just before that RELOAD
#       (rollback-session-lost): the RELOAD is tried again on a new session, as in (1).
#   (2) RELOAD fails as well (rollback-reload): PgBouncer stays paused (it still points at
#       the target), the command says so and what to do; a client through PgBouncer waits.
#       The DBA's RELOAD and RESUME by hand send that client, and the next, to the source;
#       the next start of the agent clears what the record kept.
#   (3) the file cannot be restored (its backup removed meanwhile): PgBouncer stays paused too;
#       once the DBA put it back by hand, the next start of the agent takes it as restored.
#   (4) the switch works but the application's role cannot log in to the target: the agent,
#       watching PgBouncer after RESUME, says so.
# Where a connection lands is read from the server itself (current_setting('port')).
. "$(dirname "$0")/lib.sh"
harness_init 150

plan 46

command -v pgbouncer >/dev/null || bail_out "pgbouncer is not installed (scripts/install-deps installs it)"

ok "servers, the application role chatapp, chat schema and seed, copied to the target" chat_setup_with_app chatapp ||
	bail_out "setup failed"
ok "PgBouncer is up in front of the source, its server sessions as chatapp" pgbouncer_start chatapp ||
	bail_out "no PgBouncer"
cp "$PGB_INI" "$SY_BASE/pgbouncer.ini.orig"

# bouncer_db COLUMN: that column of PgBouncer's SHOW DATABASES line for chat.
bouncer_db() {
	"$PGBIN/psql" -X -A -F '|' -d "$PGB_ADMIN" -c "show databases" | awk -F '|' -v col="$1" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		$1 == "chat" { print $c }'
}
bouncer_at() {   # bouncer_at PORT PAUSED
	[ "$(bouncer_db port)|$(bouncer_db paused)" = "$1|$2" ]
}
# through_bouncer SQL: one statement as a client of PgBouncer's chat database.
through_bouncer() {
	timeout 10 "$PGBIN/psql" -X -q -A -t -h "$PGB_DIR" -p "$PGB_PORT" -U postgres -d chat -c "$1"
}
ini_is_original() {
	cmp -s "$PGB_INI" "$SY_BASE/pgbouncer.ini.orig"
}
app_kept_off() {   # app_kept_off NAME: chatapp may not connect to that server
	local err
	err=$(PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -h "$(_sy_var "$1" HOST)" -p "$(_sy_var "$1" PORT)" \
		-U chatapp -d postgres -c "select 1" 2>&1) && { echo "# chatapp connected"; return 1; }
	[[ $err == *"permission denied for database"* ]] || { echo "# $err"; return 1; }
}
# The source takes chatapp's writes, and chatapp has no read-only setting there.
source_writable() {
	[ -z "$(psql_on SRC "select coalesce(array_to_string(rolconfig, ','), '') from pg_roles where rolname = 'chatapp'")" ] &&
		"$PGBIN/psql" -X -q -h "$SRC_HOST" -p "$SRC_PORT" -U chatapp -d postgres \
			-c "insert into agents (name, email) values ('direct', 'direct@example.test')"
}
cutover() {
	timeout 60 "$SWITCHYARD" cutover --state-dir "$AGENT_STATE" --pgbouncer "$PGB_ADMIN" \
		--pgbouncer-db chat --pgbouncer-ini "$PGB_INI" --yes "$@"
}

agent_start_chat --app-roles chatapp
ok "the agent streams, the guard keeps chatapp off the target" eval \
	'wait_for 30 streaming eval "[ \"\$(status_get phase)\" = streaming ]" && app_kept_off DST'
ok "a verify at a common point is clean" timeout 60 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" \
	--source "$SRC_CONN" --target "$DST_CONN"

# ---- (1) the rollback's RELOAD works ------------------------------------------------------
(
	SWITCHYARD_CUTOVER_FAIL_AT=reloaded SWITCHYARD_CUTOVER_STALL_AT=reloaded:2 cutover >"$SY_BASE/cutover1.out" 2>&1
	echo $? >"$SY_BASE/cutover1.rc"
) </dev/null &
CUTOVER_PID=$!
ok "(1) at the failure point PgBouncer is paused and points at the target" \
	wait_for 30 "PgBouncer on the target" bouncer_at "$DST_PORT" 1
wait "$CUTOVER_PID"
cout=$(cat "$SY_BASE/cutover1.out")
is "$(cat "$SY_BASE/cutover1.rc")" 6 "(1) the cutover aborts (exit 6)" || diag "$cout"
unlike "$cout" 'incomplete' "(1) ... and does not say the rollback is incomplete"
ok "(1) PgBouncer is resumed on the source" bouncer_at "$SRC_PORT" 0
ok "(1) its file is the original" ini_is_original
is "$(through_bouncer "select current_setting('port')")" "$SRC_PORT" \
	"(1) a client through PgBouncer reaches the source"
ok "(1) the guard is back: chatapp cannot connect to the target" app_kept_off DST
ok "(1) nothing is left to undo: no progress record" eval '[ ! -e "$AGENT_STATE/cutover.json" ]'

# ---- (1b) the session to PgBouncer's console breaks before the rollback's RELOAD ------------------
cout=$(SWITCHYARD_CUTOVER_FAIL_AT=reloaded,rollback-session-lost cutover 2>&1); crc=$?
is "$crc" 6 "(1b) the cutover aborts (exit 6)" || diag "$cout"
unlike "$cout" 'incomplete' "(1b) ... and the rollback is complete" || diag "$cout"
ok "(1b) the RELOAD was tried again on a new session" \
	grep_q "the session to PgBouncer's console broke during RELOAD: trying again on a new one" "$AGENT_LOG"
ok "(1b) PgBouncer is resumed on the source, its file the original" eval 'bouncer_at "$SRC_PORT" 0 && ini_is_original'
is "$(through_bouncer "select current_setting('port')")" "$SRC_PORT" \
	"(1b) a client through PgBouncer reaches the source"

# ---- (2) the rollback's RELOAD fails too -------------------------------------------------------
cout=$(SWITCHYARD_CUTOVER_FAIL_AT=reloaded,rollback-reload cutover 2>&1); crc=$?
is "$crc" 6 "(2) the cutover aborts (exit 6)" || diag "$cout"
like "$cout" 'rollback is incomplete: could not RELOAD PgBouncer' "(2) ... saying PgBouncer could not RELOAD" ||
	diag "$cout"
like "$cout" 'stays paused: run RELOAD, then RESUME chat' "(2) ... that chat stays paused, and what to run"
ok "(2) PgBouncer stays paused, still pointing at the target" bouncer_at "$DST_PORT" 1
ok "(2) its file on disk is the original again (source)" eval \
	'ini_is_original && grep -q "^chat = host=$SRC_HOST port=$SRC_PORT " "$PGB_INI"'
ok "(2) the guard is back: chatapp cannot connect to the target" app_kept_off DST
ok "(2) the source was not made read-only: chatapp writes there" source_writable
ok "(2) the progress record keeps what is left: PgBouncer paused, its file to RELOAD" eval \
	'grep -q "\"paused\": *true" "$AGENT_STATE/cutover.json" &&
	 grep -q "\"ini_rewritten\": *true" "$AGENT_STATE/cutover.json"'
ok "(2) the agent keeps streaming" eval '[ "$(status_get phase)" = streaming ]'
cout=$(cutover 2>&1); crc=$?
ok "(2) another cutover is refused until the agent finishes that record" eval \
	'[ "$crc" = 6 ] && [[ $cout == *"not fully rolled back"* ]] && bouncer_at "$DST_PORT" 1' || diag "$cout"

# A client arrives while PgBouncer is paused: it waits, it does not fail nor reach the target.
(
	timeout 60 "$PGBIN/psql" -X -q -A -t -h "$PGB_DIR" -p "$PGB_PORT" -U postgres -d chat \
		-c "insert into agents (name, email) values ('held', 'held@example.test') returning current_setting('port')" \
		>"$SY_BASE/held.out" 2>&1
	echo $? >"$SY_BASE/held.rc"
) </dev/null &
HELD_PID=$!
sleep 3
ok "(2) a client through PgBouncer waits in the pause" eval \
	'kill -0 "$HELD_PID" 2>/dev/null && [ ! -e "$SY_BASE/held.rc" ]' || diag "$(cat "$SY_BASE/held.out")"

# What the DBA is told to do, on PgBouncer's console.
ok "(2) by hand: RELOAD, then RESUME chat" eval \
	'"$PGBIN/psql" -X -q -d "$PGB_ADMIN" -c "reload" && "$PGBIN/psql" -X -q -d "$PGB_ADMIN" -c "resume chat"'
ok "(2) PgBouncer is resumed on the source" bouncer_at "$SRC_PORT" 0
wait "$HELD_PID"
is "$(cat "$SY_BASE/held.rc")|$(cat "$SY_BASE/held.out")" "0|$SRC_PORT" \
	"(2) the waiting client's insert went through, on the source"
is "$(through_bouncer "select current_setting('port')")" "$SRC_PORT" \
	"(2) a new client through PgBouncer reaches the source"
held_rows() {
	psql_on "$1" "select count(*) from agents where name = 'held'"
}
ok "(2) the source has the held insert, and the target catches up with it" eval \
	'[ "$(held_rows SRC)" = 1 ] && catch_up SRC 30 && [ "$(held_rows DST)" = 1 ]'

# The next start of the agent finishes the record (RELOAD and RESUME again are harmless).
ok "(2) the agent stops" agent_stop 30
agent_restart
ok "(2) the restarted agent streams again, the record gone" eval \
	'wait_for 30 streaming eval "[ \"\$(status_get phase)\" = streaming ]" && [ ! -e "$AGENT_STATE/cutover.json" ]'
ok "(2) PgBouncer still serves the source, unpaused; the guard still keeps chatapp off the target" eval \
	'bouncer_at "$SRC_PORT" 0 && ini_is_original && app_kept_off DST'

# ---- (3) the restored file cannot be written: the backup is gone -----------------------------
(
	SWITCHYARD_CUTOVER_FAIL_AT=reloaded SWITCHYARD_CUTOVER_STALL_AT=reloaded:3 cutover >"$SY_BASE/cutover3.out" 2>&1
	echo $? >"$SY_BASE/cutover3.rc"
) </dev/null &
CUTOVER_PID=$!
ok "(3) while PgBouncer points at the target, the backup of its file is removed" eval \
	'wait_for 30 "PgBouncer on the target" bouncer_at "$DST_PORT" 1 && rm "$PGB_INI.switchyard-backup"'
wait "$CUTOVER_PID"
cout=$(cat "$SY_BASE/cutover3.out")
is "$(cat "$SY_BASE/cutover3.rc")" 6 "(3) the cutover aborts (exit 6)" || diag "$cout"
like "$cout" 'rollback is incomplete: could not restore .*stays paused: restore the file by hand, then run RELOAD and RESUME chat' \
	"(3) ... saying the file is not restored, chat stays paused, and what to do" || diag "$cout"
ok "(3) PgBouncer stays paused, pointing at the target" bouncer_at "$DST_PORT" 1
ok "(3) by hand: the file restored, RELOAD, RESUME chat" eval \
	'cp "$SY_BASE/pgbouncer.ini.orig" "$PGB_INI" &&
	 "$PGBIN/psql" -X -q -d "$PGB_ADMIN" -c "reload" && "$PGBIN/psql" -X -q -d "$PGB_ADMIN" -c "resume chat"'
is "$(through_bouncer "select current_setting('port')")" "$SRC_PORT" \
	"(3) a client through PgBouncer reaches the source"

ok "(3) the agent stops, and its next start takes PgBouncer as restored by hand (its backup is gone)" eval \
	'agent_stop 30 && agent_restart && wait_for 30 streaming eval "[ \"\$(status_get phase)\" = streaming ]" &&
	 [ ! -e "$AGENT_STATE/cutover.json" ] && grep_q "sends database \"chat\" to the source again: taken as restored by hand" "$AGENT_LOG"'

# ---- (4) the switch works, but the application's role cannot log in to the target ----------
# The agent watches PgBouncer after RESUME: a held client that finds no connection to the
# target within 3 s is reported, with the likely reason.
psql_on DST "alter role chatapp nologin" >/dev/null
bg_start clients.held bash -c "for i in \$(seq 400); do
	timeout 25 '$PGBIN/psql' -X -q -A -t -h '$PGB_DIR' -p '$PGB_PORT' -U postgres -d chat -c 'select 1' >/dev/null 2>&1
	sleep 0.02; done"
CLIENTS_PID=$BG_PID
# a pause of 2 s at its end (after the point of no return): clients surely wait in it
cout=$(SWITCHYARD_CUTOVER_STALL_AT=switched:2 cutover --max-pause 60000 2>&1); crc=$?
is "$crc" 0 "(4) the cutover switches (exit 0)" || diag "$cout"
like "$cout" 'clients served not within 3 s of RESUME: [0-9]+ still waited' "(4) ... and says clients still wait after RESUME" ||
	diag "$cout"
ok "(4) the agent's log says PgBouncer has no connection to the target, and what to check" eval \
	'grep_q "still waits* 3000 ms after RESUME, and PgBouncer has no connection to the target" "$AGENT_LOG" &&
	 grep_q "can the application.s role log in to the target database" "$AGENT_LOG"'
kill "$CLIENTS_PID" 2>/dev/null
psql_on DST "alter role chatapp login" >/dev/null
