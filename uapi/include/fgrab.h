/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * fgrab user/kernel ABI for C clients.
 *
 * Mirror of uapi/src/lib.rs (the authority on layout); tests/c_header.rs checks that every
 * size and offset here matches the Rust definitions. See docs/abi.md for the protocol.
 *
 * Commands are IORING_OP_URING_CMD submissions on /dev/fgrabN, on a ring created with
 * IORING_SETUP_SQE128 | IORING_SETUP_CQE32. Each command's 80-byte payload (the SQE's cmd
 * area) is one of the *_cmd structures below. Errors are negative errno values in cqe->res.
 */
#ifndef FGRAB_UAPI_H
#define FGRAB_UAPI_H

#include <stdint.h>
#include <linux/ioctl.h>

#define FGRAB_ABI_VERSION 1u
#define FGRAB_CMD_PAYLOAD_BYTES 80u

#define FGRAB_OP(n) (0x46470000u | (n))
/* Copy a struct fgrab_device_info to user memory; res = bytes written. */
#define FGRAB_OP_INFO FGRAB_OP(0x01)
/*
 * Attach a region of a fixed buffer (IORING_URING_CMD_FIXED, sqe->buf_index). Stays in
 * flight for the region's life: res = 0 after DETACH, -ECANCELED on ring exit, -ENODEV when
 * the card goes away; errors complete it at once.
 */
#define FGRAB_OP_ATTACH FGRAB_OP(0x02)
/*
 * Detach one region of this file's stream (struct fgrab_detach_cmd); res = 0, then its
 * attach command completes once the card can no longer write it. Other regions keep
 * streaming.
 */
#define FGRAB_OP_DETACH FGRAB_OP(0x03)
/* Copy a struct fgrab_stats to user memory; res = bytes written. */
#define FGRAB_OP_STATS FGRAB_OP(0x04)
/*
 * Queue one frame of an attached region (same file and ring as its ATTACH). Completes when
 * the card filled it: res = bytes, big_cqe[0] = sequence number; or res = -EIO (card
 * error), -ECANCELED (stream stopped, region ended), -ENODEV (card gone).
 */
#define FGRAB_OP_QUEUE FGRAB_OP(0x05)
/* Start the stream; res = 0. */
#define FGRAB_OP_START FGRAB_OP(0x06)
/* Stop the stream; every queued frame completes with -ECANCELED first; res = 0. */
#define FGRAB_OP_STOP FGRAB_OP(0x07)
/*
 * Camera (struct fgrab_port_cmd): read the GenICam XML (res = bytes copied, or the XML's
 * size when size is 0), read or write the feature window (offset and size multiples of 4,
 * inside the window; res = size). At most FGRAB_MAX_PORT_BYTES per command.
 */
#define FGRAB_OP_XML_READ FGRAB_OP(0x08)
#define FGRAB_OP_FEATURE_READ FGRAB_OP(0x09)
#define FGRAB_OP_FEATURE_WRITE FGRAB_OP(0x0a)
#define FGRAB_MAX_PORT_BYTES 4096u
/*
 * Queue frames first..first+count-1 of a region with one SQE (struct fgrab_queue_batch_cmd,
 * rules of QUEUE for each, all checked before any is queued). Completes once, when every
 * frame is no longer the card's: res = frames filled (or, if none was, the first frame's
 * -errno), big_cqe[0] = sequence number of the last frame; one struct fgrab_frame_meta
 * per frame, in order, written to meta_addr.
 */
#define FGRAB_OP_QUEUE_BATCH FGRAB_OP(0x0b)
#define FGRAB_MAX_BATCH_FRAMES 64u

#define FGRAB_MAX_FRAMES 4095u
#define FGRAB_STATE_IDLE 0u
#define FGRAB_STATE_ATTACHED 1u
#define FGRAB_STATE_STREAMING 2u

/* struct fgrab_frame_meta flags */
#define FGRAB_META_FRAME (1u << 0)      /* sequence and timestamp_ns are valid */
#define FGRAB_META_INCOMPLETE (1u << 1) /* bytes is a prefix of a longer frame */
#define FGRAB_META_ERROR (1u << 2)      /* the card reported an error */
#define FGRAB_META_FLUSHED (1u << 3)    /* given back unfilled */

/* Payload of INFO and STATS. */
struct fgrab_copy_out_cmd {
	uint64_t addr;         /* where to write the structure */
	uint32_t size;         /* bytes available at addr, not 0 */
	uint32_t flags;        /* must be 0 */
	uint64_t reserved[8];  /* must be 0 */
};

