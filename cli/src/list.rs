//! `fgrab list`: every card the system has, from sysfs (`/sys/class/misc/fgrabN`, readable
//! by anyone) and the device nodes (`/dev/fgrabN`), completed by INFO and STATS through
//! the library when the node can be opened.

use crate::report;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where cards show up.
pub struct Roots {
    /// The misc class directory (`/sys/class/misc`).
    pub sysfs: PathBuf,
    /// The device directory (`/dev`).
    pub dev: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            sysfs: PathBuf::from("/sys/class/misc"),
            dev: PathBuf::from("/dev"),
        }
    }
}

/// One card, as `fgrab list --json` prints it. A figure no source could give is `null`.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct CardEntry {
    /// N of `fgrabN`.
    pub index: u32,
    /// The device node.
    pub node: String,
    /// PCI location, `domain:bus:device.function`.
    pub pci: Option<String>,
    /// PCI `vendor:device` in hex (from INFO).
    pub pci_id: Option<String>,
    /// Hardware interface version, `major.minor`.
    pub hw_version: Option<String>,
    /// `idle`, `attached` or `streaming`.
    pub state: Option<String>,
    /// Why the node could not be opened (INFO and STATS were not read), if it could not.
    pub open_error: Option<String>,
}

/// N of a name `fgrabN`.
fn card_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("fgrab")?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The cards under `roots` by index: the sysfs directory of each, if it has one.
fn find(roots: &Roots) -> BTreeMap<u32, Option<PathBuf>> {
    let mut found = BTreeMap::new();
    let names = |dir: &Path| -> Vec<(u32, PathBuf)> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let index = card_number(entry.file_name().to_str()?)?;
                Some((index, entry.path()))
            })
            .collect()
    };
    for (index, path) in names(&roots.sysfs) {
        found.insert(index, Some(path));
    }
    for (index, _) in names(&roots.dev) {
        found.entry(index).or_insert(None);
    }
    found
}

/// An attribute of a card's sysfs directory, trimmed.
fn attribute(dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    Some(text.trim().to_string()).filter(|text| !text.is_empty())
}

/// What sysfs tells about card `index` without opening anything.
fn from_sysfs(index: u32, dir: Option<&Path>, dev: &Path) -> CardEntry {
    let mut entry = CardEntry {
        index,
        node: dev.join(format!("fgrab{index}")).display().to_string(),
        ..CardEntry::default()
    };
    if let Some(dir) = dir {
        // The `device` link ends in the PCI address (`.../0000:00:03.0`).
        entry.pci = std::fs::read_link(dir.join("device"))
            .ok()
            .and_then(|target| Some(target.file_name()?.to_str()?.to_string()));
        entry.hw_version = attribute(dir, "hw_version");
        entry.state = attribute(dir, "state");
    }
    entry
}

/// Completes `entry` from the card itself: INFO and STATS through the library.
fn from_card(entry: &mut CardEntry) {
    let mut card = match fgrab::Card::open(&entry.node) {
        Ok(card) => card,
        Err(fgrab::Error::Open { source, .. }) => {
            entry.open_error = Some(source.to_string());
            return;
        }
        Err(error) => {
            entry.open_error = Some(error.to_string());
            return;
        }
    };
    match card.info() {
        Ok(info) => {
            entry.pci = Some(report::pci_location(info.pci_location));
            entry.pci_id = Some(format!("{:04x}:{:04x}", info.vendor_id, info.device_id));
            entry.hw_version = Some(report::hw_version(info.hw_version));
        }
        Err(error) => entry.open_error = Some(error.to_string()),
    }
    if let Ok(stats) = card.stats() {
        entry.state = Some(report::state_name(stats.state).to_string());
    }
}

/// Every card under `roots`, by index; `open` says whether to ask the cards themselves.
pub fn cards(roots: &Roots, open: bool) -> Vec<CardEntry> {
    find(roots)
        .into_iter()
        .map(|(index, dir)| {
            let mut entry = from_sysfs(index, dir.as_deref(), &roots.dev);
            if open {
                from_card(&mut entry);
            }
            entry
        })
        .collect()
}

/// One line per card, or a line saying there is none.
pub fn text(cards: &[CardEntry]) -> String {
    if cards.is_empty() {
        return "no fgrab cards (none in /sys/class/misc or /dev; is the fgrab module loaded?)\n"
            .into();
    }
    let unknown = |value: &Option<String>| value.clone().unwrap_or_else(|| "?".into());
    let mut text = String::new();
    for card in cards {
        text.push_str(&format!(
            "{}  {}  PCI {}{}  hardware v{}  {}{}\n",
            card.index,
            card.node,
            unknown(&card.pci),
            card.pci_id
                .as_ref()
                .map_or(String::new(), |id| format!(" ({id})")),
            unknown(&card.hw_version),
            unknown(&card.state),
            card.open_error
                .as_ref()
                .map_or(String::new(), |error| format!("  (not opened: {error})")),
        ));
    }
    text
}

