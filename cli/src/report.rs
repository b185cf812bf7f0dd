//! What `info` and `stats` print.

use fgrab::uapi::{DeviceInfo, Stats, STATE_ATTACHED, STATE_IDLE, STATE_STREAMING};
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
}
