#!/usr/bin/env bash
# The agent's HTTP side during a migration under the chat workload: /metrics passes
# promtool and carries the key series with sane values; /api/status is `status --json` plus
# parity; the dashboard, rendered by headless Chromium, lists the tables with their parity
# state, the lag and the cutover checklist (screenshots kept as artifacts); unknown paths,
# wrong methods and malformed requests get error codes while the agent keeps running; no
# password anywhere; off loopback the agent refuses to start without a token, and with one
# every request needs it. Parity results come from a real `switchyard verify`.
. "$(dirname "$0")/lib.sh"
harness_init 280

plan 71

SRC_PW='Src-Pw-2f9c4e!http'
DST_PW='Dst-Pw-77b1d0?http'
TOKEN='tok-6Qd9w2LrX8vN4sKp'
# A table name that is hard to carry everywhere: quotes, a backslash, markup. (A newline,
# too, is escaped in labels: tests/unit/test_http.c.)
ODD='public."odd ""name"" \ <b>bold</b> x"'
ODD_LABEL='public.\"odd \"\"name\"\" \\ <b>bold</b> x\"'    # as a Prometheus label value

setup() {
	pg_start SRC listen_addresses=127.0.0.1 password_encryption=scram-sha-256 &&
		pg_start DST listen_addresses=127.0.0.1 password_encryption=scram-sha-256 || return 1
	psql_on SRC "CREATE ROLE sy_admin LOGIN SUPERUSER REPLICATION PASSWORD '$SRC_PW'" >/dev/null &&
		psql_on DST "CREATE ROLE sy_admin LOGIN SUPERUSER PASSWORD '$DST_PW'" >/dev/null || return 1
	chat_schema SRC && chat_seed SRC || return 1
	psql_on SRC "CREATE TABLE $ODD (id int PRIMARY KEY, v text)" \
		"INSERT INTO $ODD SELECT g, 'v' || g FROM generate_series(1, 50) g" >/dev/null || return 1
	copy_database SRC DST || return 1
	pg_hba_prepend SRC "host all all 127.0.0.1/32 scram-sha-256"
	pg_hba_prepend SRC "host replication all 127.0.0.1/32 scram-sha-256"
	pg_hba_prepend DST "host all all 127.0.0.1/32 scram-sha-256"
}
ok "servers with password roles, the chat database and a table with a hostile name, copied" setup ||
	bail_out "setup failed"
SRC_TCP="host=127.0.0.1 port=$SRC_PORT dbname=postgres user=sy_admin password=$SRC_PW"
DST_TCP="host=127.0.0.1 port=$DST_PORT dbname=postgres user=sy_admin password=$DST_PW"
claim_port || bail_out "no free port"
HTTP_PORT=$SY_CLAIMED_PORT
BASE_URL=http://127.0.0.1:$HTTP_PORT
ARTIFACTS=$SY_BASE/artifacts
mkdir -p "$ARTIFACTS"
CAPTURED=$SY_BASE/captured        # every response body, for the password check at the end
mkdir -p "$CAPTURED"

# ---- helpers -------------------------------------------------------------------------------

# fetch NAME URL [CURL-ARG...]: body to $CAPTURED/NAME, headers to $CAPTURED/NAME.h; prints the code.
fetch() {
	local name=$1 url=$2
	shift 2
	curl -s -m 10 -o "$CAPTURED/$name" -D "$CAPTURED/$name.h" -w '%{http_code}' "$@" "$url"
}

# header NAME FIELD: a response header's value.
header() {
	grep -i "^$2:" "$CAPTURED/$1.h" | head -n 1 | cut -d: -f2- | sed 's/^ *//; s/\r$//'
}

# metric FILE SERIES: the value of the sample whose name and labels are exactly SERIES
# (through the environment: awk -v would take the label's backslash escapes for its own).
metric() {
	SERIES=$2 awk 'BEGIN { s = ENVIRON["SERIES"] }
		substr($0, 1, length(s) + 1) == s " " { print substr($0, length(s) + 2); exit }' "$1"
}

