// SPDX-License-Identifier: GPL-2.0
/*
 * C shim of the fgrab driver: the only place that touches kernel APIs without Rust
 * abstractions in Linux 7.3. Compiled against the real headers, so API changes break here,
 * loudly, instead of in hand-written Rust declarations. Rust side: driver/shim.rs.
 *
 * - file_operations with .uring_cmd: kernel::miscdevice builds its own table without that
 *   slot, so the table lives here and calls back into Rust (driver/file.rs).
 * - struct io_uring_cmd accessors (linux/io_uring/cmd.h has no Rust bindings).
 * - the IDA that numbers /dev/fgrabN.
 */
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/io_uring/cmd.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/string.h>

#include "shim.h"

static const struct file_operations fgrab_fops = {
	.owner = THIS_MODULE,
	.open = fgrab_file_open,
	.release = fgrab_file_release,
	.uring_cmd = fgrab_file_uring_cmd,
	.llseek = noop_llseek,
};

/* Registers @misc as /dev/@name, a child of @pdev in sysfs, with fgrab's file operations. */
int fgrab_shim_misc_register(struct miscdevice *misc, const char *name,
			     struct pci_dev *pdev)
{
	misc->minor = MISC_DYNAMIC_MINOR;
	misc->name = name;
	misc->fops = &fgrab_fops;
	misc->parent = &pdev->dev;
	misc->mode = 0660;
	return misc_register(misc);
}

void fgrab_shim_misc_deregister(struct miscdevice *misc)
{
	misc_deregister(misc);
}

/* PCI location as domain << 16 | bus << 8 | devfn (the Rust PCI API has no domain). */
u32 fgrab_shim_pci_location(struct pci_dev *pdev)
{
	return (u32)pci_domain_nr(pdev->bus) << 16 | pdev->bus->number << 8 | pdev->devfn;
}

static DEFINE_IDA(fgrab_card_ida);

/* Smallest free card number, or a negative errno. */
int fgrab_shim_card_index_alloc(void)
{
	return ida_alloc(&fgrab_card_ida, GFP_KERNEL);
}

void fgrab_shim_card_index_free(int index)
{
	ida_free(&fgrab_card_ida, index);
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
