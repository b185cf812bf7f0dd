// SPDX-License-Identifier: GPL-2.0
/*
 * C shim of the fgrab driver: the kernel APIs that Linux 7.3 offers no Rust abstraction
 * for, as inline functions, macros or structures Rust cannot reach. Compiled against the
 * real headers, so API changes break here, loudly, instead of in hand-written Rust
 * declarations. Nothing here knows fgrab's hardware or ABI: the Rust abstractions in
 * driver/abstractions/ wrap each function (declarations in driver/abstractions/shim.rs).
 *
 * - file_operations with .uring_cmd and sysfs attributes built from names: kernel::miscdevice
 *   builds its own table without that slot, and has no attribute groups (misc.rs).
 * - struct io_uring_cmd accessors and fixed-buffer import (linux/io_uring/cmd.h has no Rust
 *   bindings; uring_cmd.rs), scatterlists over its bvecs (sg_table.rs, page_frame.rs).
 * - the IDA that numbers device nodes (DEFINE_IDA), a rate limit (DEFINE_RATELIMIT_STATE),
 *   a cancelable periodic work.
 */
#include <linux/dma-map-ops.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/io_uring/cmd.h>
#include <linux/log2.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/ratelimit.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/swiotlb.h>
#include <linux/uio.h>
#include <linux/workqueue.h>

#include "shim.h"

