#!/usr/bin/env bash
# Every error a user can cause from the command line gives one clear line (plus at most a
# hint or detail line) that names what is wrong, and its own exit status: 2 bad usage or
# configuration file, 3 source, 4 target, 7 no agent or no state (include/switchyard/exitcode.h).
# Covered: no or unknown command, unknown option, missing or invalid value, an option another
# command takes, a stray argument, what run and cutover need, a connection string libpq cannot
# parse (a usage error, not a server's), the configuration file (missing, unknown key, syntax,
# bad value), an unreachable server and a wrong password on either side (and the password never
# echoed, and no state directory left behind to confuse the corrected rerun), and status, stop,
# pause, resume, cutover, verify and cleanup without a running agent or state directory
# (cleanup then connects to nothing).
. "$(dirname "$0")/lib.sh"
harness_init 120

plan 43

# cli_error DESC STATUS ERE ARG...: "switchyard ARG..." exits STATUS, prints at most two
# non-empty lines (stdout and stderr together), the first of which matches ERE.
cli_error() {
	local desc=$1 want=$2 re=$3 out rc lines first
	shift 3
	out=$(cd "$SY_BASE" && env -u SWITCHYARD_SOURCE -u SWITCHYARD_TARGET -u PGPASSWORD PGPASSFILE=/nonexistent \
		PGCONNECT_TIMEOUT=5 timeout 30 "$SWITCHYARD" "$@" </dev/null 2>&1)
	rc=$?
	lines=$(printf '%s\n' "$out" | grep -c .)
	first=$(printf '%s\n' "$out" | grep . | head -n 1)
	if [ "$rc" -eq "$want" ] && [ "$lines" -ge 1 ] && [ "$lines" -le 2 ] &&
		printf '%s\n' "$first" | grep_q -iE -- "$re"; then
		pass "$desc (exit $want)"
		diag "$first"
	else
		fail "$desc (exit $want)"
		diag "exit status $rc, $lines lines; expected exit $want, 1-2 lines, the first matching /$re/:"
		diag "$(printf '%s\n' "$out" | head -n 8)"
	fi
	LAST_OUT=$out
}

# ---- the command line ------------------------------------------------------------------------------
cli_error "no command" 2 'no command given'
cli_error "an unknown command" 2 'unknown command "frobnicate"' frobnicate
cli_error "help for an unknown command" 2 'unknown command "frobnicate"' help frobnicate
cli_error "an option before the command" 2 'command must come first.*"--source"' --source x run
cli_error "an unknown option" 2 'unknown option "--sorce"' run --sorce x --target y
cli_error "an option without its value" 2 'option "--target" needs a value' run --source x --target
cli_error "an invalid value" 2 'invalid value "0" for "--jobs"' run --source x --target y --jobs 0
cli_error "an invalid size" 2 'invalid value "lots" for "--spool-max"' run --source x --target y --spool-max lots
cli_error "an option another command takes" 2 'option "--source" is not valid for command "status"' \
	status --source x
cli_error "a stray argument" 2 'unexpected argument "now" for command "stop"' stop now
cli_error "run without a target" 2 'command "run" needs --target' run --source x
cli_error "cutover with only part of the PgBouncer settings" 2 '--pgbouncer.*together' \
	cutover --pgbouncer "host=/tmp port=6432 dbname=pgbouncer"
cli_error "the dashboard off loopback without a token" 2 'not a loopback address.*--http-token' \
	run --source x --target y --http 0.0.0.0:9187
cli_error "a malformed --source connection string, with libpq's reason" 2 \
	'invalid connection string for "--source": missing "=" after "port"' \
	run --source "host=x password=Not-Shown-7f port" --target y --state-dir "$SY_BASE/st-malformed"
ok "... and the password is not in the output" eval '! printf "%s" "$LAST_OUT" | grep_q -F -- Not-Shown-7f'
ok "... and no state directory is created" test ! -e "$SY_BASE/st-malformed"
cli_error "a malformed --target connection string" 2 'invalid connection string for "--target": unterminated quoted string' \
	run --source x --target "host='y" --state-dir "$SY_BASE/st-malformed-target"
cli_error "a bare word is a database name, not a malformed string" 3 'could not connect to the source' \
	run --source no_such_db_7f --target y --state-dir "$SY_BASE/st-bare"

# ---- the configuration file -------------------------------------------------------------------------
CONF=$SY_BASE/conf
mkdir -p "$CONF"
printf 'source = host=a\nsorce = host=b\n' >"$CONF/unknown.conf"
printf '# a comment\nno-copy\n' >"$CONF/syntax.conf"
printf 'source = host=a\ntarget = host=b\njobs = many\n' >"$CONF/value.conf"
cli_error "a configuration file that does not exist" 2 'could not open configuration file ".*nosuch.conf"' \
	run --config "$CONF/nosuch.conf"
cli_error "an unknown key in the configuration file, with its line" 2 'unknown setting "sorce" in ".*unknown.conf" line 2' \
	run --config "$CONF/unknown.conf"
cli_error "a line that is not key = value, with its line" 2 'syntax error in ".*syntax.conf" line 2' \
	run --config "$CONF/syntax.conf"
