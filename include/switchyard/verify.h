/*
 * `switchyard verify`: takes a common point of source and target (a temporary slot's
 * exported snapshot at LSN L on the source, the running agent's applier held at L while the
 * target exports its own snapshot), has parity.c compare the tables there, optionally
 * repairs the target, and reports: text or JSON on stdout, the full list of differences in
 * <state-dir>/parity/<time>.json, the latest result per table in <state-dir>/parity/latest.json.
 */
#ifndef SWITCHYARD_VERIFY_H
#define SWITCHYARD_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard/cli.h"
#include "switchyard/lsn.h"
#include "switchyard/touched.h"

/* Runs the command; returns the exit status (exitcode.h): EXIT_OK when equal (or repaired). */
int verify_run(const CliOptions *options);

/*
 * The final parity inside the cutover fence, called by the agent: writes are stopped and the
 * applier has drained, so both sides hold still and are compared as they are (no slot, no
 * applier hold; one exported snapshot per side for the parallel sessions). The publication's
 * tables are compared; the report and latest.json are written as by verify, nothing is
 * printed. *clean: no difference and no schema issue; *rows: rows compared per side; why: a
 * one-line summary of the differences, or of the failure when this returns false.
 */
bool verify_compare_now(const CliOptions *options, const char *publication_name, bool *clean,
						uint64_t *rows, char *why, size_t whylen) __attribute__((warn_unused_result));

/*
 * The same in two steps, so that the cutover does the slow part before its fence: connect,
 * read the catalogs, plan the key ranges (prepare); then compare (run), once.
 */
typedef struct VerifyPrepared VerifyPrepared;
bool verify_prepare_now(const CliOptions *options, const char *publication_name, VerifyPrepared **out,
						char *why, size_t whylen) __attribute__((warn_unused_result));
/*
 * touched: the agent's touched keys; each table whose last clean verify (latest.json) is known
 * and whose touched keys since are known is compared on those rows only. NULL: all rows.
 * The report of a comparison that found differences is written at once (why names it); a clean
 * one waits for verify_write_report, so that its fsync'd files are not inside the write pause.
 */
bool verify_run_prepared(VerifyPrepared *prepared, TouchedKeys *touched, bool *clean, uint64_t *rows, char *why,
						 size_t whylen) __attribute__((warn_unused_result));
/* Writes the report (and latest.json) verify_run_prepared left to write; false when it could not. */
bool verify_write_report(VerifyPrepared *prepared);
/*
 * Before the fence, with writes still running: the same comparison at a common point (the
 * agent's applier held there, as verify does), recorded in latest.json, so that the fence has
 * only the rows touched after it to compare.
 */
bool verify_run_before_fence(VerifyPrepared *prepared, TouchedKeys *touched, bool *clean, uint64_t *rows,
							 char *why, size_t whylen) __attribute__((warn_unused_result));
void verify_prepared_free(VerifyPrepared *prepared);
/* One line for the preflight: which tables the final parity would compare by touched keys now. */
void verify_describe_touched(VerifyPrepared *prepared, TouchedKeys *touched, char *buf, size_t len);

/* A table's last clean verify at a common point, from <state-dir>/parity/latest.json. */
typedef struct VerifyBaseline
{
	char *display;
	char *schema;
	char *name;
	Lsn lsn;
} VerifyBaseline;

/* The baselines on record (none when there is no latest.json); false when it cannot be read. */
bool verify_read_baselines(const char *state_dir, VerifyBaseline **out, int *n) __attribute__((warn_unused_result));
void verify_baselines_free(VerifyBaseline *baselines, int n);

#endif
