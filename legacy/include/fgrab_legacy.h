/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * fgrab legacy API: the frame grabber interface applications have used for years, kept
 * unchanged on top of the zero-copy io_uring driver (library: libfgrab_legacy.so / .a).
 *
 * The application allocates one buffer (any alignment) and gives it to fgrab_set_buffer;
 * frames of frame_bytes are packed back to back in it and filled cyclically. A frame
 * returned by fgrab_wait_frame belongs to the application until fgrab_release_frame.
 *
 * Every function returns FGRAB_OK (0) or a negative FGRAB_E_* code; fgrab_last_error()
 * then describes what went wrong, to the thread that made the call. No function unwinds or
 * aborts on bad input.
 *
 * The buffer must stay allocated, and must not be used for anything else, until
 * fgrab_close() returns FGRAB_OK; if fgrab_close() fails with FGRAB_E_IO the card may still
 * write into it, and it must never be freed.
 *
 * A handle may be used from several threads at once: one thread waits in
 * fgrab_wait_frame() while others release frames (any held frame, in any order), read
 * counters, stop, abort the wait (fgrab_abort_wait) or close. fgrab_stop() and
 * fgrab_close() wake every waiting thread (FGRAB_E_STATE); fgrab_close() returns once every
 * call in progress on the handle has returned. No call may start on a handle once
 * fgrab_close() was called on it, and the handle must not be used after it.
 */
#ifndef FGRAB_LEGACY_H
#define FGRAB_LEGACY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FGRAB_OK 0
#define FGRAB_E_INVAL (-1)    /* a null pointer, a zero or too large size, a bad index */
#define FGRAB_E_NODEV (-2)    /* no such card, or it went away */
#define FGRAB_E_BUSY (-3)     /* another process streams from the card */
#define FGRAB_E_TIMEOUT (-4)  /* no frame within the timeout */
#define FGRAB_E_STATE (-5)    /* call not allowed now (no buffer, already started, ...) */
#define FGRAB_E_IO (-6)       /* the driver or io_uring failed; see fgrab_last_error() */
#define FGRAB_E_NOMEM (-7)    /* out of memory */
#define FGRAB_E_INTERNAL (-8) /* a bug in the library, caught; afterwards only fgrab_close works */
/*
 * fgrab_set_buffer: the buffer would take the user's locked memory past RLIMIT_MEMLOCK
 * (io_uring charges the pinned buffer, in whole pages, to one account shared by all of the
 * user's processes). fgrab_last_error() names the bytes needed, the limit, the shortfall
 * and how to raise the limit (ulimit -l, limits.d, systemd LimitMEMLOCK=). Added after the
 * codes above: callers that test for FGRAB_OK or a negative code are unaffected.
 */
#define FGRAB_E_MEMLOCK (-9)
#define FGRAB_E_ABORTED (-10) /* the wait was ended by fgrab_abort_wait() */

/* timeout of fgrab_wait_frame: wait as long as it takes */
#define FGRAB_WAIT_FOREVER UINT32_MAX

/* flags of struct fgrab_frame_info */
#define FGRAB_FRAME_INCOMPLETE (1u << 1) /* bytes < frame_bytes */

typedef struct fgrab_handle fgrab_handle;

struct fgrab_frame_info {
	uint32_t index;        /* frame index in the buffer (offset index * frame_bytes) */
	uint32_t flags;        /* FGRAB_FRAME_* */
	uint64_t sequence;     /* frame number since fgrab_start; gaps are dropped frames */
	uint64_t timestamp_ns; /* end of frame, CLOCK_MONOTONIC */
	uint32_t bytes;        /* bytes written */
	uint32_t reserved;
	const void *data;      /* the frame's first byte in the application's buffer */
};

/* What fgrab_card_info() reports about a card. */
struct fgrab_card_info {
	uint32_t card;            /* N of /dev/fgrabN */
	uint32_t hw_version;      /* interface version: major << 16 | minor */
	uint32_t pci_domain;      /* PCI location domain:bus:device.function */
	uint8_t pci_bus;
	uint8_t pci_device;
	uint8_t pci_function;
	uint8_t reserved0;
	uint32_t max_frame_bytes; /* largest frame the card produces */
	uint32_t max_frames;      /* most frames a buffer may be split into */
	uint32_t frame_bytes;     /* the card's current frame size */
	uint32_t reserved1;
	uint64_t frame_period_ns; /* time between frame starts at that size */
	uint64_t reserved[4];
};

