#!/usr/bin/env bash
# Bad setups fail fast, with a non-zero exit and a message that names the object, and leave
# nothing half-done (no slot, no publication, no origin); a target that lacks a table or a
# column keeps the agent waiting (it says which) until the DBA fixes it; passwords never
# appear in the agent's log, its status output or its state directory.
. "$(dirname "$0")/lib.sh"
harness_init 170

plan 30

ok "servers start (source and target also on 127.0.0.1 with scram, one with wal_level=replica)" eval '
	pg_start SRC listen_addresses=127.0.0.1 password_encryption=scram-sha-256 &&
	pg_start DST listen_addresses=127.0.0.1 password_encryption=scram-sha-256 &&
	pg_start OLD wal_level=replica' || bail_out "setup failed"
SRC_PW='Src-Pw-8c1f3e!x'
DST_PW='Dst-Pw-51d09a?y'
psql_file SRC - >/dev/null <<SQL
CREATE ROLE sy_admin LOGIN SUPERUSER REPLICATION PASSWORD '$SRC_PW';
CREATE ROLE chat_reader LOGIN;
CREATE TABLE present (id int PRIMARY KEY, v text);
CREATE TABLE late_table (id int PRIMARY KEY, v text);
CREATE TABLE wide (id int PRIMARY KEY, a int);
GRANT SELECT ON ALL TABLES IN SCHEMA public TO chat_reader;
SQL
psql_file DST - >/dev/null <<SQL
CREATE ROLE sy_admin LOGIN SUPERUSER PASSWORD '$DST_PW';
CREATE TABLE present (id int PRIMARY KEY, v text);
CREATE TABLE wide (id int PRIMARY KEY, a int);
SQL
psql_on SRC "insert into present select g, 'p' || g from generate_series(1, 100) g" >/dev/null
psql_on DST "insert into present select g, 'p' || g from generate_series(1, 100) g" >/dev/null
psql_on OLD "create table present (id int primary key, v text)" >/dev/null
pg_hba_prepend SRC "host all all 127.0.0.1/32 scram-sha-256"
pg_hba_prepend DST "host all all 127.0.0.1/32 scram-sha-256"
SRC_TCP="host=127.0.0.1 port=$SRC_PORT dbname=postgres user=sy_admin password=$SRC_PW"
DST_TCP="host=127.0.0.1 port=$DST_PORT dbname=postgres user=sy_admin password=$DST_PW"

# nothing_created SRCNAME: no slot, no publication on that source, no origin on the target.
nothing_created() {
	local s o
	s=$(psql_on "$1" "select (select count(*) from pg_replication_slots) + (select count(*) from pg_publication)")
	o=$(psql_on DST "select count(*) from pg_replication_origin")
	[ "$s" = 0 ] && [ "$o" = 0 ] || { echo "# slots+publications on $1: $s, origins on DST: $o"; return 1; }
}

# drop_leftovers NAME: what a failed run may have left on the source, so that the next case
# starts clean (whether it was left is asserted by nothing_created).
drop_leftovers() {
	psql_on "$1" "select pg_drop_replication_slot(slot_name) from pg_replication_slots where not active" \
		"do \$\$ declare p name; begin for p in select pubname from pg_publication loop
			execute format('drop publication %I', p); end loop; end \$\$" >/dev/null
	psql_on DST "select pg_replication_origin_drop(roname) from pg_replication_origin" >/dev/null
}

# fails_with NAME DESC ERE... : the last fast-fail run exited non-zero (not by timeout) and
# its output matches every ERE (case-insensitive).
fails_with() {
	local name=$1 rc=$2 desc=$3 out re
	shift 3
	out=$(cat "$SY_BASE/$name.out")
	if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		fail "$desc"
		diag "exit status $rc (expected a quick non-zero exit); output:"
		diag "$(head -n 20 "$SY_BASE/$name.out")"
		return 1
	fi
	for re in "$@"; do
		if ! grep -qiE -- "$re" "$SY_BASE/$name.out"; then
			fail "$desc"
			diag "exit status $rc; output does not match /$re/:"
			diag "$(head -n 20 "$SY_BASE/$name.out")"
			return 1
		fi
	done
	pass "$desc"
	diag "$(head -n 3 "$SY_BASE/$name.out")"
}