http_up() { [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$@")" = 200 ]; }

# raw PAYLOAD: send bytes as they are to the HTTP port; prints the status line of the answer.
# The agent closes the connection after an error; if the kernel resets it before the client
# has read the answer, the line is lost, so an empty answer is tried again a few times.
raw() {
	local line i
	for i in 1 2 3 4 5; do
		line=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; printf "%b" "$2" >&3; cat <&3' \
			_ "$HTTP_PORT" "$1" 2>/dev/null | head -n 1 | tr -d '\r')
		[ -n "$line" ] && break
		sleep 0.2
	done
	printf '%s\n' "$line"
}

promtool_ok() {
	local out
	out=$(promtool check metrics <"$1" 2>&1)
	[ $? -eq 0 ] && return 0
	printf '%s\n' "$out" | head -n 20 | sed 's/^/# /'
	return 1
}

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
# browser OUT URL [ARG...]: headless Chromium; the DOM after the page's scripts ran, to OUT.
browser() {
	local out=$1 url=$2 profile
	shift 2
	profile=$(mktemp -d "$SY_BASE/chromium.XXXXXX")
	timeout -k 5 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$profile" --virtual-time-budget=6000 "$@" "$url" \
		>"$out" 2>>"$SY_BASE/chromium.log"
}

# dom_row FILE TABLE-STATE: the parity table has a row in that state, e.g. 'public.agents" data-state="equal'
dom_has() { grep -qF -- "$2" "$1" || { echo "# not in the rendered page: $2"; return 1; }; }

skip() { pass "$1 # SKIP $2"; }

save_artifact() {
	local dest=$TOP_SRCDIR/tests/artifacts
	mkdir -p "$dest" 2>/dev/null
	if [ -d "$dest" ] && [ -w "$dest" ]; then
		cp "$1" "$dest/" && diag "artifact: $dest/$(basename "$1")"
	fi
}

# ---- 1. a running agent, before any verify -------------------------------------------------

agent_start --no-copy --source "$SRC_TCP" --target "$DST_TCP" --http "127.0.0.1:$HTTP_PORT"
ok "the agent serves HTTP on 127.0.0.1:$HTTP_PORT" wait_for 30 "HTTP on $HTTP_PORT" http_up "$BASE_URL/metrics" ||
	bail_out "no HTTP server"
ok "... and streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'
ok "it listens on loopback only" eval '! grep -q ":$(printf %04X "$HTTP_PORT") " /proc/net/tcp6 2>/dev/null &&
	grep -q "0100007F:$(printf %04X "$HTTP_PORT") 00000000:0000 0A" /proc/net/tcp'

code=$(fetch status0 "$BASE_URL/api/status")
is "$code/$(json_get "$(cat "$CAPTURED/status0")" parity)" "200/null" "before any verify, /api/status has parity null"
readiness0() {
	local r
	r=$(json_get "$(cat "$CAPTURED/status0")" readiness)
	[ "$(json_get "$r" parity)/$(json_get "$r" ready)/$(json_get "$r" copy_done)" = unknown/false/ok ] ||
		{ echo "# readiness: $r"; return 1; }
}
ok "... readiness: parity unknown, so not ready" readiness0
fetch metrics0 "$BASE_URL/metrics" >/dev/null
is "$(metric "$CAPTURED/metrics0" switchyard_parity_verified)" 0 "... and switchyard_parity_verified 0"
is "$(fetch parity0 "$BASE_URL/api/parity")" 404 "... and /api/parity answers 404"

if [ -n "$CHROMIUM" ]; then
	browser "$SY_BASE/dom0.html" "$BASE_URL/" --dump-dom
	ok "the dashboard says \"Not verified yet\" before any verify" dom_has "$SY_BASE/dom0.html" 'data-state="not-verified"'
else
	skip "the dashboard says \"Not verified yet\" before any verify" "no chromium"
fi

# ---- 2. under the chat workload --------------------------------------------------------------

