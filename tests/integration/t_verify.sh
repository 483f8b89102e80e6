#!/usr/bin/env bash
# switchyard verify against a running agent while the chat workload keeps writing: no
# difference on equal databases, every time; each kind of divergence injected on the target
# (deleted row, extra row, one changed value per common type including NULL versus '', a
# TOASTed column left unchanged by later updates, a duplicated row in a keyless table, two
# rows with their unique names swapped, a missing row whose unique name an extra row holds, a
# char(n) key and a domain over char(n) changed after its first character)
# is found exactly, down to the column; --repair makes the target equal; without an agent the
# output says there was no common point; schema differences are reported per table.
. "$(dirname "$0")/lib.sh"
harness_init 200

plan 36

# ---- setup: chat database plus a table with one column of each common type ---------------

types_table() {
	psql_on SRC "CREATE TABLE parity_types (
		id int PRIMARY KEY, i int, t text, n numeric(12,4), ts timestamptz, j jsonb, b bytea,
		a int[], e inquiry_status, big text, note text)" \
		"ALTER TABLE parity_types ALTER COLUMN big SET STORAGE EXTERNAL" \
		"INSERT INTO parity_types
		 SELECT g, g, CASE WHEN g = 2 THEN '' ELSE 'text ' || g END, g * 1.5,
		        timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour', jsonb_build_object('g', g),
		        decode(md5(g::text), 'hex'), ARRAY[g, g + 1], 'open',
		        (SELECT string_agg(md5(g::text || s), '') FROM generate_series(1, 100) s), 'note'
		 FROM generate_series(1, 20) g" \
		"CREATE DOMAIN code8 AS char(8)" \
		"CREATE TABLE parity_chars (code char(6) PRIMARY KEY, label code8, flags bit(4))" \
		"INSERT INTO parity_chars SELECT 'key' || lpad(g::text, 3, '0'), 'label' || g, B'1010'
		 FROM generate_series(1, 20) g" >/dev/null
}

setup() {
	pg_start SRC && pg_start DST && chat_schema SRC && chat_seed SRC && types_table &&
		copy_database SRC DST
}
ok "servers, chat schema, seed and a table of every common type, copied to the target" setup ||
	bail_out "setup failed"

agent_start_chat --log-level info
ok "the agent streams" wait_for 30 'phase "streaming"' eval '[ "$(status_get phase)" = streaming ]' ||
	bail_out "the agent does not stream"

# ---- equal databases, quiet and under writes --------------------------------------------

run_verify
ok "verify of the quiet, equal databases exits 0" test "$VRC" -eq 0 || diag "$VERR" "$VOUT"
case $VERR in
*"refused to hold its applier"*) bail_out "the agent does not hold its applier for verify (APPLY_HOLD)" ;;
esac
is "$(json_get "$VOUT" result)/$(json_get "$VOUT" common_point)" "equal/true" \
	"the report says equal, compared at a common point"
tables=$(report_sql "SELECT string_agg(t->>'table', ' ' ORDER BY t->>'table') FROM jsonb_array_elements(:'r'::jsonb->'tables') t")
like "$tables" 'public\.messages.*public\.parity_types.*public\.webhook_events' \
	"every published table is verified ($tables)"
like "$(report_sql "SELECT t->>'compared_as' FROM jsonb_array_elements(:'r'::jsonb->'tables') t WHERE t->>'table' = 'public.webhook_events'")" \
	'^multiset$' "the keyless table is compared as a multiset"

chat_workload_start SRC 90
sleep 2
verify_runs 10 0.3
ok "the workload is still writing after the verify runs" _sy_pid_alive "$WORKLOAD_PID"
is "$CLEAN_RUNS/10" "10/10" "10 verifies under the chat workload find no difference" || diag "$BAD_RUNS"
rows=$(json_get "$VOUT" rows)
ok "each run compares every row ($rows rows in the last one)" test "${rows:-0}" -gt 8000

# ---- divergence injected on the target ---------------------------------------------------

