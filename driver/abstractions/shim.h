/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interface between the fgrab C shim (shim.c) and the Rust abstractions beside it: Rust
 * declares the fgrab_shim_* functions in shim.rs and implements the fgrab_file_* and
 * fgrab_misc_show callbacks in misc.rs. Nothing here knows fgrab's hardware or ABI.
 */
#ifndef FGRAB_SHIM_H
#define FGRAB_SHIM_H

#include <linux/types.h>

/* A byte range of one bvec segment of an import; mirrored by `BvecPiece` in sg_table.rs. */
struct fgrab_piece {
	u32 segment;
	u32 offset;
	u32 len;
	u32 reserved;
};

/*
 * Bytes copied to user memory by a command's completion task work, just before its CQE:
 * allocated by fgrab_shim_writeback_alloc, filled by Rust (`UserWriteback` in
 * uring_cmd.rs), freed by the task work (or fgrab_shim_writeback_free if never posted).
 * One frame's metadata (QUEUE) or a batch's (QUEUE_BATCH): len varies.
 */
struct fgrab_user_writeback {
	u64 addr;
	u32 len;
	u32 reserved;
	u8 bytes[];
};

/* Where a chunk of a page frame is for the CPU; mirrored by `CpuRange` in page_frame.rs. */
struct fgrab_cpu_range {
	void *addr;
	size_t len;
};

struct fgrab_fixed_import;
struct fgrab_periodic;
struct file;
struct inode;
struct io_uring_cmd;
struct miscdevice;
struct pci_dev;
struct sg_table;

/* Implemented in Rust (misc.rs), called through the file_operations in shim.c. */
int fgrab_file_open(struct inode *inode, struct file *file);
int fgrab_file_release(struct inode *inode, struct file *file);
int fgrab_file_uring_cmd(struct io_uring_cmd *cmd, unsigned int issue_flags);
ssize_t fgrab_file_read(struct file *file, char __user *buf, size_t count, loff_t *ppos);
long fgrab_file_ioctl(struct file *file, unsigned int cmd, unsigned long arg);
/* Implemented in Rust (misc.rs): the text of attribute @name of a registered misc device. */
ssize_t fgrab_misc_show(struct miscdevice *misc, const char *name, char *buf);

/* Implemented in shim.c, called from Rust (shim.rs). */
int fgrab_shim_misc_register(struct miscdevice *misc, const char *name,
			     struct pci_dev *pdev, const char *const *names,
			     unsigned int count);
void fgrab_shim_misc_deregister(struct miscdevice *misc);
u32 fgrab_shim_pci_location(struct pci_dev *pdev);
bool fgrab_shim_warn_ratelimit(void);
void fgrab_shim_bus_master(struct pci_dev *pdev, bool enable);
int fgrab_shim_index_alloc(void);
void fgrab_shim_index_free(int index);
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
				 struct fgrab_user_writeback *writeback, bool lazy);
struct fgrab_user_writeback *fgrab_shim_writeback_alloc(u64 addr, u32 len);
u8 *fgrab_shim_writeback_bytes(struct fgrab_user_writeback *writeback);
void fgrab_shim_writeback_free(struct fgrab_user_writeback *writeback);
struct fgrab_fixed_import *fgrab_shim_fixed_import(struct io_uring_cmd *cmd,
						   unsigned int issue_flags, u64 addr,
						   u64 len, int *err);
void fgrab_shim_fixed_release(struct fgrab_fixed_import *import);
unsigned long fgrab_shim_fixed_segments(const struct fgrab_fixed_import *import, u64 *skip);
u32 fgrab_shim_fixed_segment_len(const struct fgrab_fixed_import *import,
				 unsigned long index);
u64 fgrab_shim_max_sg_entry(struct pci_dev *pdev);
u64 fgrab_shim_bounce_pool_bytes(struct pci_dev *pdev);
u32 fgrab_shim_dma_alignment(struct pci_dev *pdev);
void fgrab_shim_warn_ratelimited(struct pci_dev *pdev, const char *message);
struct sg_table *fgrab_shim_sg_map(const struct fgrab_fixed_import *import,
				   const struct fgrab_piece *pieces, unsigned int count,
				   struct pci_dev *pdev, int *err);
void fgrab_shim_sg_unmap(struct sg_table *sgt, struct pci_dev *pdev);
void fgrab_shim_sg_sync(struct sg_table *sgt, struct pci_dev *pdev, bool for_cpu);
struct sg_table *fgrab_shim_page_frame_alloc(struct pci_dev *pdev, u32 bytes,
					     u64 max_chunk, int *err);
void fgrab_shim_page_frame_free(struct sg_table *sgt, struct pci_dev *pdev);
unsigned int fgrab_shim_page_frame_ranges(const struct sg_table *sgt,
					  struct fgrab_cpu_range *pieces, unsigned int max);
void *fgrab_shim_dma_alloc(struct pci_dev *pdev, size_t size, u64 *dma);
void fgrab_shim_dma_free(struct pci_dev *pdev, size_t size, void *cpu, u64 dma);
struct fgrab_periodic *fgrab_shim_periodic_start(void (*run)(void *data), void *data,
						 unsigned int period_ms);
void fgrab_shim_periodic_stop(struct fgrab_periodic *periodic);
void fgrab_shim_periodic_kick(struct fgrab_periodic *periodic);

#endif /* FGRAB_SHIM_H */
