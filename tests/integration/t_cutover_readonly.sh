#!/usr/bin/env bash
# cutover --fence read-only, without PgBouncer: the application roles (chatapp with another
# setting of its own, chatworker with default_transaction_read_only = off already) get
# default_transaction_read_only = on on the source and their sessions there are ended, so
# new ones are read-only during the fence. A failure forced at each step, and an agent killed
# inside the fence and started again, give every role its settings back exactly and end the
# sessions begun read-only. A successful run leaves the target reachable and writable by the
# application role, the source roles read-only, and says to point the application at the target.
. "$(dirname "$0")/lib.sh"
harness_init 300

plan 32

app_setup() {
	local s
	pg_start SRC && pg_start DST || return 1
	for s in SRC DST; do
		psql_on "$s" "create role chatapp login" "create role chatworker login" || return 1
	done
	psql_on SRC "alter role chatapp set work_mem = '8MB'" \
		"alter role chatworker set default_transaction_read_only = off" &&
		chat_schema SRC &&
		psql_on SRC "grant usage on schema public, \"Support \"\"Desk\"\" ø\" to chatapp, chatworker" \
			"grant all on all tables in schema public, \"Support \"\"Desk\"\" ø\" to chatapp, chatworker" \
			"grant all on all sequences in schema public, \"Support \"\"Desk\"\" ø\" to chatapp, chatworker" &&
		chat_seed SRC && copy_database SRC DST
}
ok "servers, roles chatapp and chatworker, chat schema and seed, copied to the target" app_setup ||
	bail_out "setup failed"

# The roles' own settings on the source, in a stable form.
role_settings() {
	psql_on SRC "select r.rolname || ' ' || coalesce(d.datname, '*') || ' ' || array_to_string(s.setconfig, ',')
		from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
		left join pg_database d on d.oid = s.setdatabase
		where r.rolname in ('chatapp', 'chatworker') order by 1"
}
SETTINGS_BEFORE=$(role_settings)
diag "role settings before: $(printf '%s' "$SETTINGS_BEFORE" | tr '\n' ';')"
settings_restored() {
	local now
	now=$(role_settings)
	[ "$now" = "$SETTINGS_BEFORE" ] || { echo "# role settings now: $(printf '%s' "$now" | tr '\n' ';')"; return 1; }
}
# as_app ROLE NAME SQL: a new session of ROLE on server NAME.
as_app() {
	PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$(_sy_var "$2" HOST)" \
		-p "$(_sy_var "$2" PORT)" -U "$1" -d postgres -c "$3"
}
app_writes_source() {
	as_app chatapp SRC "insert into agents (name, email) values ('$1', 'w@example.test')" >/dev/null &&
		as_app chatworker SRC "insert into agents (name, email) values ('$1 (worker)', 'w@example.test')" >/dev/null
}
app_read_only_on_source() {
	local err
	[ "$(as_app chatapp SRC "show default_transaction_read_only")" = on ] || return 1
	err=$(as_app chatworker SRC "insert into agents (name, email) values ('x', 'x@example.test')" 2>&1) && return 1
	[[ $err == *"read-only transaction"* ]] || { echo "# $err"; return 1; }
}
app_kept_off_target() {
	local err
	err=$(as_app chatapp DST "select 1" 2>&1) && return 1
	[[ $err == *"permission denied for database"* ]] || { echo "# $err"; return 1; }
}
# app_session_start NAME: a chatapp session on the source that sleeps; APP_SESSION_PID.
app_session_start() {
	bg_start "session.$1" "$PGBIN/psql" -X -h "$SRC_HOST" -p "$SRC_PORT" -U chatapp -d postgres \
		-c "select pg_sleep(120)"
	APP_SESSION_PID=$BG_PID
}
app_session_count() {
	psql_on SRC "select count(*) from pg_stat_activity where usename = 'chatapp' and query like '%pg_sleep%'"
}
# session_ended NAME PID: the session's psql exited, terminated by the server.
session_ended() {
	! _sy_pid_alive "$2" && grep -q 'terminat' "$SY_BASE/session.$1.log"
}
log_mark() {
	LOG_MARK=$(wc -l <"$AGENT_LOG")
}
log_has() {
	tail -n +"$((LOG_MARK + 1))" "$AGENT_LOG" | grep_q -- "$1"
}
cutover() {
	timeout 180 "$SWITCHYARD" cutover --state-dir "$AGENT_STATE" --fence read-only --yes "$@"
}

agent_start_chat --app-roles chatapp,chatworker
ok "the agent streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'
ok "a verify at a common point is clean" timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" \
	--source "$SRC_CONN" --target "$DST_CONN"
ok "the guard keeps the application role off the target" app_kept_off_target

# Refusals: a usage error without roles; the preflight refuses roles it cannot fence.
cout=$(cutover 2>&1); crc=$?
ok "--fence read-only without --app-roles is a usage error (exit 2) naming the fix" eval \
	'[ "$crc" = 2 ] && [[ $cout == *"--fence read-only needs --app-roles"* ]]' || diag "$cout"
