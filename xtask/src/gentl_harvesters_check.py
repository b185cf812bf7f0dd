"""fgrab.cti in Harvesters on a host without cards (run by `cargo xtask test`).

Harvesters logs and swallows producer errors, so every step is checked explicitly: the
producer loads (add_file), update() opens its System and its one Interface and finds no
device, the System and Interface node maps are built from the producer's port XML and read
back its constant strings, and reset() releases everything; twice, so that a producer that
does not close cleanly (GCCloseLib, then GCInitLib again) shows.

usage: python gentl_harvesters_check.py fgrab.cti
"""

import sys

from harvesters.core import Harvester

cti = sys.argv[1]

for attempt in range(2):
    h = Harvester()
    h.add_file(cti, check_existence=True, check_validity=True)
    assert h.files == [cti], h.files
    h.update()
    assert h._has_revised_device_list, "update() failed (see the warnings above)"
    assert len(h._producers) == 1, h._producers
    assert len(h._systems) == 1, "the System module did not open"
    assert len(h._ifaces) == 1, "the Interface module did not open"
    assert len(h.device_info_list) == 0, h.device_info_list

    system = h._systems[0]
    nodes = system.node_map
    assert nodes is not None, "no System node map"
    assert nodes.TLVendorName.value == "fgrab", nodes.TLVendorName.value
    assert nodes.TLType.value == "Custom", nodes.TLType.value
    print(f"System: {nodes.TLModelName.value} {nodes.TLVersion.value} ({nodes.TLType.value})")

    iface = h._ifaces[0]
    nodes = iface.node_map
    assert nodes is not None, "no Interface node map"
    interface_id = nodes.InterfaceID.value
    assert interface_id, "empty InterfaceID"
    assert iface.module.id_ == interface_id, (iface.module.id_, interface_id)
    print(f"Interface: {interface_id}, devices: {len(h.device_info_list)}")

    h.reset()
    assert h.files == [], h.files
    assert not h._producers and not h._systems and not h._ifaces
print("fgrab.cti in Harvesters: ok")