static const struct file_operations fgrab_fops = {
	.owner = THIS_MODULE,
	.open = fgrab_file_open,
	.release = fgrab_file_release,
	.uring_cmd = fgrab_file_uring_cmd,
	.read = fgrab_file_read,
	.unlocked_ioctl = fgrab_file_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/*
 * Read-only sysfs attributes of a misc device, one per name Rust passes at registration
 * (misc.rs): each read asks Rust for a fresh value. The misc core removes the attributes,
 * and waits for readers, before misc_deregister() returns.
 */
struct fgrab_misc_attrs {
	struct attribute_group group;
	const struct attribute_group *groups[2];
	struct attribute **attrs;
	struct device_attribute dev_attrs[];
};

static ssize_t fgrab_misc_attr_show(struct device *dev, struct device_attribute *attr,
				    char *buf)
{
	return fgrab_misc_show(dev_get_drvdata(dev), attr->attr.name, buf);
}

/*
 * Registers @misc as /dev/@name, a child of @pdev in sysfs, with the table above and the
 * attributes named by @names (which must outlive the registration).
 */
int fgrab_shim_misc_register(struct miscdevice *misc, const char *name,
			     struct pci_dev *pdev, const char *const *names,
			     unsigned int count)
{
	struct fgrab_misc_attrs *attrs;
	unsigned int i;
	int ret;

	attrs = kzalloc(struct_size(attrs, dev_attrs, count), GFP_KERNEL);
	if (!attrs)
		return -ENOMEM;
	attrs->attrs = kcalloc(count + 1, sizeof(*attrs->attrs), GFP_KERNEL);
	if (!attrs->attrs) {
		kfree(attrs);
		return -ENOMEM;
	}
	for (i = 0; i < count; i++) {
		struct device_attribute *attr = &attrs->dev_attrs[i];

		sysfs_attr_init(&attr->attr);
		attr->attr.name = names[i];
		attr->attr.mode = 0444;
		attr->show = fgrab_misc_attr_show;
		attrs->attrs[i] = &attr->attr;
	}
	attrs->group.attrs = attrs->attrs;
	attrs->groups[0] = &attrs->group;
	misc->minor = MISC_DYNAMIC_MINOR;
	misc->name = name;
	misc->fops = &fgrab_fops;
	misc->parent = &pdev->dev;
	misc->mode = 0660;
	misc->groups = attrs->groups;
	ret = misc_register(misc);
	if (ret) {
		kfree(attrs->attrs);
		kfree(attrs);
	}
	return ret;
}

void fgrab_shim_misc_deregister(struct miscdevice *misc)
{
	struct fgrab_misc_attrs *attrs =
		container_of(misc->groups, struct fgrab_misc_attrs, groups[0]);

	misc_deregister(misc);
	kfree(attrs->attrs);
	kfree(attrs);
}

/*
 * Bus Master Enable gates every DMA the card makes (docs/hardware.md §2). kernel::pci only
 * sets it, during probe; the engine also clears it when a card will not stop.
 */
void fgrab_shim_bus_master(struct pci_dev *pdev, bool enable)
{
	if (enable)
		pci_set_master(pdev);
	else
		pci_clear_master(pdev);
}

/*
 * Whether a warning about what the card did may be logged now. A card is not trusted: one
 * that floods the driver with bad records or fault interrupts must not flood the log too.
 * One budget for every card: the default burst per interval, then a count of the
 * suppressed ones when the interval ends.
 */
static DEFINE_RATELIMIT_STATE(fgrab_card_warnings, DEFAULT_RATELIMIT_INTERVAL,
			      DEFAULT_RATELIMIT_BURST);

bool fgrab_shim_warn_ratelimit(void)
{
	return __ratelimit(&fgrab_card_warnings);
}

/* PCI location as domain << 16 | bus << 8 | devfn (the Rust PCI API has no domain). */
u32 fgrab_shim_pci_location(struct pci_dev *pdev)
{
	return (u32)pci_domain_nr(pdev->bus) << 16 | pdev->bus->number << 8 | pdev->devfn;
}

static DEFINE_IDA(fgrab_index_ida);

/* Smallest free card number, or a negative errno. */
int fgrab_shim_index_alloc(void)
{
	return ida_alloc(&fgrab_index_ida, GFP_KERNEL);
}

void fgrab_shim_index_free(int index)
{
	ida_free(&fgrab_index_ida, index);
}

u32 fgrab_shim_cmd_op(const struct io_uring_cmd *cmd)
{
	return cmd->cmd_op;
}

struct file *fgrab_shim_cmd_file(const struct io_uring_cmd *cmd)
{
	return cmd->file;
}

/*
 * Copies the command payload (the SQE's cmd area) into @dst. The SQE may live in memory
 * shared with user space, so it is read exactly once here and validated only as a copy.
 * Rings without IORING_SETUP_SQE128 carry 16 bytes, too short for any fgrab command.
 */
int fgrab_shim_cmd_payload(const struct io_uring_cmd *cmd, unsigned int issue_flags,
			   void *dst, size_t len)
{
	const size_t available = 2 * sizeof(struct io_uring_sqe) -
				 offsetof(struct io_uring_sqe, cmd);

	if (!(issue_flags & IO_URING_F_SQE128) || len > available)
		return -EINVAL;
	memcpy(dst, cmd->sqe->cmd, len);
	return 0;
}

bool fgrab_shim_cmd_is_fixed(const struct io_uring_cmd *cmd)
{
	return cmd->flags & IORING_URING_CMD_FIXED;
}

bool fgrab_shim_issue_is_cancel(unsigned int issue_flags)
{
	return issue_flags & IO_URING_F_CANCEL;
}

/* Whether the ring posts 32-byte CQEs (IORING_SETUP_CQE32 or CQE_MIXED). */
bool fgrab_shim_issue_has_cqe32(unsigned int issue_flags)
{
	return issue_flags & IO_URING_F_CQE32;
}

/* Identifies the ring a command came from (its io_ring_ctx), for comparison only. */
const void *fgrab_shim_cmd_ring(struct io_uring_cmd *cmd)
{
	return io_uring_cmd_ctx_handle(cmd);
}

void fgrab_shim_cmd_mark_cancelable(struct io_uring_cmd *cmd, unsigned int issue_flags)
{
	io_uring_cmd_mark_cancelable(cmd, issue_flags);
}

struct fgrab_cmd_pdu {
	s32 res;
	u64 res2;
	struct fgrab_user_writeback *writeback;
};

/*
 * Task work in the submitter's context: user memory is its own, so the writeback (a
 * frame's metadata) is copied out here, just before the CQE that announces it. When the
 * task is exiting (tw.cancel) nobody will read it; a fault is ignored, the CQE stays
 * authoritative.
 */
static void fgrab_cmd_done_tw(struct io_tw_req tw_req, io_tw_token_t tw)
{
	struct io_uring_cmd *cmd = io_uring_cmd_from_tw(tw_req);
	struct fgrab_cmd_pdu *pdu = io_uring_cmd_to_pdu(cmd, struct fgrab_cmd_pdu);

	if (pdu->writeback) {
		if (!tw.cancel && copy_to_user(u64_to_user_ptr(pdu->writeback->addr),
					       pdu->writeback->bytes, pdu->writeback->len))
			pr_debug("fgrab: completion writeback not written (fault)\n");
		kfree(pdu->writeback);
	}
	io_uring_cmd_done32(cmd, pdu->res, pdu->res2, IO_URING_CMD_TASK_WORK_ISSUE_FLAGS);
}

/* A writeback of @len bytes (zeroed) for user address @addr; NULL without memory. */
struct fgrab_user_writeback *fgrab_shim_writeback_alloc(u64 addr, u32 len)
{
	struct fgrab_user_writeback *writeback;

	writeback = kzalloc(struct_size(writeback, bytes, len), GFP_KERNEL);
	if (writeback) {
		writeback->addr = addr;
		writeback->len = len;
	}
	return writeback;
}

u8 *fgrab_shim_writeback_bytes(struct fgrab_user_writeback *writeback)
{
	return writeback->bytes;
}

void fgrab_shim_writeback_free(struct fgrab_user_writeback *writeback)
{
	kfree(writeback);
}

/*
 * Completes @cmd from any context (another command, release, unbind, interrupt
 * thread): the CQE is posted from task work in the submitter's context, with the issue
 * flags io_uring gives there. @writeback (may be NULL) is consumed. The caller must not touch
 * @cmd afterwards. @lazy: the waiter need not be woken before it has as many completions
 * as it waits for (DEFER_TASKRUN rings; @cmd posts one CQE).
 */
void fgrab_shim_cmd_done_in_task(struct io_uring_cmd *cmd, s32 res, u64 res2,
				 struct fgrab_user_writeback *writeback, bool lazy)
{
	struct fgrab_cmd_pdu *pdu = io_uring_cmd_to_pdu(cmd, struct fgrab_cmd_pdu);

	pdu->res = res;
	pdu->res2 = res2;
	pdu->writeback = writeback;
	if (lazy)
		io_uring_cmd_do_in_task_lazy(cmd, fgrab_cmd_done_tw);
	else
		io_uring_cmd_complete_in_task(cmd, fgrab_cmd_done_tw);
}

/*
 * A region of an io_uring fixed buffer, imported by the command that attaches it. The
 * bvec array belongs to io_uring's buffer and stays valid (and pinned) while that command
 * is in flight: the region must be released before the command completes.
 */
struct fgrab_fixed_import {
	struct iov_iter iter;
};

struct fgrab_fixed_import *fgrab_shim_fixed_import(struct io_uring_cmd *cmd,
					      unsigned int issue_flags, u64 addr,
					      u64 len, int *err)
{
	struct fgrab_fixed_import *region;
	int ret;

	if (!(cmd->flags & IORING_URING_CMD_FIXED)) {
		*err = -EINVAL;
		return NULL;
	}
	region = kzalloc(sizeof(*region), GFP_KERNEL);
	if (!region) {
		*err = -ENOMEM;
		return NULL;
	}
	ret = io_uring_cmd_import_fixed(addr, len, ITER_DEST, &region->iter, cmd,
					issue_flags);
	if (!ret && !iov_iter_is_bvec(&region->iter))
		ret = -EINVAL;
	if (ret) {
		kfree(region);
		*err = ret;
		return NULL;
	}
	return region;
}

/*
 * Marks every page of @region dirty. The card may have written any byte of it, and
 * io_uring unpins registered buffers without dirtying them (videobuf2 USERPTR does it with
 * unpin_user_pages_dirty_lock() instead): without this, a file-backed or swap-cached page
 * written only by DMA could be reclaimed as clean and the frames lost. Once per region, at
 * its end: after the last DMA (every frame unmapped, so bounce buffers were copied back)
 * and while the attach command still keeps the pages pinned. May sleep (page locks).
 */
static void fgrab_fixed_mark_dirty(const struct fgrab_fixed_import *region)
{
	size_t skip = region->iter.iov_offset, left = region->iter.count;
	struct folio *last = NULL;
	unsigned long i;

	for (i = 0; i < region->iter.nr_segs && left; i++) {
		const struct bio_vec *bv = &region->iter.bvec[i];
		size_t start, end, off;

		if (skip >= bv->bv_len) {
			skip -= bv->bv_len;
			continue;
		}
		start = bv->bv_offset + skip;
		end = bv->bv_offset + min_t(size_t, bv->bv_len, skip + left);
		left -= end - start;
		skip = 0;
		for (off = round_down(start, PAGE_SIZE); off < end; off += PAGE_SIZE) {
			struct folio *folio = page_folio(bv->bv_page + (off >> PAGE_SHIFT));

			/*
			 * A huge page is one folio: dirty it once, and only if it is clean (a
			 * region attached again finds its pages dirty already). Only user memory,
			 * which io_uring pinned (FOLL_PIN): a kernel buffer registered by ublk may
			 * be page cache locked by its own request, and is not ours to dirty.
			 */
			if (folio != last && !folio_test_dirty(folio) &&
			    folio_maybe_dma_pinned(folio))
				folio_mark_dirty_lock(folio);
			last = folio;
		}
		cond_resched();
	}
}

/* Ends an import whose frames are all unmapped; see fgrab_fixed_mark_dirty(). */
void fgrab_shim_fixed_release(struct fgrab_fixed_import *region)
{
	fgrab_fixed_mark_dirty(region);
	kfree(region);
}

/* Longest sg entry the DMA layer maps as one piece for @pdev (swiotlb limits it). */
u64 fgrab_shim_max_sg_entry(struct pci_dev *pdev)
{
	size_t max = min_t(size_t, dma_get_max_seg_size(&pdev->dev),
			   dma_max_mapping_size(&pdev->dev));

	return max(round_down(max, PAGE_SIZE), (size_t)PAGE_SIZE);
}

/*
 * Bytes of the swiotlb pool that streaming mappings of @pdev are bounced through, or 0 if
 * they are not bounced (or there is no pool, in which case a bounced mapping fails).
 *
 * The test is dma_max_mapping_size() != SIZE_MAX: it is the DMA layer's own answer to
 * "do this device's mappings go through swiotlb" (dma_direct_max_mapping_size(): an
 * active pool and an addressing-limited mask, swiotlb=force, or force_dma_unencrypted(),
 * which is how SEV and TDX guests bounce every mapping; iommu_dma_max_mapping_size(): an
 * untrusted device behind an IOMMU, whose partial pages bounce). The alternatives each
 * miss a case in 7.3: is_swiotlb_force_bounce() is false in SEV/TDX guests (they bounce
 * through dma_capable() failing, not through force_bounce), dma_addressing_limited() is
 * false under swiotlb=force, is_swiotlb_active() is true on any machine with a pool for
 * 32-bit devices even when this device never bounces, and dma_need_sync() answers only
 * for an existing mapping (the slots would be taken already) and is always true behind
 * an IOMMU. The default pool is what every device shares; pools grown later
 * (SWIOTLB_DYNAMIC) are best effort and not counted.
 */
u64 fgrab_shim_bounce_pool_bytes(struct pci_dev *pdev)
{
#ifdef CONFIG_SWIOTLB
	struct io_tlb_mem *mem = pdev->dev.dma_io_tlb_mem;

	if (!mem || dma_max_mapping_size(&pdev->dev) == SIZE_MAX)
		return 0;
	return (u64)mem->defpool.nslabs << IO_TLB_SHIFT;
#else
	return 0;
#endif
}

/*
 * Tests only (docs/abi.md): a nonzero value makes the driver treat every card as not
 * DMA-coherent with this cache-line size, so that the geometry check for such platforms
 * can be exercised on x86, where it never applies. Root only; 0 in production.
 */
static unsigned int test_dma_alignment;
module_param(test_dma_alignment, uint, 0600);
MODULE_PARM_DESC(test_dma_alignment,
		 "tests only: treat cards as not DMA-coherent with this cache alignment (0: off)");

/*
 * Alignment that frames of @pdev need so that syncing one never touches bytes of another:
 * 1 where DMA is coherent (no cache maintenance at all), else the DMA cache alignment
 * (syncs invalidate whole cache lines). dev_is_dma_coherent() lives in dma-map-ops.h but
 * is the only way to ask; dma_get_cache_alignment() alone is the worst case of the
 * platform, not of this device.
 */
u32 fgrab_shim_dma_alignment(struct pci_dev *pdev)
{
	unsigned int forced = READ_ONCE(test_dma_alignment);

	if (forced)
		return forced;
	if (dev_is_dma_coherent(&pdev->dev))
		return 1;
	return dma_get_cache_alignment();
}

/* A refusal the caller of a command should be able to read the reason of. */
void fgrab_shim_warn_ratelimited(struct pci_dev *pdev, const char *message)
{
	dev_warn_ratelimited(&pdev->dev, "%s\n", message);
}

/* Segments of @region's bvec array, and the bytes of the first ones before the region. */
unsigned long fgrab_shim_fixed_segments(const struct fgrab_fixed_import *region, u64 *skip)
{
	*skip = region->iter.iov_offset;
	return region->iter.nr_segs;
}

u32 fgrab_shim_fixed_segment_len(const struct fgrab_fixed_import *region, unsigned long index)
{
	return index < region->iter.nr_segs ? region->iter.bvec[index].bv_len : 0;
}

/*
 * Builds and DMA-maps the scatterlist of one frame for device writes, from @pieces chosen
 * by the Rust side (driver/domain/sglist.rs): byte ranges of the region's bvec segments. Each
 * frame gets its own mapping so that it can be synced for the CPU on its own (the DMA API
 * syncs whole sg mappings, never a part of one).
 */
struct sg_table *fgrab_shim_sg_map(const struct fgrab_fixed_import *region,
				      const struct fgrab_piece *pieces, unsigned int count,
				      struct pci_dev *pdev, int *err)
{
	struct scatterlist *sg;
	struct sg_table *sgt;
	unsigned int i;
	int ret;

	for (i = 0; i < count; i++) {
		if (pieces[i].segment >= region->iter.nr_segs || !pieces[i].len ||
		    (u64)pieces[i].offset + pieces[i].len >
			    region->iter.bvec[pieces[i].segment].bv_len) {
			*err = -EINVAL;
			return NULL;
		}
	}
	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt) {
		*err = -ENOMEM;
		return NULL;
	}
	ret = sg_alloc_table(sgt, count, GFP_KERNEL);
	if (ret)
		goto free;
	for_each_sgtable_sg(sgt, sg, i) {
		const struct bio_vec *bv = &region->iter.bvec[pieces[i].segment];
		u64 off = (u64)bv->bv_offset + pieces[i].offset;

		sg_set_page(sg, bv->bv_page + (off >> PAGE_SHIFT), pieces[i].len,
			    off & ~PAGE_MASK);
	}
	ret = dma_map_sgtable(&pdev->dev, sgt, DMA_FROM_DEVICE, 0);
	if (ret)
		goto table;
	return sgt;
table:
	sg_free_table(sgt);
free:
	kfree(sgt);
	*err = ret;
	return NULL;
}

