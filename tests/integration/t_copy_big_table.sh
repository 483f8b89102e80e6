#!/usr/bin/env bash
# One table of 5 million rows is split into block ranges so that every copy job works on
# it, and the ranges together copy it exactly: no row lost at a range edge, none twice.
. "$(dirname "$0")/lib.sh"
harness_init 300

plan 5

ROWS=${BIG_TABLE_ROWS:-5000000}
ok "a source table of $ROWS rows (and rows deleted in the middle, leaving holes in pages)" eval '
	pg_start SRC && pg_start DST &&
	psql_on SRC "create table big (id bigint primary key, val text not null, n int)
		with (autovacuum_enabled = off)" \
		"insert into big select g, md5(g::text), g % 1000 from generate_series(1, '"$ROWS"') g" \
		"delete from big where id % 97 = 0" "analyze big" >/dev/null'

agent_start --source "$SRC_CONN" --target "$DST_CONN" --jobs 2
ok "the copy finishes and the agent streams" wait_for 240 'phase "streaming"' \
	eval '[ "$(status_get phase)" = streaming ]'
streams=$(sed -n 's/.*copy: 1 tables, .* in \([0-9]*\) streams on.*/\1/p' "$AGENT_LOG" | tail -1)
ok "the table was split into several ranges for 2 jobs ($streams streams)" test "${streams:-0}" -ge 2
diag "$(grep 'copy: done' "$AGENT_LOG" | tail -1 | sed 's/.*copy: //')"
ok "the target equals the source" compare_databases SRC DST
ok "switchyard stop: the agent exits 0" agent_stop 60
