#!/usr/bin/env bash
# The target guard: while the agent runs, the application role cannot connect to the target
# (but still to the source); a session opened on the target anyway is reported within 5 s,
# with role and application name, and with --guard enforce terminated; a session of the
# application already open at start is reported too. The record of what was revoked survives
# a restart, cleanup refuses to lose it without --target, and with --target gives back
# exactly the CONNECT grants the guard took (the database ACL is item for item as before).
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 30

ok "servers start with the chat database on both" chat_setup || bail_out "setup failed"

# app: the application; boss: an application role that is a superuser (the revoke cannot
# stop it: a warning); dba: has CONNECT with grant option and grants it to app itself, so the
# ACL holds a grant whose grantor is not the owner.
ok "roles and grants" eval '
	psql_on SRC "create role app login" "create role boss login superuser" &&
	psql_on DST "create role app login" "create role boss login superuser" "create role dba login" \
		"grant connect on database postgres to app" \
		"grant connect on database postgres to dba with grant option" \
		"set role dba; grant connect on database postgres to app; reset role"'

# psql_as NAME ROLE APPNAME SQL: a session on server NAME as ROLE (trust on the socket).
psql_as() {
	PGAPPNAME=$3 PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
		-h "$(_sy_var "$1" HOST)" -p "$(_sy_var "$1" PORT)" -U "$2" -d postgres -c "$4"
}

# The target database's ACL, item by item in a fixed order (what "restored exactly" compares),
# and who holds CONNECT from whom.
acl_items() {
	psql_on DST "select array_to_string(array(select a::text from pg_database d, unnest(d.datacl) a
		where d.datname = current_database() order by 1), ' ')"
}
connect_holders() {
	psql_on DST "select string_agg(h, ' ' order by h) from (
		select coalesce(g.rolname, 'PUBLIC') || '/' || r.rolname as h
		from pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
		left join pg_roles g on g.oid = a.grantee join pg_roles r on r.oid = a.grantor
		where d.datname = current_database() and a.privilege_type = 'CONNECT') s"
}
acl_before=$(acl_items)
is "$(connect_holders)" "PUBLIC/postgres app/dba app/postgres dba/postgres postgres/postgres" \
	"before the agent: PUBLIC, app (from the owner and from dba) and dba may connect to the target"

# A session of the application that is open before the agent starts.
bg_start psql.early psql_as DST app app-early "select pg_sleep(20)"
early_open() {
	[ "$(psql_on DST "select count(*) from pg_stat_activity where application_name = 'app-early'")" = 1 ]
}
wait_for 10 "the early application session" early_open

guard_is() {
	[ "$(status_get connect_revoked)" = "$1" ]
}
agent_start_chat --app-roles app,boss
ok "the agent starts and reports CONNECT revoked" wait_for 30 "the guard" guard_is true
is "$(connect_holders)" "dba/postgres postgres/postgres" \
	"CONNECT is revoked from PUBLIC and from app (both grants), not from others"

out=$(psql_as DST app app-late "select current_user" 2>&1)
like "$out" 'permission denied for database "postgres"' "the application role cannot connect to the target"
is "$(psql_as SRC app app-late "select current_user" 2>&1)" app "the application role still connects to the source"

violation_seen() {
	grep -q "$1" "$AGENT_LOG"
}
ok "the application session open at start is reported (role, application name)" \
	wait_for 10 "the report" violation_seen 'application role "app" is connected to database "postgres" (client local socket, application "app-early"'
like "$(cat "$AGENT_LOG")" 'application role "boss" is a superuser' \
	"the log warns that revoking CONNECT cannot stop a superuser application role"

# A foreign session: the agent's own role, but not the agent.
before=$(status_get violations_total)
t0=$(date +%s%N)
bg_start psql.intruder psql_as DST postgres intruder "select pg_sleep(15)"
intruder_pid=$BG_PID
reported() {
	[[ "$(status_get last_violation)" == *intruder* ]]
}
if wait_for 10 "the intruder in status" reported; then
	ms=$((($(date +%s%N) - t0) / 1000000))
	diag "reported after $ms ms"
	ok "a foreign session is reported in status within 5 s" test "$ms" -le 5000
