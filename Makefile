# SPDX-License-Identifier: GPL-2.0
#
# Build fgrab.ko for a machine with real cards:
#   make                      # against the running kernel
#   make KDIR=/path/to/build  # against another kernel build tree
#   make modules_install      # install into /lib/modules/$(uname -r)
#   make clean
#
# The kernel must have CONFIG_RUST=y and its build tree must include the Rust metadata
# (rust/*.rmeta); distribution header packages usually lack it. `cargo xtask` builds its
# own guest kernel and does not use this file.

KDIR ?= /lib/modules/$(shell uname -r)/build

all: modules

modules modules_install clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) $@

.PHONY: all modules modules_install clean
