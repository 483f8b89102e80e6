/*
 * The running agent (`switchyard run`): wires source setup, receiver, spool, applier,
 * control socket and timers on one event loop, and `switchyard cleanup`.
 * Both return an exit status from switchyard/exitcode.h.
 */
#ifndef SWITCHYARD_AGENT_H
#define SWITCHYARD_AGENT_H

#include "switchyard/cli.h"

int agent_run(const CliOptions *options);
int agent_cleanup(const CliOptions *options);

#endif