/* Payload of ATTACH: frame i is frame_bytes at region offset i * frame_stride. */
struct fgrab_attach_cmd {
	uint64_t addr;         /* user address of the region (any alignment) */
	uint64_t len;          /* region bytes */
	uint64_t frame_stride; /* >= frame_bytes */
	uint32_t frame_bytes;  /* >= 1 */
	uint32_t frame_count;  /* 1..=FGRAB_MAX_FRAMES (all regions of the stream together) */
	uint32_t flags;        /* must be 0 */
	uint32_t region;       /* region id, < FGRAB_MAX_REGIONS (0: the one region of older
				* programs, which had a reserved zero here) */
	uint64_t reserved[5];  /* must be 0 */
};

/* Payload of QUEUE. */
struct fgrab_queue_cmd {
	uint32_t frame;        /* frame index in the region */
	uint32_t flags;        /* must be 0 */
	uint64_t meta_addr;    /* struct fgrab_frame_meta filled before completion, or 0 */
	uint32_t region;       /* region id (0 for older programs: was reserved) */
	uint32_t reserved0;    /* must be 0 */
	uint64_t reserved[7];  /* must be 0 */
};

/* Payload of QUEUE_BATCH. */
struct fgrab_queue_batch_cmd {
	uint32_t first;        /* index of the batch's first frame in the region */
	uint32_t count;        /* frames, 1..FGRAB_MAX_BATCH_FRAMES */
	uint64_t meta_addr;    /* count struct fgrab_frame_meta filled before completion, or 0 */
	uint32_t region;       /* region id */
	uint32_t flags;        /* must be 0 */
	uint64_t reserved[7];  /* must be 0 */
};

/* What the card reported about a queued frame (QUEUE's meta_addr). */
struct fgrab_frame_meta {
	uint64_t sequence;     /* counts dropped frames too: gaps are drops */
	uint64_t timestamp_ns; /* end of frame, CLOCK_MONOTONIC ns */
	uint32_t bytes;        /* bytes written into the frame */
	uint32_t flags;        /* FGRAB_META_* */
	uint32_t frame;        /* frame index */
	uint32_t region;       /* region id (0 for older programs: was reserved) */
};

/* Payload of XML_READ, FEATURE_READ and FEATURE_WRITE. */
struct fgrab_port_cmd {
	uint64_t addr;         /* user address of the bytes */
	uint32_t offset;       /* byte offset in the XML or the feature window */
	uint32_t size;         /* bytes, at most FGRAB_MAX_PORT_BYTES */
	uint32_t flags;        /* must be 0 */
	uint32_t reserved0;    /* must be 0 */
	uint64_t reserved[7];  /* must be 0 */
};

/* Payload of STOP (and of START with the driver's defaults). */
struct fgrab_control_cmd {
	uint32_t flags;        /* must be 0 */
	uint32_t reserved0;    /* must be 0 */
	uint64_t reserved[9];  /* must be 0 */
};

/* Payload of DETACH: a zeroed fgrab_control_cmd detaches region 0, as before. */
struct fgrab_detach_cmd {
	uint32_t flags;        /* must be 0 */
	uint32_t region;       /* region id */
	uint64_t reserved[9];  /* must be 0 */
};

/* Most regions of one stream: ids 0..FGRAB_MAX_REGIONS-1. */
#define FGRAB_MAX_REGIONS 64u

/* fgrab_start_cmd.flags: irq_delay_us says how to moderate frame interrupts. */
#define FGRAB_START_IRQ_DELAY (1u << 0)
/* Largest irq_delay_us: 100 ms, the driver watchdog's period. */
#define FGRAB_MAX_IRQ_DELAY_US 100000u

/* fgrab_start_cmd.flags: irq_frames asks for one frame interrupt per that many frames. */
#define FGRAB_START_IRQ_FRAMES (1u << 1)
/* Largest irq_frames. */
#define FGRAB_MAX_IRQ_FRAMES 4095u

