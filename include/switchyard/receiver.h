/*
 * The receiver: the replication connection to the source on the agent's event loop.
 * START_REPLICATION with pgoutput (proto 2, streaming on); every message goes to the spool;
 * keepalives are answered at once; status feedback reports as flushed only what the spool
 * has made durable. Reconnects by itself with backoff when the source goes away.
 */
#ifndef SWITCHYARD_RECEIVER_H
#define SWITCHYARD_RECEIVER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "switchyard/lsn.h"
#include "switchyard/spool.h"

typedef struct ReceiverOptions
{
	struct event_base *base;
	const char *source_conninfo;
	const char *slot_name;
	const char *publication_name;
	Spool *spool;
	int feedback_interval_ms;     /* 0 = 1000 */
	int max_retry_seconds;        /* reconnect backoff cap; 0 = 30 */
	char *error;                  /* receiver_start's failure, when not NULL */
	size_t error_len;
} ReceiverOptions;

typedef struct ReceiverStats
{
	Lsn received_lsn;     /* the furthest WAL position the source has sent us */
	Lsn flushed_lsn;      /* confirmed to the source (durable in the spool) */
	bool connected;
	bool spool_full;      /* disconnected from the source until the applier frees space */
	bool fatal;           /* streaming cannot go on: the agent stops with exit_code */
	int exit_code;
	uint64_t messages;
	uint64_t reconnects;
	char last_error[512];
} ReceiverStats;

typedef struct Receiver Receiver;

/* Connects and starts streaming; on failure to connect the first time logs and returns false. */
bool receiver_start(const ReceiverOptions *options, Receiver **out) __attribute__((warn_unused_result));
/* Tells the receiver the applied position (reported to the source as "apply"). */
void receiver_set_applied(Receiver *receiver, Lsn applied);
/* Syncs the spool, sends a final status update and closes the connection. Accepts NULL. */
void receiver_free(Receiver *receiver);
void receiver_get_stats(Receiver *receiver, ReceiverStats *out);

#endif
