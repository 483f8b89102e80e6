# tests/integration/lib.sh — harness for switchyard's integration tests (bash, sourced).
# Starts throwaway PostgreSQL servers (own temp dir, unix socket, free port, wal_level=logical),
# runs the agent and pgbench workloads in the background, compares databases without the
# agent, speaks TAP, and stops everything it started in a trap. scripts/pg-sandbox reuses it.
#
# A test:
#   . "$(dirname "$0")/lib.sh"
#   harness_init            # temp dir, traps, watchdog; optional argument: timeout in seconds
#   plan 3
#   pg_start SRC; pg_start DST          # exports SRC_PORT SRC_HOST SRC_CONN SRC_DATA SRC_LOG ...
#   ok "schema loads" chat_schema SRC
#   is "$(psql_on SRC 'select 1')" 1 "select works"
#   ok "databases equal" compare_databases SRC DST
#
# Environment: SWITCHYARD (agent binary), FIXTURES (tests/fixtures), PGBIN (PostgreSQL bin
# dir; default: 15, else the newest installed), SWITCHYARD_TEST_FSYNC (on|off, default on),
# SWITCHYARD_TEST_KEEP (1: keep the temp dir; it is also kept after a failure outside CI),
# SWITCHYARD_TEST_TIMEOUT (watchdog, seconds), SWITCHYARD_TEST_LOG_LEVEL (passed to the
# agent as --log-level), COMPARE_EXCLUDE (regex on "schema.table" that compare_databases skips).
#
# Rules the helpers follow: stdout is TAP only (everything else goes to "# " lines or to
# log files); every process is started by us and stopped by its pid or by pg_ctl; nothing is
# shared between tests except the port lock directory.

if [ -z "${BASH_VERSION:-}" ]; then
	echo "lib.sh needs bash" >&2
	exit 99
fi
set -u
set -o pipefail

SY_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP_SRCDIR=${TOP_SRCDIR:-$(cd "$SY_LIB_DIR/../.." && pwd)}
FIXTURES=${FIXTURES:-$TOP_SRCDIR/tests/fixtures}
SWITCHYARD=${SWITCHYARD:-$TOP_SRCDIR/build/switchyard}
export TOP_SRCDIR FIXTURES SWITCHYARD

_sy_find_pgbin() {
	local d
	if [ -n "${PGBIN:-}" ]; then
		echo "$PGBIN"
		return
	fi
	if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
		echo /usr/lib/postgresql/15/bin
		return
	fi
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [ -n "$d" ]; then
		echo "$d"
	elif command -v pg_config >/dev/null 2>&1; then
		pg_config --bindir
	else
		dirname "$(command -v initdb 2>/dev/null || echo /usr/bin/initdb)"
	fi
}
PGBIN=$(_sy_find_pgbin)
export PGBIN

SY_PORT_LOCKS=${SY_PORT_LOCKS:-/tmp/switchyard-ports}
SY_BASE=${SY_BASE:-}            # temp dir of this test (or the sandbox dir)
SY_SERVERS=()                   # names given to pg_start, in order
SY_PORTS=()                     # ports we hold a lock on
SY_BG_PIDS=()                   # background helpers (pgbench...) to stop at exit
SY_WATCHDOG_PID=
SY_MODE=test                    # test | sandbox

# ---- TAP --------------------------------------------------------------------------------
SY_PLAN=0
SY_TESTNUM=0
SY_FAILED=0
SY_BAILED=0

plan() {
	SY_PLAN=$1
	echo "1..$1"
}

# diag MSG...: each line of MSG as a TAP comment.
diag() {
	local line
	printf '%s\n' "$*" | while IFS= read -r line; do
		printf '# %s\n' "$line"
	done
}

# diag_file FILE [LINES]: the tail of a file as TAP comments.
diag_file() {
	local file=$1 n=${2:-30}
	[ -f "$file" ] || return 0
	tail -n "$n" "$file" | cut -c1-300 | sed 's/^/#   /'
}

pass() {
	SY_TESTNUM=$((SY_TESTNUM + 1))
	echo "ok $SY_TESTNUM - $*"
}

fail() {
	SY_TESTNUM=$((SY_TESTNUM + 1))
	SY_FAILED=$((SY_FAILED + 1))
	echo "not ok $SY_TESTNUM - $*"
}

# ok DESC CMD [ARG...]: runs CMD in this shell; passes if it exits 0. CMD's output is kept:
# its "# " lines are shown always, everything else only when it fails.
ok() {
	local desc=$1 out rc
	shift
	out=$(mktemp "${SY_BASE:-/tmp}/ok.XXXXXX")
	"$@" >"$out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		grep '^#' "$out"
		pass "$desc"
	else
		fail "$desc"
		diag "command failed (exit $rc): $*"
		head -n 100 "$out" | cut -c1-300 | sed -e '/^#/!s/^/#   /'
	fi
	rm -f "$out"
	return "$rc"
}

# is GOT WANT DESC
is() {
	if [ "$1" == "$2" ]; then
		pass "$3"
	else
		fail "$3"
		diag "got:      '$1'"
		diag "expected: '$2'"
		return 1
	fi
}

# like GOT ERE DESC: GOT matches the extended regular expression (grep -E, case-insensitive).
# grep -q stops reading at its first match: under pipefail the writer's SIGPIPE (bash
# writes printf's output line by line) would then fail a pipeline whose grep matched.
grep_q() {
	grep "$@" >/dev/null
}

like() {
	if printf '%s\n' "$1" | grep_q -iE -- "$2"; then
		pass "$3"
	else
		fail "$3"
		diag "got:      '$(printf '%s' "$1" | head -c 2000)'"
		diag "expected to match: /$2/"
		return 1
	fi
}

unlike() {
	if printf '%s\n' "$1" | grep_q -iE -- "$2"; then
		fail "$3"
		diag "got:      '$(printf '%s' "$1" | head -c 2000)'"
		diag "expected not to match: /$2/"
		return 1
	else
		pass "$3"
	fi
}