/*
 * A driver-owned frame of the copy path (read()), @bytes long: zeroed pages charged to the
 * memory cgroup of the calling task, DMA-mapped for device writes like a user frame.
 *
 * Why not dma_alloc_coherent() (what the copy path used before): it cannot be charged to
 * the opener. __GFP_ACCOUNT is honoured only where it happens to reach the page allocator;
 * CMA, the atomic pools, restricted swiotlb pools and decrypted (CC) allocations ignore it,
 * and no memcg charging API is exported to modules. Pages from alloc_pages() with
 * __GFP_ACCOUNT are always charged (and uncharged when freed), so a reader in a small
 * memory cgroup gets -ENOMEM instead of GiBs of unaccounted kernel memory. The cost is a
 * streaming mapping: synced per frame, and bounced where the device's DMA is (the caller
 * applies the bounce pool limit, as for a fixed-buffer region).
 *
 * Chunks are as large as @max_chunk (a power of two of pages, at most 256 KiB: few
 * descriptors) where memory allows, smaller when fragmented (videobuf2-dma-sg does the
 * same). __GFP_RETRY_MAYFAIL: a charge over memory.max fails after reclaim instead of
 * invoking the OOM killer on the caller's cgroup; __GFP_NORETRY for the larger orders,
 * which have a smaller fallback.
 */