chat_workload_start SRC 10
sleep 4
code=$(fetch metrics1 "$BASE_URL/metrics")
ctype=$(header metrics1 Content-Type)
is "$code $ctype" "200 text/plain; version=0.0.4; charset=utf-8" "/metrics: 200, the exposition format's content type"
is "$(header metrics1 Cache-Control)" no-store "... Cache-Control: no-store"
if command -v promtool >/dev/null; then
	ok "... passes promtool check metrics (during the workload)" promtool_ok "$CAPTURED/metrics1"
else
	skip "... passes promtool check metrics (during the workload)" "no promtool (Debian package prometheus)"
fi
sane_metrics() {
	local f=$1 v missing=
	for v in switchyard_up switchyard_received_lsn switchyard_flushed_lsn switchyard_applied_lsn \
		switchyard_lag_bytes switchyard_lag_seconds switchyard_transactions_applied_total \
		switchyard_changes_applied_total switchyard_spool_bytes switchyard_spool_segments \
		switchyard_spool_full switchyard_source_connected switchyard_target_connected \
		switchyard_copy_active switchyard_parity_verified switchyard_guard_active switchyard_cutover_ready \
		'switchyard_phase{phase="streaming"}' switchyard_start_time_seconds; do
		[ -n "$(metric "$f" "$v")" ] || missing="$missing $v"
	done
	[ -z "$missing" ] || { echo "# missing series:$missing"; return 1; }
	[ "$(metric "$f" switchyard_up)" = 1 ] &&
		[ "$(metric "$f" 'switchyard_phase{phase="streaming"}')" = 1 ] &&
		[ "$(metric "$f" switchyard_source_connected)" = 1 ] &&
		[ "$(metric "$f" switchyard_target_connected)" = 1 ] &&
		[ "$(metric "$f" switchyard_changes_applied_total)" -gt 0 ] &&
		[ "$(metric "$f" switchyard_transactions_applied_total)" -gt 0 ] &&
		grep -qE '^switchyard_table_changes_applied_total\{table=".+",operation="insert"\} [1-9]' "$f" &&
		[ "$(metric "$f" switchyard_received_lsn)" -ge "$(metric "$f" switchyard_flushed_lsn)" ] &&
		[ "$(metric "$f" switchyard_received_lsn)" -ge "$(metric "$f" switchyard_applied_lsn)" ] &&
		[ "$(metric "$f" switchyard_applied_lsn)" -gt 0 ] &&
		[[ $(metric "$f" switchyard_lag_seconds) =~ ^[0-9]+\.[0-9]+$ ]] &&
		[[ $(metric "$f" switchyard_lag_bytes) =~ ^[0-9]+$ ]] &&
		[ "$(metric "$f" switchyard_start_time_seconds)" -le "$(date +%s)" ] || {
		grep -E '^switchyard_(up|phase|.*connected|.*applied|.*lsn|lag)' "$f" | sed 's/^/# /'
		return 1
	}
}
ok "... has the key series with sane values (applied > 0, LSNs ordered, connected)" sane_metrics "$CAPTURED/metrics1"
lsn_matches() {
	local applied status_lsn
	applied=$(metric "$CAPTURED/metrics1" switchyard_applied_lsn)
	status_lsn=$(lsn_num "$(json_get "$(agent_status)" applied_lsn)")
	# the status is asked after the scrape, under load: it may only be further
	[ "$status_lsn" -ge "$applied" ] || { echo "# metrics $applied, status $status_lsn"; return 1; }
}
ok "... switchyard_applied_lsn is the status's applied_lsn as a number (or behind it)" lsn_matches
code=$(fetch history "$BASE_URL/api/history")
ok "/api/history: the lag of the last seconds, one sample a second" eval \
	'[ "$code" = 200 ] && [ "$(grep -o "\],\[" "$CAPTURED/history" | wc -l)" -ge 3 ]'
ok "the chat workload ran without errors" workload_wait "$WORKLOAD_PID" pgbench.chat
ok "the agent catches up" catch_up SRC 90