bail_out() {
	SY_BAILED=1
	echo "Bail out! $*"
	exit 1
}

# ---- setup, traps, watchdog ---------------------------------------------------------------

# harness_init [TIMEOUT]: temp dir, cleanup traps and a watchdog that ends the test after
# TIMEOUT seconds (default $SWITCHYARD_TEST_TIMEOUT, else 170).
harness_init() {
	local timeout=${SWITCHYARD_TEST_TIMEOUT:-${1:-170}} name
	name=$(basename "${0%.sh}")
	SY_BASE=$(mktemp -d "/tmp/sy-${name:0:16}.XXXXXX") || bail_out "mktemp failed"
	chmod 755 "$SY_BASE"
	AGENT_STATE=$SY_BASE/state
	AGENT_LOG=$SY_BASE/agent.log
	trap _sy_cleanup EXIT
	trap '_sy_signal 130 INT' INT
	trap '_sy_signal 143 TERM' TERM
	_sy_check_tools || bail_out "missing tools"
	_sy_watchdog "$timeout"
	diag "temp dir $SY_BASE, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync=${SWITCHYARD_TEST_FSYNC:-on}"
}

_sy_check_tools() {
	local t missing=0
	for t in initdb pg_ctl postgres psql pgbench pg_dump; do
		if [ ! -x "$PGBIN/$t" ]; then
			echo "# $PGBIN/$t not found (install postgresql-15, or set PGBIN)"
			missing=1
		fi
	done
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		echo "# running as root needs a 'postgres' user to run the servers"
		missing=1
	fi
	return "$missing"
}

_sy_signal() {
	diag "caught SIG$2"
	exit "$1"
}

# The watchdog: after TIMEOUT seconds, end the test's direct children but the servers (so a
# blocked foreground command returns) and TERM the test, whose trap then cleans up. Its own output
# goes nowhere: a background process holding the TAP pipe open would hang the driver.
_sy_watchdog() {
	local timeout=$1 main=$$
	(
		trap 'exit 0' TERM
		sleep "$timeout" &
		# a sleep ended by _sy_stop_watchdog is no timeout
		wait $! || exit 0
		touch "$SY_BASE/watchdog-fired"
		for pid in $(_sy_children "$main"); do
			[ "$pid" = "$BASHPID" ] && continue
			grep -qx "$pid" "$SY_BASE/server-children" 2>/dev/null && continue
			kill -TERM "$pid" 2>/dev/null
		done
		kill -TERM "$main" 2>/dev/null
	) </dev/null >/dev/null 2>&1 &
	SY_WATCHDOG_PID=$!
}

# _sy_children PID: the pids whose parent is PID (from /proc: no procps needed).
_sy_children() {
	local parent=$1 f stat fields
	for f in /proc/[0-9]*/stat; do
		{ read -r stat <"$f"; } 2>/dev/null || continue
		read -r -a fields <<<"${stat##*) }"      # after the command name: state, ppid, ...
		[ "${fields[1]:-}" = "$parent" ] || continue
		f=${f#/proc/}
		echo "${f%/stat}"
	done
}

_sy_stop_watchdog() {
	local pid
	[ -n "$SY_WATCHDOG_PID" ] || return 0
	local children
	children=$(_sy_children "$SY_WATCHDOG_PID")
	kill -TERM "$SY_WATCHDOG_PID" 2>/dev/null
	for pid in $children; do
		kill -TERM "$pid" 2>/dev/null
	done
	wait "$SY_WATCHDOG_PID" 2>/dev/null
	SY_WATCHDOG_PID=
}

_sy_cleanup() {
	local rc=$? failed=0 name pid keep=0
	trap - EXIT INT TERM
	_sy_stop_watchdog
	if [ -f "$SY_BASE/watchdog-fired" ]; then
		diag "watchdog: the test ran out of time"
		failed=1
	fi
	if [ "$SY_BAILED" -eq 1 ] || [ "$rc" -ne 0 ] || [ "$SY_FAILED" -gt 0 ] ||
		[ "$SY_TESTNUM" -ne "$SY_PLAN" ]; then
		failed=1
	fi
	if [ "$SY_TESTNUM" -ne "$SY_PLAN" ] && [ "$SY_BAILED" -eq 0 ]; then
		diag "planned $SY_PLAN tests but ran $SY_TESTNUM"
	fi
	if _sy_agent_alive; then
		_sy_kill_pid "$AGENT_PID" 10
	fi
	for pid in "${SY_BG_PIDS[@]}"; do
		_sy_kill_tree "$pid" 5
	done
	if [ "$failed" -eq 1 ]; then
		_sy_show_logs
	fi
	for name in "${SY_SERVERS[@]}"; do
		_sy_server_halt "$name"
	done
	_sy_release_ports
	if [ "${SWITCHYARD_TEST_KEEP:-0}" = 1 ] || { [ "$failed" -eq 1 ] && [ "${CI:-}" != true ]; }; then
		keep=1
	fi
	if [ -n "$SY_BASE" ] && [ -d "$SY_BASE" ]; then
		if [ "$keep" -eq 1 ]; then
			diag "kept $SY_BASE"
		else
			rm -rf "$SY_BASE"
		fi
	fi
	if [ "$SY_FAILED" -gt 0 ]; then
		diag "$SY_FAILED of $SY_TESTNUM tests failed"
	fi
	# Exit 0 when the plan ran: "not ok" lines already carry the failures.
	if [ "$rc" -eq 0 ] && [ "$SY_TESTNUM" -ne "$SY_PLAN" ]; then
		rc=1
	fi
	exit "$rc"
}

_sy_show_logs() {
	local name log f
	for name in "${SY_SERVERS[@]}"; do
		log=$(_sy_var "$name" LOG)
		diag "---- tail of server $name log ($log)"
		diag_file "$log" 25
	done
	if [ -s "${AGENT_LOG:-}" ]; then
		diag "---- tail of agent log ($AGENT_LOG)"
		diag_file "$AGENT_LOG" 40
	fi
	for f in "$SY_BASE"/pgbench.*.log; do
		[ -f "$f" ] || continue
		diag "---- tail of $f"
		diag_file "$f" 8
	done
}

# _sy_kill_pid PID GRACE: TERM, then KILL after GRACE seconds; reaps our own children.
_sy_kill_pid() {
	local pid=$1 grace=$2 i
	_sy_pid_alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < grace * 10; i++)); do
		_sy_pid_alive "$pid" || break
		sleep 0.1
	done
	_sy_pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# _sy_kill_tree PID GRACE: the descendants of PID (a helper subshell's pgbench or psql)
