#!/usr/bin/env bash
# Self-test of the integration harness (lib.sh) and the chat workload, without the agent:
# servers start and stop, every pgbench script runs cleanly and produces what the agent
# tests rely on (unchanged-TOAST updates, commits out of begin order, deletes), and
# compare_databases passes on equal databases and names the table on every kind of difference.
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 30

ok "source server starts" pg_start SRC || bail_out "cannot start a server"
ok "target server starts" pg_start DST || bail_out "cannot start a server"
is "$(psql_on SRC 'show wal_level')" logical "wal_level is logical"
ok "chat schema and seed load" eval 'chat_schema SRC && chat_seed SRC'
is "$(psql_on SRC 'select count(*) from "Support ""Desk"" ø"."Chat ""Rooms"" ü"')" 50 \
	"the table with the hostile name holds its rows"

# Watch the workload through a test_decoding slot created before it runs.
psql_on SRC "select pg_create_logical_replication_slot('harness_probe', 'test_decoding')" >/dev/null

for s in new_inquiry new_message status_change assignment delete_old counter; do
	ok "pgbench script $s.sql runs without errors" \
		pgbench_on SRC -n -T 2 -c 2 -j 2 -D scale="$CHAT_SCALE" -f "$CHAT/$s.sql"
done
chat_workload_start SRC 5
ok "the whole chat mix runs with 4 clients" workload_wait "$WORKLOAD_PID" pgbench.chat

toasted=$(psql_on SRC "select count(*) from messages where octet_length(body) > 2048
	and pg_column_size(body) >= octet_length(body)")
toast_pages=$(psql_on SRC "select pg_relation_size(reltoastrelid) / 8192 from pg_class where oid = 'messages'::regclass")
ok "large message bodies are stored uncompressed out of line ($toasted rows, $toast_pages TOAST pages)" \
	test "$toasted" -gt 100 -a "$toast_pages" -gt 100

psql_on SRC "create table decoded as
	select ord, xid::text::bigint as xid, data
	from pg_logical_slot_peek_changes('harness_probe', null, null, 'include-xids', '1',
	                                  'skip-empty-xacts', '1') with ordinality as d(lsn, xid, data, ord)" >/dev/null
n=$(psql_on SRC "select count(*) from decoded where data like 'table public.messages: UPDATE:%unchanged-toast-datum%'")
ok "status changes update messages leaving a TOASTed body unchanged ($n updates)" test "$n" -gt 10
n=$(psql_on SRC "select count(*) from (select xid, max(xid) over (order by ord rows between unbounded preceding
	and 1 preceding) as before from decoded where data like 'COMMIT%') c where xid < before")
total=$(psql_on SRC "select count(*) from decoded where data like 'COMMIT%'")
ok "concurrent transactions commit out of begin order ($n of $total commits)" test "$n" -gt 10
n=$(psql_on SRC "select string_agg(t || '=' || n, ' ') from (select substring(data from '^table ([^:]*): DELETE') t,
	count(*) n from decoded where data like 'table %: DELETE:%' group by 1 order by 1) d")
like "$n" 'public\.inquiries=.*public\.messages=.*public\.webhook_events=' "the workload deletes rows ($n)"
psql_on SRC "drop table decoded" "select pg_drop_replication_slot('harness_probe')" >/dev/null

ok "copy the whole source to the target" copy_database SRC DST
ok "compare_databases passes on equal databases" compare_databases SRC DST

# Each kind of difference is found and the table named.
psql_on DST 'update "Support ""Desk"" ø"."Chat ""Rooms"" ü" set "Mitglieder Zahl" = "Mitglieder Zahl" + 1
	where "Room ID" = 7' >/dev/null
out=$(compare_databases SRC DST)
rc=$?
ok "a changed row is a difference" test "$rc" -ne 0
like "$out" 'table "Support ""Desk"" ø"\."Chat ""Rooms"" ü" differs: 50 rows in SRC, 50 rows in DST' \
	"the difference names the hostile table" || diag "$out"