cli_error "an invalid value in the configuration file, with its line" 2 'invalid value "many" for "jobs" in ".*value.conf" line 3' \
	run --config "$CONF/value.conf"
printf 'target = host=b\nsource = host=a port\n' >"$CONF/conninfo.conf"
cli_error "a malformed connection string in the configuration file, with its line" 2 \
	'invalid connection string for "source" in ".*conninfo.conf" line 2: missing "="' \
	run --config "$CONF/conninfo.conf"

# ---- servers ---------------------------------------------------------------------------------------
ok "a source and a target that take passwords over TCP" eval '
	pg_start SRC listen_addresses=127.0.0.1 password_encryption=scram-sha-256 &&
	pg_start DST listen_addresses=127.0.0.1 password_encryption=scram-sha-256' || bail_out "setup failed"
SRC_PW='Cli-Src-Pw-0e7d!a'
DST_PW='Cli-Dst-Pw-9b2c?b'
psql_on SRC "CREATE ROLE sy_admin LOGIN SUPERUSER REPLICATION PASSWORD '$SRC_PW'" \
	"CREATE TABLE t (id int PRIMARY KEY)" >/dev/null
psql_on DST "CREATE ROLE sy_admin LOGIN SUPERUSER PASSWORD '$DST_PW'" >/dev/null
pg_hba_prepend SRC "host all all 127.0.0.1/32 scram-sha-256"
pg_hba_prepend SRC "host replication all 127.0.0.1/32 scram-sha-256"
pg_hba_prepend DST "host all all 127.0.0.1/32 scram-sha-256"
SRC_TCP="host=127.0.0.1 port=$SRC_PORT dbname=postgres user=sy_admin password=$SRC_PW"
DST_TCP="host=127.0.0.1 port=$DST_PORT dbname=postgres user=sy_admin password=$DST_PW"
claim_port || bail_out "no free port"
DEAD="host=127.0.0.1 port=$SY_CLAIMED_PORT dbname=postgres user=sy_admin"

cli_error "an unreachable source names it" 3 "could not connect to the source.*$SY_CLAIMED_PORT" \
	run --source "$DEAD" --target "$DST_TCP" --state-dir "$SY_BASE/st-src-down" --no-copy
ok "... and leaves no state directory behind" test ! -e "$SY_BASE/st-src-down"
mkdir "$SY_BASE/st-own"
cli_error "an unreachable source, the state directory made by the user" 3 "could not connect to the source" \
	run --source "$DEAD" --target "$DST_TCP" --state-dir "$SY_BASE/st-own" --no-copy
ok "... which stays, without a migration state in it" eval '[ -d "$SY_BASE/st-own" ] && [ ! -e "$SY_BASE/st-own/state.pb" ]'
cli_error "an unreachable target names it" 4 "could not connect to the target.*$SY_CLAIMED_PORT" \
	run --source "$SRC_TCP" --target "$DEAD" --state-dir "$SY_BASE/st-dst-down" --no-copy
ok "... and leaves no state directory behind" test ! -e "$SY_BASE/st-dst-down"
cli_error "a wrong source password" 3 'source.*password authentication failed for user "sy_admin"' \
	run --source "$SRC_TCP-wrong" --target "$DST_TCP" --state-dir "$SY_BASE/st-src-pw" --no-copy
ok "... and the password is not in the output" eval '! printf "%s" "$LAST_OUT" | grep_q -F -- "$SRC_PW"'
cli_error "a wrong target password" 4 'target.*password authentication failed for user "sy_admin"' \
	run --source "$SRC_TCP" --target "$DST_TCP-wrong" --state-dir "$SY_BASE/st-dst-pw" --no-copy
ok "... and the password is not in the output" eval '! printf "%s" "$LAST_OUT" | grep_q -F -- "$DST_PW"'

# ---- no agent, no state ------------------------------------------------------------------------------
NOSTATE=$SY_BASE/no-such-state
cli_error "status without state" 7 "no agent is running and no state in \".*no-such-state\"" status --state-dir "$NOSTATE"
cli_error "status of the default ./switchyard-state, absent" 7 'no agent is running and no state in "\./switchyard-state"' status
cli_error "stop without an agent" 7 'no agent is running on state directory ".*no-such-state"' stop --state-dir "$NOSTATE"
cli_error "pause without an agent" 7 'no agent is running' pause --state-dir "$NOSTATE"
cli_error "resume without an agent" 7 'no agent is running' resume --state-dir "$NOSTATE"
cli_error "cutover without an agent" 7 'no agent is running' cutover --state-dir "$NOSTATE" --dry-run
cli_error "cleanup without state" 7 'no migration state in ".*no-such-state"' cleanup --state-dir "$NOSTATE"
cli_error "cleanup without state connects to no server" 7 'no migration state in ".*no-such-state": nothing to clean up' \
	cleanup --state-dir "$NOSTATE" --source "$DEAD" --target "$DEAD"
cli_error "verify without state" 7 'no migration state in ".*no-such-state"' \
	verify --state-dir "$NOSTATE" --source "$SRC_TCP" --target "$DST_TCP"