# 1. wal_level = replica on the source.
agent_run_fg "$SY_BASE/walrep.out" 30 --no-copy --source "$OLD_CONN" --target "$DST_CONN" \
	--state-dir "$SY_BASE/state-walrep"
fails_with walrep $? "source with wal_level=replica: fails, names wal_level" 'wal_level'
ok "... and creates nothing" nothing_created OLD
drop_leftovers OLD

# 2. A role without the REPLICATION attribute.
agent_run_fg "$SY_BASE/norepl.out" 30 --no-copy --source "$SRC_CONN user=chat_reader" \
	--target "$DST_CONN" --state-dir "$SY_BASE/state-norepl"
fails_with norepl $? "role without REPLICATION: fails, names the role and replication" \
	'replication' 'chat_reader'
ok "... and creates nothing" nothing_created SRC
drop_leftovers SRC

# 3. A table with neither a primary key nor a usable replica identity.
psql_on SRC 'create table "Audit Notes" (at timestamptz, note text)' >/dev/null
agent_run_fg "$SY_BASE/noident.out" 30 --no-copy --source "$SRC_CONN" --target "$DST_CONN" \
	--state-dir "$SY_BASE/state-noident"
fails_with noident $? "table without primary key or replica identity: fails, names it" \
	'replica identity' 'Audit Notes'
ok "... and creates nothing" nothing_created SRC
drop_leftovers SRC
psql_on SRC 'drop table "Audit Notes"' >/dev/null

# 4. Wrong password for the source: one clear line, and not the password.
agent_run_fg "$SY_BASE/badpw.out" 30 --no-copy \
	--source "host=127.0.0.1 port=$SRC_PORT dbname=postgres user=sy_admin password=Wrong-$SRC_PW" \
	--target "$DST_CONN" --state-dir "$SY_BASE/state-badpw"
fails_with badpw $? "wrong source password: fails, says authentication failed" 'authentication failed' 'sy_admin'
ok "... in at most 3 lines" test "$(grep -c . "$SY_BASE/badpw.out")" -le 3
ok "... without the password" eval '! grep -qF -- "$SRC_PW" "$SY_BASE/badpw.out"'
ok "... and creates nothing" nothing_created SRC
drop_leftovers SRC

# 5. Target unreachable (a port nobody listens on).
claim_port
dead_port=$SY_CLAIMED_PORT
agent_run_fg "$SY_BASE/down.out" 30 --no-copy --source "$SRC_CONN" \
	--target "host=127.0.0.1 port=$dead_port dbname=postgres user=postgres" --state-dir "$SY_BASE/state-down"
fails_with down $? "unreachable target: fails, names the server" "$dead_port"
ok "... in at most 3 lines" test "$(grep -c . "$SY_BASE/down.out")" -le 3
ok "... and creates nothing" nothing_created SRC
drop_leftovers SRC

# 6. The target lacks a table or a column. At start the agent may refuse (non-zero exit,
# the table named, nothing created) or wait for it; a table or column that appears on the
# source mid-stream cannot be checked in advance: the agent must say which one it waits for,
# keep running, and catch up once the DBA has added it. Passwords in both conninfos.

# log_mentions ERE: a line of the agent log written since log_mark names ERE and a problem.
log_mark() { LOG_MARK=$(($(stat -c %s "$AGENT_LOG" 2>/dev/null || echo 0) + 1)); }
log_mentions() {
	tail -c "+$LOG_MARK" "$AGENT_LOG" | grep -iE -- "$1" |
		grep_q -iE 'error|warn|miss|lack|not exist|cannot|could not|fail|unknown|no such|wait'
}
exited_or_mentions() { ! agent_alive || log_mentions "$1"; }

