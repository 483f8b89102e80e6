#!/usr/bin/env bash
# The README's hand-run session (the block after "t_readme.sh runs the next block"), run line
# by line as written, from a directory laid out like a checkout (scripts/, tests/, build/):
# every command exits 0, the agent copies and streams, verify finds the tables equal, stop
# ends the agent, cleanup leaves no slot, and pg-sandbox stop removes its servers.
. "$(dirname "$0")/lib.sh"
harness_init 240

README=$TOP_SRCDIR/README.md
mapfile -t LINES < <(awk '/t_readme.sh runs the next block/ { found = 1; next }
	found && /^```sh/ { inside = 1; next }
	inside && /^```/ { exit }
	inside { print }' "$README")

plan $((${#LINES[@]} + 5))

WORK=$SY_BASE/checkout
mkdir -p "$WORK/build" && chmod 755 "$WORK"
ln -s "$TOP_SRCDIR/scripts" "$WORK/scripts"
ln -s "$TOP_SRCDIR/tests" "$WORK/tests"
ln -s "$SWITCHYARD" "$WORK/build/switchyard"
export SWITCHYARD_SANDBOX=$SY_BASE/sandbox

# Whatever happens, the sandbox servers go (they outlive a script by design) and the agent too.
readme_cleanup() {
	[ -d "$SWITCHYARD_SANDBOX" ] && (cd "$WORK" && scripts/pg-sandbox stop >/dev/null 2>&1)
}
trap 'rc=$?; readme_cleanup; (exit $rc); _sy_cleanup' EXIT

if [ "${#LINES[@]}" -lt 5 ]; then
	bail_out "the README block after \"t_readme.sh runs the next block\" was not found"
fi
cd "$WORK" || bail_out "no work directory"
n=0
for line in "${LINES[@]}"; do
	n=$((n + 1))
	out=$SY_BASE/line.$n.out
	eval "$line" </dev/null >"$out" 2>&1
	rc=$?
	if [[ $line =~ \&[[:space:]]*$ ]]; then
		SY_BG_PIDS+=("$!")
		AGENT_BG=$!
		# the agent comes up before the next line uses it, as a person typing would wait
		wait_for 30 "the agent's slot" slot_exists SRC >/dev/null
	fi
	if [ "$rc" -eq 0 ]; then
		pass "README: $line"
	else
		fail "README: $line"
		diag "exit status $rc:"
		diag "$(head -n 15 "$out")"
	fi
	case $line in
	*"switchyard status"*) STATUS_OUT=$(cat "$out") ;;
	*"switchyard verify"*) VERIFY_OUT=$(cat "$out") ;;
	*"switchyard stop"*) STOPPED_AGENT=$AGENT_BG ;;
	*"switchyard cleanup"*) SLOTS_AFTER_CLEANUP=$(psql_on SRC "select count(*) from pg_replication_slots" 2>&1) ;;
	esac
done

like "${STATUS_OUT:-}" 'phase: +streaming \(agent running' "status showed the agent streaming"
like "${VERIFY_OUT:-}" 'equal' "verify reported the tables equal" || diag "${VERIFY_OUT:-}"
ok "stop ended the agent" eval '[ -n "${STOPPED_AGENT:-}" ] && ! _sy_pid_alive "$STOPPED_AGENT"'
is "${SLOTS_AFTER_CLEANUP:-}" 0 "cleanup dropped the replication slot"
ok "pg-sandbox stop removed the servers" eval '[ ! -e "$SWITCHYARD_SANDBOX" ] && [ ! -e try-state ]'