/* Payload of START. */
struct fgrab_start_cmd {
	uint32_t flags;        /* FGRAB_START_IRQ_DELAY, FGRAB_START_IRQ_FRAMES, both or 0 */
	uint32_t irq_delay_us; /* with the flag: least us between two frame interrupts (0: one
				* per frame); without it 0, and the driver moderates to half the
				* card's frame period. With irq_frames > 1: the longest a frame
				* waits for its interrupt (not 0; default irq_frames periods) */
	uint32_t irq_frames;   /* with FGRAB_START_IRQ_FRAMES: frames per interrupt (0: the
				* driver's choice, 1: every frame); without it 0 */
	uint32_t reserved0;    /* must be 0 */
	uint64_t reserved[8];  /* must be 0 */
};

struct fgrab_stats {
	uint32_t struct_size;
	uint32_t state;        /* FGRAB_STATE_* */
	uint32_t frame_count;
	uint32_t frame_bytes;
	uint64_t frame_stride;
	uint64_t region_bytes;
	uint32_t descriptors_total;
	uint32_t descriptors_max_per_frame;
	uint32_t mapped_entries; /* DMA-mapped sg entries, after IOMMU merging */
	uint32_t frames_queued;
	/* since the last START: */
	uint64_t frames_delivered;
	uint64_t frames_dropped_underrun;
	uint64_t frames_dropped_other;
	uint64_t frames_failed;
	uint64_t bytes_delivered;
	uint64_t frame_irqs;   /* frame interrupts handled */
	/* struct_size >= 120: */
	uint64_t frames_completed; /* frame commands completed, any result */
	uint64_t commands;     /* URING_CMD submissions handled (SQEs) */
	uint64_t cqes;         /* completions posted (CQEs) */
};

struct fgrab_device_info {
	uint32_t struct_size;
	uint32_t abi_version;
	uint32_t card_index;   /* N of /dev/fgrabN */
	uint32_t hw_version;
	uint16_t vendor_id;
	uint16_t device_id;
	uint16_t subsystem_vendor_id;
	uint16_t subsystem_id;
	uint32_t pci_location; /* domain << 16 | bus << 8 | devfn */
	uint8_t revision;
	uint8_t reserved0[3];
	uint32_t max_segment_bytes;
	uint32_t max_descriptors_per_frame;
	uint32_t frame_bytes;      /* at probe time: stale once START sets the region's size */
	uint32_t dma_address_bits;
	uint64_t frame_period_ns;  /* for that frame_bytes, at probe time: stale after START */
	uint32_t max_frame_bytes;
	uint32_t max_frames;
	uint64_t reserved[3];
};

/*
 * Per-frame blocking path (V4L2-style), on a region attached through io_uring:
 * QBUF queues a frame index, DQBUF waits for the oldest such frame and returns its
 * metadata (-EAGAIN if none is queued). The numbers come from <linux/ioctl.h>, so they are
 * right for every architecture's _IOC layout (fgrab_uapi::ioctls mirrors the generic one
 * and that of powerpc, mips and sparc).
 */
#define FGRAB_IOC_QBUF _IOW('F', 0x10, uint32_t)
#define FGRAB_IOC_DQBUF _IOR('F', 0x11, struct fgrab_frame_meta)

_Static_assert(sizeof(struct fgrab_copy_out_cmd) == FGRAB_CMD_PAYLOAD_BYTES, "copy_out_cmd size");
_Static_assert(sizeof(struct fgrab_attach_cmd) == FGRAB_CMD_PAYLOAD_BYTES, "attach_cmd size");
_Static_assert(sizeof(struct fgrab_queue_cmd) == FGRAB_CMD_PAYLOAD_BYTES, "queue_cmd size");
_Static_assert(sizeof(struct fgrab_queue_batch_cmd) == FGRAB_CMD_PAYLOAD_BYTES,
	       "queue_batch_cmd size");
_Static_assert(sizeof(struct fgrab_port_cmd) == FGRAB_CMD_PAYLOAD_BYTES, "port_cmd size");
_Static_assert(sizeof(struct fgrab_control_cmd) == FGRAB_CMD_PAYLOAD_BYTES, "control_cmd size");
_Static_assert(sizeof(struct fgrab_detach_cmd) == FGRAB_CMD_PAYLOAD_BYTES, "detach_cmd size");
_Static_assert(sizeof(struct fgrab_frame_meta) == 32, "fgrab_frame_meta size");
_Static_assert(sizeof(struct fgrab_stats) == 120, "fgrab_stats size");
_Static_assert(sizeof(struct fgrab_start_cmd) == FGRAB_CMD_PAYLOAD_BYTES, "start_cmd size");
_Static_assert(sizeof(struct fgrab_device_info) == 88, "fgrab_device_info size");

#endif /* FGRAB_UAPI_H */