#define FGRAB_KERNEL_FRAME_MAX_ORDER 6

struct fgrab_chunk {
	struct page *page;
	unsigned int len;
};

static void fgrab_chunks_free(struct fgrab_chunk *chunks, unsigned int count)
{
	while (count--)
		__free_pages(chunks[count].page, get_order(chunks[count].len));
}

struct sg_table *fgrab_shim_page_frame_alloc(struct pci_dev *pdev, u32 bytes,
					       u64 max_chunk, int *err)
{
	unsigned int order = min_t(unsigned int, FGRAB_KERNEL_FRAME_MAX_ORDER,
				   ilog2(max_t(u64, max_chunk >> PAGE_SHIFT, 1)));
	size_t left = bytes, most = DIV_ROUND_UP(bytes, PAGE_SIZE);
	struct fgrab_chunk *chunks;
	struct scatterlist *sg;
	unsigned int count = 0, i;
	struct sg_table *sgt;
	int ret = -ENOMEM;

	if (!bytes) {
		*err = -EINVAL;
		return NULL;
	}
	chunks = kvmalloc_array(most, sizeof(*chunks), GFP_KERNEL_ACCOUNT);
	if (!chunks) {
		*err = -ENOMEM;
		return NULL;
	}
	while (left) {
		gfp_t gfp = GFP_KERNEL_ACCOUNT | __GFP_ZERO | __GFP_NOWARN;
		struct page *page;

		/* A chunk of order get_order(len) for whatever len ends up being (freeing). */
		order = min_t(unsigned int, order, get_order(left));
		gfp |= order ? __GFP_NORETRY : __GFP_RETRY_MAYFAIL;
		page = alloc_pages(gfp, order);
		if (!page) {
			if (!order)
				goto free_chunks;
			order--;
			continue;
		}
		chunks[count].page = page;
		chunks[count].len = min_t(size_t, left, PAGE_SIZE << order);
		left -= chunks[count].len;
		count++;
		cond_resched();
	}
	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL_ACCOUNT);
	if (!sgt)
		goto free_chunks;
	ret = sg_alloc_table(sgt, count, GFP_KERNEL_ACCOUNT);
	if (ret)
		goto free_sgt;
	for_each_sgtable_sg(sgt, sg, i)
		sg_set_page(sg, chunks[i].page, chunks[i].len, 0);
	ret = dma_map_sgtable(&pdev->dev, sgt, DMA_FROM_DEVICE, 0);
	if (ret)
		goto free_table;
	kvfree(chunks);
	return sgt;