/// The JSON array `fgrab list --json` prints.
pub fn json(cards: &[CardEntry]) -> String {
    report::json(&cards)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory with a fake sysfs and /dev.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("fgrab-list-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("sys")).unwrap();
            std::fs::create_dir_all(dir.join("dev")).unwrap();
            Self(dir)
        }

        fn roots(&self) -> Roots {
            Roots {
                sysfs: self.0.join("sys"),
                dev: self.0.join("dev"),
            }
        }

        /// A card in sysfs behind PCI address `pci`.
        fn card(&self, name: &str, pci: &str, attributes: &[(&str, &str)]) {
            let dir = self.0.join("sys").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::os::unix::fs::symlink(
                format!("../../../devices/pci0000:00/{pci}"),
                dir.join("device"),
            )
            .unwrap();
            for (name, value) in attributes {
                std::fs::write(dir.join(name), format!("{value}\n")).unwrap();
            }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn names() {
        assert_eq!(card_number("fgrab0"), Some(0));
        assert_eq!(card_number("fgrab12"), Some(12));
        for other in ["fgrab", "fgrab-ctl", "fgrab1a", "vfio", "fgrab+1"] {
            assert_eq!(card_number(other), None, "{other}");
        }
    }

    #[test]
    fn no_cards() {
        let scratch = Scratch::new("none");
        std::fs::create_dir_all(scratch.0.join("sys/cpu_dma_latency")).unwrap();
        let cards = cards(&scratch.roots(), true);
        assert!(cards.is_empty());
        assert!(text(&cards).starts_with("no fgrab cards"));
        assert_eq!(json(&cards), "[]\n");
        let missing = Roots {
            sysfs: scratch.0.join("absent"),
            dev: scratch.0.join("absent"),
        };
        assert!(super::cards(&missing, true).is_empty());
    }

    #[test]
    fn from_sysfs_and_dev() {
        let scratch = Scratch::new("some");
        scratch.card(
            "fgrab10",
            "0000:00:04.0",
            &[
                ("card_index", "10"),
                ("hw_version", "1.0"),
                ("state", "streaming"),
            ],
        );
        scratch.card(
            "fgrab2",
            "0001:02:03.1",
            &[
                ("card_index", "2"),
                ("hw_version", "1.2"),
                ("state", "idle"),
            ],
        );
        // A node without sysfs (not a device here: opening it fails).
        std::fs::write(scratch.0.join("dev/fgrab3"), "").unwrap();
        std::fs::write(scratch.0.join("dev/fgrab-other"), "").unwrap();
        let roots = scratch.roots();
        let dev = roots.dev.display().to_string();
        let cards = cards(&roots, false);
        assert_eq!(
            cards,
            vec![
                CardEntry {
                    index: 2,
                    node: format!("{dev}/fgrab2"),
                    pci: Some("0001:02:03.1".into()),
                    hw_version: Some("1.2".into()),
                    state: Some("idle".into()),
                    ..CardEntry::default()
                },
                CardEntry {
                    index: 3,
                    node: format!("{dev}/fgrab3"),
                    ..CardEntry::default()
                },
                CardEntry {
                    index: 10,
                    node: format!("{dev}/fgrab10"),
                    pci: Some("0000:00:04.0".into()),
                    hw_version: Some("1.0".into()),
                    state: Some("streaming".into()),
                    ..CardEntry::default()
                },
            ]
        );
        let text = text(&cards);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.starts_with(&format!(
                "2  {dev}/fgrab2  PCI 0001:02:03.1  hardware v1.2  idle\n"
            )),
            "{text}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&json(&cards)).unwrap();
        assert_eq!(parsed[0]["index"], 2);
        assert_eq!(parsed[0]["pci"], "0001:02:03.1");
        assert_eq!(parsed[1]["pci"], serde_json::Value::Null);
        assert_eq!(parsed[2]["state"], "streaming");
        // Opening fails (a regular file is not a card; a missing node is missing): the
        // sysfs figures stay, the reason is given.
        let opened = super::cards(&roots, true);
        assert!(
            opened.iter().all(|card| card.open_error.is_some()),
            "{opened:?}"
        );
        assert_eq!(opened[0].pci, cards[0].pci);
    }
}
