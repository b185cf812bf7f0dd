"""Loads the card's GenICam XML in the `genicam` package's GenApi node map (the reference
implementation Harvesters uses) and checks its features against docs/hardware.md §3.8,
reading them through a port backed by a dict of the card's reset values.

Run by `cargo xtask test` (xtask/src/genicam.rs) with the XML's path as argument."""

import struct
import sys

from genicam.genapi import AbstractPort, EAccessMode, NodeMap

XML = open(sys.argv[1], encoding="utf-8").read()

# The card's reset values (docs/hardware.md §3.8): window address -> 32-bit value.
RESET = {
    0x100: 2048, 0x104: 2048, 0x108: 4096, 0x10C: 3072, 0x110: 0x01080001,
    0x114: 2048 * 2048, 0x118: 0, 0x11C: 1, 0x128: 0,
    0x12C: struct.unpack("<I", struct.pack("<f", 30.0))[0], 0x130: 0, 0x134: 0, 0x13C: 0,
}


class Window(AbstractPort):
    """The feature window as a dict of 32-bit little-endian registers."""

    def __init__(self):
        super().__init__()
        self.memory = bytearray(4096)
        for address, value in RESET.items():
            self.memory[address:address + 4] = struct.pack("<I", value)
        self.memory[0:5] = b"fgrab"
        self.writes = []

    def is_open(self):
        return True

    def open(self):
        pass

    def close(self):
        pass

    def get_access_mode(self):
        return EAccessMode.RW

    def read(self, address, length):
        return bytes(self.memory[address:address + length])

    def write(self, address, value):
        self.writes.append((address, bytes(value)))
        self.memory[address:address + len(value)] = value


node_map = NodeMap()
node_map.load_xml_from_string(XML)
window = Window()
node_map.connect(window, "Device")

problems = []


def expect(name, got, wanted):
    if got != wanted:
        problems.append(f"{name}: {got!r}, expected {wanted!r}")


EXPECTED = {
    "Width": 2048, "Height": 2048, "WidthMax": 4096, "HeightMax": 3072,
    "PixelFormat": "Mono8", "PayloadSize": 2048 * 2048, "AcquisitionMode": "Continuous",
    "AcquisitionFrameCount": 1, "AcquisitionFrameRateEnable": False,
    "AcquisitionFrameRate": 30.0, "TriggerMode": "Off", "TriggerSource": "Software",
    "TLParamsLocked": 0, "DeviceVendorName": "fgrab",
}
for name, wanted in EXPECTED.items():
    try:
        expect(name, node_map.get_node(name).value, wanted)
    except Exception as error:  # noqa: BLE001 - every failure is a finding
        problems.append(f"{name}: {error}")

expect("PixelFormat entries",
       sorted((e.symbolic, e.value) for e in node_map.get_node("PixelFormat").entries),
       sorted([("Mono8", 0x01080001), ("Mono16", 0x01100007), ("BayerRG8", 0x01080009)]))
expect("Width max", node_map.get_node("Width").max, 4096)
expect("Width inc", node_map.get_node("Width").inc, 4)

# Writes land on the definition's addresses.
node_map.get_node("Width").value = 640
node_map.get_node("PixelFormat").value = "Mono16"
node_map.get_node("TriggerSoftware").execute()
expect("writes", window.writes, [
    (0x100, struct.pack("<I", 640)),
    (0x110, struct.pack("<I", 0x01100007)),
    (0x138, struct.pack("<I", 1)),
])
for category in ["Root", "ImageFormatControl", "AcquisitionControl"]:
    if node_map.get_node(category) is None:
        problems.append(f"no category {category}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"genicam node map: {len(EXPECTED)} features checked")