else
	fail "a foreign session is reported in status within 5 s"
fi
json=$(agent_status)
ok "status counts it: violations_total grew, sessions_now >= 1" eval '
	[ "$(json_get "$json" violations_total)" -gt "$before" ] && [ "$(json_get "$json" sessions_now)" -ge 1 ]'
is "$(printf '%s' "$json" | jq -c '.guard | {mode, app_roles, connect_revoked, lifted}')" \
	'{"mode":"observe","app_roles":["app","boss"],"connect_revoked":true,"lifted":false}' \
	"status shows the guard: mode, application roles, CONNECT revoked, not lifted"
like "$(cat "$AGENT_LOG")" 'foreign session of role "postgres" on database "postgres" \(client local socket, application "intruder", backend start [0-9T:.-]+Z, query start [0-9T:.-]+Z' \
	"the log names role, client, application name, backend and query start"
text=$("$SWITCHYARD" status --state-dir "$AGENT_STATE" 2>&1)
like "$text" 'target guard: +CONNECT on the target revoked from PUBLIC and the application roles \(observe\)' \
	"switchyard status says plainly that the guard is in place"
like "$text" 'guard violations: +[0-9]+ total, [1-9][0-9]* foreign sessions? on the target now' \
	"switchyard status shows the violations"
ok "observe mode leaves the session alive" _sy_pid_alive "$intruder_pid"

ok "the agent stops" agent_stop 60
revoked_first=$(jq -c '.revoked' "$AGENT_STATE/guard.json")
is "$revoked_first" '[{"grantee":"app","grantor":"dba","grant_option":false},{"grantee":null,"grantor":"postgres","grant_option":false},{"grantee":"app","grantor":"postgres","grant_option":false}]' \
	"the state directory records exactly the three grants revoked"
like "$("$SWITCHYARD" status --state-dir "$AGENT_STATE" --json)" '"connect_revoked": true' \
	"status of the stopped agent still says CONNECT is revoked"

# A restart finds nothing granted: the record must keep what the first run revoked.
agent_start_chat --app-roles app,boss --guard enforce
ok "the agent restarts in enforce mode" wait_for 30 "the guard" guard_is true
is "$(jq -c '.revoked' "$AGENT_STATE/guard.json")" "$revoked_first" "the restart keeps the record of what to restore"

t0=$(date +%s%N)
bg_start psql.intruder2 psql_as DST postgres intruder2 "select pg_sleep(60)"
intruder2_pid=$BG_PID
gone() {
	! _sy_pid_alive "$intruder2_pid"
}
if wait_for 15 "the intruder to be terminated" gone; then
	ms=$((($(date +%s%N) - t0) / 1000000))
	diag "terminated after $ms ms"
	ok "enforce: the foreign session is terminated within 5 s" test "$ms" -le 5000
else
	fail "enforce: the foreign session is terminated within 5 s"
fi
like "$(cat "$SY_BASE/psql.intruder2.log")" 'terminating connection due to administrator command' \
	"the session ended by pg_terminate_backend"
like "$(cat "$AGENT_LOG")" 'terminated session [0-9]+ of role "postgres" \(application "intruder2"\)' \
	"the log says which session was terminated"
ok "the agent stops" agent_stop 60

# (ok runs its command with locals "out" and "rc": the names here must differ)
cleanup_out=$("$SWITCHYARD" cleanup --state-dir "$AGENT_STATE" --source "$SRC_CONN" 2>&1)
cleanup_rc=$?
ok "cleanup without --target refuses while CONNECT is revoked, and keeps the state" eval '
	[ "$cleanup_rc" -ne 0 ] && [ -f "$AGENT_STATE/guard.json" ] && slot_exists SRC'
like "$cleanup_out" 'as role "dba": GRANT CONNECT ON DATABASE "postgres" TO "app";' "it says what is still revoked and how to restore it by hand"

ok "cleanup with --target exits 0" "$SWITCHYARD" cleanup --state-dir "$AGENT_STATE" --source "$SRC_CONN" \
	--target "$DST_CONN"
is "$(acl_items)" "$acl_before" "the target's database ACL is item for item as before the agent"
is "$(psql_as DST app app-after "select current_user" 2>&1)" app "the application role connects to the target again"