sid=$(psql_on DST "SELECT id FROM status_history WHERE inquiry_id = 601 AND old_status IS NULL")
psql_on DST "SET session_replication_role = replica;
	DELETE FROM status_history WHERE id = $sid;
	INSERT INTO agents (id, name) VALUES (9999, 'ghost agent');
	UPDATE agents SET name = 'spare' WHERE id = 1;
	UPDATE agents SET name = 'agent 1' WHERE id = 2;
	UPDATE agents SET name = 'agent 2' WHERE id = 1;
	DELETE FROM agents WHERE id = 3;
	INSERT INTO agents (id, name, email, active, max_load) SELECT 9998, 'agent 3', email, active, max_load FROM agents WHERE id = 4;
	UPDATE parity_types SET i = i + 1 WHERE id = 1;
	UPDATE parity_types SET t = NULL WHERE id = 2;
	UPDATE parity_types SET n = n + 0.0001 WHERE id = 3;
	UPDATE parity_types SET ts = ts + interval '1 microsecond' WHERE id = 4;
	UPDATE parity_types SET j = j || '{\"x\": 1}' WHERE id = 5;
	UPDATE parity_types SET b = b || '\\x00'::bytea WHERE id = 6;
	UPDATE parity_types SET a = array_append(a, 0) WHERE id = 7;
	UPDATE parity_types SET e = 'closed' WHERE id = 8;
	UPDATE parity_types SET big = overlay(big PLACING 'X' FROM 1500 FOR 1) WHERE id = 9;
	DELETE FROM parity_types WHERE id = 10;
	INSERT INTO parity_types (id, i, t) VALUES (100, 100, 'only on the target');
	UPDATE parity_chars SET label = 'label9X' WHERE code = 'key009';
	DELETE FROM parity_chars WHERE code = 'key010';
	INSERT INTO parity_chars VALUES ('keyZZZ', 'extra', B'0101');
	INSERT INTO webhook_events SELECT * FROM webhook_events
	 WHERE ctid = (SELECT min(ctid) FROM webhook_events WHERE inquiry_id = 502 AND kind = 'created');" >/dev/null
# an update on the source that leaves the changed TOASTed column unchanged
psql_on SRC "UPDATE parity_types SET note = 'touched' WHERE id = 9" >/dev/null
catch_up SRC 60 >/dev/null

run_verify
ok "the workload is still writing" _sy_pid_alive "$WORKLOAD_PID"
is "$VRC" 5 "verify exits 5 (parity failure) on the injected differences" || diag "$VERR"
expected=$(LC_ALL=C sort <<EOF
public.agents changed {"id": "1"} name
public.agents changed {"id": "2"} name
public.agents extra {"id": "9998"}
public.agents extra {"id": "9999"}
public.agents missing {"id": "3"}
public.parity_chars changed {"code": "key009"} label
public.parity_chars extra {"code": "keyZZZ"}
public.parity_chars missing {"code": "key010"}
public.parity_types changed {"id": "1"} i
public.parity_types changed {"id": "2"} t
public.parity_types changed {"id": "3"} n
public.parity_types changed {"id": "4"} ts
public.parity_types changed {"id": "5"} j
public.parity_types changed {"id": "6"} b
public.parity_types changed {"id": "7"} a
public.parity_types changed {"id": "8"} e
public.parity_types changed {"id": "9"} big
public.parity_types missing {"id": "10"}
public.parity_types extra {"id": "100"}
public.status_history missing {"id": "$sid"}
public.webhook_events extra copies=1
EOF
)
got=$(differences)
is "$got" "$expected" "exactly the injected rows and columns differ, no more, no fewer" ||
	diag "$(printf '%s' "$VERR" | tail -n 5)"
is "$(report_sql "SELECT d->'columns'->0->>'source' || '|' || coalesce(d->'columns'->0->>'target', 'SQL NULL')
	FROM jsonb_array_elements(:'r'::jsonb->'tables') t, jsonb_array_elements(t->'differences') d
	WHERE t->>'table' = 'public.parity_types' AND d->'key'->>'id' = '2'")" "|SQL NULL" \
	"'' on the source and NULL on the target are told apart"
is "$(report_sql "SELECT (d->'columns'->0->>'source') || ' / ' || (d->'columns'->0->>'target')
	FROM jsonb_array_elements(:'r'::jsonb->'tables') t, jsonb_array_elements(t->'differences') d
	WHERE t->>'table' = 'public.parity_types' AND d->'key'->>'id' = '8'")" "open / closed" \
	"the changed enum is shown with both values"
