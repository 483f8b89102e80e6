#!/usr/bin/env bash
# The cutover's parity compares only the rows the stream touched since each table's last clean
# verify: first before the fence at a common point (applier held), then inside the fence only
# what was touched after that. A difference in such a row is found and aborts the cutover;
# after a restart of the agent (touched keys unknown) the tables are compared in full before
# the fence; with a fresh verify the cutover switches, having compared only touched rows. Data
# is then compared by ordered COPY of both sides.
# The keyless table (webhook_events) has no rows to name, but a NOT NULL column that leads an
# index (inquiry_id): the final parity skips it when the stream did not write it since its
# baseline, and compares the groups of rows whose inquiry_id the stream touched when it did,
# so a row of such a group changed on the target behind the agent's back aborts the cutover.
. "$(dirname "$0")/lib.sh"
harness_init 300

plan 34

ok "servers, chat schema and seed, copied to the target" chat_setup || bail_out "setup failed"
agent_start_chat
ok "the agent streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'

verify() { timeout 120 "$SWITCHYARD" verify --state-dir "$AGENT_STATE" --source "$SRC_CONN" --target "$DST_CONN" "$@"; }
# --fence manual: the test itself stops writing before each cutover
cutover() { timeout 120 "$SWITCHYARD" cutover --state-dir "$AGENT_STATE" --fence manual --yes "$@"; }
latest_report() { ls -t "$AGENT_STATE"/parity/2*.json | head -n 1; }
# rows_by TABLE: how the last report compared it ("touched keys", "all rows" or "none: not
# written since the baseline")
rows_by() {
	python3 -c 'import json, sys
for t in json.load(open(sys.argv[1]))["tables"]:
    if t["table"] == sys.argv[2]:
        print(t["rows_by"], t.get("touched_keys", ""), t["rows_source"])' "$(latest_report)" "$1"
}
# table_result TABLE: equal, rows compared by, rows on each side, missing + extra + changed
table_result() {
	python3 -c 'import json, sys
for t in json.load(open(sys.argv[1]))["tables"]:
    if t["table"] == sys.argv[2]:
        print("equal" if t["equal"] else "different", t["rows_by"] + ";", t["rows_source"], t["rows_target"],
              t["missing"] + t["extra"] + t["changed"])' "$(latest_report)" "$1"
}
# log_mark, then log_since: the agent log written after the mark
log_mark() { LOG_MARK=$(wc -l <"$AGENT_LOG"); }
log_since() { tail -n +"$((LOG_MARK + 1))" "$AGENT_LOG"; }

ok "a verify under load sets the baseline" eval 'chat_workload_start SRC 8 && sleep 2 && verify >/dev/null && workload_wait "$WORKLOAD_PID" pgbench.chat'
ok "the stream catches up" catch_up SRC 60

# A row the stream wrote after the baseline, changed on the target behind the agent's back.
touched_id=$(psql_on DST "select max(id) from messages")
psql_on DST "set session_replication_role = replica; update messages set body = 'tampered' where id = $touched_id" >/dev/null
cout=$(cutover 2>&1); crc=$?
is "$crc" 6 "a difference in a touched row aborts the cutover (exit 6)" || diag "$cout"
like "$(rows_by public.messages)" '^all rows' "... found by the touched keys, then named by a full compare of that table" ||
	diag "$(rows_by public.messages)"
like "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tables"])' "$(latest_report)")" "tampered" \
	"... the report names the changed row" || diag "$(latest_report)"
ok "verify --repair makes the target equal again" eval 'verify --repair >/dev/null'

# A new agent process does not know what its predecessor applied after the last verify:
# every table in full.
chat_pgbench SRC 3 >/dev/null 2>&1
catch_up SRC 60 >/dev/null
agent_stop
agent_restart
ok "the restarted agent streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]'
log_mark
cout=$(SWITCHYARD_CUTOVER_FAIL_AT=lift-guard cutover 2>&1); crc=$?
ok "after a restart the final parity compares in full (and the forced failure after it rolls back)" eval \
	'[ "$crc" = 6 ] && grep -q "compares public.messages in full: the last clean verify is older than this run" "$AGENT_LOG"' ||
	diag "$cout"
ok "... webhook_events too, before the fence: it has no key and the verify is older than this run" eval \
	'log_since | grep_q "parity before the fence compares public.webhook_events in full: it has no key, and the last clean verify is older than this run"'
# nothing wrote to the source since: the pass before the fence is the keyless table's baseline
like "$(log_since | grep 'final parity skips public.webhook_events')" \
	'final parity skips public.webhook_events: not written since the baseline at LSN [0-9A-F]+/[0-9A-F]+' \
	"inside the fence the keyless table not written since that pass is skipped, saying why"
like "$(table_result public.webhook_events)" '^equal none: not written since the baseline; 0 0 0$' \
	"... and the report says it was not compared, with nothing read from either side"
ok "... the log counts it apart from the tables compared by keys and in full" eval \
	'log_since | grep_q "final parity: equal, .* (10 by the keys touched since their last verify, 1 not written since, 0 in full)"'
cout=$(cutover --dry-run 2>&1)
like "$cout" 'compares 10 of 11 tables by the 0 keys the stream touched.*, skips 1 that has nothing to compare: public\.webhook_events \(not written since the baseline at LSN [0-9A-F]+/[0-9A-F]+\)' \
	"--dry-run names the keyless table it will skip and why" || diag "$cout"