# /api/status is status --json plus parity, readiness and version: the same values.
same_status() {
	local mine theirs f a b bad=
	for attempt in 1 2 3 4 5; do
		bad=
		fetch status1 "$BASE_URL/api/status" >/dev/null
		mine=$(cat "$CAPTURED/status1")
		theirs=$(agent_status)
		for f in phase running pid source target slot_name publication_name origin_name \
			applied_lsn flushed_lsn received_lsn transactions_applied changes_applied started_at \
			source_connected target_connected paused held hold_lsn last_error; do
			a=$(json_get "$mine" "$f")
			b=$(json_get "$theirs" "$f")
			[ -n "$a" ] && [ "$a" = "$b" ] || bad="$bad $f($a|$b)"
		done
		[ -z "$bad" ] && return 0
		sleep 0.5
	done
	echo "# differ:$bad"
	return 1
}
ok "/api/status has the same fields and values as switchyard status --json (when idle)" same_status
is "$(header status1 Content-Type)/$(header status1 Cache-Control)" \
	"application/json; charset=utf-8/no-store" "... as application/json, not cached"

# ---- 3. errors, and the agent keeps running ---------------------------------------------------

is "$(fetch notfound "$BASE_URL/no/such/path")" 404 "an unknown path: 404"
is "$(fetch slash "$BASE_URL/metrics/")" 404 "/metrics/ (trailing slash): 404"
is "$(fetch post "$BASE_URL/metrics" -X POST -d x)/$(header post Allow)" "405/GET, HEAD" \
	"POST /metrics: 405 with Allow: GET, HEAD"
is "$(fetch delete "$BASE_URL/api/status" -X DELETE)" 405 "DELETE /api/status: 405"
head_ok() {
	local out
	out=$(curl -s -m 10 -I "$BASE_URL/metrics" | head -n 1 | tr -d '\r')
	[ "$out" = "HTTP/1.1 200 OK" ] || { echo "# $out"; return 1; }
}
ok "HEAD /metrics: 200" head_ok
like "$(raw 'GARBAGE\r\n\r\n')" '^HTTP/1\.[01] 4[0-9][0-9] ' "a garbage request line: 4xx"
like "$(raw 'BREW /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')" '^HTTP/1\.[01] (4|5)[0-9][0-9] ' \
	"an unknown method: an error code"
like "$(raw 'GET /metrics HTTP/7.3\r\nConnection: close\r\n\r\n')" '^HTTP/1\.[01] (4|5)[0-9][0-9] ' \
	"an unknown HTTP version: an error code"
big=$(head -c 40000 /dev/zero | tr '\0' a)
# the agent may close before the client has sent it all, and the client then sees a reset
like "$(raw "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: $big\r\n\r\n")" '^(HTTP/1\.[01] 4[0-9][0-9] .*)?$' \
	"a 40 kB header: refused (4xx, or the connection closed)"
like "$(raw 'POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n')" \
	'^HTTP/1\.[01] (413|4[0-9][0-9]) ' "a 10 MB request body announced: refused with 4xx"
like "$(raw 'GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n')" '^HTTP/1\.[01] 4[0-9][0-9] ' \
	"a negative Content-Length: 4xx"
# half a request, then the client is gone
bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET /metr" >&3' _ "$HTTP_PORT" 2>/dev/null
is "$(fetch traversal "$BASE_URL/api/parity/..%2Fstate.pb")/$(fetch traversal2 "$BASE_URL/api/parity/../state.pb" --path-as-is)" \
	"404/404" "a path out of the parity directory: 404"
is "$(fetch rebinding "$BASE_URL/metrics" -H "Host: evil.example:$HTTP_PORT")" 403 \
	"a foreign Host header (DNS rebinding) without a token: 403"
is "$(fetch localhost "$BASE_URL/metrics" -H "Host: localhost:$HTTP_PORT")" 200 "... while Host: localhost is served"
ok "after all that the agent still runs" agent_alive
is "$(fetch metrics2 "$BASE_URL/metrics")" 200 "... and still serves /metrics"
ok "switchyard stop: the agent exits 0" agent_stop 60

# ---- 4. a verify that finds a difference, shown by the next agent ------------------------------

