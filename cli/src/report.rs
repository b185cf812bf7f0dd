//! What `info` and `stats` print: text, or JSON objects (serde) with the ABI's field names
//! where they are numbers, and the PCI location, hardware version and state as text.

use fgrab::uapi::{DeviceInfo, Stats, STATE_ATTACHED, STATE_IDLE, STATE_STREAMING};
use serde::Serialize;
use std::path::Path;

/// `domain:bus:device.function` of INFO's `pci_location` (`domain << 16 | bus << 8 | devfn`).
pub fn pci_location(location: u32) -> String {
    format!(
        "{:04x}:{:02x}:{:02x}.{}",
        location >> 16,
        (location >> 8) & 0xff,
        (location >> 3) & 0x1f,
        location & 7
    )
}

/// `major.minor` of INFO's `hw_version`, as sysfs shows it.
pub fn hw_version(version: u32) -> String {
    format!("{}.{}", version >> 16, version & 0xffff)
}

/// The name of a STATS `state`.
pub fn state_name(state: u32) -> &'static str {
    match state {
        STATE_IDLE => "idle",
        STATE_ATTACHED => "attached",
        STATE_STREAMING => "streaming",
        _ => "unknown",
    }
}

/// `fgrab info`.
pub fn info_text(path: &Path, info: &DeviceInfo) -> String {
    format!(
        "{}:\n  \
         PCI            {:04x}:{:04x} rev {} at {}\n  \
         hardware       v{}, driver ABI {}\n  \
         sensor         {} bytes per frame every {} us\n  \
         limits         frames up to {} bytes, {} frames per buffer\n  \
         DMA            {}-bit, segments up to {} bytes, {} descriptors per frame\n",
        path.display(),
        info.vendor_id,
        info.device_id,
        info.revision,
        pci_location(info.pci_location),
        hw_version(info.hw_version),
        info.abi_version,
        info.frame_bytes,
        info.frame_period_ns / 1000,
        info.max_frame_bytes,
        info.max_frames,
        info.dma_address_bits,
        info.max_segment_bytes,
        info.max_descriptors_per_frame
    )
}

/// `fgrab stats`.
pub fn stats_text(path: &Path, stats: &Stats) -> String {
    let mut text = format!("{}: {}\n", path.display(), state_name(stats.state));
    if stats.state != STATE_IDLE {
        text.push_str(&format!(
            "  buffer         {} frames of {} bytes, {} descriptors (at most {} per frame)\n  \
             since start    {} frames delivered, {} dropped (underrun), {} dropped (other), \
             {} failed\n",
            stats.frame_count,
            stats.frame_bytes,
            stats.descriptors_total,
            stats.descriptors_max_per_frame,
            stats.frames_delivered,
            stats.frames_dropped_underrun,
            stats.frames_dropped_other,
            stats.frames_failed
        ));
    }
    text
}

/// `fgrab info --json`.
#[derive(Debug, Serialize)]
pub struct InfoJson {
    /// The device node.
    pub node: String,
    /// N of `/dev/fgrabN`.
    pub card_index: u32,
    /// PCI location, `domain:bus:device.function`.
    pub pci: String,
    /// PCI vendor ID.
    pub vendor_id: u16,
    /// PCI device ID.
    pub device_id: u16,
    /// PCI subsystem vendor ID.
    pub subsystem_vendor_id: u16,
    /// PCI subsystem ID.
    pub subsystem_id: u16,
    /// PCI revision ID.
    pub revision: u8,
    /// Hardware interface version, `major.minor`.
    pub hw_version: String,
    /// The driver's ABI version.
    pub abi_version: u32,
    /// Bytes per frame of the sensor at probe.
    pub frame_bytes: u32,
    /// Time between frame starts at `frame_bytes`, ns.
    pub frame_period_ns: u64,
    /// Largest frame the sensor can produce.
    pub max_frame_bytes: u32,
    /// Most frames per buffer.
    pub max_frames: u32,
    /// Bits of DMA address the card can generate.
    pub dma_address_bits: u32,
    /// Largest DMA segment of one descriptor, bytes.
    pub max_segment_bytes: u32,
    /// Most descriptors per frame.
    pub max_descriptors_per_frame: u32,
}