# Written after the pass before the fence (the cutover stalled at its fence meanwhile): inside
# the fence the keyless table's touched group is compared, and a row of that group changed on
# the target behind the agent's back is found and aborts the cutover.
log_mark
(SWITCHYARD_CUTOVER_STALL_AT=fence:8 cutover --max-pause 60000 >"$SY_BASE/cutover.out" 2>&1; echo $? >"$SY_BASE/cutover.rc") &
ok "a cutover stalls at its fence" wait_for 60 "the stall" eval 'log_since | grep_q "stalled at fence"'
group=$(psql_on DST "select inquiry_id from webhook_events where ctid = (select min(ctid) from webhook_events)")
psql_on SRC "insert into webhook_events (inquiry_id, kind, payload) values ($group, 'written at the fence', '{\"late\": true}')" >/dev/null
psql_on DST "set session_replication_role = replica; update webhook_events set kind = 'tampered'
	where ctid = (select min(ctid) from webhook_events where kind <> 'written at the fence')" >/dev/null
wait_for 60 "the cutover" test -s "$SY_BASE/cutover.rc" >/dev/null
is "$(cat "$SY_BASE/cutover.rc")" 6 "a tampered row in a keyless table's group written since the baseline aborts the cutover (exit 6)" ||
	diag "$(cat "$SY_BASE/cutover.out")"
ok "... found by the touched group inside the fence, then compared in full to name the rows" eval \
	'log_since | grep_q "the rows of public.webhook_events touched since its last verify differ: comparing it in full to name them"'
like "$(table_result public.webhook_events)" '^different all rows; [0-9]+ [0-9]+ 2$' \
	"... the report names the table: all rows compared, one copy missing and one extra" ||
	diag "$(table_result public.webhook_events)"
like "$(cat "$SY_BASE/cutover.out")" 'final parity found differences' "... the cutover says so"
is "$(psql_on DST "select count(*) from webhook_events where kind = 'written at the fence'")" 1 \
	"... the row written at the fence had reached the target"
ok "verify --repair makes the target equal again" eval 'verify --repair >/dev/null'

# A row moved from one group to another after the pass before the fence: the group it left is
# compared too, so a row of that group changed on the target behind the agent's back is found.
log_mark
rm -f "$SY_BASE/cutover.rc"
(SWITCHYARD_CUTOVER_STALL_AT=fence:8 cutover --max-pause 60000 >"$SY_BASE/cutover.out" 2>&1; echo $? >"$SY_BASE/cutover.rc") &
ok "a cutover stalls at its fence again" wait_for 60 "the stall" eval 'log_since | grep_q "stalled at fence"'
left=$(psql_on DST "select inquiry_id from webhook_events group by inquiry_id having count(*) >= 2 order by inquiry_id limit 1")
joined=$(psql_on DST "select max(inquiry_id) from webhook_events")
psql_on SRC "update webhook_events set inquiry_id = $joined
	where ctid = (select min(ctid) from webhook_events where inquiry_id = $left)" >/dev/null
# the move applied first: the row tampered with below is one that stayed
catch_up SRC 30 >/dev/null
psql_on DST "set session_replication_role = replica; update webhook_events set kind = 'tampered'
	where ctid = (select max(ctid) from webhook_events where inquiry_id = $left)" >/dev/null
wait_for 60 "the cutover" test -s "$SY_BASE/cutover.rc" >/dev/null
is "$(cat "$SY_BASE/cutover.rc")" 6 "a tampered row in the group a moved row left aborts the cutover (exit 6)" ||
	diag "$(cat "$SY_BASE/cutover.out")"
ok "... found by the touched groups inside the fence" eval \
	'log_since | grep_q "the rows of public.webhook_events touched since its last verify differ"'
ok "verify --repair makes the target equal again" eval 'verify --repair >/dev/null'

# A verify in this process, more writes, then the real cutover: only touched rows compared.
ok "a fresh verify under load" eval 'chat_workload_start SRC 6 && sleep 2 && verify >/dev/null && workload_wait "$WORKLOAD_PID" pgbench.chat'
catch_up SRC 60 >/dev/null
total=$(psql_on SRC "select count(*) from messages")
cout=$(cutover --dry-run 2>&1)
like "$cout" 'compares 11 of 11 tables by the [0-9]+ keys the stream touched since their last clean verify' \
	"--dry-run says the final parity compares every table by touched keys, the keyless one by its groups" || diag "$cout"
log_mark
cout=$(cutover 2>&1); crc=$?
is "$crc" 0 "the cutover switches (exit 0)" || diag "$cout"
read -r mode touched rows <<<"$(rows_by public.messages | sed 's/touched keys/touched_keys/')"
ok "inside the fence messages was compared by its touched keys: $touched keys, $rows rows of $total" eval \
	'[ "$mode" = touched_keys ] && [ "$rows" -le "$touched" ] && [ "$rows" -lt "$total" ]'
ok "... after the rows touched until then were compared before the fence, the keyless table's by its groups" eval \
	'log_since | grep_q "parity before the fence: equal, .* (11 by the keys touched since their last verify, 0 not written since, 0 in full)"'
like "$(rows_by public.webhook_events)" '^none: not written since the baseline' \
	"... which made it the baseline: not written since, the final parity skipped it" || diag "$(rows_by public.webhook_events)"
diag "$(grep 'final parity:' "$AGENT_LOG" | tail -n 1)"
ok "the agent ended after the switch" agent_wait 30
ok "source and target hold the same rows (ordered COPY of both)" compare_databases SRC DST