psql_on DST "DELETE FROM $ODD WHERE id = 7" >/dev/null
timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_TCP" --target "$DST_TCP" \
	--jobs 2 >"$SY_BASE/verify1.out" 2>&1
is "$?" 5 "switchyard verify (no agent running) finds the deleted row: exit 5"
ok "... and leaves parity/latest.json" test -s "$AGENT_STATE/parity/latest.json"

agent_restart
ok "the agent serves HTTP again" wait_for 30 "HTTP on $HTTP_PORT" http_up "$BASE_URL/metrics"
ok "... and streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'
fetch metrics3 "$BASE_URL/metrics" >/dev/null
if command -v promtool >/dev/null; then
	ok "/metrics with per-table parity and the hostile name passes promtool" promtool_ok "$CAPTURED/metrics3"
else
	skip "/metrics with per-table parity and the hostile name passes promtool" "no promtool"
fi
parity_metrics() {
	local f=$CAPTURED/metrics3 age
	[ "$(metric "$f" switchyard_parity_verified)" = 1 ] &&
		[ "$(metric "$f" 'switchyard_parity_equal{table="public.agents"}')" = 1 ] &&
		[ "$(metric "$f" 'switchyard_parity_equal{table="public.messages"}')" = 1 ] &&
		[ "$(metric "$f" "switchyard_parity_equal{table=\"$ODD_LABEL\"}")" = 0 ] &&
		[ "$(metric "$f" "switchyard_parity_differing_rows{table=\"$ODD_LABEL\",kind=\"missing\"}")" = 1 ] &&
		[ "$(metric "$f" "switchyard_parity_differing_rows{table=\"$ODD_LABEL\",kind=\"extra\"}")" = 0 ] &&
		[ "$(metric "$f" "switchyard_parity_compared_rows{table=\"$ODD_LABEL\"}")" = 50 ] &&
		[ "$(metric "$f" 'switchyard_parity_common_point{table="public.agents"}')" = 0 ] &&
		[ "$(metric "$f" 'switchyard_parity_lsn{table="public.agents"}')" -gt 0 ] || {
		grep '^switchyard_parity' "$f" | head -n 40 | sed 's/^/# /'
		return 1
	}
	age=$(metric "$f" 'switchyard_parity_last_result_age_seconds{table="public.agents"}')
	[ "$age" -ge 0 ] && [ "$age" -lt 120 ] || { echo "# age $age"; return 1; }
}
ok "... says which table differs, by how many rows, and how old the result is" parity_metrics
fetch status2 "$BASE_URL/api/status" >/dev/null
status_parity() {
	local s
	s=$(cat "$CAPTURED/status2")
	[ "$(json_get "$s" ready)" = false ] || return 1
	[ "$(printf '%s' "$s" | grep -o '"equal":false' | wc -l)" = 1 ] || return 1
	[ "$(printf '%s' "$s" | grep -o '"equal":true' | wc -l)" -ge 10 ] || return 1
	grep -qF '"report_url":"/api/parity/' "$CAPTURED/status2"
}
ok "/api/status carries the parity results: one table differs, the others equal" status_parity
is "$(fetch parity1 "$BASE_URL/api/parity")/$(header parity1 Content-Type)" "200/application/json; charset=utf-8" \
	"/api/parity serves latest.json"
ok "... as it is on disk" cmp -s "$CAPTURED/parity1" "$AGENT_STATE/parity/latest.json"
report_url=$(grep -o '"report_url":"[^"]*"' "$CAPTURED/status2" | head -n 1 | cut -d'"' -f4)
is "$(fetch report "$BASE_URL$report_url")" 200 "the report link ($report_url) serves the full report"
ok "... which names the missing row of the hostile table" eval \
	'grep -q "\"kind\": *\"missing\"" "$CAPTURED/report" && grep -qF "<b>bold</b>" "$CAPTURED/report"'

if [ -n "$CHROMIUM" ]; then
	browser "$SY_BASE/dom1.html" "$BASE_URL/" --dump-dom
	ok "the dashboard lists the tables, equal ones as equal" eval '
		dom_has "$SY_BASE/dom1.html" "data-table=\"public.agents\" data-state=\"equal\"" &&
		dom_has "$SY_BASE/dom1.html" "data-table=\"public.messages\" data-state=\"equal\"" &&
		dom_has "$SY_BASE/dom1.html" "Chat &quot;&quot;Rooms&quot;&quot; ü"'
	ok "... the hostile table as differing, by 1 row, its name as text (no markup)" eval '
		dom_has "$SY_BASE/dom1.html" "data-state=\"differs\"" &&
		dom_has "$SY_BASE/dom1.html" ">1 difference<" &&
		dom_has "$SY_BASE/dom1.html" "&lt;b&gt;bold&lt;/b&gt;" && ! grep -qF "<b>bold</b>" "$SY_BASE/dom1.html"'
	ok "... the phase, the lag and its chart" eval '
		dom_has "$SY_BASE/dom1.html" "id=\"phase\" class=\"badge ok\">streaming<" &&
		grep -qE "id=\"lag-seconds\">(caught up|[0-9.]+ (ms|s))<" "$SY_BASE/dom1.html" &&
		grep -qE "id=\"lag-bytes\">[0-9.]+ (bytes|kB|MB)<" "$SY_BASE/dom1.html" &&
		grep -qE "<polyline class=\"line\" points=\"[0-9.]+,[0-9.]+ [0-9.]+,[0-9.]+" "$SY_BASE/dom1.html"'
	ok "... the checklist: parity failing, so not ready" eval '
		dom_has "$SY_BASE/dom1.html" "data-check=\"parity\" data-state=\"failed\"" &&
		dom_has "$SY_BASE/dom1.html" "data-check=\"lag\" data-state=\"ok\"" &&
		dom_has "$SY_BASE/dom1.html" "class=\"verdict no\">Not ready"'
	browser /dev/null "$BASE_URL/" --screenshot="$ARTIFACTS/dashboard-differences.png" --window-size=1280,900 \
		--hide-scrollbars
	ok "a screenshot of the dashboard with a difference" test -s "$ARTIFACTS/dashboard-differences.png" &&
		save_artifact "$ARTIFACTS/dashboard-differences.png"
else
	for d in "lists the tables" "the hostile table" "the phase, the lag" "the checklist" "a screenshot"; do
		skip "the dashboard: $d" "no chromium"
	done
fi
ok "switchyard stop: the agent exits 0" agent_stop 60

# ---- 5. off loopback: a token or nothing --------------------------------------------------------

claim_port || bail_out "no free port"
OPEN_PORT=$SY_CLAIMED_PORT
agent_run_fg "$SY_BASE/open.out" 30 --no-copy --source "$SRC_TCP" --target "$DST_TCP" \
	--state-dir "$AGENT_STATE" --http "0.0.0.0:$OPEN_PORT"
is "$?" 2 "--http 0.0.0.0:PORT without --http-token: refused at once, as a usage error"
like "$(cat "$SY_BASE/open.out")" 'not a loopback address: it needs --http-token' "... saying why"
ok "... and nothing listens there" eval '! _sy_port_busy "$OPEN_PORT"'

psql_on DST "INSERT INTO $ODD VALUES (7, 'v7')" >/dev/null
timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_TCP" --target "$DST_TCP" \
	--jobs 2 >"$SY_BASE/verify2.out" 2>&1
is "$?" 0 "with the row back, verify finds the databases equal"

HTTP_PORT=$OPEN_PORT
BASE_URL=http://127.0.0.1:$HTTP_PORT
agent_start --no-copy --source "$SRC_TCP" --target "$DST_TCP" --http "0.0.0.0:$OPEN_PORT" --http-token "$TOKEN"
ok "with --http-token the agent serves on 0.0.0.0" wait_for 30 "HTTP on $OPEN_PORT" http_up \
	-H "Authorization: Bearer $TOKEN" "$BASE_URL/metrics"
ok "... and streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'
is "$(fetch noauth "$BASE_URL/metrics")/$(header noauth WWW-Authenticate | cut -c1-5)" "401/Basic" \
	"no Authorization: 401 with a challenge"
is "$(fetch noauth404 "$BASE_URL/no/such/path")" 401 "... on unknown paths too (nothing is told without the token)"
is "$(fetch wrong "$BASE_URL/api/status" -H "Authorization: Bearer ${TOKEN}x")" 401 "a wrong token: 401"
is "$(fetch bearer "$BASE_URL/api/status" -H "Authorization: Bearer $TOKEN")" 200 "Bearer TOKEN: 200"
is "$(fetch basic "$BASE_URL/api/status" -u "dba:$TOKEN")" 200 "the token as basic-auth password: 200"
is "$(fetch tokenhost "$BASE_URL/metrics" -H "Authorization: Bearer $TOKEN" -H "Host: dash.example:80")" 200 \
	"with a token, any Host name is served (the token protects)"

# the screenshot shows the agent at work: lag chart and apply rate under the chat workload
chat_workload_start SRC 20
if [ -n "$CHROMIUM" ]; then
	sleep 6
	# the user name and token in the URL are how a browser would log in through the prompt
	ready_page() {
		browser "$SY_BASE/dom2.html" "http://dba:$TOKEN@127.0.0.1:$HTTP_PORT/" --dump-dom
		grep -q 'class="verdict ok">Ready for cutover' "$SY_BASE/dom2.html"
	}
	ok "the dashboard through basic auth: every check passes, \"Ready for cutover\"" wait_for 60 \
		"the ready verdict" ready_page
	ok "... all four checks ok, every table equal" eval '
		[ "$(grep -o "data-state=\"ok\"" "$SY_BASE/dom2.html" | wc -l)" = 4 ] &&
		! grep -q "data-state=\"differs\"" "$SY_BASE/dom2.html" &&
		dom_has "$SY_BASE/dom2.html" "data-state=\"equal\""'
	browser /dev/null "http://dba:$TOKEN@127.0.0.1:$HTTP_PORT/" --screenshot="$ARTIFACTS/dashboard.png" \
		--window-size=1280,900 --hide-scrollbars
	ok "a screenshot of the dashboard, ready for cutover" test -s "$ARTIFACTS/dashboard.png" &&
		save_artifact "$ARTIFACTS/dashboard.png"
else
	for d in "ready" "all four checks" "a screenshot"; do
		skip "the dashboard: $d" "no chromium"
	done
fi

ok "the chat workload ran without errors" workload_wait "$WORKLOAD_PID" pgbench.chat

# ---- 6. no secret anywhere ------------------------------------------------------------------------

fetch dashboard "$BASE_URL/" -H "Authorization: Bearer $TOKEN" >/dev/null
fetch metrics4 "$BASE_URL/metrics" -H "Authorization: Bearer $TOKEN" >/dev/null
fetch history2 "$BASE_URL/api/history" -H "Authorization: Bearer $TOKEN" >/dev/null
ok "switchyard stop: the agent exits 0" agent_stop 60
leaks() {
	local secret found=0
	for secret in "$SRC_PW" "$DST_PW"; do
		if grep -rqaF -- "$secret" "$CAPTURED" "$SY_BASE"/dom*.html 2>/dev/null; then
			echo "# a password in an HTTP response: $(grep -rlaF -- "$secret" "$CAPTURED" "$SY_BASE"/dom*.html | head -n 3)"
			found=1
		fi
		grep -qaF -- "$secret" "$AGENT_LOG" && { echo "# a password in the agent log"; found=1; }
	done
	grep -qaF -- "$TOKEN" "$AGENT_LOG" "$CAPTURED"/* && { echo "# the token in the log or a response"; found=1; }
	[ "$(ls "$CAPTURED" | wc -l)" -ge 40 ] || { echo "# only $(ls "$CAPTURED" | wc -l) responses captured"; found=1; }
	[ "$found" -eq 0 ]
}
ok "no password (nor the token) in any response, the rendered pages or the agent log" leaks