cout=$(cutover --app-roles chatapp,nosuchrole 2>&1); crc=$?
ok "a role missing on the source is refused (exit 6), naming it" eval \
	'[ "$crc" = 6 ] && [[ $cout == *"\"nosuchrole\" does not exist on the source"* ]]' || diag "$cout"
cout=$(cutover --app-roles postgres 2>&1); crc=$?
ok "the agent's own role is refused (exit 6)" eval \
	'[ "$crc" = 6 ] && [[ $cout == *"role \"postgres\" is the one the agent connects"* ]]' || diag "$cout"
ok "... and nothing changed on the source" eval 'settings_restored && app_writes_source refused'

# An unresolved record of an earlier cutover (a rollback that could not finish) is not
# overwritten: a new cutover refuses until a restart of the agent has resolved it.
printf '{ "step": "aborted", "fence": "read-only", "switched": false }\n' >"$AGENT_STATE/cutover.json"
cout=$(cutover --app-roles chatapp,chatworker 2>&1); crc=$?
ok "an unresolved cutover record is refused (exit 6) and kept as it was" eval \
	'[ "$crc" = 6 ] && [[ $cout == *"not fully rolled back"* ]] &&
	 grep -q "\"step\": \"aborted\", \"fence\"" "$AGENT_STATE/cutover.json" && settings_restored' || diag "$cout"
rm -f "$AGENT_STATE/cutover.json"

# A failure forced at each step rolls the roles back exactly.
rolled=0
for step in fence drain sequences parity lift-guard; do
	cout=$(SWITCHYARD_CUTOVER_FAIL_AT=$step cutover --app-roles chatapp,chatworker 2>&1); crc=$?
	if [ "$crc" = 6 ] && settings_restored && app_writes_source "after abort at $step" && app_kept_off_target; then
		rolled=$((rolled + 1))
	else
		diag "abort at $step: rc=$crc $cout"
	fi
done
is "$rolled" 5 "a failure forced at each of the 5 steps restores the roles' settings exactly; the source takes writes"
ok "... and the guard is back each time" app_kept_off_target

# Inside the fence: the agent stalls at the parity step; old sessions ended, new ones read-only.
app_session_start before
ok "a chatapp session sleeps on the source" wait_for 20 "the session" eval '[ "$(app_session_count)" = 1 ]'
log_mark
(SWITCHYARD_CUTOVER_STALL_AT=parity cutover --app-roles chatapp,chatworker >"$SY_BASE/cutover.out" 2>&1) &
CUTOVER_PID=$!
ok "the cutover stalls inside the fence" wait_for 60 "the stall" log_has 'stalled at parity'
ok "the application role's session on the source was ended" wait_for 10 "the session to end" \
	session_ended before "$APP_SESSION_PID"
ok "new sessions of both roles are read-only" app_read_only_on_source
app_session_start during
ok "a session begun inside the fence is there" wait_for 20 "the session" eval '[ "$(app_session_count)" = 1 ]'
ok "SIGKILL the agent inside the fence" agent_kill9
wait "$CUTOVER_PID"
is "$?" 6 "the cutover command exits 6"
log_mark
agent_restart
ok "the restarted agent streams again" wait_for 60 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'
ok "... having rolled the cutover back" log_has 'is rolled back'
ok "the roles' settings are restored exactly" settings_restored
ok "the session begun read-only was ended" wait_for 10 "the session to end" session_ended during "$APP_SESSION_PID"
ok "the application roles write on the source again; the guard is back" eval \
	'app_writes_source "after the crash" && app_kept_off_target'
ok "the writes stream to the target" catch_up SRC 60

# The real cutover.
timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_CONN" --target "$DST_CONN" >/dev/null 2>&1
cout=$(cutover --app-roles chatapp,chatworker 2>&1); crc=$?
is "$crc" 0 "cutover --fence read-only succeeds (exit 0)" || diag "$cout"
like "$cout" 'next +point the application at the target; its roles stay read-only on the source' \
	"... and says to point the application at the target, the roles staying read-only"
like "$cout" 'read-only +chatapp, chatworker' "... naming the roles"
ok "the agent ended its streaming (exit 0)" agent_wait 30
ok "source and target are equal (ordered COPY of every table)" compare_databases SRC DST
ok "the application roles stay read-only on the source" app_read_only_on_source
ok "chatapp reaches the target and writes there" as_app chatapp DST \
	"insert into agents (name, email) values ('on the target', 't@example.test')"
ok "the progress record says done, the report says switched" eval \
	'grep -q "\"step\": *\"done\"" "$AGENT_STATE/cutover.json" &&
	 grep -q "\"outcome\": *\"switched\"" "$AGENT_STATE/cutover-report.json"'