psql_on DST 'update "Support ""Desk"" ø"."Chat ""Rooms"" ü" set "Mitglieder Zahl" = "Mitglieder Zahl" - 1
	where "Room ID" = 7' >/dev/null

psql_on DST "delete from messages where id = (select max(id) from messages where octet_length(body) > 2048)" >/dev/null
out=$(compare_databases SRC DST)
like "$out" 'table public\.messages differs: ([0-9]+) rows in SRC, ' "a missing row is a difference in messages" ||
	diag "$out"
psql_on DST "create table public.extra (id int)" >/dev/null
out=$(COMPARE_EXCLUDE='^public\.messages$' compare_databases SRC DST)
like "$out" 'tables or columns differ.*' "an extra table on the target is a difference" || diag "$out"
psql_on DST "drop table public.extra" "alter table webhook_events add column note text" >/dev/null
out=$(COMPARE_EXCLUDE='^public\.messages$' compare_databases SRC DST)
like "$out" '> public\.webhook_events \(r\) note text' "an extra column on the target is a difference" || diag "$out"
psql_on DST "alter table webhook_events drop column note" >/dev/null
ok "with that table excluded the rest compares equal" \
	eval 'COMPARE_EXCLUDE="^public\.messages\$" compare_databases SRC DST'

# Agent helpers, against a stand-in agent that only speaks the command line.
cat >"$SY_BASE/fake-switchyard" <<EOF
#!/usr/bin/env bash
# Stand-in for switchyard: run creates a slot and idles until stop/SIGTERM; status reports
# the source's current LSN as applied.
cmd=\$1; shift; state=; src=
while [ \$# -gt 0 ]; do
	case \$1 in --state-dir) state=\$2; shift;; --source) src=\$2; shift;; esac
	shift
done
psql() { "$PGBIN/psql" -X -q -A -t "\$@"; }
case \$cmd in
run)
	mkdir -p "\$state" && echo "\$src" >"\$state/source" && echo \$\$ >"\$state/pid"
	psql -d "\$src" -c "select 1 from pg_replication_slots where slot_name = 'fake'" | grep -q 1 ||
		psql -d "\$src" -c "select pg_create_logical_replication_slot('fake', 'pgoutput')" >/dev/null
	trap 'echo "fake: stopped"; exit 0' TERM
	echo "fake: streaming"
	while :; do sleep 0.1 & wait \$!; done;;
status)
	l=\$(psql -d "\$(cat "\$state/source")" -c 'select pg_current_wal_lsn()') || exit 1
	printf '{"phase": "streaming", "progress": {"received_lsn": "%s", "flushed_lsn": "%s", "applied_lsn": "%s"}, "lag_bytes": 0}\n' \$l \$l \$l;;
stop)
	kill -TERM "\$(cat "\$state/pid")";;
*)	exit 2;;
esac
EOF
chmod +x "$SY_BASE/fake-switchyard"
real_switchyard=$SWITCHYARD
SWITCHYARD=$SY_BASE/fake-switchyard
agent_start --no-copy --source "$SRC_CONN" --target "$DST_CONN"
ok "agent helpers: start, slot, status, applied" eval 'wait_slot SRC 10 &&
	[ "$(status_get phase)" = streaming ] && wait_applied "$(source_lsn SRC)" 10'
ok "agent helpers: kill -9 and restart" eval 'agent_kill9 && ! agent_kill9 && agent_restart && sleep 0.5 && agent_alive'
ok "agent helpers: stop returns the exit status" agent_stop 10
SWITCHYARD=$real_switchyard

ok "a server survives an immediate restart with its data" eval 'pg_restart DST immediate &&
	[ "$(psql_on DST "select count(*) from agents")" = 20 ]'
ok "lsn_ge compares LSNs as numbers" eval 'lsn_ge 1/0 0/FFFFFFFF && lsn_ge 0/A 0/A && ! lsn_ge 0/9 0/A &&
	! lsn_ge junk 0/1'
pid=$SRC_PID
ok "pg_stop stops the server" eval 'pg_stop SRC && ! _sy_pid_alive "$pid" && ! pg_running SRC'
