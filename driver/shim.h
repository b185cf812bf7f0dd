/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interface between the fgrab C shim (shim.c) and the Rust driver. Rust declares the
 * fgrab_shim_* functions in shim.rs and implements the fgrab_file_* callbacks in file.rs.
 */
#ifndef FGRAB_SHIM_H
#define FGRAB_SHIM_H

#include <linux/interrupt.h>
#include <linux/types.h>

/* A byte range of one bvec segment of a region; mirrored by `Piece` in sglist.rs. */
struct fgrab_piece {
	u32 segment;
	u32 offset;
	u32 len;
	u32 reserved;
};

/*
 * Where and what to report about a completed frame: filled by Rust (a kmalloc'ed
 * `FrameOut` in shim.rs), copied to user space and freed by the completion's task work.
 */
struct fgrab_frame_out {
	u64 meta_addr;
	u8 meta[32]; /* struct fgrab_frame_meta (uapi) */
};

/* What sysfs shows of a card; filled by Rust (`Snapshot` in shim.rs). */
struct fgrab_snapshot {
	u32 hw_version;
	u32 card_index;
	u32 state; /* FGRAB_STATE_* (uapi) */
	u32 frame_bytes;
	u32 frame_count;
	u32 frames_queued;
	u32 descriptors_max_per_frame;
	u32 reserved;
	u64 frames_delivered;
	u64 frames_dropped_underrun;
	u64 frames_dropped_other;
	u64 frames_failed;
	u64 bytes_delivered;
};

/* A piece of a driver-owned frame as the CPU sees it; mirrored by `CpuPiece` in shim.rs. */
struct fgrab_cpu_piece {
	void *addr;
	size_t len;
};

struct fgrab_region;
struct file;
struct inode;
struct io_uring_cmd;
struct miscdevice;
struct pci_dev;
struct sg_table;

/* Implemented in Rust (driver/file.rs), called through fgrab's file_operations. */
int fgrab_file_open(struct inode *inode, struct file *file);
int fgrab_file_release(struct inode *inode, struct file *file);
int fgrab_file_uring_cmd(struct io_uring_cmd *cmd, unsigned int issue_flags);
ssize_t fgrab_file_read(struct file *file, char __user *buf, size_t count, loff_t *ppos);
long fgrab_file_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* Implemented in Rust (driver/shim.rs): the threaded half of an interrupt vector. */
irqreturn_t fgrab_irq_thread(int irq, void *data);
/* Implemented in Rust (driver/shim.rs): a card's state for its sysfs attributes. */
void fgrab_card_snapshot(struct miscdevice *misc, struct fgrab_snapshot *snapshot);
/* Implemented in Rust (driver/shim.rs): one period of a card's watchdog. */
void fgrab_watchdog_run(void *data);

/* Implemented in shim.c, called from Rust (driver/shim.rs). */
int fgrab_shim_misc_register(struct miscdevice *misc, const char *name,
			     struct pci_dev *pdev);
void fgrab_shim_misc_deregister(struct miscdevice *misc);
u32 fgrab_shim_pci_location(struct pci_dev *pdev);
bool fgrab_shim_warn_ratelimit(void);
void fgrab_shim_bus_master(struct pci_dev *pdev, bool enable);
int fgrab_shim_card_index_alloc(void);
void fgrab_shim_card_index_free(int index);
u32 fgrab_shim_cmd_op(const struct io_uring_cmd *cmd);
struct file *fgrab_shim_cmd_file(const struct io_uring_cmd *cmd);
int fgrab_shim_cmd_payload(const struct io_uring_cmd *cmd, unsigned int issue_flags,
			   void *dst, size_t len);
bool fgrab_shim_cmd_is_fixed(const struct io_uring_cmd *cmd);
bool fgrab_shim_issue_is_cancel(unsigned int issue_flags);
bool fgrab_shim_issue_has_cqe32(unsigned int issue_flags);
const void *fgrab_shim_cmd_ring(struct io_uring_cmd *cmd);
void fgrab_shim_cmd_mark_cancelable(struct io_uring_cmd *cmd, unsigned int issue_flags);
void fgrab_shim_cmd_done_in_task(struct io_uring_cmd *cmd, s32 res, u64 res2,
				 struct fgrab_frame_out *out, bool lazy);
struct fgrab_region *fgrab_shim_region_import(struct io_uring_cmd *cmd,
					      unsigned int issue_flags, u64 addr,
					      u64 len, int *err);
void fgrab_shim_region_release(struct fgrab_region *region);
u64 fgrab_shim_max_sg_entry(struct pci_dev *pdev);
u64 fgrab_shim_bounce_pool_bytes(struct pci_dev *pdev);
u32 fgrab_shim_dma_alignment(struct pci_dev *pdev);
void fgrab_shim_warn_ratelimited(struct pci_dev *pdev, const char *message);
unsigned long fgrab_shim_region_segments(const struct fgrab_region *region, u64 *skip);
u32 fgrab_shim_region_segment_len(const struct fgrab_region *region, unsigned long index);
struct sg_table *fgrab_shim_frame_map(const struct fgrab_region *region,
				      const struct fgrab_piece *pieces, unsigned int count,
				      struct pci_dev *pdev, int *err);
void fgrab_shim_frame_unmap(struct sg_table *sgt, struct pci_dev *pdev);
struct sg_table *fgrab_shim_kernel_frame_alloc(struct pci_dev *pdev, u32 bytes,
					       u64 max_chunk, int *err);
void fgrab_shim_kernel_frame_free(struct sg_table *sgt, struct pci_dev *pdev);
unsigned int fgrab_shim_kernel_frame_pieces(const struct sg_table *sgt,
					    struct fgrab_cpu_piece *pieces, unsigned int max);
void fgrab_shim_frame_sync(struct sg_table *sgt, struct pci_dev *pdev, bool for_cpu);
void *fgrab_shim_dma_alloc(struct pci_dev *pdev, size_t size, u64 *dma);
void fgrab_shim_dma_free(struct pci_dev *pdev, size_t size, void *cpu, u64 dma);
int fgrab_shim_irq_vectors_alloc(struct pci_dev *pdev, unsigned int count);
int fgrab_shim_irq_vector(struct pci_dev *pdev, unsigned int index);
void fgrab_shim_irq_vectors_free(struct pci_dev *pdev);
int fgrab_shim_irq_request(unsigned int irq, const char *name, void *data);
void fgrab_shim_irq_free(unsigned int irq, void *data);
struct fgrab_watchdog *fgrab_shim_watchdog_start(void *data, unsigned int period_ms);
void fgrab_shim_watchdog_stop(struct fgrab_watchdog *watchdog);
void fgrab_shim_watchdog_kick(struct fgrab_watchdog *watchdog);

#endif /* FGRAB_SHIM_H */
