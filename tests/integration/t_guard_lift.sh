#!/usr/bin/env bash
# The guard API the cutover calls (through tests/integration/guard_driver): guard_lift gives
# back exactly what was revoked (the application role connects, and its sessions are no
# longer violations), guard_reinstate takes it away again (an application session still open
# becomes a violation), both are idempotent, and a guard started on a lifted record stays
# lifted. Hostile names throughout: database 'chat "db"', role 'app"role'.
. "$(dirname "$0")/lib.sh"
harness_init 120

GUARD_DRIVER=${GUARD_DRIVER:-$(dirname "$SWITCHYARD")/tests/integration/guard_driver}
plan 23
[ -x "$GUARD_DRIVER" ] || bail_out "no $GUARD_DRIVER (\"make check\" builds it)"

ok "the target starts" pg_start DST || bail_out "setup failed"
DB='chat "db"'
ROLE='app"role'
TARGET="$DST_CONN dbname='$DB'"      # the later dbname wins
ok "a database and an application role with double quotes in their names" psql_on DST \
	'create database "chat ""db"""' 'create role "app""role" login' \
	'grant connect on database "chat ""db""" to "app""role"'

on_db() {
	PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$TARGET" -c "$1"
}
acl_items() {
	on_db "select array_to_string(array(select a::text from pg_database d, unnest(d.datacl) a
		where d.datname = current_database() order by 1), ' ')"
}
# as_app APPNAME SQL: a session of the application role on the database.
as_app() {
	PGAPPNAME=$1 PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
		-h "$DST_HOST" -p "$DST_PORT" -U "$ROLE" -d "$DB" -c "$2"
}
acl_before=$(acl_items)
diag "ACL before: $acl_before"

# The driver runs as a coprocess: one command per line in, one answer per line out.
DRIVER_REPLY=
driver_start() {
	coproc GD { exec "$GUARD_DRIVER" --state-dir "$SY_BASE/state" --target "$TARGET" --app-roles "$ROLE" \
		--poll-ms 200 2>>"$SY_BASE/driver.log"; }
	DRIVER_PID=$GD_PID                  # bash unsets GD_PID once the coprocess has exited
	SY_BG_PIDS+=("$DRIVER_PID")
	IFS= read -r -t 30 DRIVER_REPLY <&"${GD[0]}"
}
drive() {
	DRIVER_REPLY=
	echo "$1" >&"${GD[1]}" && IFS= read -r -t 30 DRIVER_REPLY <&"${GD[0]}"
	echo "# $1: $DRIVER_REPLY"
}
reply_matches() {
	drive "$1" >/dev/null
	[[ $DRIVER_REPLY =~ $2 ]]
}

mkdir -p "$SY_BASE/state"
driver_start
is "$DRIVER_REPLY" started "the guard starts"
like "$(as_app before "select 1" 2>&1)" 'permission denied for database "chat "db""' \
	"the application role cannot connect"

drive lift >/dev/null
is "$DRIVER_REPLY" ok "guard_lift succeeds"
is "$(acl_items)" "$acl_before" "after the lift the database ACL is item for item as before"
is "$(as_app after-lift "select current_user" 2>&1)" "$ROLE" "the application role connects after the lift"
ok "stats: lifted, CONNECT no longer revoked" reply_matches stats '^revoked=0 lifted=1 '

bg_start psql.app as_app app-open "select pg_sleep(60)"
app_open() {
	[ "$(on_db "select count(*) from pg_stat_activity where application_name = 'app-open'")" = 1 ]
}
wait_for 10 "the application session" app_open
sleep 1                                    # five checks at 200 ms
drive stats >/dev/null
unlike "$DRIVER_REPLY" 'app-open' "after the lift an application session is no violation"

drive reinstate >/dev/null
is "$DRIVER_REPLY" ok "guard_reinstate succeeds"
like "$(as_app again "select 1" 2>&1)" 'permission denied for database' "the application role cannot connect again"
ok "the application session still open is a violation again" \
	wait_for 5 "the violation" reply_matches stats 'application "app-open"'
ok "stats: CONNECT revoked, not lifted" reply_matches stats '^revoked=1 lifted=0 '
grants=$(jq -c '.revoked' "$SY_BASE/state/guard.json")
drive reinstate >/dev/null
is "$DRIVER_REPLY" ok "guard_reinstate again succeeds"
is "$(jq -c '.revoked' "$SY_BASE/state/guard.json")" "$grants" "and records nothing new"
is "$grants" '[{"grantee":null,"grantor":"postgres","grant_option":false},{"grantee":"app\"role","grantor":"postgres","grant_option":false}]' \
	"the record names PUBLIC and the application role"

# hours of idle before a cutover may have cost the guard its session: lift reconnects
ok "the guard's idle session for lift is terminated" on_db "select pg_terminate_backend(pid)
	from pg_stat_activity where application_name = 'switchyard-guard'"
drive lift >/dev/null
is "$DRIVER_REPLY" ok "a second lift succeeds, on a new session"
is "$(acl_items)" "$acl_before" "the database ACL is item for item as before, again"
drive quit >/dev/null
is "$DRIVER_REPLY" bye "the driver frees the guard"
wait "$DRIVER_PID" 2>/dev/null

driver_start
is "$DRIVER_REPLY" started "a guard started on a lifted record"
ok "stays lifted" reply_matches stats '^revoked=0 lifted=1 '
is "$(as_app restarted "select current_user" 2>&1)" "$ROLE" "and the application role still connects"
drive quit >/dev/null
wait "$DRIVER_PID" 2>/dev/null
