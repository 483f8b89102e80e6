/*
 * The spool: CRC-framed protobuf records in numbered segment files, appended by the receiver
 * and read back by the applier's thread once fsync'd; streamed transactions wait in one file
 * per top-level xid until their stream commit. The contract is in switchyard/spool.h.
 */
#include "switchyard/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool.pb-c.h"
#include "switchyard/crc32c.h"
#include "switchyard/log.h"
#include "switchyard/monotonic.h"

#define SPOOL_DEFAULT_MAX_BYTES (UINT64_C(8) << 30)
#define SPOOL_DEFAULT_SEGMENT_BYTES (UINT64_C(64) << 20)
#define SPOOL_MIN_SEGMENT_BYTES (UINT64_C(256) << 10)
#define SPOOL_SYNC_PACE_US 10000       /* one fdatasync started per 10 ms at most, unless hurried */

#define SPOOL_WRITE_BUFFER_BYTES (1024 * 1024)
#define SPOOL_STREAM_BUFFER_BYTES (256 * 1024)
#define SPOOL_READ_BUFFER_BYTES (128 * 1024)
#define SPOOL_PROBE_WINDOW_BYTES (1024 * 1024)
/* Boundaries remembered for a hold point slightly behind what is already spooled. */
#define SPOOL_RECENT_BOUNDARIES 4096
/* Open streams beyond this share descriptors: the least recently used one is closed. */
#define SPOOL_MAX_STREAM_FDS 32

/*
 * On disk: <dir>/<16 hex>.seg, stream-<xid 8 hex>.open and, once committed,
 * stream-<xid>-<end_lsn 16 hex>.commit. Every file starts with a 24-byte header: "SWYSPOOL",
 * u32 format version, u32 file kind (1 segment, 2 stream), u64 segment number or xid; then
 * frames [u32 len][u32 crc32c of the record][packed SpoolRecord], all little-endian. A new
 * segment is only started right after a boundary record, so no transaction spans two
 * segments and a crash can leave a partial one only at the end of the last segment.
 */
#define SPOOL_FILE_HEADER_BYTES 24
#define SPOOL_FRAME_HEADER_BYTES 8
#define SPOOL_FORMAT_VERSION 1
#define SPOOL_FILE_SEGMENT 1
#define SPOOL_FILE_STREAM 2
static const uint8_t spool_magic[8] = {'S', 'W', 'Y', 'S', 'P', 'O', 'O', 'L'};

/* PostgreSQL cannot build an output message beyond its 1 GB allocation limit, so a larger
 * length field is damage, not data. */
#define SPOOL_MAX_RECORD_BYTES ((UINT32_C(1) << 30) + 4096)

/* "stream-XXXXXXXX-XXXXXXXXXXXXXXXX.commit" is the longest name we make. */
#define SPOOL_NAME_BYTES 48

#define SPOOL_CORRUPT_HINT \
	"The spool holds changes that may not be on the target yet. Restore the file from a " \
	"backup, or remove the state directory and start the migration again from a new copy."

/* An output file: a segment or a stream. Buffered bytes sit at [written, size). */
typedef struct SpoolOut
{
	int fd;
	const char *label;        /* "spool segment" or "spool stream file", for messages */
	char name[SPOOL_NAME_BYTES];
	uint64_t written;         /* bytes handed to the kernel */
	uint64_t size;            /* bytes appended, buffered or not */
} SpoolOut;

typedef struct SpoolBuffer
{
	uint8_t *data;
	size_t len;
	size_t cap;
	SpoolOut *owner;          /* the file the buffered bytes belong to */
} SpoolBuffer;

typedef struct SpoolSubxact
{
	uint32_t subxid;
	uint64_t offset;          /* frame offset of the subtransaction's first change */
} SpoolSubxact;

typedef struct SpoolStream
{
	SpoolOut out;
	uint32_t xid;
	uint64_t last_use;        /* for closing the least recently used descriptor */
	SpoolSubxact *subxacts;   /* in file order, so offsets ascend */
	size_t nsubxacts;
	size_t subxacts_cap;
} SpoolStream;

typedef struct SpoolRelation
{
	uint32_t relid;
	uint8_t *data;
	size_t len;
} SpoolRelation;

typedef struct SpoolSegment
{
	uint64_t number;
	uint64_t size;            /* final once the segment is no longer written */
} SpoolSegment;

/* A committed stream file and where its STREAM_COMMIT record lies. */
typedef struct SpoolCommitted
{
	uint32_t xid;
	Lsn end_lsn;
	uint64_t size;
	SpoolPosition position;
} SpoolCommitted;

struct Spool
{
	char *dir;
	int dirfd;
	uint64_t max_bytes;
	uint64_t segment_bytes;

	/* Writer (receiver thread) only. */
	bool broken;              /* a write or fsync failed: nothing more is accepted */
	SpoolOut segment;
	uint64_t segment_number;
	uint64_t segment_synced;  /* bytes of the current segment known durable */
	SpoolBuffer write_buffer;
	SpoolBuffer stream_buffer;
	bool at_boundary;         /* the last record appended carried a boundary */
	uint64_t boundary_end;    /* segment size just after the last boundary (or the preamble) */
	bool unsynced;
	Lsn appended_lsn;
	SpoolRelation *relations;
	size_t nrelations;
	size_t relations_cap;
	SpoolStream **streams;
	size_t nstreams;
	size_t streams_cap;
	int stream_fds;
	uint64_t stream_clock;

	/* Recent boundaries (writer only): where a hold set a little in the past must stop. */
	struct
	{
		Lsn lsn;
		uint64_t segment;
		uint64_t end;
	} recent[SPOOL_RECENT_BOUNDARIES];
	size_t recent_next;
	size_t recent_count;

	/* Read by other threads. */
	_Atomic uint64_t size_bytes;
	atomic_bool hold_active;
	_Atomic uint64_t open_streams;

	/* Shared with the reader and spool_release, under mutex. */
	pthread_mutex_t mutex;
	pthread_cond_t published;
	bool sync_objects;        /* mutex and cond are initialised */
	bool reader_waited;       /* the reader has reached the published end (no hold before it) */
	uint64_t reader_end_generation;  /* the publication whose end it reached last */
	SpoolSegment *segments;   /* ascending; the last one is being written */
	size_t nsegments;
	size_t segments_cap;
	SpoolCommitted *committed; /* ascending by position */
	size_t ncommitted;
	size_t committed_cap;
	uint64_t pub_segment;     /* the reader may read up to (pub_segment, pub_size) */
	uint64_t pub_size;
	uint64_t pub_generation;
	Lsn durable_lsn;
	bool wakeup_pending;
	/* the parity barrier: the reader sees nothing past the last boundary <= hold_lsn */
	Lsn hold_lsn;
	SpoolPosition hold_end;   /* segment and byte just after that boundary record */
	Lsn hold_visible_lsn;     /* that boundary */
	bool dir_dirty;           /* a file was created, renamed or removed since the last fsync */

	/*
	 * The syncer thread, under mutex: fdatasync takes milliseconds, and a receiver blocked in
	 * it leaves the next transaction waiting in the socket. The writer asks (fd, bytes, LSN),
	 * the syncer makes them durable and raises durable_lsn; anything that closes, truncates
	 * or syncs the segment itself waits for the syncer to be idle first.
	 */
	pthread_t syncer;
	bool syncer_running;
	pthread_cond_t sync_wake;     /* the syncer waits here for a request or stop */
	pthread_cond_t sync_idle;     /* the writer waits here for the syncer to finish */
	bool sync_requested;
	bool sync_busy;
	bool sync_stop;
	bool sync_hurry;              /* someone waits for durability: no pacing for this request */
	bool sync_failed;             /* an fsync failed: the writer turns broken */
	int sync_fd;
	bool sync_dir;
	Lsn sync_lsn;
	int sync_event_fd;            /* written after each background sync (receiver wakes) */
};

/* Reads frames from one file up to a limit that may move forward (the durable end). */
typedef struct SpoolScan
{
	int fd;
	const char *label;
	char name[SPOOL_NAME_BYTES];
	uint64_t offset;          /* file offset of data[pos] */
	uint8_t *data;
	size_t pos;
	size_t end;
	size_t cap;
} SpoolScan;

typedef enum SpoolFrameResult
{
	SPOOL_FRAME_OK,
	SPOOL_FRAME_END,          /* exactly at the limit */
	SPOOL_FRAME_TRUNCATED,    /* the limit cuts the frame */
	SPOOL_FRAME_BAD_LENGTH,
	SPOOL_FRAME_BAD_CRC,
	SPOOL_FRAME_BAD_RECORD,   /* checksum fine, but not a SpoolRecord we know */
	SPOOL_FRAME_IO_ERROR      /* already logged */
} SpoolFrameResult;

typedef struct SpoolFrame
{
	const uint8_t *payload;   /* valid until the next read on the scan */
	uint32_t len;
	uint64_t offset;
} SpoolFrame;

struct SpoolReader
{
	Spool *spool;
	bool stream;
	uint64_t segment;         /* the segment being read; a stream reader's xid */
	uint64_t limit;           /* stream: the file size; main: a sealed segment's size */
	bool sealed;              /* main: the segment is no longer written, limit is final */
	uint64_t next_segment;    /* main, when sealed: the segment after it */
	SpoolScan scan;
	SpoolRecord *record;      /* the entry returned last */
};

/* Streams a record larger than the write buffer: one pass for the checksum, one to write. */
typedef struct SpoolSink
{
	ProtobufCBuffer base;
	Spool *spool;
	SpoolOut *out;
	SpoolBuffer *buffer;
	uint32_t crc;
	bool crc_only;
	bool failed;
} SpoolSink;

/* ---- small helpers ------------------------------------------------------------------- */

static inline void
spool_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
	p[2] = (uint8_t) (v >> 16);
	p[3] = (uint8_t) (v >> 24);
}

static inline void
spool_put_le64(uint8_t *p, uint64_t v)
{
	spool_put_le32(p, (uint32_t) v);
	spool_put_le32(p + 4, (uint32_t) (v >> 32));
}

static inline uint32_t
spool_get_le32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
		((uint32_t) p[3] << 24);
}

static inline uint64_t
spool_get_le64(const uint8_t *p)
{
	return (uint64_t) spool_get_le32(p) | ((uint64_t) spool_get_le32(p + 4) << 32);
}

static void
spool_segment_name(uint64_t number, char *name)
{
	snprintf(name, SPOOL_NAME_BYTES, "%016" PRIX64 ".seg", number);
}

static void
spool_stream_open_name(uint32_t xid, char *name)
{
	snprintf(name, SPOOL_NAME_BYTES, "stream-%08" PRIX32 ".open", xid);
}

static void
spool_stream_commit_name(uint32_t xid, Lsn end_lsn, char *name)
{
	snprintf(name, SPOOL_NAME_BYTES, "stream-%08" PRIX32 "-%016" PRIX64 ".commit", xid, end_lsn);
}

