#!/usr/bin/env bash
# Initial copy under load: an empty target becomes an exact copy of a chat database of a
# few hundred thousand rows while the chat workload writes throughout; the schema (types,
# indexes, constraints, sequences) comes along; a non-empty target is refused, naming the
# table; and an agent killed during the copy, run again, still ends with an exact copy.
. "$(dirname "$0")/lib.sh"
harness_init 240

plan 13

SCALE=${COPY_SCALE:-40}
ok "servers, chat schema and seed (scale $SCALE) on the source only" eval '
	pg_start SRC && pg_start DST && chat_schema SRC && chat_seed SRC '"$SCALE"
diag "source rows: $(psql_on SRC "select (select count(*) from inquiries) + (select count(*) from messages) + (select count(*) from status_history)")"

# A target table that already holds rows: refused, naming it, nothing changed on the source.
psql_on DST "create table if not exists public.inquiries_probe (id int)" >/dev/null
chat_schema DST
psql_on DST "insert into agents (name, email) values ('x', 'x@example.test')" >/dev/null
out=$("$SWITCHYARD" run --source "$SRC_CONN" --target "$DST_CONN" --state-dir "$SY_BASE/refused" 2>&1)
rc=$?
is "$rc" 4 "a target whose tables hold rows is refused (exit 4)"
like "$out" 'agents' "the refusal names the table with rows" || diag "$out"
is "$(psql_on SRC "select count(*) from pg_replication_slots")" 0 "the refusal left no slot on the source"
"$SWITCHYARD" cleanup --state-dir "$SY_BASE/refused" --source "$SRC_CONN" >/dev/null 2>&1
psql_on DST "drop schema public cascade; create schema public" >/dev/null
psql_on DST "select format('drop schema %I cascade', nspname) from pg_namespace
	where nspname not like 'pg\_%' and nspname not in ('public', 'information_schema')" |
	while read -r stmt; do psql_on DST "$stmt" >/dev/null; done

# The copy with the workload running throughout; killed once during the data copy.
chat_workload_start SRC 40 -R 200
agent_start --source "$SRC_CONN" --target "$DST_CONN" --jobs 2
ok "the copy starts (phase \"copy\")" wait_for 60 'phase "copy"' \
	eval '[ "$(status_get phase)" = copy ]'
sleep 2
ok "the agent is killed during the copy" agent_kill9
agent_restart
ok "run again: the copy starts over and reaches streaming" wait_for 180 'phase "streaming"' \
	eval '[ "$(status_get phase)" = streaming ]'
grep -q 'did not finish: starting it over' "$AGENT_LOG" && diag "the second run started the copy over"
ok "the chat workload ran without errors" workload_wait "$WORKLOAD_PID" pgbench.chat
end=$(source_lsn SRC)
ok "the agent applies everything up to $end" wait_applied "$end" 120
ok "the target equals the source, table by table" compare_databases SRC DST
schema_objects() {
	psql_on "$1" "select (select count(*) from pg_indexes where schemaname <> 'pg_catalog') || ' indexes, ' ||
		(select count(*) from pg_constraint c join pg_namespace n on n.oid = c.connamespace
		  where n.nspname <> 'pg_catalog') || ' constraints, ' ||
		(select count(*) from pg_trigger where not tgisinternal) || ' triggers'"
}
is "$(schema_objects DST)" "$(schema_objects SRC)" "indexes, constraints and triggers were built on the target"
is "$(psql_on DST "select last_value >= 1000 * $SCALE from inquiries_id_seq")" t \
	"sequences were set on the target (inquiries_id_seq past the seeded ids)"
ok "switchyard stop: the agent exits 0" agent_stop 60