is "$(report_sql "SELECT d->'row'->>'inquiry_id' FROM jsonb_array_elements(:'r'::jsonb->'tables') t,
	jsonb_array_elements(t->'differences') d WHERE t->>'table' = 'public.webhook_events'")" 502 \
	"the extra copy in the keyless table is shown with its values"
report=$(json_get "$VOUT" report)
ok "the report file exists, private, and holds the differing keys ($report)" \
	eval '[ -f "$report" ] && [ "$(stat -c %a "$report")" = 600 ] && grep -q "\"9999\"" "$report" && grep -q "\"$sid\"" "$report"'
ok "the parity directory is private" test "$(stat -c %a "$AGENT_STATE/parity")" = 700
latest=$(VOUT=$(cat "$AGENT_STATE/parity/latest.json" 2>/dev/null) report_sql \
	"SELECT (:'r'::jsonb->'tables'->'public.parity_types'->>'changed') || ' ' ||
	        (:'r'::jsonb->'tables'->'public.agents'->>'extra') || ' ' ||
	        (:'r'::jsonb->'tables'->'public.parity_types'->>'lsn' ~ '^[0-9A-F]+/[0-9A-F]+$')")
is "$latest" "9 2 true" "latest.json keeps the latest result per table, with its LSN"

run_verify --table public.parity_types --table public.agents
is "$VRC/$(report_sql "SELECT jsonb_array_length(:'r'::jsonb->'tables')")" "5/2" \
	"--table limits verify to the tables named"

# ---- repair -------------------------------------------------------------------------------

run_verify --repair
is "$VRC/$(json_get "$VOUT" result)" "0/repaired" "verify --repair writes the source's rows and exits 0" ||
	diag "$VERR" "$(differences | head -n 20)"
is "$(report_sql "SELECT :'r'::jsonb->'totals'->>'repaired'")" 21 \
	"it wrote the 21 differing rows (11 of parity_types, 5 agents, 3 char(n) rows, one history row, one copy)"
run_verify
is "$VRC/$(total)" "0/0" "verify after the repair is clean, while the workload keeps writing" ||
	diag "$(differences | head -n 20)" "$VERR"

ok "the chat workload ran without errors" workload_wait "$WORKLOAD_PID" pgbench.chat
ok "the agent applies everything" catch_up SRC 60
ok "the repaired target equals the source (compared without switchyard)" compare_databases SRC DST
run_verify
is "$VRC/$(total)" "0/0" "verify agrees on the quiet databases"

# ---- without the agent, and schema differences --------------------------------------------

ok "the agent stops" agent_stop 60
run_verify
ok "verify without an agent still compares (exit 0 on equal databases)" test "$VRC" -eq 0
like "$VERR" 'no agent is running' "it warns that there is no common point"
is "$(json_get "$VOUT" common_point)" false "the report says there was no common point"
run_verify --repair
is "$VRC" 7 "--repair without an agent is refused (exit 7)"

psql_on DST "ALTER TABLE agents ADD COLUMN nickname text" "ALTER TABLE parity_types ALTER COLUMN note TYPE varchar(20)" >/dev/null
run_verify --table public.agents --table public.parity_types --table public.nonexistent
issues=$(report_sql "SELECT string_agg((t->>'table') || ': ' || i, E'\n' ORDER BY 1) FROM jsonb_array_elements(:'r'::jsonb->'tables') t,
	jsonb_array_elements_text(t->'schema_issues') i")
is "$VRC" 5 "schema differences make verify exit 5"
like "$issues" 'public\.agents: column "nickname" is missing on the source' "a column missing on the source is named"
like "$issues" 'public\.parity_types: column "note" is of type text on the source but character varying\(20\) on the target' \
	"a column of another type is named with both types"
like "$issues" 'public\.nonexistent: table is missing on the source' "a table missing on the source is named"
is "$(report_sql "SELECT sum((t->>'rows_source')::int) FROM jsonb_array_elements(:'r'::jsonb->'tables') t")" 40 \
	"the other columns and rows are still compared (20 agents + 20 rows of parity_types)"