impl InfoJson {
    /// INFO of the card at `path`.
    pub fn new(path: &Path, info: &DeviceInfo) -> Self {
        Self {
            node: path.display().to_string(),
            card_index: info.card_index,
            pci: pci_location(info.pci_location),
            vendor_id: info.vendor_id,
            device_id: info.device_id,
            subsystem_vendor_id: info.subsystem_vendor_id,
            subsystem_id: info.subsystem_id,
            revision: info.revision,
            hw_version: hw_version(info.hw_version),
            abi_version: info.abi_version,
            frame_bytes: info.frame_bytes,
            frame_period_ns: info.frame_period_ns,
            max_frame_bytes: info.max_frame_bytes,
            max_frames: info.max_frames,
            dma_address_bits: info.dma_address_bits,
            max_segment_bytes: info.max_segment_bytes,
            max_descriptors_per_frame: info.max_descriptors_per_frame,
        }
    }
}

/// `fgrab stats --json`: every STATS figure, the state by name.
#[derive(Debug, Serialize)]
pub struct StatsJson {
    /// The device node.
    pub node: String,
    /// `idle`, `attached` or `streaming`.
    pub state: &'static str,
    /// Frames of the attached region (0 when idle).
    pub frame_count: u32,
    /// Bytes per frame of the attached region.
    pub frame_bytes: u32,
    /// Frame stride of the attached region.
    pub frame_stride: u64,
    /// Bytes of the attached region.
    pub region_bytes: u64,
    /// Descriptors over all frames.
    pub descriptors_total: u32,
    /// Most descriptors any one frame needs.
    pub descriptors_max_per_frame: u32,
    /// DMA-mapped scatterlist entries over all frames.
    pub mapped_entries: u32,
    /// Frames queued and not completed yet.
    pub frames_queued: u32,
    /// Frames completed since the last start.
    pub frames_delivered: u64,
    /// Frames dropped for lack of a queued frame since the last start.
    pub frames_dropped_underrun: u64,
    /// Frames dropped for other reasons since the last start.
    pub frames_dropped_other: u64,
    /// Frames completed with an error since the last start.
    pub frames_failed: u64,
    /// Bytes delivered since the last start.
    pub bytes_delivered: u64,
}

impl StatsJson {
    /// STATS of the card at `path`.
    pub fn new(path: &Path, stats: &Stats) -> Self {
        Self {
            node: path.display().to_string(),
            state: state_name(stats.state),
            frame_count: stats.frame_count,
            frame_bytes: stats.frame_bytes,
            frame_stride: stats.frame_stride,
            region_bytes: stats.region_bytes,
            descriptors_total: stats.descriptors_total,
            descriptors_max_per_frame: stats.descriptors_max_per_frame,
            mapped_entries: stats.mapped_entries,
            frames_queued: stats.frames_queued,
            frames_delivered: stats.frames_delivered,
            frames_dropped_underrun: stats.frames_dropped_underrun,
            frames_dropped_other: stats.frames_dropped_other,
            frames_failed: stats.frames_failed,
            bytes_delivered: stats.bytes_delivered,
        }
    }
}

/// `value` as pretty JSON and a newline.
pub fn json(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).expect("plain data serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(pci_location(0x0001_0318), "0001:03:03.0");
        assert_eq!(pci_location(0x0000_001a), "0000:00:03.2");
        assert_eq!(hw_version(0x0001_0002), "1.2");
        assert_eq!(state_name(STATE_STREAMING), "streaming");
        assert_eq!(state_name(7), "unknown");
        let idle = stats_text(Path::new("/dev/fgrab0"), &Stats::default());
        assert_eq!(idle, "/dev/fgrab0: idle\n");
    }

    #[test]
    fn json_objects() {
        let info = DeviceInfo {
            card_index: 1,
            vendor_id: 0x10ee,
            device_id: 0xf9a0,
            pci_location: 0x0000_0418,
            hw_version: 0x0001_0000,
            frame_period_ns: 4_000_000,
            ..DeviceInfo::default()
        };
        let text = json(&InfoJson::new(Path::new("/dev/fgrab1"), &info));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["node"], "/dev/fgrab1");
        assert_eq!(value["card_index"], 1);
        assert_eq!(value["pci"], "0000:04:03.0");
        assert_eq!(value["vendor_id"], 0x10ee);
        assert_eq!(value["hw_version"], "1.0");
        assert_eq!(value["frame_period_ns"], 4_000_000);
        let stats = Stats {
            state: STATE_STREAMING,
            frames_delivered: 12,
            ..Stats::default()
        };
        let text = json(&StatsJson::new(Path::new("/dev/fgrab1"), &stats));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["state"], "streaming");
        assert_eq!(value["frames_delivered"], 12);
        assert_eq!(value["bytes_delivered"], 0);
    }
}