exited_or_slot() { ! agent_alive || slot_exists SRC; }
late_rows_written=0
write_late_rows() {
	psql_on SRC "insert into late_table select g, 'l' || g from generate_series(1, 50) g" \
		"insert into present values (101, 'after late_table')" >/dev/null
	late_rows_written=1
}

log_mark
agent_start --no-copy --source "$SRC_TCP" --target "$DST_TCP"
wait_for 20 "the agent to exit or create its slot" exited_or_slot
agent_alive && write_late_rows
wait_for 20 "the agent to exit or name late_table" exited_or_mentions late_table
ok "target lacking a table at start: the agent names it" log_mentions late_table
if agent_alive; then
	pass "... and waits for it (keeps running)"
else
	agent_wait 5
	st=$AGENT_STATUS
	ok "... and exits non-zero (status $st) having created nothing" eval '[ "$st" -ne 0 ] && nothing_created SRC'
fi
psql_on DST "create table late_table (id int primary key, v text)" >/dev/null
agent_alive || agent_restart
ok "with the table created, the agent streams (slot created)" wait_slot SRC 30
[ "$late_rows_written" -eq 1 ] || write_late_rows
ok "... and catches up" catch_up SRC 60
is "$(psql_on DST "select count(*) from late_table")/$(psql_on DST "select count(*) from present")" \
	"50/101" "... and late_table's and present's rows are on the target"

log_mark
psql_on SRC "create table newer_table (id int primary key, v text)" \
	"insert into newer_table select g, 'n' || g from generate_series(1, 20) g" \
	"insert into present values (102, 'after newer_table')" >/dev/null
ok "a table created on the source mid-stream, missing on the target: the agent names it" \
	wait_for 30 "newer_table in the log" log_mentions newer_table
sleep 1
ok "... and keeps running" agent_alive
psql_on DST "create table newer_table (id int primary key, v text)" >/dev/null
ok "... and catches up once the table exists on the target" catch_up SRC 60

log_mark
psql_on SRC "alter table wide add column extra_col text" \
	"insert into wide select g, g, 'x' || g from generate_series(1, 30) g" \
	"update present set v = 'after extra_col' where id = 1" >/dev/null
ok "a column added on the source mid-stream, missing on the target: the agent names it" \
	wait_for 30 "extra_col in the log" log_mentions extra_col
sleep 1
ok "... and keeps running" agent_alive
psql_on DST "alter table wide add column extra_col text" >/dev/null
ok "... and catches up once the column exists on the target" catch_up SRC 60
ok "the target equals the source" compare_databases SRC DST

# 7. No password anywhere the agent writes.
status_json=$(agent_status 2>&1)
status_text=$(timeout 15 "$SWITCHYARD" status --state-dir "$AGENT_STATE" 2>&1)
diag "status: $status_json"
ok "status --json works" test -n "$(json_get "$status_json" phase)"
ok "switchyard stop: the agent exits 0" agent_stop 60
leaks() {
	local pw found=0
	for pw in "$SRC_PW" "$DST_PW"; do
		if grep -qF -- "$pw" "$AGENT_LOG"; then echo "# password in the agent log"; found=1; fi
		if printf '%s\n%s\n' "$status_json" "$status_text" | grep_q -F -- "$pw"; then
			echo "# password in the status output"; found=1
		fi
		if grep -rqaF -- "$pw" "$AGENT_STATE" 2>/dev/null; then
			echo "# password in the state directory: $(grep -rlaF -- "$pw" "$AGENT_STATE" | head -n 3)"
			found=1
		fi
	done
	[ "$found" -eq 0 ]
}
ok "no password in the agent log, status output or state directory" leaks
ok "the agent logged something (the leak check saw real output)" test -s "$AGENT_LOG"