struct fgrab_counters {
	uint64_t frames_delivered; /* handed to the application */
	uint64_t frames_dropped;   /* dropped by the card (sequence gaps) */
	uint64_t frames_failed;    /* card errors, re-queued automatically */
	uint64_t bytes_delivered;
};

/* How many cards there are; they are numbered 0 .. count - 1. */
int fgrab_card_count(void);
/* Describes card N without streaming from it; on failure fgrab_last_error(NULL) says why. */
int fgrab_card_info(int card, struct fgrab_card_info *out);
/* Opens card N (/dev/fgrabN). On failure *out is NULL; fgrab_last_error(NULL) says why. */
int fgrab_open(int card, fgrab_handle **out);
/*
 * Stops (waking every thread that waits), waits for the calls in progress on @h to return,
 * gives the buffer back (the card no longer writes it afterwards) and frees @h. The handle
 * is gone whatever it returns; on failure fgrab_last_error(NULL) says why.
 */
int fgrab_close(fgrab_handle *h);
/*
 * Uses @buffer (not necessarily aligned) for total_bytes / frame_bytes frames packed back to
 * back, at most as many as the card supports (4095 for current cards); bytes after the last
 * frame are never written. Once per handle. FGRAB_E_MEMLOCK if the buffer does not fit the
 * locked-memory limit (an unprivileged caller's RLIMIT_MEMLOCK, 8 MiB by default).
 */
int fgrab_set_buffer(fgrab_handle *h, void *buffer, size_t total_bytes, uint32_t frame_bytes);
/*
 * Starts the card: every frame not held by the application is given to it, and filled frames
 * come from fgrab_wait_frame. FGRAB_E_STATE without a buffer or when started already.
 */
int fgrab_start(fgrab_handle *h);
/*
 * Stops the card: frames it holds come back; frames filled before the stop are still
 * returned by fgrab_wait_frame, then it returns FGRAB_E_STATE, in every waiting thread.
 * Held frames stay the application's. FGRAB_E_STATE when not started; fgrab_start again
 * resumes.
 */
int fgrab_stop(fgrab_handle *h);
/*
 * Waits up to timeout_ms (0: only look; FGRAB_WAIT_FOREVER: no limit) for the next frame;
 * FGRAB_E_TIMEOUT if none came. The frame is the application's until fgrab_release_frame.
 * After fgrab_stop, frames filled before the stop are still returned, then FGRAB_E_STATE;
 * FGRAB_E_NODEV once the card went away; FGRAB_E_ABORTED if fgrab_abort_wait ended it.
 */
int fgrab_wait_frame(fgrab_handle *h, uint32_t timeout_ms, struct fgrab_frame_info *out);
/*
 * Gives frame @index back to the card, at once, from any thread; FGRAB_E_INVAL if it is
 * not held.
 */
int fgrab_release_frame(fgrab_handle *h, uint32_t index);
/*
 * Makes one fgrab_wait_frame return FGRAB_E_ABORTED: the one in progress in another thread,
 * or the next one if none is (GenTL's EventKill).
 */
int fgrab_abort_wait(fgrab_handle *h);
/* Library counters since fgrab_set_buffer (zeros before it). */
int fgrab_get_counters(fgrab_handle *h, struct fgrab_counters *out);
/* A fixed description of an FGRAB_* code. */
const char *fgrab_strerror(int code);
/*
 * What went wrong in the calling thread's last failed call on @h, or, when @h is NULL, in its
 * last failed fgrab_open, fgrab_close or fgrab_card_info. Valid until the thread's next
 * failed call of the same kind; "" if there was none.
 */
const char *fgrab_last_error(const fgrab_handle *h);

#ifdef __cplusplus
}
#endif

#endif /* FGRAB_LEGACY_H */