free_table:
	sg_free_table(sgt);
free_sgt:
	kfree(sgt);
free_chunks:
	fgrab_chunks_free(chunks, count);
	kvfree(chunks);
	*err = ret;
	return NULL;
}

/* Unmaps a frame from fgrab_shim_page_frame_alloc() and frees its pages. */
void fgrab_shim_page_frame_free(struct sg_table *sgt, struct pci_dev *pdev)
{
	struct scatterlist *sg;
	unsigned int i;

	dma_unmap_sgtable(&pdev->dev, sgt, DMA_FROM_DEVICE, 0);
	for_each_sgtable_sg(sgt, sg, i)
		__free_pages(sg_page(sg), get_order(sg->length));
	sg_free_table(sgt);
	kfree(sgt);
}

/*
 * The CPU side of a frame from fgrab_shim_page_frame_alloc(): fills up to @max pieces
 * (kernel address and length of each chunk, in frame order) and returns how many there
 * are. The pages are never highmem (no __GFP_HIGHMEM), so page_address() is valid.
 */
unsigned int fgrab_shim_page_frame_ranges(const struct sg_table *sgt,
					    struct fgrab_cpu_range *pieces, unsigned int max)
{
	struct scatterlist *sg;
	unsigned int i;

	for_each_sgtable_sg(sgt, sg, i) {
		if (i < max) {
			pieces[i].addr = sg_virt(sg);
			pieces[i].len = sg->length;
		}
	}
	return sgt->orig_nents;
}

