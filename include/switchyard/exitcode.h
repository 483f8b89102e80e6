/*
 * Exit statuses of the switchyard command, one per kind of failure so scripts can tell them
 * apart (documented in --help and the man page).
 */
#ifndef SWITCHYARD_EXITCODE_H
#define SWITCHYARD_EXITCODE_H

#define EXIT_OK 0
#define EXIT_INTERNAL 1      /* unexpected failure (I/O, out of memory) */
#define EXIT_USAGE 2         /* bad command line or configuration file */
#define EXIT_SOURCE 3        /* source server: unreachable, refused, misconfigured */
#define EXIT_TARGET 4        /* target server: unreachable, refused, missing objects */
#define EXIT_PARITY 5        /* verify found differences */
#define EXIT_CUTOVER 6       /* cutover aborted (rolled back) */
#define EXIT_NO_AGENT 7      /* no running agent / no state directory */
#define EXIT_REFUSED 8       /* the agent declined a control command (pause during a verify...) */

#endif
