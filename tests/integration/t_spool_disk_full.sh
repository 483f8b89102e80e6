#!/usr/bin/env bash
# The spool's filesystem fills up (a 24 MB tmpfs holds the state directory) while the applier
# is paused and the source writes more than that. The agent stops with an error that says the
# disk is full and what to do (before, it stayed up with a broken spool, reconnecting to the
# source every second). Once space is freed, the same command starts again, recovers the
# spool and catches up: target equal to source, every counter increment exactly once, which
# shows it confirmed to the source nothing it had not spooled. Needs root (it mounts the
# tmpfs); skipped otherwise.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ] || ! command -v mount >/dev/null 2>&1; then
	echo "1..0 # SKIP needs root to mount a small tmpfs"
	exit 0
fi
harness_init 170
SMALL=$SY_BASE/small
mkdir -p "$SMALL"
if ! mount -t tmpfs -o size=24m tmpfs "$SMALL"; then
	echo "1..0 # SKIP cannot mount a tmpfs"
	exit 0
fi
# lazy: an agent killed by the watchdog may still hold spool files open
trap 'rc=$?; umount -l "$SMALL" 2>/dev/null; (exit $rc); _sy_cleanup' EXIT
AGENT_STATE=$SMALL/state

plan 9

ok "servers, chat schema and seed, copied to the target" chat_setup || bail_out "setup failed"
psql_on SRC "create table bulk (id bigserial primary key, payload text)" &&
	psql_on DST "create table bulk (id bigserial primary key, payload text)" >/dev/null ||
	bail_out "bulk table"
agent_start_chat
ok "the agent creates its replication slot" wait_slot SRC 30
ok "switchyard pause" timeout 30 "$SWITCHYARD" pause --state-dir "$AGENT_STATE"

chat_workload_start SRC 10 -R 50
# ~40 MB of incompressible text in 2 MB transactions: more than the filesystem holds
for i in $(seq 1 20); do
	psql_on SRC "insert into bulk (payload) select string_agg(md5(random()::text), '')
		from generate_series(1, 64) g, generate_series(1, 1000) r group by r" >/dev/null
done
ok "the chat workload ran" workload_wait "$WORKLOAD_PID" pgbench.chat

agent_wait 30
is "$AGENT_STATUS" 1 "the agent stops (exit 1) once its spool cannot be written"
like "$(grep -E 'ERROR|HINT' "$AGENT_LOG" | grep -v guard)" "No space left on device" \
	"the log names the error: no space left"
like "$(grep -E 'HINT' "$AGENT_LOG" | grep -v guard)" "free space on the spool's disk" \
	"and what to do"
mount -o remount,size=200m "$SMALL"
end=$(source_lsn SRC)
agent_start_chat --endpos "$end"
ok "space freed: the same command recovers the spool and applies everything up to $end" agent_wait 90
ok "the target equals the source, every counter increment exactly once" \
	eval 'compare_databases SRC DST && chat_check_counters DST'