/*
 * Unmaps a frame without copying anything to the CPU (DMA_ATTR_SKIP_CPU_SYNC): a frame
 * the card filled was synced for the CPU before it completed, and from then on its bytes
 * are the application's (in-place processing); a frame that was never queued, or that was
 * taken back from the card without a record, holds nothing from the card worth copying.
 * A sync here would copy stale bounce buffers (swiotlb) over whatever user space wrote.
 */
void fgrab_shim_sg_unmap(struct sg_table *sgt, struct pci_dev *pdev)
{
	dma_unmap_sgtable(&pdev->dev, sgt, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
	sg_free_table(sgt);
	kfree(sgt);
}

/* Hands a mapped frame to the CPU (after the card wrote it) or back to the card. */
void fgrab_shim_sg_sync(struct sg_table *sgt, struct pci_dev *pdev, bool for_cpu)
{
	if (for_cpu)
		dma_sync_sgtable_for_cpu(&pdev->dev, sgt, DMA_FROM_DEVICE);
	else
		dma_sync_sgtable_for_device(&pdev->dev, sgt, DMA_FROM_DEVICE);
}

/*
 * Coherent memory for descriptor lists, allocated per region from file context, where the
 * Rust DMA API's bound-device proof is not available. Freed before the device unbinds.
 */
void *fgrab_shim_dma_alloc(struct pci_dev *pdev, size_t size, u64 *dma)
{
	dma_addr_t handle;
	void *cpu = dma_alloc_coherent(&pdev->dev, size, &handle, GFP_KERNEL);

	*dma = handle;
	return cpu;
}

void fgrab_shim_dma_free(struct pci_dev *pdev, size_t size, void *cpu, u64 dma)
{
	dma_free_coherent(&pdev->dev, size, cpu, dma);
}

/*
 * A self-rearming delayed work calling @run(@data) every @period_ms until stopped.
 * kernel::workqueue has no cancel: this one is canceled synchronously before the driver
 * lets go of @data, so no run outlives it (or the module).
 */
struct fgrab_periodic {
	struct delayed_work work;
	void (*run)(void *data);
	void *data;
	unsigned long period;
};

static void fgrab_periodic_fn(struct work_struct *work)
{
	struct fgrab_periodic *periodic =
		container_of(to_delayed_work(work), struct fgrab_periodic, work);

	periodic->run(periodic->data);
	schedule_delayed_work(&periodic->work, periodic->period);
}

struct fgrab_periodic *fgrab_shim_periodic_start(void (*run)(void *data), void *data,
						 unsigned int period_ms)
{
	struct fgrab_periodic *periodic = kzalloc(sizeof(*periodic), GFP_KERNEL);

	if (!periodic)
		return NULL;
	periodic->run = run;
	periodic->data = data;
	periodic->period = msecs_to_jiffies(period_ms);
	INIT_DELAYED_WORK(&periodic->work, fgrab_periodic_fn);
	schedule_delayed_work(&periodic->work, periodic->period);
	return periodic;
}

/* Runs the work now instead of at its next period (any context). */
void fgrab_shim_periodic_kick(struct fgrab_periodic *periodic)
{
	mod_delayed_work(system_percpu_wq, &periodic->work, 0);
}

/* cancel_delayed_work_sync() also stops a work that requeues itself. */
void fgrab_shim_periodic_stop(struct fgrab_periodic *periodic)
{
	cancel_delayed_work_sync(&periodic->work);
	kfree(periodic);
}