static bool
spool_parse_hex(const char *text, size_t len, uint64_t *out)
{
	uint64_t value = 0;

	for (size_t i = 0; i < len; i++)
	{
		char c = text[i];
		unsigned digit;

		if (c >= '0' && c <= '9')
			digit = (unsigned) (c - '0');
		else if (c >= 'A' && c <= 'F')
			digit = (unsigned) (c - 'A' + 10);
		else if (c >= 'a' && c <= 'f')
			digit = (unsigned) (c - 'a' + 10);
		else
			return false;
		value = (value << 4) | digit;
	}
	*out = value;
	return true;
}

static int
spool_position_compare(SpoolPosition a, SpoolPosition b)
{
	if (a.segment != b.segment)
		return a.segment < b.segment ? -1 : 1;
	if (a.offset != b.offset)
		return a.offset < b.offset ? -1 : 1;
	return 0;
}

static void
spool_file_header(uint8_t *header, uint32_t kind, uint64_t number)
{
	memcpy(header, spool_magic, sizeof(spool_magic));
	spool_put_le32(header + 8, SPOOL_FORMAT_VERSION);
	spool_put_le32(header + 12, kind);
	spool_put_le64(header + 16, number);
}

static bool
spool_file_header_ok(const uint8_t *header, uint32_t kind, uint64_t number)
{
	return memcmp(header, spool_magic, sizeof(spool_magic)) == 0 &&
		spool_get_le32(header + 8) == SPOOL_FORMAT_VERSION &&
		spool_get_le32(header + 12) == kind && spool_get_le64(header + 16) == number;
}

/* Grows *array (of elem_size elements) so that one more fits. */
static bool
spool_grow(void **array, size_t *cap, size_t count, size_t elem_size)
{
	size_t new_cap;
	void *grown;

	if (count < *cap)
		return true;
	new_cap = *cap == 0 ? 16 : *cap * 2;
	grown = realloc(*array, new_cap * elem_size);
	if (grown == NULL)
	{
		log_error("out of memory");
		return false;
	}
	*array = grown;
	*cap = new_cap;
	return true;
}

/* After a failed write or fsync the file's state is unknown (and a retried fsync may
 * report success for lost data), so the writer stops; recovery at the next start decides. */
static void
spool_set_broken(Spool *spool)
{
	spool->broken = true;
	log_hint("The spool accepts no more changes after a failed write; restart the agent to "
			 "recover it.");
}

static bool
spool_fsync_dir(Spool *spool)
{
	if (fsync(spool->dirfd) != 0)
	{
		log_error("could not fsync spool directory \"%s\": %m", spool->dir);
		spool_set_broken(spool);
		return false;
	}
	return true;
}

/* Creates dir and any missing parents; a new directory's entry is fsync'd in its parent,
 * or a crash could lose the whole spool after its LSN was confirmed. */
static bool
spool_make_dir(const char *dir)
{
	char *path = strdup(dir);
	bool ok = false;

	if (path == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	for (char *p = path + 1;; p++)
	{
		char saved = *p;

		if (saved != '/' && saved != '\0')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) == 0)
		{
			char *slash = strrchr(path, '/');
			const char *parent = slash == NULL ? "." : (slash == path ? "/" : path);
			int fd;

			if (slash != NULL && slash != path)
				*slash = '\0';
			fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0 || fsync(fd) != 0)
			{
				log_error("could not fsync directory \"%s\": %m", parent);
				if (fd >= 0)
					close(fd);
				goto cleanup;
			}
			close(fd);
			if (slash != NULL && slash != path)
				*slash = '/';
		}
		else if (errno != EEXIST)
		{
			log_error("could not create spool directory \"%s\": %m", path);
			goto cleanup;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	ok = true;
cleanup:
	free(path);
	return ok;
}

/* ---- buffered output ----------------------------------------------------------------- */

static bool
spool_out_write(Spool *spool, SpoolOut *out, const uint8_t *data, size_t len)
{
	while (len > 0)
	{
		ssize_t n = pwrite(out->fd, data, len, (off_t) out->written);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			if (n == 0)
				errno = ENOSPC;
			log_error("could not write to %s \"%s/%s\": %m", out->label, spool->dir, out->name);
			spool_set_broken(spool);
			return false;
		}
		data += n;
		len -= (size_t) n;
		out->written += (uint64_t) n;
	}
	return true;
}

static bool
spool_buffer_flush(Spool *spool, SpoolBuffer *buffer)
{
	if (buffer->len > 0 && buffer->owner != NULL &&
		!spool_out_write(spool, buffer->owner, buffer->data, buffer->len))
		return false;
	buffer->len = 0;
	return true;
}

static bool
spool_out_datasync(Spool *spool, SpoolOut *out)
{
	if (fdatasync(out->fd) != 0)
	{
		log_error("could not fsync %s \"%s/%s\": %m", out->label, spool->dir, out->name);
		spool_set_broken(spool);
		return false;
	}
	return true;
}

/* Appends raw bytes to out through buffer (which must belong to out). */
static bool
spool_out_put(Spool *spool, SpoolOut *out, SpoolBuffer *buffer, const uint8_t *data, size_t len)
{
	if (buffer->len + len > buffer->cap && !spool_buffer_flush(spool, buffer))
		return false;
	if (len >= buffer->cap)
	{
		/* Larger than the whole buffer: copying it through would only cost time. */
		if (!spool_out_write(spool, out, data, len))
			return false;
	}
	else
	{
		memcpy(buffer->data + buffer->len, data, len);
		buffer->len += len;
	}
	out->size += len;
	atomic_fetch_add(&spool->size_bytes, len);
	return true;
}

static void
spool_sink_append(ProtobufCBuffer *base, size_t len, const uint8_t *data)
{
	SpoolSink *sink = (SpoolSink *) base;

	if (sink->crc_only)
		sink->crc = crc32c(sink->crc, data, len);
	else if (!sink->failed && !spool_out_put(sink->spool, sink->out, sink->buffer, data, len))
		sink->failed = true;
}

/* Frames and appends one record; *frame_offset receives where the frame starts. Packs
 * straight into the write buffer, so steady-state appends allocate nothing. */
static bool
spool_out_append(Spool *spool, SpoolOut *out, SpoolBuffer *buffer, const SpoolRecord *record,
				 uint64_t *frame_offset)
{
	size_t len = spool_record__get_packed_size(record);
	size_t frame_len = SPOOL_FRAME_HEADER_BYTES + len;
	uint8_t header[SPOOL_FRAME_HEADER_BYTES];
	SpoolSink sink;

	if (len > SPOOL_MAX_RECORD_BYTES)
	{
		log_error("spool record of %zu bytes is larger than the limit of %" PRIu32 " bytes",
				  len, SPOOL_MAX_RECORD_BYTES);
		return false;
	}
	if (buffer->len + frame_len > buffer->cap && !spool_buffer_flush(spool, buffer))
		return false;
	*frame_offset = out->size;
	if (frame_len <= buffer->cap - buffer->len)
	{
		uint8_t *frame = buffer->data + buffer->len;

		spool_record__pack(record, frame + SPOOL_FRAME_HEADER_BYTES);
		spool_put_le32(frame, (uint32_t) len);
		spool_put_le32(frame + 4, crc32c(0, frame + SPOOL_FRAME_HEADER_BYTES, len));
		buffer->len += frame_len;
		out->size += frame_len;
		atomic_fetch_add(&spool->size_bytes, frame_len);
		return true;
	}

	memset(&sink, 0, sizeof(sink));
	sink.base.append = spool_sink_append;
	sink.spool = spool;
	sink.out = out;
	sink.buffer = buffer;
	sink.crc_only = true;
	spool_record__pack_to_buffer(record, &sink.base);
	spool_put_le32(header, (uint32_t) len);
	spool_put_le32(header + 4, sink.crc);
	if (!spool_out_put(spool, out, buffer, header, sizeof(header)))
		return false;
	sink.crc_only = false;
	spool_record__pack_to_buffer(record, &sink.base);
	return !sink.failed;
}

/* ---- main segments: writer ----------------------------------------------------------- */

static bool
spool_append_record(Spool *spool, const SpoolRecord *record, SpoolPosition *where)
{
	uint64_t offset = 0;

	if (!spool_out_append(spool, &spool->segment, &spool->write_buffer, record, &offset))
		return false;
	spool->unsynced = true;
	if (where != NULL)
	{
		where->segment = spool->segment_number;
		where->offset = offset;
	}
	return true;
}

/* Starts segment number: header and relation preamble go to the write buffer, durable
 * and visible to the reader at the next spool_sync. */
