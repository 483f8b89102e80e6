/*
 * `switchyard verify`: takes a common point of source and target (a temporary slot's
 * exported snapshot at LSN L on the source, the running agent's applier held at L while the
 * target exports its own snapshot), has parity.c compare the tables there, optionally
 * repairs the target, and reports: text or JSON on stdout, the full list of differences in
 * <state-dir>/parity/<time>.json, the latest result per table in <state-dir>/parity/latest.json.
 */
#ifndef SWITCHYARD_VERIFY_H
#define SWITCHYARD_VERIFY_H

#include "switchyard/cli.h"

/* Runs the command; returns the exit status (exitcode.h): EXIT_OK when equal (or repaired). */
int verify_run(const CliOptions *options);

#endif