# first, then PID itself.
_sy_kill_tree() {
	local pid=$1 grace=$2 child
	for child in $(_sy_children "$pid"); do
		_sy_kill_tree "$child" "$grace"
	done
	_sy_kill_pid "$pid" "$grace"
}

# A pid is alive if it exists and is not a zombie (kill -0 succeeds on zombies).
_sy_pid_alive() {
	local stat
	[ -n "${1:-}" ] || return 1
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# ---- ports ------------------------------------------------------------------------------

# _sy_claim_port: sets SY_CLAIMED_PORT to a port in 20000-32767 that nothing listens on and
# that no other test holds; the lock (a directory holding the owner's pid) lasts until
# _sy_release_ports. Not to be called in $(...): the claim must be recorded in this shell.
_sy_claim_port() {
	local start port i lock owner
	mkdir -p "$SY_PORT_LOCKS" 2>/dev/null
	chmod 1777 "$SY_PORT_LOCKS" 2>/dev/null
	# 20000-32767: below Linux's ephemeral range (32768-60999), where any outgoing connection's
	# local port could take a port between the check and a server's bind to 127.0.0.1
	start=$(( (RANDOM * 32768 + RANDOM) % 12768 ))
	for ((i = 0; i < 12768; i++)); do
		port=$(( 20000 + (start + i) % 12768 ))
		lock=$SY_PORT_LOCKS/$port
		if ! mkdir "$lock" 2>/dev/null; then
			owner=$(cat "$lock/pid" 2>/dev/null)
			if [ -n "$owner" ] && ! _sy_pid_alive "$owner" &&
				mv "$lock" "$lock.stale.$$" 2>/dev/null; then
				rm -rf "$lock.stale.$$"
				mkdir "$lock" 2>/dev/null || continue
			else
				continue
			fi
		fi
		echo $$ >"$lock/pid"
		if _sy_port_busy "$port"; then
			rm -rf "$lock"
			continue
		fi
		SY_PORTS+=("$port")
		SY_CLAIMED_PORT=$port
		return 0
	done
	return 1
}

# claim_port: a free port for the test (SY_CLAIMED_PORT), e.g. to point at a server that is not there.
claim_port() {
	_sy_claim_port
}

_sy_port_busy() {
	local port=$1 d
	for d in /tmp /var/run/postgresql /run/postgresql; do
		[ -e "$d/.s.PGSQL.$port" ] && return 0
	done
	timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && return 0
	return 1
}

# _sy_set_port_owner PORT PID: the sandbox hands its locks to the postmaster.
_sy_set_port_owner() {
	echo "$2" >"$SY_PORT_LOCKS/$1/pid"
}

_sy_release_ports() {
	local port
	for port in "${SY_PORTS[@]}"; do
		rm -rf "${SY_PORT_LOCKS:?}/$port"
	done
	SY_PORTS=()
}

# ---- servers ----------------------------------------------------------------------------

# Runs a PostgreSQL program as the server owner: PostgreSQL refuses to run as root.
_sy_as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

_sy_var() {
	local v="$1_$2"
	printf '%s' "${!v:-}"
}

_sy_check_name() {
	[[ $1 =~ ^[A-Za-z][A-Za-z0-9_]*$ ]] || { echo "# bad server name '$1'"; return 1; }
}

# pg_start NAME [GUC=VALUE...]: initdb (first time) and start a server; exports NAME_PORT,
# NAME_HOST (socket dir), NAME_CONN (libpq conninfo), NAME_DATA, NAME_LOG, NAME_DIR,
# NAME_PID. GUCs go into postgresql.conf, e.g. pg_start SRC wal_level=replica.
# Calling it again for a stopped server starts it again on the same port.
pg_start() {
	local name=$1 dir port kv
	shift
	_sy_check_name "$name" || return 1
	dir=$SY_BASE/$name
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		mkdir -p "$dir" || return 1
		[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
		chmod 700 "$dir"
		_sy_claim_port || { echo "# no free port"; return 1; }
		port=$SY_CLAIMED_PORT
		if ! _sy_as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
			--locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1; then
			echo "# initdb for $name failed:"
			diag_file "$dir/initdb.log" 20
			return 1
		fi
		{
			echo "# ---- switchyard test harness"
			echo "port = $port"
			echo "listen_addresses = ''"
			echo "unix_socket_directories = '$dir'"
			echo "wal_level = logical"
			echo "max_wal_senders = 10"
			echo "max_replication_slots = 10"
			echo "max_connections = 50"
			echo "shared_buffers = 64MB"
			echo "fsync = ${SWITCHYARD_TEST_FSYNC:-on}"
			echo "timezone = 'UTC'"
			echo "log_timezone = 'UTC'"
			echo "log_line_prefix = '%m [%p] %q%u@%a '"
			echo "log_replication_commands = on"
			echo "log_min_duration_statement = -1"
			echo "wal_sender_timeout = 60s"
			for kv in "$@"; do
				echo "${kv%%=*} = '$(printf '%s' "${kv#*=}" | sed "s/'/''/g")'"
			done
		} >>"$dir/data/postgresql.conf"
		SY_SERVERS+=("$name")
		export "${name}_PORT=$port" "${name}_HOST=$dir" "${name}_DIR=$dir" \
			"${name}_DATA=$dir/data" "${name}_LOG=$dir/server.log" \
			"${name}_CONN=host=$dir port=$port dbname=postgres user=postgres"
	elif [ $# -gt 0 ]; then
		for kv in "$@"; do
			echo "${kv%%=*} = '$(printf '%s' "${kv#*=}" | sed "s/'/''/g")'"
		done >>"$dir/data/postgresql.conf"
	fi
	_sy_pg_ctl_start "$name"
}

# Tests run the postmaster as their own child (through runuser, which waits for it), so they
# reap it: PID 1 of a container may not reap orphans, and pg_ctl start leaves one. The
# sandbox uses pg_ctl start, since its servers must outlive the script.
_sy_pg_ctl_start() {
	local name=$1 dir pid i
	dir=$(_sy_var "$name" DIR)
	if [ "$SY_MODE" = sandbox ]; then
		if ! _sy_as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
			</dev/null >>"$dir/pg_ctl.log" 2>&1; then
			echo "# server $name failed to start:"
			diag_file "$dir/server.log" 20
			return 1
		fi
	else
		if [ "$(id -u)" -eq 0 ]; then
			(cd / && exec runuser -u postgres -- "$PGBIN/postgres" -D "$dir/data") \
				</dev/null >>"$dir/server.log" 2>&1 &
		else
			(cd / && exec "$PGBIN/postgres" -D "$dir/data") </dev/null >>"$dir/server.log" 2>&1 &
		fi
		export "${name}_CHILD=$!"
		echo "$!" >>"$SY_BASE/server-children"   # the watchdog leaves these to the cleanup
		for ((i = 0; i < 600; i++)); do
			"$PGBIN/pg_isready" -q -h "$dir" -p "$(_sy_var "$name" PORT)" -U postgres -d postgres -t 1 && break
			if ! _sy_pid_alive "$(_sy_var "$name" CHILD)"; then
				wait "$(_sy_var "$name" CHILD)" 2>/dev/null
				i=600
				break
			fi
			sleep 0.1
		done
		if [ "$i" -ge 600 ]; then
			echo "# server $name failed to start:"
			diag_file "$dir/server.log" 20
			return 1
		fi
	fi
	pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
	export "${name}_PID=$pid"
	[ "$SY_MODE" = sandbox ] && _sy_set_port_owner "$(_sy_var "$name" PORT)" "$pid"
	psql_on "$name" 'select 1' >/dev/null || { echo "# server $name does not answer"; return 1; }
}

# Reap the child that ran a stopped server.
_sy_reap_server() {
	local child
	child=$(_sy_var "$1" CHILD)
	[ -n "$child" ] || return 0
	_sy_pid_alive "$child" || wait "$child" 2>/dev/null
	return 0
}

# pg_stop NAME [MODE]: stop (fast by default); the data dir and the port stay ours.
pg_stop() {
	local name=$1 mode=${2:-fast} dir
	dir=$(_sy_var "$name" DIR)
	[ -n "$dir" ] || { echo "# no server $name"; return 1; }
	_sy_as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop \
		</dev/null >>"$dir/pg_ctl.log" 2>&1 || return 1
	_sy_reap_server "$name"
}

# pg_restart NAME [fast|immediate|smart]: stop in that mode (immediate = crash) and start.
pg_restart() {
	local name=$1 mode=${2:-fast}
	pg_stop "$name" "$mode" || { echo "# could not stop $name"; return 1; }
	_sy_pg_ctl_start "$name"
}

# pg_running NAME
pg_running() {
	local dir
	dir=$(_sy_var "$1" DIR)
	_sy_as_pg "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

# pg_reload NAME: re-read postgresql.conf and pg_hba.conf.
pg_reload() {
	local dir
	dir=$(_sy_var "$1" DIR)
	_sy_as_pg "$PGBIN/pg_ctl" -D "$dir/data" reload >/dev/null 2>&1
}

# pg_hba_prepend NAME LINE: put an authentication rule first, and reload.
pg_hba_prepend() {
	local name=$1 line=$2 hba
	hba=$(_sy_var "$name" DATA)/pg_hba.conf
	{ printf '%s\n' "$line"; cat "$hba"; } >"$hba.new" && cat "$hba.new" >"$hba" && rm -f "$hba.new"
	pg_reload "$name"
}

# At exit: immediate stop is enough for a throwaway server; fall back to SIGKILL on the
# postmaster we started (by its pid) if pg_ctl cannot stop it.
_sy_server_halt() {
	local name=$1 dir pid child
	dir=$(_sy_var "$name" DIR)
	child=$(_sy_var "$name" CHILD)
	if [ -f "$dir/data/postmaster.pid" ]; then
		pid=$(head -n 1 "$dir/data/postmaster.pid")
		if ! _sy_as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop \
			</dev/null >>"$dir/pg_ctl.log" 2>&1; then
			[ -n "$pid" ] && _sy_pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
		fi
	fi
	[ -n "$child" ] && _sy_kill_pid "$child" 5
	return 0
}

# ---- SQL --------------------------------------------------------------------------------

# psql_on NAME SQL...: each SQL runs as its own -c; unaligned, tuples only, stops on error.
psql_on() {
	local name=$1 conn sql args=()
	shift
	conn=$(_sy_var "$name" CONN)
	for sql in "$@"; do
		args+=(-c "$sql")
	done
	PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$conn" "${args[@]}"
}

# psql_file NAME FILE [PSQL-ARG...]: run a script (use - for stdin).
psql_file() {
	local name=$1 file=$2 conn
	shift 2
	conn=$(_sy_var "$name" CONN)
	PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$conn" "$@" -f "$file"
}

# copy_schema SRC DST: the source's schema, no data (the target of a --no-copy run).
copy_schema() {
	"$PGBIN/pg_dump" --schema-only --no-publications --no-subscriptions -d "$(_sy_var "$1" CONN)" |
		psql_file "$2" - >/dev/null
}

# copy_database SRC DST: schema and data, as of one snapshot of the source.
copy_database() {
	"$PGBIN/pg_dump" --no-publications --no-subscriptions -d "$(_sy_var "$1" CONN)" |
		psql_file "$2" - >/dev/null
}

source_lsn() {
	psql_on "$1" 'select pg_current_wal_lsn()'
}

# ---- LSNs and JSON ----------------------------------------------------------------------

# lsn_num X/Y: the LSN as a decimal number.
lsn_num() {
	local l=$1
	[[ $l =~ ^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$ ]] || { echo -1; return 1; }
	echo $(( (16#${l%/*} << 32) + 16#${l#*/} ))
}

# lsn_ge A B: A >= B
lsn_ge() {
	local a b
	a=$(lsn_num "$1") || return 1
	b=$(lsn_num "$2") || return 1
	[ "$a" -ge "$b" ]
}

SY_JQ=${SY_JQ-$(command -v jq 2>/dev/null)}   # empty: parse JSON with a running server instead

# json_get JSON KEY: the first value named KEY at any depth, as text: strings bare, other
# values as JSON (null as "null"); nothing if there is no such key.
json_get() {
	local json=$1 key=$2 name
	if [ -n "$SY_JQ" ]; then
		printf '%s' "$json" | "$SY_JQ" -r --arg k "$key" \
			'first(.. | objects | select(has($k)) | .[$k]) | if type == "string" then . else tojson end' 2>/dev/null
		return
	fi
	for name in "${SY_SERVERS[@]}"; do
		pg_running "$name" || continue
		PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -d "$(_sy_var "$name" CONN)" \
			-v j="$json" -v k="$key" 2>/dev/null <<-'SQL'
			SELECT CASE WHEN v IS NULL THEN '' ELSE coalesce(v #>> '{}', 'null') END
			FROM jsonb_path_query_first(:'j'::jsonb, ('strict $.**.' || :'k')::jsonpath) v
		SQL
		return
	done
	return 1
}

# ---- waiting ----------------------------------------------------------------------------

# wait_for TIMEOUT DESC CMD [ARG...]: poll CMD every 0.2 s until it succeeds.
wait_for() {
	local timeout=$1 desc=$2 deadline
	shift 2
	deadline=$((SECONDS + timeout))
	while ! "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "# timed out after ${timeout}s waiting for $desc"
			return 1
		fi
		sleep 0.2
	done
}

# ---- the agent --------------------------------------------------------------------------
# One agent per test: AGENT_STATE (state dir), AGENT_LOG (its stdout and stderr, appended
# across runs), AGENT_PID, AGENT_ARGS (of the last agent_start).

AGENT_STATE=${AGENT_STATE:-}
AGENT_LOG=${AGENT_LOG:-}
AGENT_PID=
AGENT_ARGS=()
AGENT_RUNS=0
AGENT_STATUS=            # exit status of the last agent that ended

_sy_agent_alive() {
	_sy_pid_alive "${AGENT_PID:-}"
}

agent_alive() {
	_sy_agent_alive
}

# agent_start ARG...: "$SWITCHYARD" run --state-dir "$AGENT_STATE" ARG... in the
# background. Call it in the test's own shell (not in $(...)), so the pid can be waited for.
agent_start() {
	if _sy_agent_alive; then
		echo "# agent_start: an agent is already running (pid $AGENT_PID)"
		return 1
	fi
	AGENT_ARGS=("$@")
	AGENT_RUNS=$((AGENT_RUNS + 1))
	# No arguments in the log: they may hold passwords the agent must not write there.
	echo "==== harness: agent run #$AGENT_RUNS at $(date -u +%H:%M:%S.%N)" >>"$AGENT_LOG"
	"$SWITCHYARD" run --state-dir "$AGENT_STATE" \
		${SWITCHYARD_TEST_LOG_LEVEL:+--log-level "$SWITCHYARD_TEST_LOG_LEVEL"} "$@" \
		</dev/null >>"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
	return 0
}

# agent_restart: the same command again.
agent_restart() {
	agent_start "${AGENT_ARGS[@]}"
}

# _sy_agent_reap: collect the exit status of an agent that has ended.
_sy_agent_reap() {
	wait "$AGENT_PID" 2>/dev/null
	AGENT_STATUS=$?
	echo "==== harness: agent run #$AGENT_RUNS ended with status $AGENT_STATUS" >>"$AGENT_LOG"
	AGENT_PID=
	return "$AGENT_STATUS"
}

# agent_kill9: SIGKILL the running agent. Fails (and says so) if it had already exited.
agent_kill9() {
	if ! _sy_agent_alive; then
		if [ -n "$AGENT_PID" ]; then
			_sy_agent_reap
			echo "# agent_kill9: the agent had already exited with status $AGENT_STATUS"
		else
			echo "# agent_kill9: no agent"
		fi
		return 1
	fi
	kill -KILL "$AGENT_PID"
	echo "==== harness: SIGKILL" >>"$AGENT_LOG"
	_sy_agent_reap
	return 0
}

# agent_wait [TIMEOUT]: wait for the agent to exit by itself (e.g. --endpos); returns its
# exit status, or 124 after killing it on timeout.
agent_wait() {
	local timeout=${1:-60} deadline
	[ -n "$AGENT_PID" ] || { echo "# agent_wait: no agent"; return 1; }
	deadline=$((SECONDS + timeout))
	while _sy_agent_alive; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "# agent did not exit within ${timeout}s; killing it"
			_sy_kill_pid "$AGENT_PID" 5
			_sy_agent_reap
			return 124
		fi
		sleep 0.1
	done
	_sy_agent_reap
}

# agent_stop [TIMEOUT]: "switchyard stop", then wait for the agent to exit; returns its exit
# status (non-zero too if the stop command failed or the agent had to be killed).
agent_stop() {
	local timeout=${1:-60} out rc
	if ! _sy_agent_alive; then
		if [ -n "$AGENT_PID" ]; then
			_sy_agent_reap
			echo "# agent_stop: the agent had already exited with status $AGENT_STATUS"
		fi
		return 1
	fi
	out=$(timeout 30 "$SWITCHYARD" stop --state-dir "$AGENT_STATE" 2>&1)
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "# switchyard stop exited $rc: $out"
	fi
	agent_wait "$timeout"
	local st=$?
	[ "$rc" -eq 0 ] || return "$rc"
	return "$st"
}

# agent_status [ARG...]: "switchyard status --json" of our state dir, on stdout.
agent_status() {
	timeout 15 "$SWITCHYARD" status --state-dir "$AGENT_STATE" --json "$@"
}

# agent_run_fg OUT TIMEOUT ARG...: "switchyard run ARG..." in the foreground, stdout and
# stderr to file OUT; returns its exit status (124 if it ran out of time and was killed).
agent_run_fg() {
	local out=$1 t=$2
	shift 2
	timeout -k 5 "$t" "$SWITCHYARD" run "$@" </dev/null >"$out" 2>&1
}

# state_dir_kb: disk used by the agent's state directory, in kB.
state_dir_kb() {
	du -sk "$AGENT_STATE" 2>/dev/null | awk '{print $1}'
}

# status_get FIELD: one field of the status JSON.
status_get() {
	local j
	j=$(agent_status 2>/dev/null) || return 1
	json_get "$j" "$1"
}

# agent_rss_kb: the running agent's peak resident set (VmHWM), in kB.
agent_rss_kb() {
	awk '/^VmHWM:/ {print $2}' "/proc/$AGENT_PID/status" 2>/dev/null
}

# slot_exists NAME: the source has a permanent logical slot in its database.
slot_exists() {
	[ "$(psql_on "$1" "select count(*) from pg_replication_slots
		where slot_type = 'logical' and not temporary and database = current_database()")" -ge 1 ]
}

# slot_confirmed_lsn NAME: confirmed_flush_lsn of the agent's slot (the first permanent one).
slot_confirmed_lsn() {
	psql_on "$1" "select confirmed_flush_lsn from pg_replication_slots
		where slot_type = 'logical' and not temporary and database = current_database()
		order by slot_name limit 1"
}

# wait_slot NAME [TIMEOUT]: the agent has created its slot on source NAME.
wait_slot() {
	wait_for "${2:-30}" "the replication slot on $1" slot_exists "$1" || {
		_sy_agent_alive || echo "# the agent is not running"
		return 1
	}
}

_sy_applied_ge() {
	local a
	a=$(status_get applied_lsn) || return 1
	SY_LAST_APPLIED=$a
	lsn_ge "$a" "$1"
}

# wait_applied LSN [TIMEOUT]: status reports applied_lsn >= LSN. Fails early if the agent
# exits.
wait_applied() {
	local lsn=$1 timeout=${2:-60} deadline
	SY_LAST_APPLIED=
	deadline=$((SECONDS + timeout))
	until _sy_applied_ge "$lsn"; do
		if ! _sy_agent_alive; then
			echo "# the agent exited while waiting for applied_lsn >= $lsn"
			[ -n "$AGENT_PID" ] && _sy_agent_reap
			return 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "# timed out after ${timeout}s waiting for applied_lsn >= $lsn (last: ${SY_LAST_APPLIED:-none})"
			echo "# status: $(agent_status 2>&1 | head -c 1000)"
			return 1
		fi
		sleep 0.25
	done
	echo "# applied_lsn $SY_LAST_APPLIED >= $lsn after $((timeout - deadline + SECONDS))s"
}

# catch_up SRC [TIMEOUT]: wait until the agent has applied everything the source has written.
catch_up() {
	local lsn
	lsn=$(source_lsn "$1") || return 1
	wait_applied "$lsn" "${2:-60}"
}

# ---- background workloads ---------------------------------------------------------------

# bg_start LOGNAME CMD [ARG...]: run CMD in the background, output to $SY_BASE/LOGNAME.log;
# BG_PID is its pid. It is stopped at exit if still running.
bg_start() {
	local log=$SY_BASE/$1.log
	shift
	"$@" </dev/null >>"$log" 2>&1 &
	BG_PID=$!
	SY_BG_PIDS+=("$BG_PID")
}

# pgbench_on NAME ARG...: pgbench against server NAME (foreground).
pgbench_on() {
	local name=$1
	shift
	"$PGBIN/pgbench" -h "$(_sy_var "$name" HOST)" -p "$(_sy_var "$name" PORT)" -U postgres "$@" postgres
}

# workload_wait PID LOGNAME: wait for a background pgbench; fails if it failed or any client
# aborted; prints its summary.
workload_wait() {
	local pid=$1 log=$SY_BASE/$2.log rc
	wait "$pid"
	rc=$?
	grep -E '^(number of (transactions actually processed|failed transactions)|tps)' "$log" |
		sed 's/^/# /'
	if [ "$rc" -ne 0 ] || grep_q 'aborted' "$log"; then
		echo "# pgbench exited $rc"
		grep -iE 'error|abort|fatal' "$log" | head -n 10 | cut -c1-300 | sed 's/^/#   /'
		return 1
	fi
	return 0
}

# ---- the chat workload (tests/fixtures/chat) --------------------------------------------

CHAT=$FIXTURES/chat
CHAT_SCALE=${CHAT_SCALE:-1}
CHAT_SCRIPTS=(new_inquiry.sql@2 new_message.sql@4 status_change.sql@3 assignment.sql@2
	delete_old.sql@1 counter.sql@2)

chat_schema() {
	psql_file "$1" "$CHAT/schema.sql" >/dev/null
}

chat_seed() {
	psql_file "$1" "$CHAT/seed.sql" -v scale="${2:-$CHAT_SCALE}" >/dev/null
}

# chat_setup [GUC=VALUE...]: servers SRC (with those settings) and DST, the chat schema and
# seed on SRC, copied whole to DST: the starting point of a --no-copy run.
chat_setup() {
	pg_start SRC "$@" && pg_start DST && chat_schema SRC && chat_seed SRC && copy_database SRC DST
}

# chat_setup_with_app ROLE: as chat_setup, with the application role ROLE on both servers
# (roles are per cluster) before the copy, so its table privileges travel with the dump.
chat_setup_with_app() {
	local desk='"Support ""Desk"" ø"'
	pg_start SRC && pg_start DST &&
		psql_on SRC "create role $1 login" && psql_on DST "create role $1 login" &&
		chat_schema SRC &&
		psql_on SRC "grant usage on schema public, $desk to $1" \
			"grant all on all tables in schema public, $desk to $1" \
			"grant all on all sequences in schema public, $desk to $1" &&
		chat_seed SRC && copy_database SRC DST
}

# agent_start_chat [ARG...]: the agent from SRC to DST, without initial copy.
agent_start_chat() {
	agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN" "$@"
}

# chat_pgbench NAME SECONDS [PGBENCH-ARG...]: the whole chat mix (CHAT_SCRIPTS) for SECONDS,
# 4 clients on 2 threads unless the arguments say otherwise.
chat_pgbench() {
	local name=$1 secs=$2 s args=()
	shift 2
	for s in "${CHAT_SCRIPTS[@]}"; do
		args+=(-f "$CHAT/$s")
	done
	pgbench_on "$name" -n -T "$secs" -c 4 -j 2 -D scale="$CHAT_SCALE" --max-tries=5 \
		"${args[@]}" "$@"
}

# chat_workload_start NAME SECONDS [PGBENCH-ARG...]: chat_pgbench in the background;
# WORKLOAD_PID, log $SY_BASE/pgbench.chat.log. Finish with: workload_wait $WORKLOAD_PID pgbench.chat
chat_workload_start() {
	bg_start pgbench.chat chat_pgbench "$@"
	WORKLOAD_PID=$BG_PID
}

# chat_check_counters NAME: every counter equals the number of its ticks (see schema.sql).
chat_check_counters() {
	local bad
	bad=$(psql_on "$1" "select string_agg(format('counter %s: n=%s ticks=%s max=%s', c.id, c.n, t.cnt, t.mx), '; ')
		from counters c left join lateral (select count(*) cnt, max(n) mx from ticks where counter_id = c.id) t on true
		where c.n <> t.cnt or c.n <> coalesce(t.mx, 0)") || return 1
	if [ -n "$bad" ]; then
		echo "# $bad"
		return 1
	fi
	echo "# counters: $(psql_on "$1" "select sum(n) from counters") increments, all ticks present"
}

# ---- switchyard verify's report -----------------------------------------------------------
# (t_verify*.sh; a test may define its own run_verify or differences after sourcing this file)

# VOUT, VRC, VERR: the JSON output, exit status and stderr of one verify run
run_verify() {
	VOUT=$(timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_CONN" \
		--target "$DST_CONN" --jobs 2 --json "$@" 2>"$SY_BASE/verify.err")
	VRC=$?
	VERR=$(cat "$SY_BASE/verify.err")
}

# jq-free JSON queries: jsonb in the source server. report_sql SQL (the document is :'r').
report_sql() {
	printf '%s;\n' "$1" |
		PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$SRC_CONN" -v r="$VOUT" -f -
}

# Every difference of the report, one per line: table kind key-or-copies [columns]
differences() {
	report_sql "SELECT coalesce(string_agg(x, E'\n' ORDER BY x COLLATE \"C\"), '') FROM (
		SELECT (t->>'table') || ' ' || (d->>'kind') || ' ' ||
		       coalesce((d->'key')::text, 'copies=' || (d->>'copies')) ||
		       coalesce(' ' || (SELECT string_agg(c->>'column', ',' ORDER BY c->>'column' COLLATE \"C\")
		                        FROM jsonb_array_elements(d->'columns') c), '') AS x
		FROM jsonb_array_elements(:'r'::jsonb->'tables') t, jsonb_array_elements(t->'differences') d) s"
}

# The report's missing, extra and changed rows and schema issues, added up
total() {
	report_sql "SELECT (:'r'::jsonb->'totals'->>'missing')::int + (:'r'::jsonb->'totals'->>'extra')::int +
		(:'r'::jsonb->'totals'->>'changed')::int + (:'r'::jsonb->'totals'->>'schema_issues')::int"
}

# verify_runs N [PAUSE]: N verify runs, PAUSE seconds apart; CLEAN_RUNS of them exited 0 with
# no difference, BAD_RUNS says what the others found
verify_runs() {
	local i
	CLEAN_RUNS=0 BAD_RUNS=
	for i in $(seq 1 "$1"); do
		run_verify
		if [ "$VRC" -eq 0 ] && [ "$(total)" = 0 ]; then
			CLEAN_RUNS=$((CLEAN_RUNS + 1))
		else
			BAD_RUNS="$BAD_RUNS run $i: exit $VRC $(differences | head -n 5 | tr '\n' ';') $(printf '%s' "$VERR" | tail -n 3)"
		fi
		sleep "${2:-0}"
	done
}

# ---- comparing two databases without the agent ------------------------------------------

# The tables compare_databases looks at: ordinary and partitioned tables outside the system
# schemas, minus COMPARE_EXCLUDE (default: the schemas the agent may own on a server).
# _sy_tables_sql [JOIN]: the FROM ... WHERE part of a query over them (psql variable :exclude).
_sy_tables_sql() {
	printf '%s\n' "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ${1:-}" \
		"WHERE c.relkind IN ('r', 'p')" \
		"  AND n.nspname NOT IN ('pg_catalog', 'information_schema')" \
		"  AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'" \
		"  AND (n.nspname || '.' || c.relname) !~ :'exclude'"
}

_sy_exclude() {
	local e=${COMPARE_EXCLUDE-'^_?switchyard\.'}
	printf '%s' "${e:-^\$}"
}

# The shape of every table: name, kind, and each column's name, type, generated flag.
_sy_table_shapes() {
	{
		echo "SELECT format('%I.%I', n.nspname, c.relname) || ' (' || c.relkind::text || ')' ||"
		echo "       coalesce(' ' || format('%I', a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) ||"
		echo "                CASE WHEN a.attgenerated::text <> '' THEN ' generated' ELSE '' END, '')"
		_sy_tables_sql "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
		echo "ORDER BY 1;"
	} | psql_file "$1" - -v exclude="$(_sy_exclude)"
}

# pgbouncer_write_ini USER: PgBouncer's configuration in $PGB_DIR: database "chat" goes to the
# source as USER, transaction pooling, admin console for postgres. Sets PGB_INI.
pgbouncer_write_ini() {
	PGB_INI=$PGB_DIR/pgbouncer.ini
	cat >"$PGB_INI" <<INI
[databases]
chat = host=$SRC_HOST port=$SRC_PORT dbname=postgres user=$1 pool_size=10

[pgbouncer]
listen_addr =
listen_port = $PGB_PORT
unix_socket_dir = $PGB_DIR
auth_type = any
admin_users = postgres
pool_mode = transaction
ignore_startup_parameters = extra_float_digits,options
logfile = $PGB_DIR/pgbouncer.log
INI
	chown postgres "$PGB_INI"
}

# pgbouncer_start USER: a PgBouncer in front of the source (pgbouncer_write_ini USER), run as
# postgres in the test's temp dir; waits until its admin console answers. Sets PGB_DIR,
# PGB_PORT, PGB_INI and PGB_ADMIN (the admin console's conninfo).
pgbouncer_start() {
	command -v pgbouncer >/dev/null || { echo "# pgbouncer is not installed (scripts/install-deps installs it)"; return 1; }
	PGB_DIR=$SY_BASE/pgbouncer
	mkdir -p "$PGB_DIR" && chown postgres "$PGB_DIR" || return 1
	claim_port && PGB_PORT=$SY_CLAIMED_PORT || return 1
	pgbouncer_write_ini "$1"
	bg_start pgbouncer runuser -u postgres -- pgbouncer "$PGB_INI"
	PGB_ADMIN="host=$PGB_DIR port=$PGB_PORT dbname=pgbouncer user=postgres"
	wait_for 20 pgbouncer "$PGBIN/psql" -X -d "$PGB_ADMIN" -c "show databases"
}

# One record per table, NUL-terminated: name, kind, and the COPY statement that reads it in
# a deterministic order (fields split by \x1f). Identifiers quoted by the server (%I).
_sy_table_copies() {
	{
		echo "SELECT format('%I.%I', n.nspname, c.relname), c.relkind,"
		echo "       format('COPY (SELECT %s FROM ONLY %I.%I ORDER BY ROW(%s)::text COLLATE \"C\") TO STDOUT',"
		echo "              coalesce(cols.list, ''), n.nspname, c.relname, coalesce(cols.list, ''))"
		_sy_tables_sql "LEFT JOIN LATERAL (SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) AS list
			FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) cols ON true"
		echo "ORDER BY 1;"
	} | psql_file "$1" - -v exclude="$(_sy_exclude)" -0 -F $'\x1f'
}

# compare_databases A B: every table of A holds exactly the same rows in B (ordered by the
# row's text, compared byte for byte), and both have the same tables and columns. Prints
# which table differs, with row counts and the first differing lines. Uses only psql.
compare_databases() {
	local a=$1 b=$2 dir shapes_a shapes_b name kind stmt i=0 bad=0 rows=0 na nb
	dir=$(mktemp -d "$SY_BASE/compare.XXXXXX") || return 1
	_sy_table_shapes "$a" >"$dir/shape.a" || { echo "# cannot list the tables of $a"; return 1; }
	_sy_table_shapes "$b" >"$dir/shape.b" || { echo "# cannot list the tables of $b"; return 1; }
	if ! cmp -s "$dir/shape.a" "$dir/shape.b"; then
		echo "# tables or columns differ between $a (<) and $b (>):"
		diff "$dir/shape.a" "$dir/shape.b" | grep '^[<>]' | head -n 20 | sed 's/^/#   /'
		bad=$((bad + 1))
	fi
	_sy_table_copies "$a" >"$dir/list" || { echo "# cannot list the tables of $a"; return 1; }
	while IFS=$'\x1f' read -r -d '' name kind stmt; do
		[ "$kind" = p ] && continue      # its rows are compared in its partitions
		i=$((i + 1))
		psql_on "$a" "$stmt" >"$dir/$i.a" 2>"$dir/$i.a.err" &
		local pa=$!
		psql_on "$b" "$stmt" >"$dir/$i.b" 2>"$dir/$i.b.err"
		local rb=$?
		wait "$pa"
		local ra=$?
		if [ "$ra" -ne 0 ] || [ "$rb" -ne 0 ]; then
			echo "# table $name: cannot read it:"
			cat "$dir/$i.a.err" "$dir/$i.b.err" | head -n 4 | sed 's/^/#   /'
			bad=$((bad + 1))
		elif ! cmp -s "$dir/$i.a" "$dir/$i.b"; then
			na=$(wc -l <"$dir/$i.a")
			nb=$(wc -l <"$dir/$i.b")
			echo "# table $name differs: $na rows in $a, $nb rows in $b; first differences (< $a, > $b):"
			diff "$dir/$i.a" "$dir/$i.b" | grep '^[<>]' | head -n 10 | cut -c1-200 | sed 's/^/#   /'
			bad=$((bad + 1))
		else
			rows=$((rows + $(wc -l <"$dir/$i.a")))
		fi
		rm -f "$dir/$i.a" "$dir/$i.b"
	done <"$dir/list"
	rm -rf "$dir"
	if [ "$i" -eq 0 ]; then
		echo "# compare_databases: no tables in $a"
		return 1
	fi
	if [ "$bad" -gt 0 ]; then
		echo "# compare_databases: $bad difference(s) between $a and $b"
		return 1
	fi
	echo "# compare_databases: $i tables, $rows rows, equal"
}
