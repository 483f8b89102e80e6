#!/usr/bin/env bash
# The README's first command, scripts/demo, run end to end as CI would (CI=true, no terminal,
# --quick): it exits 0, its final comparison (psql alone, after the cutover) reports the source's
# rows all on the target, every step it narrates succeeded, and it leaves nothing running.
. "$(dirname "$0")/lib.sh"
harness_init 420

plan 6

OUT=$SY_BASE/demo.out
# SWITCHYARD (exported by make check) makes the demo use this build instead of building one.
CI=true SWITCHYARD="$SWITCHYARD" timeout -k 10 400 bash "$TOP_SRCDIR/scripts/demo" --quick </dev/null >"$OUT" 2>&1
rc=$?
dir=$(sed -n 's/^ *Two PostgreSQL .* servers in \([^ ,]*\),.*/\1/p' "$OUT" | head -n 1)

is "$rc" 0 "scripts/demo --quick exits 0" || diag_file "$OUT" 80
like "$(cat "$OUT")" 'FINAL COMPARISON: EQUAL — [0-9]+ tables, [0-9]+ rows of the source, each one on the target\.' \
	"its final comparison, after the cutover, reports equality"
like "$(cat "$OUT")" 'verify: every table equal \(exit 0\)' "its verify under load found the tables equal"
like "$(cat "$OUT")" 'Switched: PgBouncer.s "chat" now leads to the target' "its cutover switched PgBouncer to the target"
like "$(cat "$OUT")" 'The application saw no failed transaction' \
	"the application writing through the cutover saw no failed transaction"
# leftovers DIR: processes whose command line names DIR (servers, PgBouncer, pgbench, agent).
leftovers() {
	local f
	for f in /proc/[0-9]*/cmdline; do
		tr '\0' ' ' <"$f" 2>/dev/null | grep_q -F -- "$1" && echo "# still running: ${f%/cmdline}"
	done
	return 0
}
ok "it removed its servers and directory (${dir:-no directory found in the output})" \
	eval '[ -n "$dir" ] && [ ! -e "$dir" ] && [ -z "$(leftovers "$dir")" ]'
