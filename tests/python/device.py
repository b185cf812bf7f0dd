"""The module and the emulated cards as a Python program in the userland sees them: each
card's misc device node opens, and its sysfs attributes show its identity and an idle card."""

import os
import stat

cards = int(os.environ["FGRAB_CARDS"])
assert cards > 0, "the suite boots with emulated cards"
for index in range(cards):
    node = f"/dev/fgrab{index}"
    sysfs = f"/sys/class/misc/fgrab{index}"
    status = os.stat(node)
    assert stat.S_ISCHR(status.st_mode), f"{node} is not a character device"
    with open(f"{sysfs}/dev") as file:
        major, minor = (int(number) for number in file.read().split(":"))
    assert (os.major(status.st_rdev), os.minor(status.st_rdev)) == (major, minor), (
        f"{node} is {os.major(status.st_rdev)}:{os.minor(status.st_rdev)}, "
        f"sysfs says {major}:{minor}"
    )
    descriptor = os.open(node, os.O_RDWR)
    os.close(descriptor)

    def attribute(name):
        with open(f"{sysfs}/{name}") as file:
            return file.read().strip()

    assert attribute("card_index") == str(index), f"card_index {attribute('card_index')}"
    assert attribute("hw_version") == "1.2", f"hw_version {attribute('hw_version')}"
    assert attribute("state") == "idle", f"state {attribute('state')}"
    for counter in ("frames_delivered", "frames_dropped_underrun", "bytes_delivered"):
        int(attribute(counter))
    driver = os.path.basename(os.readlink(f"{sysfs}/device/driver"))
    assert driver == "fgrab", f"{node} is bound to {driver}"
    pci = os.path.basename(os.readlink(f"{sysfs}/device"))
    print(f"{node}: {major}:{minor}, PCI {pci}, driver {driver}, state idle, hw {attribute('hw_version')}")
