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

#define FGRAB_ABI_VERSION 1u
#define FGRAB_CMD_PAYLOAD_BYTES 80u

#define FGRAB_OP(n) (0x46470000u | (n))
/* Copy a struct fgrab_device_info to user memory; res = bytes written. */
#define FGRAB_OP_INFO FGRAB_OP(0x01)

struct fgrab_info_cmd {
	uint64_t addr;         /* where to write struct fgrab_device_info */
	uint32_t size;         /* bytes available at addr */
	uint32_t flags;        /* must be 0 */
	uint64_t reserved[8];  /* must be 0 */
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
	uint32_t frame_bytes;
	uint32_t dma_address_bits;
	uint64_t frame_period_ns;
	uint64_t reserved[4];
};

_Static_assert(sizeof(struct fgrab_info_cmd) == FGRAB_CMD_PAYLOAD_BYTES, "fgrab_info_cmd size");
_Static_assert(sizeof(struct fgrab_device_info) == 88, "fgrab_device_info size");

#endif /* FGRAB_UAPI_H */