static bool
spool_segment_start(Spool *spool, uint64_t number)
{
	uint8_t header[SPOOL_FILE_HEADER_BYTES];
	SpoolOut *out = &spool->segment;
	bool grown;
	int fd;

	/* Under the mutex: the reader thread looks at the array while it may move. */
	pthread_mutex_lock(&spool->mutex);
	grown = spool_grow((void **) &spool->segments, &spool->segments_cap, spool->nsegments,
					   sizeof(SpoolSegment));
	pthread_mutex_unlock(&spool->mutex);
	if (!grown)
		return false;
	spool_segment_name(number, out->name);
	fd = openat(spool->dirfd, out->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
	{
		log_error("could not create spool segment \"%s/%s\": %m", spool->dir, out->name);
		spool_set_broken(spool);
		return false;
	}
	out->fd = fd;
	out->label = "spool segment";
	out->written = 0;
	out->size = 0;
	spool->segment_number = number;
	spool->segment_synced = 0;
	spool->write_buffer.owner = out;
	spool->write_buffer.len = 0;

	pthread_mutex_lock(&spool->mutex);
	spool->segments[spool->nsegments].number = number;
	spool->segments[spool->nsegments].size = 0;
	spool->nsegments++;
	spool->dir_dirty = true;
	pthread_mutex_unlock(&spool->mutex);

	spool_file_header(header, SPOOL_FILE_SEGMENT, number);
	if (!spool_out_put(spool, out, &spool->write_buffer, header, sizeof(header)))
		return false;
	spool->unsynced = true;
	spool->at_boundary = true;

	/* Relation messages first, so a reader starting here can decode every change. */
	for (size_t i = 0; i < spool->nrelations; i++)
	{
		SpoolRecord record = SPOOL_RECORD__INIT;

		record.kind = SPOOL_RECORD__KIND__CHANGE;
		record.pgoutput.data = spool->relations[i].data;
		record.pgoutput.len = spool->relations[i].len;
		if (!spool_append_record(spool, &record, NULL))
			return false;
	}
	spool->boundary_end = out->size;
	return true;
}

static bool spool_syncer_quiesce(Spool *spool) __attribute__((warn_unused_result));

/* Closes the current segment (made durable now, so nothing older needs tracking) and
 * starts the next one. */
static bool
spool_segment_roll(Spool *spool)
{
	SpoolOut *out = &spool->segment;

	if (!spool_syncer_quiesce(spool) || !spool_buffer_flush(spool, &spool->write_buffer) ||
		!spool_out_datasync(spool, out))
		return false;
	close(out->fd);
	out->fd = -1;

	pthread_mutex_lock(&spool->mutex);
	spool->segments[spool->nsegments - 1].size = out->size;
	pthread_mutex_unlock(&spool->mutex);

	return spool_segment_start(spool, spool->segment_number + 1);
}

/* A boundary record was appended: remember where it ends, and move a hold that covers it. */
static void
spool_note_boundary(Spool *spool, Lsn boundary)
{
	spool->recent[spool->recent_next].lsn = boundary;
	spool->recent[spool->recent_next].segment = spool->segment_number;
	spool->recent[spool->recent_next].end = spool->segment.size;
	spool->recent_next = (spool->recent_next + 1) % SPOOL_RECENT_BOUNDARIES;
	if (spool->recent_count < SPOOL_RECENT_BOUNDARIES)
		spool->recent_count++;
	if (atomic_load(&spool->hold_active))
	{
		pthread_mutex_lock(&spool->mutex);
		if (spool->hold_lsn != LSN_INVALID && boundary <= spool->hold_lsn)
		{
			spool->hold_end.segment = spool->segment_number;
			spool->hold_end.offset = spool->segment.size;
			spool->hold_visible_lsn = boundary;
		}
		pthread_mutex_unlock(&spool->mutex);
	}
}

/* Under the mutex: the hold at the last boundary appended, everything the spool holds now. */
static void
spool_hold_at_end(Spool *spool)
{
	spool->hold_end.segment = spool->segment_number;
	spool->hold_end.offset = spool->boundary_end;
	spool->hold_visible_lsn = spool->appended_lsn;
}

/* Under the mutex, after a hold changed: the reader looks at its limit again; a paced fsync
 * is waited for now. */
static void
spool_hold_changed(Spool *spool)
{
	spool->pub_generation++;
	pthread_cond_broadcast(&spool->published);
	pthread_cond_signal(&spool->sync_wake);
}

bool
spool_set_hold(Spool *spool, Lsn lsn)
{
	bool ok = true;

	pthread_mutex_lock(&spool->mutex);
	if (lsn == LSN_INVALID)
	{
		spool->hold_lsn = LSN_INVALID;
		atomic_store(&spool->hold_active, false);
	}
	else
	{
		bool found = false;

		/* the newest boundary at or before lsn among the recent ones */
		for (size_t i = 0; i < spool->recent_count && !found; i++)
		{
			size_t at = (spool->recent_next + SPOOL_RECENT_BOUNDARIES - 1 - i) % SPOOL_RECENT_BOUNDARIES;

			if (spool->recent[at].lsn <= lsn)
			{
				spool->hold_end.segment = spool->recent[at].segment;
				spool->hold_end.offset = spool->recent[at].end;
				spool->hold_visible_lsn = spool->recent[at].lsn;
				found = true;
			}
		}
		if (!found && spool->recent_count == 0 && spool->appended_lsn <= lsn)
		{
			/* nothing appended since the spool was opened: all it holds lies before lsn */
			spool_hold_at_end(spool);
			found = true;
		}
		if (found)
		{
			spool->hold_lsn = lsn;
			atomic_store(&spool->hold_active, true);
		}
		ok = found;
	}
	spool_hold_changed(spool);
	pthread_mutex_unlock(&spool->mutex);
	return ok;
}

void
spool_hold_now(Spool *spool)
{
	pthread_mutex_lock(&spool->mutex);
	spool_hold_at_end(spool);
	/* later boundaries lie past it: spool_note_boundary does not move this hold */
	spool->hold_lsn = spool->appended_lsn;
	atomic_store(&spool->hold_active, true);
	spool_hold_changed(spool);
	pthread_mutex_unlock(&spool->mutex);
}

bool
spool_hold_visible(Spool *spool, Lsn *visible)
{
	bool active;

	pthread_mutex_lock(&spool->mutex);
	active = atomic_load(&spool->hold_active);
	*visible = spool->hold_visible_lsn;
	pthread_mutex_unlock(&spool->mutex);
	return active;
}

bool
spool_append(Spool *spool, SpoolRecordKind kind, Lsn lsn, const void *pgoutput, size_t len,
			 Lsn boundary)
{
	SpoolRecord record = SPOOL_RECORD__INIT;

	if (spool->broken)
		return false;
	if (kind < SPOOL_CHANGE || kind > SPOOL_STREAM_CHANGE)
	{
		log_error("invalid spool record kind %d", (int) kind);
		return false;
	}
	/* Only between transactions, so that no transaction spans two segments. */
	if (spool->at_boundary && spool->segment.size >= spool->segment_bytes &&
		!spool_segment_roll(spool))
		return false;

	record.kind = (SpoolRecord__Kind) kind;
	record.lsn = lsn;
	record.pgoutput.data = (uint8_t *) pgoutput;
	record.pgoutput.len = len;
	record.boundary = boundary;
	if (!spool_append_record(spool, &record, NULL))
		return false;
	if (boundary != LSN_INVALID)
	{
		if (boundary > spool->appended_lsn)
			spool->appended_lsn = boundary;
		spool->at_boundary = true;
		spool->boundary_end = spool->segment.size;
		spool_note_boundary(spool, boundary);
	}
	else
		spool->at_boundary = false;
	return true;
}

bool
spool_remember_relation(Spool *spool, uint32_t relid, const void *pgoutput, size_t len)
{
	SpoolRelation *relation = NULL;
	uint8_t *copy = malloc(len > 0 ? len : 1);

	if (copy == NULL)
	{
		log_error("out of memory");
		return false;
	}
	if (len > 0)
		memcpy(copy, pgoutput, len);
	for (size_t i = 0; i < spool->nrelations; i++)
	{
		if (spool->relations[i].relid == relid)
		{
			relation = &spool->relations[i];
			free(relation->data);
			break;
		}
	}
	if (relation == NULL)
	{
		if (!spool_grow((void **) &spool->relations, &spool->relations_cap, spool->nrelations,
						sizeof(SpoolRelation)))
		{
			free(copy);
			return false;
		}
		relation = &spool->relations[spool->nrelations++];
		relation->relid = relid;
	}
	relation->data = copy;
	relation->len = len;
	return true;
}

/*
 * Shows the reader every whole transaction appended, before it is durable: the applier
 * overlaps the target's work with the fsync. Safe because what is confirmed to the source
 * still waits for spool_sync, and the target's replication origin decides what is applied:
 * after a crash the source sends again what the spool lost, and the applier skips what the
 * target already holds.
 */
bool
spool_publish(Spool *spool)
{
	if (spool->broken)
		return false;
	if (!spool_buffer_flush(spool, &spool->write_buffer))
		return false;
	pthread_mutex_lock(&spool->mutex);
	if (spool->pub_segment != spool->segment_number || spool->pub_size != spool->boundary_end)
	{
		spool->segments[spool->nsegments - 1].size = spool->segment.size;
		spool->pub_segment = spool->segment_number;
		spool->pub_size = spool->boundary_end;
		spool->pub_generation++;
		pthread_cond_broadcast(&spool->published);
	}
	pthread_mutex_unlock(&spool->mutex);
	return true;
}

/*
 * Under a steady stream the receiver asks for an fsync on every wakeup, and each fdatasync
 * costs device round trips (most of the agent's CPU in a catch-up was the syncer's). Waiting
 * until SPOOL_SYNC_PACE_US after the previous one started lets one fsync cover many requests.
 * The applier does not wait for it (it reads published bytes); only the source's confirmation
 * does. Whoever waits for durability itself (a quiesce, a parity or cutover hold, a stop)
 * cuts the wait short. Called and returns with the mutex held.
 */
static void
spool_syncer_pace(Spool *spool, int64_t last_start)
{
	int64_t due = last_start + SPOOL_SYNC_PACE_US;

	while (!spool->sync_stop && !spool->sync_hurry && !atomic_load(&spool->hold_active))
	{
		struct timespec deadline;

		if (monotonic_us() >= due)
			break;
		deadline.tv_sec = (time_t) (due / 1000000);
		deadline.tv_nsec = (long) (due % 1000000) * 1000;
		pthread_cond_timedwait(&spool->sync_wake, &spool->mutex, &deadline);
	}
}

/* The syncer thread: one fdatasync (and directory fsync) per request, outside the mutex. */
static void *
spool_syncer_main(void *arg)
{
	Spool *spool = arg;
	uint64_t one = 1;
	int64_t last_start = 0;

	pthread_mutex_lock(&spool->mutex);
	for (;;)
	{
		int fd;
		bool dir;
		Lsn lsn;
		bool ok;

		while (!spool->sync_requested && !spool->sync_stop)
			pthread_cond_wait(&spool->sync_wake, &spool->mutex);
		if (!spool->sync_requested)
			break;
		spool_syncer_pace(spool, last_start);
		spool->sync_hurry = false;
		last_start = monotonic_us();
		fd = spool->sync_fd;
		dir = spool->sync_dir;
		lsn = spool->sync_lsn;
		spool->sync_dir = false;
		spool->sync_requested = false;
		spool->sync_busy = true;
		pthread_mutex_unlock(&spool->mutex);

		ok = fdatasync(fd) == 0;
		if (!ok)
			log_error("could not fsync spool segment in \"%s\": %m", spool->dir);
		else if (dir && fsync(spool->dirfd) != 0)
		{
			log_error("could not fsync spool directory \"%s\": %m", spool->dir);
			ok = false;
		}

		pthread_mutex_lock(&spool->mutex);
		spool->sync_busy = false;
		if (!ok)
			spool->sync_failed = true;
		else if (lsn > spool->durable_lsn)
		{
			spool->durable_lsn = lsn;
			pthread_cond_broadcast(&spool->published);
		}
		pthread_cond_broadcast(&spool->sync_idle);
		if (spool->sync_event_fd >= 0 && write(spool->sync_event_fd, &one, sizeof(one)) < 0)
		{
			/* a full counter already wakes the receiver */
		}
	}
	pthread_mutex_unlock(&spool->mutex);
	return NULL;
}

/* Waits until the syncer holds no request: the segment may then be closed or cut. */
static bool
spool_syncer_quiesce(Spool *spool)
{
	bool failed;

	if (!spool->syncer_running)
		return !spool->broken;
	pthread_mutex_lock(&spool->mutex);
	if (spool->sync_requested)
	{
		spool->sync_hurry = true;
		pthread_cond_signal(&spool->sync_wake);
	}
	while (spool->sync_requested || spool->sync_busy)
		pthread_cond_wait(&spool->sync_idle, &spool->mutex);
	failed = spool->sync_failed;
	pthread_mutex_unlock(&spool->mutex);
	if (failed && !spool->broken)
		spool_set_broken(spool);
	return !spool->broken;
}

bool
spool_sync_request(Spool *spool)
{
	bool failed;
	bool dir_dirty;

	if (spool->broken)
		return false;
	if (!spool->syncer_running)
		return spool_sync(spool);
	if (!spool_buffer_flush(spool, &spool->write_buffer))
		return false;
	pthread_mutex_lock(&spool->mutex);
	failed = spool->sync_failed;
	dir_dirty = spool->dir_dirty;
	if (!failed && (spool->unsynced || dir_dirty))
	{
		spool->sync_fd = spool->segment.fd;
		/* a later request covers an earlier one still waiting: same file, more bytes */
		spool->sync_dir = spool->sync_dir || dir_dirty;
		spool->dir_dirty = false;
		if (spool->appended_lsn > spool->sync_lsn)
			spool->sync_lsn = spool->appended_lsn;
		/* a request still waiting (paced) is seen by the syncer anyway: no wakeup for it */
		if (!spool->sync_requested)
			pthread_cond_signal(&spool->sync_wake);
		spool->sync_requested = true;
	}
	pthread_mutex_unlock(&spool->mutex);
	if (failed)
	{
		spool_set_broken(spool);
		return false;
	}
	spool->unsynced = false;
	return true;
}

int
spool_sync_event_fd(const Spool *spool)
{
	return spool->sync_event_fd;
}

bool
spool_sync_failed(Spool *spool)
{
	bool failed;

	pthread_mutex_lock(&spool->mutex);
	failed = spool->sync_failed;
	pthread_mutex_unlock(&spool->mutex);
	return failed || spool->broken;
}

bool
spool_sync(Spool *spool)
{
	bool dir_dirty;

	if (!spool_syncer_quiesce(spool))
		return false;
	pthread_mutex_lock(&spool->mutex);
	dir_dirty = spool->dir_dirty;
	spool->dir_dirty = false;
	pthread_mutex_unlock(&spool->mutex);
	if (!spool->unsynced && !dir_dirty)
		return true;

	if (!spool_buffer_flush(spool, &spool->write_buffer))
		return false;
	if (spool->segment.written > spool->segment_synced)
	{
		if (!spool_out_datasync(spool, &spool->segment))
			return false;
		spool->segment_synced = spool->segment.written;
	}
	/* A new segment's name must be durable before anything in it is confirmed. */
	if (dir_dirty && !spool_fsync_dir(spool))
		return false;

	pthread_mutex_lock(&spool->mutex);
	spool->segments[spool->nsegments - 1].size = spool->segment.size;
	spool->pub_segment = spool->segment_number;
	/* a transaction still being received stays invisible: it may yet be cut off */
	spool->pub_size = spool->boundary_end;
	spool->pub_generation++;
	spool->durable_lsn = spool->appended_lsn;
	pthread_cond_broadcast(&spool->published);
	pthread_mutex_unlock(&spool->mutex);
	spool->unsynced = false;
	return true;
}

bool
spool_rewind(Spool *spool)
{
	SpoolOut *out = &spool->segment;
	uint64_t keep = spool->boundary_end;

	if (!spool_syncer_quiesce(spool))
		return false;
	if (out->size <= keep)
		return true;
	if (out->written <= keep)
		spool->write_buffer.len = (size_t) (keep - out->written);
	else
	{
		/* part of the cut-off transaction reached the file: take it back */
		spool->write_buffer.len = 0;
		if (ftruncate(out->fd, (off_t) keep) != 0)
		{
			log_error("could not truncate spool segment \"%s/%s\": %m", spool->dir, out->name);
			spool_set_broken(spool);
			return false;
		}
		out->written = keep;
		if (spool->segment_synced > keep)
			spool->segment_synced = keep;
		spool->unsynced = true;
	}
	atomic_fetch_sub(&spool->size_bytes, out->size - keep);
	out->size = keep;
	spool->at_boundary = true;
	return true;
}

bool
spool_has_unsynced(const Spool *spool)
{
	return spool->unsynced;
}

Lsn
spool_durable_lsn(Spool *spool)
{
	Lsn lsn;

	pthread_mutex_lock(&spool->mutex);
	lsn = spool->durable_lsn;
	pthread_mutex_unlock(&spool->mutex);
	return lsn;
}

Lsn
spool_appended_lsn(Spool *spool)
{
	return spool->appended_lsn;
}

uint64_t
spool_size_bytes(Spool *spool)
{
	return atomic_load(&spool->size_bytes);
}

bool
spool_is_full(Spool *spool)
{
	return atomic_load(&spool->size_bytes) > spool->max_bytes;
}

bool
spool_has_room(Spool *spool)
{
	return atomic_load(&spool->size_bytes) <= spool->max_bytes / 4 * 3;
}

bool
spool_reader_drained(Spool *spool)
{
	bool drained;

	pthread_mutex_lock(&spool->mutex);
	drained = spool->reader_waited && spool->reader_end_generation == spool->pub_generation;
	pthread_mutex_unlock(&spool->mutex);
	return drained;
}

/* ---- stream files -------------------------------------------------------------------- */

static SpoolStream *
spool_stream_find(Spool *spool, uint32_t xid, size_t *index)
{
	for (size_t i = 0; i < spool->nstreams; i++)
	{
		if (spool->streams[i]->xid == xid)
		{
			if (index != NULL)
				*index = i;
			return spool->streams[i];
		}
	}
	return NULL;
}

/* Frees a descriptor for another stream: closes the least recently used one. */
static bool
spool_stream_evict_fd(Spool *spool, SpoolStream *keep)
{
	SpoolStream *victim = NULL;

	for (size_t i = 0; i < spool->nstreams; i++)
	{
		SpoolStream *stream = spool->streams[i];

		if (stream != keep && stream->out.fd >= 0 &&
			(victim == NULL || stream->last_use < victim->last_use))
			victim = stream;
	}
	if (victim == NULL)
		return true;
	if (spool->stream_buffer.owner == &victim->out)
	{
		if (!spool_buffer_flush(spool, &spool->stream_buffer))
			return false;
		spool->stream_buffer.owner = NULL;
	}
	close(victim->out.fd);
	victim->out.fd = -1;
	spool->stream_fds--;
	return true;
}

/* Makes stream the owner of the stream buffer, with an open descriptor. */
static bool
spool_stream_activate(Spool *spool, SpoolStream *stream)
{
	stream->last_use = ++spool->stream_clock;
	if (stream->out.fd < 0)
	{
		if (spool->stream_fds >= SPOOL_MAX_STREAM_FDS && !spool_stream_evict_fd(spool, stream))
			return false;
		stream->out.fd = openat(spool->dirfd, stream->out.name, O_WRONLY | O_CLOEXEC);
		if (stream->out.fd < 0)
		{
			log_error("could not open spool stream file \"%s/%s\": %m", spool->dir,
					  stream->out.name);
			spool_set_broken(spool);
			return false;
		}
		spool->stream_fds++;
	}
	if (spool->stream_buffer.owner != &stream->out)
	{
		if (!spool_buffer_flush(spool, &spool->stream_buffer))
			return false;
		spool->stream_buffer.owner = &stream->out;
	}
	return true;
}

static void
spool_stream_free(SpoolStream *stream)
{
	if (stream == NULL)
		return;
	free(stream->subxacts);
	free(stream);
}

static SpoolStream *
spool_stream_create(Spool *spool, uint32_t xid)
{
	uint8_t header[SPOOL_FILE_HEADER_BYTES];
	SpoolStream *stream = NULL;
	SpoolStream *result = NULL;

	if (!spool_grow((void **) &spool->streams, &spool->streams_cap, spool->nstreams,
					sizeof(SpoolStream *)))
		goto cleanup;
	stream = calloc(1, sizeof(SpoolStream));
	if (stream == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	stream->xid = xid;
	stream->out.label = "spool stream file";
	spool_stream_open_name(xid, stream->out.name);
	if (spool->stream_fds >= SPOOL_MAX_STREAM_FDS && !spool_stream_evict_fd(spool, NULL))
		goto cleanup;
	/* Truncate: a file left from before a reconnect holds a stream the source resends. */
	stream->out.fd = openat(spool->dirfd, stream->out.name,
							O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (stream->out.fd < 0)
	{
		log_error("could not create spool stream file \"%s/%s\": %m", spool->dir,
				  stream->out.name);
		spool_set_broken(spool);
		goto cleanup;
	}
	spool->stream_fds++;
	spool->streams[spool->nstreams++] = stream;
	atomic_fetch_add(&spool->open_streams, 1);
	result = stream;
	stream = NULL;

	spool_file_header(header, SPOOL_FILE_STREAM, xid);
	if (!spool_stream_activate(spool, result) ||
		!spool_out_put(spool, &result->out, &spool->stream_buffer, header, sizeof(header)))
		result = NULL;
cleanup:
	spool_stream_free(stream);
	return result;
}

/* Forgets stream index; its file is unlinked unless it was renamed already. */
static void
spool_stream_drop(Spool *spool, size_t index, bool unlink_file)
{
	SpoolStream *stream = spool->streams[index];

	if (spool->stream_buffer.owner == &stream->out)
	{
		spool->stream_buffer.len = 0;
		spool->stream_buffer.owner = NULL;
	}
	if (stream->out.fd >= 0)
	{
		close(stream->out.fd);
		spool->stream_fds--;
	}
	if (unlink_file)
	{
		if (unlinkat(spool->dirfd, stream->out.name, 0) != 0 && errno != ENOENT)
			log_warning("could not remove spool stream file \"%s/%s\": %m", spool->dir,
						stream->out.name);
		atomic_fetch_sub(&spool->size_bytes, stream->out.size);
	}
	spool->streams[index] = spool->streams[--spool->nstreams];
	atomic_fetch_sub(&spool->open_streams, 1);
	spool_stream_free(stream);
}

bool
spool_stream_append(Spool *spool, uint32_t xid, uint32_t subxid, Lsn lsn, const void *pgoutput,
					size_t len)
{
	SpoolRecord record = SPOOL_RECORD__INIT;
	SpoolStream *stream;
	uint64_t offset = 0;

	if (spool->broken)
		return false;
	stream = spool_stream_find(spool, xid, NULL);
	if (stream == NULL && (stream = spool_stream_create(spool, xid)) == NULL)
		return false;
	if (!spool_stream_activate(spool, stream))
		return false;

	/* The first change of each subtransaction marks where its abort cuts the file. Changes
	 * of the most recent subtransaction are by far the most common, so look there first. */
	if (subxid != xid &&
		(stream->nsubxacts == 0 || stream->subxacts[stream->nsubxacts - 1].subxid != subxid))
	{
		bool known = false;

		for (size_t i = stream->nsubxacts; i-- > 0;)
		{
			if (stream->subxacts[i].subxid == subxid)
			{
				known = true;
				break;
			}
		}
		if (!known)
		{
			if (!spool_grow((void **) &stream->subxacts, &stream->subxacts_cap, stream->nsubxacts,
							sizeof(SpoolSubxact)))
				return false;
			stream->subxacts[stream->nsubxacts].subxid = subxid;
			stream->subxacts[stream->nsubxacts].offset = stream->out.size;
			stream->nsubxacts++;
		}
	}

	record.kind = SPOOL_RECORD__KIND__STREAM_CHANGE;
	record.lsn = lsn;
	record.pgoutput.data = (uint8_t *) pgoutput;
	record.pgoutput.len = len;
	return spool_out_append(spool, &stream->out, &spool->stream_buffer, &record, &offset);
}

bool
spool_stream_abort(Spool *spool, uint32_t xid, uint32_t subxid)
{
	SpoolStream *stream;
	size_t index = 0;
	size_t sub;
	uint64_t offset;

	if (spool->broken)
		return false;
	stream = spool_stream_find(spool, xid, &index);
	if (stream == NULL)
		return true;            /* nothing of it was streamed, or discarded already */
	if (subxid == xid)
	{
		spool_stream_drop(spool, index, true);
		return true;
	}
	for (sub = stream->nsubxacts; sub-- > 0;)
		if (stream->subxacts[sub].subxid == subxid)
			break;
	if (sub == SIZE_MAX)
		return true;            /* the subtransaction had no changes */

	/* Subtransactions recorded later started later, so they are nested in it or follow it:
	 * cut them all. */
	offset = stream->subxacts[sub].offset;
	stream->nsubxacts = sub;
	if (!spool_stream_activate(spool, stream))
		return false;
	if (offset >= stream->out.written)
		spool->stream_buffer.len = (size_t) (offset - stream->out.written);
	else
	{
		spool->stream_buffer.len = 0;
		if (ftruncate(stream->out.fd, (off_t) offset) != 0)
		{
			log_error("could not truncate spool stream file \"%s/%s\": %m", spool->dir,
					  stream->out.name);
			spool_set_broken(spool);
			return false;
		}
		stream->out.written = offset;
	}
	atomic_fetch_sub(&spool->size_bytes, stream->out.size - offset);
	stream->out.size = offset;
	return true;
}

bool
spool_stream_commit(Spool *spool, uint32_t xid, Lsn end_lsn, const void *pgoutput, size_t len)
{
	SpoolRecord record = SPOOL_RECORD__INIT;
	SpoolCommitted committed;
	SpoolStream *stream;
	size_t index = 0;
	char name[SPOOL_NAME_BYTES];

	if (spool->broken)
		return false;
	stream = spool_stream_find(spool, xid, &index);
	if (stream == NULL)
	{
		/* A stream whose every change was rolled back still commits: give it an empty
		 * file, so the reader finds one. */
		if (spool_stream_create(spool, xid) == NULL)
			return false;
		stream = spool_stream_find(spool, xid, &index);
	}
	if (!spool_stream_activate(spool, stream) ||
		!spool_buffer_flush(spool, &spool->stream_buffer) ||
		!spool_out_datasync(spool, &stream->out))
		return false;

	/* Over an existing file of the same name: after a crash the source resends the
	 * transaction, and a rename without its STREAM_COMMIT record may have survived. The
	 * directory is fsync'd now, not at the next spool_sync: the record must never be
	 * durable while the rename is not. */
	spool_stream_commit_name(xid, end_lsn, name);
	if (renameat(spool->dirfd, stream->out.name, spool->dirfd, name) != 0)
	{
		log_error("could not rename spool stream file \"%s/%s\" to \"%s\": %m", spool->dir,
				  stream->out.name, name);
		spool_set_broken(spool);
		return false;
	}
	if (!spool_fsync_dir(spool))
		return false;

	committed.xid = xid;
	committed.end_lsn = end_lsn;
	committed.size = stream->out.size;
	spool_stream_drop(spool, index, false);

	record.kind = SPOOL_RECORD__KIND__STREAM_COMMIT;
	record.lsn = end_lsn;
	record.pgoutput.data = (uint8_t *) pgoutput;
	record.pgoutput.len = len;
	record.stream_xid = xid;
	record.boundary = end_lsn;
	if (spool->at_boundary && spool->segment.size >= spool->segment_bytes &&
		!spool_segment_roll(spool))
		return false;
	if (!spool_append_record(spool, &record, &committed.position))
		return false;
	if (end_lsn > spool->appended_lsn)
		spool->appended_lsn = end_lsn;
	spool->at_boundary = true;
	spool->boundary_end = spool->segment.size;
	spool_note_boundary(spool, end_lsn);

	pthread_mutex_lock(&spool->mutex);
	for (size_t i = 0; i < spool->ncommitted; i++)
	{
		/* The renamed file replaced this one: its bytes are counted once, under the new
		 * record's position. */
		if (spool->committed[i].xid == xid && spool->committed[i].end_lsn == end_lsn)
		{
			atomic_fetch_sub(&spool->size_bytes, spool->committed[i].size);
			memmove(&spool->committed[i], &spool->committed[i + 1],
					(spool->ncommitted - i - 1) * sizeof(SpoolCommitted));
			spool->ncommitted--;
			break;
		}
	}
	if (spool_grow((void **) &spool->committed, &spool->committed_cap, spool->ncommitted,
				   sizeof(SpoolCommitted)))
		spool->committed[spool->ncommitted++] = committed;
	pthread_mutex_unlock(&spool->mutex);
	return true;
}

void
spool_stream_discard_open(Spool *spool)
{
	while (spool->nstreams > 0)
		spool_stream_drop(spool, spool->nstreams - 1, true);
}

/* ---- reading frames ------------------------------------------------------------------ */

static bool
spool_scan_init(SpoolScan *scan)
{
	memset(scan, 0, sizeof(*scan));
	scan->fd = -1;
	scan->data = malloc(SPOOL_READ_BUFFER_BYTES);
	if (scan->data == NULL)
	{
		log_error("out of memory");
		return false;
	}
	scan->cap = SPOOL_READ_BUFFER_BYTES;
	return true;
}

static void
spool_scan_reset(SpoolScan *scan, int fd, const char *label, const char *name)
{
	if (scan->fd >= 0)
		close(scan->fd);
	scan->fd = fd;
	scan->label = label;
	snprintf(scan->name, sizeof(scan->name), "%s", name);
	scan->offset = 0;
	scan->pos = 0;
	scan->end = 0;
}

static void
spool_scan_done(SpoolScan *scan)
{
	if (scan->fd >= 0)
		close(scan->fd);
	scan->fd = -1;
	free(scan->data);
	scan->data = NULL;
}

/*
 * Makes need bytes at scan->offset available in the buffer, reading no further than limit.
 * 1: available; 0: the limit or the end of the file comes first; -1: error (logged). The
 * buffer grows for a large record and shrinks back once one has passed.
 */
static int
spool_scan_fill(Spool *spool, SpoolScan *scan, size_t need, uint64_t limit)
{
	size_t avail = scan->end - scan->pos;

	if (avail >= need)
		return 1;
	if (scan->offset + need > limit)
		return 0;
	if (scan->pos > 0)
	{
		memmove(scan->data, scan->data + scan->pos, avail);
		scan->pos = 0;
		scan->end = avail;
	}
	if (need > scan->cap ||
		(scan->cap > SPOOL_READ_BUFFER_BYTES && need <= SPOOL_READ_BUFFER_BYTES &&
		 avail <= SPOOL_READ_BUFFER_BYTES))
	{
		size_t cap = need > SPOOL_READ_BUFFER_BYTES ? need : SPOOL_READ_BUFFER_BYTES;
		uint8_t *data = realloc(scan->data, cap);

		if (data == NULL)
		{
			log_error("out of memory");
			return -1;
		}
		scan->data = data;
		scan->cap = cap;
	}
	while (scan->end < need)
	{
		uint64_t file_end = scan->offset + scan->end;
		size_t room = scan->cap - scan->end;
		ssize_t n;

		if (limit - file_end < room)
			room = (size_t) (limit - file_end);
		n = pread(scan->fd, scan->data + scan->end, room, (off_t) file_end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			log_error("could not read %s \"%s/%s\": %m", scan->label, spool->dir, scan->name);
			return -1;
		}
		if (n == 0)
			return 0;
		scan->end += (size_t) n;
	}
	return 1;
}

static SpoolFrameResult
spool_scan_frame(Spool *spool, SpoolScan *scan, uint64_t limit, SpoolFrame *frame)
{
	const uint8_t *p;
	uint32_t len;
	int r;

	frame->offset = scan->offset;
	r = spool_scan_fill(spool, scan, SPOOL_FRAME_HEADER_BYTES, limit);
	if (r < 0)
		return SPOOL_FRAME_IO_ERROR;
	if (r == 0)
		return (scan->offset >= limit) ? SPOOL_FRAME_END : SPOOL_FRAME_TRUNCATED;
	p = scan->data + scan->pos;
	len = spool_get_le32(p);
	/* Every record has at least its kind field: two bytes. */
	if (len < 2 || len > SPOOL_MAX_RECORD_BYTES)
		return SPOOL_FRAME_BAD_LENGTH;
	r = spool_scan_fill(spool, scan, SPOOL_FRAME_HEADER_BYTES + (size_t) len, limit);
	if (r < 0)
		return SPOOL_FRAME_IO_ERROR;
	if (r == 0)
		return SPOOL_FRAME_TRUNCATED;
	p = scan->data + scan->pos;
	if (crc32c(0, p + SPOOL_FRAME_HEADER_BYTES, len) != spool_get_le32(p + 4))
		return SPOOL_FRAME_BAD_CRC;
	frame->payload = p + SPOOL_FRAME_HEADER_BYTES;
	frame->len = len;
	scan->pos += SPOOL_FRAME_HEADER_BYTES + (size_t) len;
	scan->offset += SPOOL_FRAME_HEADER_BYTES + (uint64_t) len;
	return SPOOL_FRAME_OK;
}

static SpoolRecord *
spool_decode(const SpoolFrame *frame)
{
	SpoolRecord *record = spool_record__unpack(NULL, frame->len, frame->payload);

	if (record != NULL && (record->kind < SPOOL_RECORD__KIND__CHANGE ||
						   record->kind > SPOOL_RECORD__KIND__STREAM_CHANGE))
	{
		spool_record__free_unpacked(record, NULL);
		record = NULL;
	}
	return record;
}

static const char *
spool_frame_problem(SpoolFrameResult result)
{
	switch (result)
	{
		case SPOOL_FRAME_TRUNCATED:
			return "The record is incomplete.";
		case SPOOL_FRAME_BAD_LENGTH:
			return "The record length is invalid.";
		case SPOOL_FRAME_BAD_CRC:
			return "The record checksum does not match.";
		default:
			return "The record cannot be decoded.";
	}
}

static void
spool_report_corrupt(Spool *spool, const char *label, const char *name, uint64_t offset,
					 const char *detail)
{
	log_error("%s \"%s/%s\" is corrupt at offset %" PRIu64, label, spool->dir, name, offset);
	log_detail("%s", detail);
	log_hint(SPOOL_CORRUPT_HINT);
}

/*
 * Is there a valid frame anywhere in [from, size)? Tells a torn tail (only garbage after the
 * bad frame) from damage in the middle. Cheap tests first: the length must fit and a packed
 * record starts with the kind field's tag (0x08) and a kind of 1 to 4. 1: yes, 0: no, -1: error.
 */
static int
spool_probe_valid_frame(Spool *spool, int fd, const char *name, uint64_t from, uint64_t size)
{
	uint8_t *window = NULL;
	uint8_t *payload = NULL;
	int result = -1;

	window = malloc(SPOOL_PROBE_WINDOW_BYTES);
	if (window == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	/* Windows overlap by a frame header plus two bytes so every candidate is seen whole. */
	for (uint64_t base = from; base + SPOOL_FRAME_HEADER_BYTES + 2 <= size;
		 base += SPOOL_PROBE_WINDOW_BYTES - (SPOOL_FRAME_HEADER_BYTES + 2))
	{
		size_t want = size - base < SPOOL_PROBE_WINDOW_BYTES ? (size_t) (size - base)
															 : SPOOL_PROBE_WINDOW_BYTES;
		ssize_t n = pread(fd, window, want, (off_t) base);

		if (n < 0)
		{
			log_error("could not read spool segment \"%s/%s\": %m", spool->dir, name);
			goto cleanup;
		}
		for (size_t i = 0; i + SPOOL_FRAME_HEADER_BYTES + 2 <= (size_t) n; i++)
		{
			const uint8_t *p = window + i;
			uint64_t at = base + i;
			uint32_t len = spool_get_le32(p);
			const uint8_t *body;
			SpoolFrame frame;
			SpoolRecord *record;

			if (len < 2 || len > size - at - SPOOL_FRAME_HEADER_BYTES ||
				p[SPOOL_FRAME_HEADER_BYTES] != 0x08 || p[SPOOL_FRAME_HEADER_BYTES + 1] < 1 ||
				p[SPOOL_FRAME_HEADER_BYTES + 1] > 4)
				continue;
			if (i + SPOOL_FRAME_HEADER_BYTES + len <= (size_t) n)
				body = p + SPOOL_FRAME_HEADER_BYTES;
			else
			{
				uint8_t *grown = realloc(payload, len);

				if (grown == NULL)
				{
					log_error("out of memory");
					goto cleanup;
				}
				payload = grown;
				if (pread(fd, payload, len, (off_t) (at + SPOOL_FRAME_HEADER_BYTES)) != (ssize_t) len)
					continue;
				body = payload;
			}
			if (crc32c(0, body, len) != spool_get_le32(p + 4))
				continue;
			frame.payload = body;
			frame.len = len;
			frame.offset = at;
			record = spool_decode(&frame);
			if (record != NULL)
			{
				spool_record__free_unpacked(record, NULL);
				result = 1;
				goto cleanup;
			}
		}
		if ((size_t) n < SPOOL_PROBE_WINDOW_BYTES)
			break;
	}
	result = 0;
cleanup:
	free(window);
	free(payload);
	return result;
}

/* ---- recovery ------------------------------------------------------------------------ */

/* A STREAM_COMMIT record met during recovery, or a committed stream file on disk. */
typedef struct SpoolCommitRef
{
	uint32_t xid;
	Lsn end_lsn;
	SpoolPosition position;
} SpoolCommitRef;

typedef struct SpoolRecovery
{
	uint64_t *segments;
	size_t nsegments;
	size_t segments_cap;
	SpoolCommitRef *files;    /* committed stream files in the directory */
	size_t nfiles;
	size_t files_cap;
	SpoolCommitRef *records;  /* STREAM_COMMIT records in the retained segments */
	size_t nrecords;
	size_t records_cap;
	Lsn last_boundary;
	SpoolScan scan;
} SpoolRecovery;

static int
spool_compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a;
	uint64_t y = *(const uint64_t *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

static int
spool_compare_committed(const void *a, const void *b)
{
	return spool_position_compare(((const SpoolCommitted *) a)->position,
								  ((const SpoolCommitted *) b)->position);
}

/* Sorts the directory's names into segments and committed streams; open streams go. */
static bool
spool_recover_list(Spool *spool, SpoolRecovery *rec)
{
	DIR *dir = NULL;
	struct dirent *entry;
	int fd = -1;
	bool ok = false;

	fd = openat(spool->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (dir = fdopendir(fd)) == NULL)
	{
		log_error("could not open spool directory \"%s\": %m", spool->dir);
		goto cleanup;
	}
	fd = -1;
	errno = 0;
	while ((entry = readdir(dir)) != NULL)
	{
		const char *name = entry->d_name;
		size_t len = strlen(name);
		uint64_t number;
		uint64_t lsn;

		if (len == 20 && strcmp(name + 16, ".seg") == 0 && spool_parse_hex(name, 16, &number))
		{
			if (!spool_grow((void **) &rec->segments, &rec->segments_cap, rec->nsegments,
							sizeof(uint64_t)))
				goto cleanup;
			rec->segments[rec->nsegments++] = number;
		}
		else if (len == 20 && strncmp(name, "stream-", 7) == 0 &&
				 strcmp(name + 15, ".open") == 0 && spool_parse_hex(name + 7, 8, &number))
		{
			/* The source streams an unfinished transaction again from its start. */
			if (unlinkat(spool->dirfd, name, 0) != 0 && errno != ENOENT)
			{
				log_error("could not remove spool stream file \"%s/%s\": %m", spool->dir, name);
				goto cleanup;
			}
			spool->dir_dirty = true;
		}
		else if (len == 39 && strncmp(name, "stream-", 7) == 0 && name[15] == '-' &&
				 strcmp(name + 32, ".commit") == 0 && spool_parse_hex(name + 7, 8, &number) &&
				 spool_parse_hex(name + 16, 16, &lsn))
		{
			if (!spool_grow((void **) &rec->files, &rec->files_cap, rec->nfiles,
							sizeof(SpoolCommitRef)))
				goto cleanup;
			rec->files[rec->nfiles].xid = (uint32_t) number;
			rec->files[rec->nfiles].end_lsn = lsn;
			rec->nfiles++;
		}
		errno = 0;
	}
	if (errno != 0)
	{
		log_error("could not read spool directory \"%s\": %m", spool->dir);
		goto cleanup;
	}
	if (rec->nsegments > 1)
		qsort(rec->segments, rec->nsegments, sizeof(uint64_t), spool_compare_u64);
	ok = true;
cleanup:
	if (dir != NULL)
		closedir(dir);
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Removes a last segment that never got a whole header or a single frame. */
static bool
spool_recover_drop_segment(Spool *spool, const char *name)
{
	log_warning("spool segment \"%s/%s\" was never completely written: removed", spool->dir,
				name);
	if (unlinkat(spool->dirfd, name, 0) != 0)
	{
		log_error("could not remove spool segment \"%s/%s\": %m", spool->dir, name);
		return false;
	}
	spool->dir_dirty = true;
	return true;
}

/*
 * Checks one segment record by record. In the last segment a bad tail with nothing valid
 * behind it is a write the crash cut short; it and any unfinished transaction before it
 * are cut off, back to the last boundary record. Anything else bad is corruption.
 */
static bool
spool_recover_segment(Spool *spool, SpoolRecovery *rec, uint64_t number, bool last)
{
	char name[SPOOL_NAME_BYTES];
	SpoolScan *scan = &rec->scan;
	uint64_t keep_end = SPOOL_FILE_HEADER_BYTES; /* end of the last boundary record */
	Lsn boundary = LSN_INVALID;
	size_t records_before = rec->nrecords;
	SpoolFrameResult result = SPOOL_FRAME_END;
	uint64_t bad_offset = 0;
	int valid_after = 0;
	struct stat st;
	int fd;
	int r;

	spool_segment_name(number, name);
	fd = openat(spool->dirfd, name, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
	{
		log_error("could not open spool segment \"%s/%s\": %m", spool->dir, name);
		return false;
	}
	spool_scan_reset(scan, fd, "spool segment", name);
	if (fstat(fd, &st) != 0)
	{
		log_error("could not stat spool segment \"%s/%s\": %m", spool->dir, name);
		return false;
	}

	r = spool_scan_fill(spool, scan, SPOOL_FILE_HEADER_BYTES, (uint64_t) st.st_size);
	if (r < 0)
		return false;
	if (r == 0 || !spool_file_header_ok(scan->data, SPOOL_FILE_SEGMENT, number))
	{
		if (last)
		{
			r = spool_probe_valid_frame(spool, fd, name, 0, (uint64_t) st.st_size);
			if (r < 0)
				return false;
			if (r == 0)
				return spool_recover_drop_segment(spool, name);
		}
		spool_report_corrupt(spool, "spool segment", name, 0,
							 "The segment header is missing or does not match its name.");
		return false;
	}
	scan->pos += SPOOL_FILE_HEADER_BYTES;
	scan->offset += SPOOL_FILE_HEADER_BYTES;

	for (;;)
	{
		SpoolFrame frame;
		SpoolRecord *record;

		result = spool_scan_frame(spool, scan, (uint64_t) st.st_size, &frame);
		if (result == SPOOL_FRAME_IO_ERROR)
			return false;
		if (result == SPOOL_FRAME_END)
			break;
		bad_offset = frame.offset;
		if (result != SPOOL_FRAME_OK)
			break;
		record = spool_decode(&frame);
		if (record == NULL)
		{
			result = SPOOL_FRAME_BAD_RECORD;
			break;
		}
		if (record->kind == SPOOL_RECORD__KIND__STREAM_COMMIT)
		{
			if (!spool_grow((void **) &rec->records, &rec->records_cap, rec->nrecords,
							sizeof(SpoolCommitRef)))
			{
				spool_record__free_unpacked(record, NULL);
				return false;
			}
			rec->records[rec->nrecords].xid = record->stream_xid;
			rec->records[rec->nrecords].end_lsn = record->lsn;
			rec->records[rec->nrecords].position.segment = number;
			rec->records[rec->nrecords].position.offset = frame.offset;
			rec->nrecords++;
		}
		if (record->boundary != LSN_INVALID)
		{
			boundary = record->boundary;
			keep_end = scan->offset;
			records_before = rec->nrecords;
		}
		spool_record__free_unpacked(record, NULL);
	}

	if (result != SPOOL_FRAME_END)
	{
		if (last)
		{
			valid_after = spool_probe_valid_frame(spool, fd, name, bad_offset + 1,
												  (uint64_t) st.st_size);
			if (valid_after < 0)
				return false;
		}
		if (!last || valid_after)
		{
			spool_report_corrupt(spool, "spool segment", name, bad_offset,
								 spool_frame_problem(result));
			return false;
		}
		log_warning("spool segment \"%s/%s\" ends in a torn write at offset %" PRIu64
					": truncated to offset %" PRIu64,
					spool->dir, name, bad_offset, keep_end);
		log_detail("%s The changes after the last complete transaction were never confirmed "
				   "to the source, which sends them again.",
				   spool_frame_problem(result));
	}
	else if (last && keep_end < (uint64_t) st.st_size)
		log_info("discarding an unfinished transaction at the end of spool segment \"%s/%s\"",
				 spool->dir, name);

	if (last && keep_end < (uint64_t) st.st_size)
	{
		if (ftruncate(fd, (off_t) keep_end) != 0 || fsync(fd) != 0)
		{
			log_error("could not truncate spool segment \"%s/%s\": %m", spool->dir, name);
			return false;
		}
		rec->nrecords = records_before;
	}
	else
		keep_end = (uint64_t) st.st_size;

	if (boundary != LSN_INVALID)
		rec->last_boundary = boundary;
	if (!spool_grow((void **) &spool->segments, &spool->segments_cap, spool->nsegments,
					sizeof(SpoolSegment)))
		return false;
	spool->segments[spool->nsegments].number = number;
	spool->segments[spool->nsegments].size = keep_end;
	spool->nsegments++;
	atomic_fetch_add(&spool->size_bytes, keep_end);
	return true;
}

/* Keeps the committed stream files a retained STREAM_COMMIT record refers to; the others
 * lost their record to a crash (the source resends the transaction) and go. */
static bool
spool_recover_streams(Spool *spool, SpoolRecovery *rec)
{
	for (size_t i = 0; i < rec->nfiles; i++)
	{
		const SpoolCommitRef *file = &rec->files[i];
		const SpoolCommitRef *match = NULL;
		char name[SPOOL_NAME_BYTES];
		struct stat st;

		spool_stream_commit_name(file->xid, file->end_lsn, name);
		for (size_t j = 0; j < rec->nrecords; j++)
			if (rec->records[j].xid == file->xid && rec->records[j].end_lsn == file->end_lsn)
				match = &rec->records[j];   /* the last one, if resent */
		if (match == NULL)
		{
			log_info("removing spool stream file \"%s/%s\": no durable commit refers to it",
					 spool->dir, name);
			if (unlinkat(spool->dirfd, name, 0) != 0 && errno != ENOENT)
			{
				log_error("could not remove spool stream file \"%s/%s\": %m", spool->dir, name);
				return false;
			}
			spool->dir_dirty = true;
			continue;
		}
		if (fstatat(spool->dirfd, name, &st, 0) != 0)
		{
			log_error("could not stat spool stream file \"%s/%s\": %m", spool->dir, name);
			return false;
		}
		if (!spool_grow((void **) &spool->committed, &spool->committed_cap, spool->ncommitted,
						sizeof(SpoolCommitted)))
			return false;
		spool->committed[spool->ncommitted].xid = file->xid;
		spool->committed[spool->ncommitted].end_lsn = file->end_lsn;
		spool->committed[spool->ncommitted].size = (uint64_t) st.st_size;
		spool->committed[spool->ncommitted].position = match->position;
		spool->ncommitted++;
		atomic_fetch_add(&spool->size_bytes, (uint64_t) st.st_size);
	}
	if (spool->ncommitted > 1)
		qsort(spool->committed, spool->ncommitted, sizeof(SpoolCommitted),
			  spool_compare_committed);
	return true;
}

static bool
spool_recover(Spool *spool, uint64_t *next_segment)
{
	SpoolRecovery rec;
	bool ok = false;

	memset(&rec, 0, sizeof(rec));
	if (!spool_scan_init(&rec.scan) || !spool_recover_list(spool, &rec))
		goto cleanup;
	for (size_t i = 0; i < rec.nsegments; i++)
		if (!spool_recover_segment(spool, &rec, rec.segments[i], i + 1 == rec.nsegments))
			goto cleanup;
	if (!spool_recover_streams(spool, &rec))
		goto cleanup;
	spool->durable_lsn = rec.last_boundary;
	spool->appended_lsn = rec.last_boundary;
	/* Never reuse a number, even of a segment just removed as torn. */
	*next_segment = rec.nsegments > 0 ? rec.segments[rec.nsegments - 1] + 1 : 1;
	ok = true;
cleanup:
	spool_scan_done(&rec.scan);
	free(rec.segments);
	free(rec.files);
	free(rec.records);
	return ok;
}

/* ---- open and close ------------------------------------------------------------------ */

bool
spool_open(const SpoolOptions *options, Spool **out)
{
	Spool *spool = NULL;
	pthread_condattr_t attr;
	uint64_t next_segment = 1;
	char lsn_text[LSN_FORMAT_SIZE];
	bool ok = false;

	*out = NULL;
	if (options == NULL || options->dir == NULL || options->dir[0] == '\0')
	{
		log_error("spool directory is not set");
		return false;
	}
	spool = calloc(1, sizeof(Spool));
	if (spool == NULL)
	{
		log_error("out of memory");
		return false;
	}
	spool->dirfd = -1;
	spool->segment.fd = -1;
	spool->sync_event_fd = -1;
	pthread_mutex_init(&spool->mutex, NULL);
	pthread_cond_init(&spool->sync_idle, NULL);
	/* Timed waits measure on the monotonic clock, immune to wall-clock steps. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&spool->sync_wake, &attr);
	pthread_cond_init(&spool->published, &attr);
	pthread_condattr_destroy(&attr);
	spool->sync_objects = true;
	atomic_init(&spool->size_bytes, 0);
	atomic_init(&spool->open_streams, 0);
	spool->max_bytes = options->max_bytes != 0 ? options->max_bytes : SPOOL_DEFAULT_MAX_BYTES;
	spool->segment_bytes =
		options->segment_bytes != 0 ? options->segment_bytes : SPOOL_DEFAULT_SEGMENT_BYTES;
	/*
	 * The segment being written is never released: under a small bound it would fill the
	 * spool by itself, and a full spool could then free nothing while the applier works.
	 */
	if (options->segment_bytes == 0 && spool->segment_bytes > spool->max_bytes / 4)
		spool->segment_bytes = spool->max_bytes / 4 > SPOOL_MIN_SEGMENT_BYTES
			? spool->max_bytes / 4 : SPOOL_MIN_SEGMENT_BYTES;

	spool->dir = strdup(options->dir);
	spool->write_buffer.data = malloc(SPOOL_WRITE_BUFFER_BYTES);
	spool->stream_buffer.data = malloc(SPOOL_STREAM_BUFFER_BYTES);
	if (spool->dir == NULL || spool->write_buffer.data == NULL ||
		spool->stream_buffer.data == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	spool->write_buffer.cap = SPOOL_WRITE_BUFFER_BYTES;
	spool->stream_buffer.cap = SPOOL_STREAM_BUFFER_BYTES;

	if (!spool_make_dir(spool->dir))
		goto cleanup;
	spool->dirfd = open(spool->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (spool->dirfd < 0)
	{
		log_error("could not open spool directory \"%s\": %m", spool->dir);
		goto cleanup;
	}
	/* Two writers would interleave records in the same files. */
	if (flock(spool->dirfd, LOCK_EX | LOCK_NB) != 0)
	{
		if (errno == EWOULDBLOCK)
		{
			log_error("spool directory \"%s\" is in use by another process", spool->dir);
			log_hint("Stop the other switchyard agent using this state directory.");
		}
		else
			log_error("could not lock spool directory \"%s\": %m", spool->dir);
		goto cleanup;
	}

	if (!spool_recover(spool, &next_segment))
		goto cleanup;
	/* Appending continues in a new segment: the recovered ones stay as they are. */
	if (!spool_segment_start(spool, next_segment) || !spool_sync(spool))
		goto cleanup;
	spool->sync_event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (spool->sync_event_fd < 0)
	{
		log_error("could not create an eventfd for the spool's syncer: %m");
		goto cleanup;
	}
	if (pthread_create(&spool->syncer, NULL, spool_syncer_main, spool) != 0)
	{
		log_error("could not start the spool's syncer thread");
		goto cleanup;
	}
	spool->syncer_running = true;
	log_debug("spool \"%s\" opened: %zu segments, durable up to %s", spool->dir,
			  spool->nsegments, lsn_format(spool->durable_lsn, lsn_text));
	ok = true;
cleanup:
	if (!ok)
	{
		spool_close(spool);
		spool = NULL;
	}
	*out = spool;
	return ok;
}

void
spool_close(Spool *spool)
{
	if (spool == NULL)
		return;
	if (spool->syncer_running)
	{
		pthread_mutex_lock(&spool->mutex);
		spool->sync_stop = true;
		pthread_cond_signal(&spool->sync_wake);
		pthread_mutex_unlock(&spool->mutex);
		pthread_join(spool->syncer, NULL);
	}
	if (spool->sync_event_fd >= 0)
		close(spool->sync_event_fd);
	/* Unsynced data is dropped on purpose: it was never confirmed, the source resends it.
	 * Open stream files stay for the next spool_open to remove. */
	for (size_t i = 0; i < spool->nstreams; i++)
	{
		if (spool->streams[i]->out.fd >= 0)
			close(spool->streams[i]->out.fd);
		spool_stream_free(spool->streams[i]);
	}
	free(spool->streams);
	if (spool->segment.fd >= 0)
		close(spool->segment.fd);
	for (size_t i = 0; i < spool->nrelations; i++)
		free(spool->relations[i].data);
	free(spool->relations);
	free(spool->segments);
	free(spool->committed);
	free(spool->write_buffer.data);
	free(spool->stream_buffer.data);
	if (spool->dirfd >= 0)
		close(spool->dirfd);
	if (spool->sync_objects)
	{
		pthread_cond_destroy(&spool->published);
		pthread_cond_destroy(&spool->sync_wake);
		pthread_cond_destroy(&spool->sync_idle);
		pthread_mutex_destroy(&spool->mutex);
	}
	free(spool->dir);
	free(spool);
}

/* ---- reader -------------------------------------------------------------------------- */

static SpoolReader *
spool_reader_new(Spool *spool)
{
	SpoolReader *reader = calloc(1, sizeof(SpoolReader));

	if (reader == NULL)
	{
		log_error("out of memory");
		return NULL;
	}
	reader->spool = spool;
	if (!spool_scan_init(&reader->scan))
	{
		free(reader);
		return NULL;
	}
	return reader;
}

static bool
spool_reader_open_segment(SpoolReader *reader, uint64_t number)
{
	char name[SPOOL_NAME_BYTES];
	int fd;

	spool_segment_name(number, name);
	fd = openat(reader->spool->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		log_error("could not open spool segment \"%s/%s\": %m", reader->spool->dir, name);
		return false;
	}
	spool_scan_reset(&reader->scan, fd, "spool segment", name);
	reader->segment = number;
	reader->sealed = false;
	return true;
}

bool
spool_reader_open(Spool *spool, SpoolReader **out)
{
	SpoolReader *reader = NULL;
	uint64_t first;
	bool ok = false;

	*out = NULL;
	reader = spool_reader_new(spool);
	if (reader == NULL)
		goto cleanup;
	/* spool_open leaves at least the segment being written. */
	pthread_mutex_lock(&spool->mutex);
	first = spool->segments[0].number;
	pthread_mutex_unlock(&spool->mutex);
	if (!spool_reader_open_segment(reader, first))
		goto cleanup;
	ok = true;
cleanup:
	if (!ok)
	{
		spool_reader_free(reader);
		reader = NULL;
	}
	*out = reader;
	return ok;
}

bool
spool_stream_reader_open(Spool *spool, uint32_t xid, Lsn end_lsn, SpoolReader **out)
{
	SpoolReader *reader = NULL;
	char name[SPOOL_NAME_BYTES];
	struct stat st;
	int fd;
	bool ok = false;

	*out = NULL;
	reader = spool_reader_new(spool);
	if (reader == NULL)
		goto cleanup;
	spool_stream_commit_name(xid, end_lsn, name);
	fd = openat(spool->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		log_error("could not open spool stream file \"%s/%s\": %m", spool->dir, name);
		goto cleanup;
	}
	spool_scan_reset(&reader->scan, fd, "spool stream file", name);
	if (fstat(fd, &st) != 0)
	{
		log_error("could not stat spool stream file \"%s/%s\": %m", spool->dir, name);
		goto cleanup;
	}
	/* A committed stream file is complete and never changes again. */
	reader->stream = true;
	reader->segment = xid;
	reader->limit = (uint64_t) st.st_size;
	ok = true;
cleanup:
	if (!ok)
	{
		spool_reader_free(reader);
		reader = NULL;
	}
	*out = reader;
	return ok;
}

void
spool_reader_free(SpoolReader *reader)
{
	if (reader == NULL)
		return;
	if (reader->record != NULL)
		spool_record__free_unpacked(reader->record, NULL);
	spool_scan_done(&reader->scan);
	free(reader);
}

/*
 * How far the reader may read its segment, and which segment follows once it is done.
 * Only the newest published segment can grow; older ones are final, so their limit is
 * remembered and the mutex is not taken again for them.
 */
static bool
spool_reader_limit(SpoolReader *reader, uint64_t *limit, uint64_t *next, uint64_t *generation)
{
	Spool *spool = reader->spool;
	bool ok = true;

	if (reader->sealed && !atomic_load(&spool->hold_active))
	{
		*limit = reader->limit;
		*next = reader->next_segment;
		return true;
	}
	pthread_mutex_lock(&spool->mutex);
	if (reader->sealed)
	{
		*generation = spool->pub_generation;
		*limit = reader->limit;
		*next = reader->next_segment;
		goto held;
	}
	*generation = spool->pub_generation;
	*next = 0;
	if (reader->segment >= spool->pub_segment)
		*limit = reader->segment == spool->pub_segment ? spool->pub_size : 0;
	else
	{
		size_t low = 0;
		size_t high = spool->nsegments;

		while (low < high)
		{
			size_t mid = low + (high - low) / 2;

			if (spool->segments[mid].number < reader->segment)
				low = mid + 1;
			else
				high = mid;
		}
		if (low + 1 < spool->nsegments && spool->segments[low].number == reader->segment)
		{
			*limit = spool->segments[low].size;
			*next = spool->segments[low + 1].number;
			reader->sealed = true;
			reader->limit = *limit;
			reader->next_segment = *next;
		}
		else
			ok = false;
	}
held:
	/* a parity hold: nothing past its boundary, and no moving on to a later segment */
	if (ok && atomic_load(&spool->hold_active))
	{
		if (reader->segment == spool->hold_end.segment)
		{
			if (*limit > spool->hold_end.offset)
				*limit = spool->hold_end.offset;
			*next = 0;
		}
		else if (reader->segment > spool->hold_end.segment)
		{
			*limit = 0;
			*next = 0;
		}
	}
	pthread_mutex_unlock(&spool->mutex);
	if (!ok)
		log_error("spool segment \"%s/%s\" was removed while being read", spool->dir,
				  reader->scan.name);
	return ok;
}

/* Reads the file header or one record below limit. 1: a record is in *out; 0: the header
 * was checked; -1: error, logged. */
static int
spool_reader_take(SpoolReader *reader, uint64_t limit, SpoolEntry *out)
{
	Spool *spool = reader->spool;
	SpoolScan *scan = &reader->scan;
	SpoolFrameResult result;
	SpoolFrame frame;
	SpoolRecord *record;
	int r;

	if (scan->offset == 0)
	{
		r = spool_scan_fill(spool, scan, SPOOL_FILE_HEADER_BYTES, limit);
		if (r < 0)
			return -1;
		if (r == 0 ||
			!spool_file_header_ok(scan->data + scan->pos,
								  reader->stream ? SPOOL_FILE_STREAM : SPOOL_FILE_SEGMENT,
								  reader->segment))
		{
			spool_report_corrupt(spool, scan->label, scan->name, 0,
								 "The file header is missing or does not match its name.");
			return -1;
		}
		scan->pos += SPOOL_FILE_HEADER_BYTES;
		scan->offset += SPOOL_FILE_HEADER_BYTES;
		return 0;
	}

	result = spool_scan_frame(spool, scan, limit, &frame);
	if (result == SPOOL_FRAME_IO_ERROR)
		return -1;
	if (result == SPOOL_FRAME_END)
		return 0;
	/* Below the durable limit every byte was fsync'd whole: anything bad is damage. */
	if (result != SPOOL_FRAME_OK || (record = spool_decode(&frame)) == NULL)
	{
		spool_report_corrupt(spool, scan->label, scan->name, frame.offset,
							 spool_frame_problem(result == SPOOL_FRAME_OK ? SPOOL_FRAME_BAD_RECORD
																		  : result));
		return -1;
	}
	reader->record = record;
	out->kind = (SpoolRecordKind) record->kind;
	out->lsn = record->lsn;
	out->boundary = record->boundary;
	/* Never NULL, so that consumers may memcpy an empty message. */
	out->pgoutput = record->pgoutput.data != NULL ? record->pgoutput.data : (const uint8_t *) "";
	out->len = record->pgoutput.len;
	out->stream_xid = record->stream_xid;
	/* A stream reader's positions are offsets in its stream file (segment 0). */
	out->position.segment = reader->stream ? 0 : reader->segment;
	out->position.offset = frame.offset;
	return 1;
}

int
spool_reader_next(SpoolReader *reader, SpoolEntry *out, int timeout_ms)
{
	Spool *spool = reader->spool;
	struct timespec deadline;
	bool have_deadline = false;

	if (reader->record != NULL)
	{
		spool_record__free_unpacked(reader->record, NULL);
		reader->record = NULL;
	}
	for (;;)
	{
		uint64_t limit = reader->limit;
		uint64_t next = 0;
		uint64_t generation = 0;
		bool woken;
		bool published;

		if (!reader->stream && !spool_reader_limit(reader, &limit, &next, &generation))
			return -1;
		if (reader->scan.offset < limit)
		{
			int r = spool_reader_take(reader, limit, out);

			if (r != 0)
				return r;
			continue;
		}
		if (reader->stream)
			return 0;
		if (next != 0)
		{
			if (!spool_reader_open_segment(reader, next))
				return -1;
			continue;
		}

		pthread_mutex_lock(&spool->mutex);
		/* at a hold's boundary (a pause, a parity point) it has not read all there is */
		spool->reader_waited = !atomic_load(&spool->hold_active);
		spool->reader_end_generation = generation;
		while (spool->pub_generation == generation && !spool->wakeup_pending)
		{
			if (timeout_ms < 0)
				pthread_cond_wait(&spool->published, &spool->mutex);
			else
			{
				if (!have_deadline)
				{
					clock_gettime(CLOCK_MONOTONIC, &deadline);
					deadline.tv_sec += timeout_ms / 1000;
					deadline.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
					if (deadline.tv_nsec >= 1000000000L)
					{
						deadline.tv_sec++;
						deadline.tv_nsec -= 1000000000L;
					}
					have_deadline = true;
				}
				if (pthread_cond_timedwait(&spool->published, &spool->mutex, &deadline) ==
					ETIMEDOUT)
					break;
			}
		}
		woken = spool->wakeup_pending;
		spool->wakeup_pending = false;
		published = spool->pub_generation != generation;
		pthread_mutex_unlock(&spool->mutex);
		if (woken || !published)
			return 0;
	}
}

void
spool_wakeup_reader(Spool *spool)
{
	pthread_mutex_lock(&spool->mutex);
	spool->wakeup_pending = true;
	pthread_cond_broadcast(&spool->published);
	pthread_mutex_unlock(&spool->mutex);
}

/* ---- release and stats --------------------------------------------------------------- */

void
spool_release(Spool *spool, SpoolPosition position)
{
	char (*names)[SPOOL_NAME_BYTES] = NULL;
	size_t nsegments = 0;
	size_t ncommitted = 0;
	size_t nnames = 0;

	pthread_mutex_lock(&spool->mutex);
	/* Never the last segment: it is the one being written. */
	while (nsegments + 1 < spool->nsegments &&
		   spool->segments[nsegments].number < position.segment)
		nsegments++;
	while (ncommitted < spool->ncommitted &&
		   spool_position_compare(spool->committed[ncommitted].position, position) < 0)
		ncommitted++;
	if (nsegments + ncommitted > 0)
		names = malloc((nsegments + ncommitted) * sizeof(*names));
	if (names == NULL)
	{
		pthread_mutex_unlock(&spool->mutex);
		if (nsegments + ncommitted > 0)
			log_error("out of memory");    /* the next release retries */
		return;
	}
	for (size_t i = 0; i < ncommitted; i++)
	{
		spool_stream_commit_name(spool->committed[i].xid, spool->committed[i].end_lsn,
								 names[nnames++]);
		atomic_fetch_sub(&spool->size_bytes, spool->committed[i].size);
	}
	for (size_t i = 0; i < nsegments; i++)
	{
		spool_segment_name(spool->segments[i].number, names[nnames++]);
		atomic_fetch_sub(&spool->size_bytes, spool->segments[i].size);
	}
	if (ncommitted > 0)
	{
		memmove(spool->committed, spool->committed + ncommitted,
				(spool->ncommitted - ncommitted) * sizeof(SpoolCommitted));
		spool->ncommitted -= ncommitted;
	}
	if (nsegments > 0)
	{
		memmove(spool->segments, spool->segments + nsegments,
				(spool->nsegments - nsegments) * sizeof(SpoolSegment));
		spool->nsegments -= nsegments;
	}
	spool->dir_dirty = true;
	pthread_mutex_unlock(&spool->mutex);

	/* Outside the mutex: unlinking a large file can take a while, and the writer must not
	 * wait for it to publish. */
	for (size_t i = 0; i < nnames; i++)
	{
		if (unlinkat(spool->dirfd, names[i], 0) != 0 && errno != ENOENT)
			log_warning("could not remove spool file \"%s/%s\": %m", spool->dir, names[i]);
	}
	free(names);
}

void
spool_get_stats(Spool *spool, SpoolStats *out)
{
	pthread_mutex_lock(&spool->mutex);
	out->segments = spool->nsegments;
	out->durable_lsn = spool->durable_lsn;
	pthread_mutex_unlock(&spool->mutex);
	out->size_bytes = atomic_load(&spool->size_bytes);
	out->open_streams = atomic_load(&spool->open_streams);
	out->full = out->size_bytes > spool->max_bytes;
	out->broken = spool->broken;
}
