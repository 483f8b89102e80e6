#!/usr/bin/env bash
# scripts/bench --quick: the benchmark's smoke mode runs every section with tiny sizes and
# writes a report with each section's table, so the benchmark cannot rot between full runs.
# The bench starts its own servers; this test only checks its exit status and its report.
. "$(dirname "$0")/lib.sh"
harness_init 400

plan 8

bench_out=$SY_BASE/bench.md
log=$SY_BASE/bench.log
ok "scripts/bench --quick exits 0" eval '
	SWITCHYARD="$SWITCHYARD" PGBIN="$PGBIN" "$TOP_SRCDIR/scripts/bench" --quick --no-build --output "$bench_out" >"$log" 2>&1 ||
		{ tail -n 40 "$log"; false; }'
grep -E '^\[bench' "$log" | sed 's/^/# /' | tail -n 40

# section N: the lines from its "## N." heading to the next heading
section() {
	awk -v n="## $1." 'index($0, n) == 1 { on = 1; print; next } /^## / { on = 0 } on' "$bench_out" 2>/dev/null
}
# a table row of CONTENDER with at least one figure in it
has_row() {
	section "$1" | grep_q -E "^\| $2 \|.*[0-9]" || { echo "# section $1 has no row for $2:"; section "$1" | sed 's/^/#   /' | head -30; return 1; }
}

ok "1. apply catch-up: switchyard and native rows" eval 'has_row 1 switchyard && has_row 1 native'
ok "2. steady lag: switchyard and native rows" eval 'has_row 2 switchyard && has_row 2 native'
ok "3. initial copy: every contender has a row" eval '
	for c in switchyard raw dump_psql native dump_restore; do has_row 3 "$c" || exit 1; done'
if "$SWITCHYARD" verify --help 2>&1 | grep_q -i 'not available'; then
	like "$(section 4)" 'not measured: command not available yet' "4. verify: reported as not measured"
else
	ok "4. verify: every contender has a row" eval '
		for c in switchyard md5 hashtext copy; do has_row 4 "$c" || exit 1; done'
fi
# the failed-transactions column (the 11th) of a row of section 5
cutover_failed() {
	section 5 | awk -F'|' -v c=" $1 " '$2 == c { gsub(/ /, "", $11); print $11 }'
}
ok "5. cutover: switchyard cutover and the scripted runbook, zero failed client transactions" eval '
	has_row 5 "switchyard cutover" && has_row 5 "scripted runbook" &&
	[ "$(cutover_failed "switchyard cutover")" = 0 ] && [ "$(cutover_failed "scripted runbook")" = 0 ] &&
	section 5 | grep_q "^Target worst client latency < 100 ms" ||
	{ section 5 | sed "s/^/#   /" | head -40; false; }'
ok "6. memory: peak RSS rows" eval 'has_row 6 "[0-9,]+-row transaction, streamed" && has_row 6 "backlog: .*"'
ok "the machine description is there" eval 'grep -q "^- CPU: " "$bench_out" && grep -q "fsync = on" "$bench_out"'
