#!/usr/bin/env bash
# Streaming under the chat workload: four concurrent pgbench clients (so transactions commit
# in another order than they begin, with TOASTed bodies left unchanged by updates, deletes,
# REPLICA IDENTITY FULL with json, hostile names) while the agent streams. The target ends up
# equal to the source; the slot is never confirmed past what the agent calls flushed;
# status, stop and cleanup keep their contract.
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 17

ok "servers, chat schema and seed, copied to the target" chat_setup || bail_out "setup failed"

agent_start_chat
ok "the agent creates its replication slot" wait_slot SRC 30
ok "status reports phase \"streaming\"" wait_for 30 'phase "streaming"' \
	eval '[ "$(status_get phase)" = streaming ]'

chat_workload_start SRC 20
# Durability invariant, sampled while the workload runs. Read the slot first, then the
# status: the slot may only have been confirmed up to what the agent had flushed already.
samples=0 unset_samples=0 violations=0
while _sy_pid_alive "$WORKLOAD_PID"; do
	confirmed=$(slot_confirmed_lsn SRC 2>/dev/null)
	flushed=$(status_get flushed_lsn 2>/dev/null)
	if [ -n "$confirmed" ] && [ -n "$flushed" ]; then
		if [ "$flushed" = 0/0 ]; then
			unset_samples=$((unset_samples + 1))
		else
			samples=$((samples + 1))
			lsn_ge "$flushed" "$confirmed" || {
				violations=$((violations + 1))
				diag "slot confirmed_flush_lsn $confirmed > status flushed_lsn $flushed"
			}
		fi
	fi
	sleep 0.5
done
ok "the chat workload ran without errors" workload_wait "$WORKLOAD_PID" pgbench.chat
[ "$unset_samples" -gt 0 ] && diag "$unset_samples samples with flushed_lsn 0/0 skipped"
ok "slot confirmed_flush_lsn never ahead of status flushed_lsn during the workload ($samples samples)" \
	test "$violations" -eq 0 -a "$samples" -ge 10

end=$(source_lsn SRC)
ok "the agent applies everything up to $end" wait_applied "$end" 90

# The status JSON: the fields, LSNs as X/X, lags as numbers, and a consistent order.
confirmed=$(slot_confirmed_lsn SRC)
status=$(agent_status)
diag "status: $status"
missing=
for f in phase received_lsn flushed_lsn applied_lsn lag_bytes lag_seconds; do
	[ -n "$(json_get "$status" "$f")" ] || missing="$missing $f"
done
is "$missing" "" "status --json has phase, received_lsn, flushed_lsn, applied_lsn, lag_bytes, lag_seconds"
received=$(json_get "$status" received_lsn)
flushed=$(json_get "$status" flushed_lsn)
applied=$(json_get "$status" applied_lsn)
status_formats_ok() {
	local l
	for l in "$received" "$flushed" "$applied"; do
		[[ $l =~ ^[0-9A-F]+/[0-9A-F]+$ ]] || return 1
	done
	[[ $(json_get "$status" lag_bytes) =~ ^[0-9]+$ ]] &&
		[[ $(json_get "$status" lag_seconds) =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]
}
ok "LSNs are X/X strings, lags are numbers" status_formats_ok
ok "received_lsn >= flushed_lsn >= slot confirmed_flush_lsn, received_lsn >= applied_lsn" eval '
	lsn_ge "$received" "$flushed" && lsn_ge "$flushed" "$confirmed" && lsn_ge "$received" "$applied"'

ok "the target equals the source" compare_databases SRC DST
ok "every counter increment arrived exactly once" chat_check_counters DST
ok "switchyard stop: the agent exits 0" agent_stop 60
status=$(agent_status 2>&1)
ok "status of a stopped agent (from its state) still shows applied_lsn >= $end" \
	lsn_ge "$(json_get "$status" applied_lsn)" "$end" || diag "status: $status"

out=$(timeout 60 "$SWITCHYARD" cleanup --state-dir "$AGENT_STATE" --source "$SRC_CONN" \
	--target "$DST_CONN" 2>&1)
rc=$?
is "$rc" 0 "switchyard cleanup exits 0" || diag "$out"
is "$(psql_on SRC "select (select count(*) from pg_replication_slots) || ' slots, ' ||
	(select count(*) from pg_publication) || ' publications'")" "0 slots, 0 publications" \
	"cleanup dropped the slot and the publication on the source"
is "$(psql_on DST "select count(*) from pg_replication_origin")" 0 \
	"cleanup dropped the replication origin on the target"
ok "cleanup removed the agent's state" eval '[ ! -e "$AGENT_STATE" ] || [ -z "$(ls -A "$AGENT_STATE")" ]'
