//! `docs/hardware.md` must describe exactly the card's definition: its register tables, bit
//! lists, DMA structure tables and the numbers around them are parsed and compared with
//! `fgrab-hw`, both ways (a register the document lacks fails, and so does a row the
//! definition lacks or a wrong offset, bit, size or value).
//!
//! The parser knows the document's conventions, not markdown at large: tables are lines
//! starting with `|`, names and numbers are in backticks, and a bit list reads
//! "0 `ENABLE`, 1 `STOP`" (or "bit 0 `LAST`").

use fgrab_hw::{
    caps, completion_status, msix, pci, regs, CompletionRecord, Descriptor, Field, SubmitEntry,
    BAR0_SIZE, COMPLETION_RING_ALIGN, DESCRIPTOR_LIST_ALIGN, INTERFACE_MAJOR, INTERFACE_MINOR,
    INTERFACE_VERSION, MAGIC, REGISTER_BLOCK_SIZE, SUBMIT_RING_ALIGN, WRITEBACK_ALIGN,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

const DOCUMENT: &str = include_str!("../../docs/hardware.md");

/// A table of the document, with the heading it sits under.
struct Table {
    heading: String,
    /// Line number (1-based) of the header row, for messages.
    line: usize,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Index of the first column whose header starts with `name`.
    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|cell| cell.starts_with(name))
    }
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner
        .split('|')
        .map(|cell| cell.trim().to_string())
        .collect()
}

fn tables(document: &str) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut heading = String::new();
    let mut lines = document.lines().enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        if line.starts_with('#') {
            heading = line.trim_start_matches('#').trim().to_string();
            continue;
        }
        if !line.starts_with('|') {
            continue;
        }
        let header = cells(line);
        // The separator row.
        lines.next();
        let mut rows = Vec::new();
        while let Some((_, row)) = lines.next_if(|(_, row)| row.starts_with('|')) {
            rows.push(cells(row));
        }
        tables.push(Table {
            heading: heading.clone(),
            line: index + 1,
            header,
            rows,
        });
    }
    tables
}

/// The contents of the backtick spans of `text`.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// `0x0001_0000`, `0x0c0`, `16384`, `1 000 000 000`.
fn number(text: &str) -> Option<u64> {
    let digits: String = text.chars().filter(|c| *c != '_' && *c != ' ').collect();
    match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => digits.parse().ok(),
    }
}

/// The number a cell starts with, in backticks or not: "`0x0010_0000` (1 MiB): ...",
/// "1 000 000 000: ...".
fn leading_number(cell: &str) -> Option<u64> {
    let text = cell.trim_start_matches('`');
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ' '))
        .unwrap_or(text.len());
    number(text[..end].trim())
}

fn is_constant_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_uppercase())
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The (number, name) pairs of a bit or value list: "0 `ENABLE`, 1 `STOP`", "bit 0 `LAST`".
/// A name counts only when a number is the word right before it.
fn numbered_names(text: &str) -> Vec<(u64, String)> {
    let parts: Vec<&str> = text.split('`').collect();
    let mut pairs = Vec::new();
    for i in (1..parts.len()).step_by(2) {
        if !is_constant_name(parts[i]) {
            continue;
        }
        let before = parts[i - 1].split_whitespace().last().unwrap_or("");
        if let Ok(n) = before.parse() {
            pairs.push((n, parts[i].to_string()));
        }
    }
    pairs
}

/// Bit numbers of a definition's one-bit flags: (name, bit number).
fn bit_numbers<T: Copy + Into<u64>>(flags: &[(&str, T)]) -> BTreeSet<(String, u64)> {
    flags
        .iter()
        .map(|&(name, mask)| {
            let mask: u64 = mask.into();
            assert!(mask.is_power_of_two(), "{name} is not one bit");
            (name.to_string(), u64::from(mask.trailing_zeros()))
        })
        .collect()
}

fn as_set(pairs: Vec<(u64, String)>) -> BTreeSet<(String, u64)> {
    pairs.into_iter().map(|(n, name)| (name, n)).collect()
}

/// Collects mismatches, to report all of them at once.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check<T: PartialEq + Debug>(&mut self, what: &str, document: T, definition: T) {
        if document != definition {
            self.0.push(format!(
                "{what}: the document has {document:?}, the definition {definition:?}"
            ));
        }
    }

    fn require(&mut self, what: &str, holds: bool) {
        if !holds {
            self.0.push(what.to_string());
        }
    }

    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "docs/hardware.md disagrees with fgrab-hw:\n  {}",
            self.0.join("\n  ")
        );
    }
}

/// A register row of the document.
struct RegisterRow {
    name: String,
    offset: u64,
    line: usize,
    /// The cells after the name (access, value, bits, meaning), joined.
    text: String,
}

/// Every register of the tables with `Offset` and `Name` columns. A row with two offsets is
/// a 64-bit pair: `NAME` (or `NAME_LO/HI`) stands for `NAME_LO` and `NAME_HI`.
fn register_rows() -> Vec<RegisterRow> {
    let mut rows = Vec::new();
    for table in tables(DOCUMENT) {
        let (Some(offset_column), Some(name_column)) =
            (table.column("Offset"), table.column("Name"))
        else {
            continue;
        };
        for row in &table.rows {
            let offsets: Vec<u64> = code_spans(&row[offset_column])
                .into_iter()
                .map(|span| number(span).unwrap_or_else(|| panic!("offset {span:?}")))
                .collect();
            let spans = code_spans(&row[name_column]);
            let name = spans
                .first()
                .unwrap_or_else(|| panic!("no name in {row:?}"));
            let text = row[name_column + 1..].join(" | ");
            let names = match offsets.len() {
                1 => vec![name.to_string()],
                2 => {
                    let base = name.strip_suffix("_LO/HI").unwrap_or(name);
                    vec![format!("{base}_LO"), format!("{base}_HI")]
                }
                n => panic!("line {}: {n} offsets in {row:?}", table.line),
            };
            for (name, offset) in names.into_iter().zip(offsets) {
                rows.push(RegisterRow {
                    name,
                    offset,
                    line: table.line,
                    text: text.clone(),
                });
            }
        }
    }
    rows
}

fn register_row<'a>(rows: &'a [RegisterRow], name: &str) -> &'a RegisterRow {
    rows.iter()
        .find(|row| row.name == name)
        .unwrap_or_else(|| panic!("no row for {name}"))
}

#[test]
fn every_register_has_its_offset() {
    let rows = register_rows();
    let mut problems = Problems::default();
    let mut documented: BTreeMap<&str, u64> = BTreeMap::new();
    for row in &rows {
        if documented.insert(&row.name, row.offset).is_some() {
            problems.require(
                &format!("{} is in the document twice (line {})", row.name, row.line),
                false,
            );
        }
    }
    let defined: BTreeMap<&str, u64> = regs::ALL
        .iter()
        .map(|&(name, offset)| (name, u64::from(offset)))
        .collect();
    for (name, offset) in &defined {
        match documented.get(name) {
            Some(documented) => problems.check(
                &format!("offset of {name}"),
                format!("{documented:#05x}"),
                format!("{offset:#05x}"),
            ),
            None => problems.require(&format!("{name} is not in the document"), false),
        }
    }
    for (name, offset) in &documented {
        problems.require(
            &format!("the document's {name} at {offset:#05x} is not in the definition"),
            defined.contains_key(name),
        );
    }
    problems.assert_none();
}

#[test]
fn register_bits_and_values() {
    let rows = register_rows();
    let mut problems = Problems::default();
    let flags: BTreeMap<&str, &[(&str, u32)]> = regs::FLAGS.iter().copied().collect();
    for row in &rows {
        let documented = as_set(numbered_names(&row.text));
        let defined = flags
            .get(row.name.as_str())
            .map(|bits| bit_numbers(bits))
            .unwrap_or_default();
        problems.check(&format!("bits of {}", row.name), documented, defined);
    }
    for name in flags.keys() {
        problems.require(
            &format!("{name} (a register with bits) is not in the document"),
            rows.iter().any(|row| row.name == *name),
        );
    }

    // Fixed values: the identification and capability registers.
    let mut values: Vec<(&str, u32)> = vec![("ID", MAGIC), ("VERSION", INTERFACE_VERSION)];
    values.extend_from_slice(caps::ALL);
    for (name, value) in values {
        let row = register_row(&rows, name);
        problems.check(
            &format!("value of {name}"),
            leading_number(&row.text),
            Some(u64::from(value)),
        );
    }
    let version = &register_row(&rows, "VERSION").text;
    let major = regs::version::MAJOR;
    problems.require(
        "VERSION: major's bits",
        version.contains(&format!(
            "major {INTERFACE_MAJOR} (bits {}:{})",
            31 - major.leading_zeros(),
            major.trailing_zeros()
        )),
    );
    problems.require(
        "VERSION: minor",
        version.contains(&format!("minor {INTERFACE_MINOR}")),
    );
    problems.require(
        "IRQ_MASK: same bits as IRQ_STATUS, and its reset value",
        register_row(&rows, "IRQ_MASK").text.contains(&format!(
            "same bits; 1 = message suppressed. Reset `{:#010x}`",
            regs::irq_status::MASK_RESET
        )),
    );
    for name in ["SUBMIT_SIZE", "COMPLETION_SIZE"] {
        problems.require(
            &format!("{name}: ring sizes"),
            register_row(&rows, name).text.contains(&format!(
                "power of two, {}..={}",
                caps::RING_MIN_ENTRIES,
                caps::RING_MAX_ENTRIES
            )),
        );
    }
    problems.require(
        "RING_MAX_ENTRIES: smallest ring",
        register_row(&rows, "RING_MAX_ENTRIES")
            .text
            .contains(&format!("smallest is {}", caps::RING_MIN_ENTRIES)),
    );
    problems.assert_none();
}

#[test]
fn interface_version_bar_and_msix() {
    let mut problems = Problems::default();
    let mut require = |what: &str, text: String| {
        problems.require(
            &format!("{what}: {text:?} is not in the document"),
            DOCUMENT.contains(&text),
        )
    };
    require(
        "interface version",
        format!(
            "Interface version {INTERFACE_MAJOR}.{INTERFACE_MINOR} (`VERSION` register reads \
             `0x{:04x}_{:04x}`)",
            INTERFACE_VERSION >> 16,
            INTERFACE_VERSION & 0xffff
        ),
    );
    require(
        "register block",
        format!("Registers occupy `0x000..{:#x}`", REGISTER_BLOCK_SIZE - 1),
    );
    require(
        "MSI-X capability",
        format!(
            "MSI-X capability: **{} vectors**, table in BAR0 at `{:#06x}` (BIR 0), PBA at \
             `{:#06x}` (BIR 0)",
            msix::VECTORS,
            msix::TABLE_OFFSET,
            msix::PBA_OFFSET
        ),
    );
    require(
        "MSI-X layout",
        format!(
            "`{:#06x}`: MSI-X table ({} entries x {} bytes). `{:#06x}`: PBA ({} bytes).",
            msix::TABLE_OFFSET,
            msix::VECTORS,
            msix::TABLE_ENTRY_SIZE,
            msix::PBA_OFFSET,
            msix::PBA_SIZE
        ),
    );

    let all = tables(DOCUMENT);
    let pci_table = all
        .iter()
        .find(|table| table.header == ["Field", "Value"])
        .expect("the PCI configuration table");
    // The numbers of a row, in hexadecimal for messages.
    let value = |field: &str| -> Vec<String> {
        let row = pci_table
            .rows
            .iter()
            .find(|row| row[0] == field)
            .unwrap_or_else(|| panic!("no PCI row {field:?}"));
        code_spans(&row[1])
            .into_iter()
            .filter_map(number)
            .map(|n| format!("{n:#x}"))
            .collect()
    };
    let hex =
        |numbers: &[u32]| -> Vec<String> { numbers.iter().map(|n| format!("{n:#x}")).collect() };
    problems.check(
        "vendor and device ID",
        value("Vendor ID / Device ID"),
        hex(&[pci::VENDOR_ID.into(), pci::DEVICE_ID.into()]),
    );
    problems.check(
        "subsystem IDs",
        value("Subsystem vendor / subsystem ID"),
        hex(&[pci::SUBSYSTEM_VENDOR_ID.into(), pci::SUBSYSTEM_ID.into()]),
    );
    problems.check(
        "revision",
        value("Revision ID"),
        hex(&[pci::REVISION.into()]),
    );
    problems.check("class code", value("Class code"), hex(&[pci::CLASS_CODE]));
    let bar0 = &pci_table
        .rows
        .iter()
        .find(|row| row[0] == "BAR0")
        .expect("a BAR0 row")[1];
    problems.check(
        "BAR0 size",
        bar0.split(',').next().map(str::to_string),
        Some(format!("{} KiB", BAR0_SIZE / 1024)),
    );

    let vectors = all
        .iter()
        .find(|table| table.header == ["Vector", "Use"])
        .expect("the MSI-X vector table");
    problems.check(
        "vectors",
        vectors
            .rows
            .iter()
            .map(|row| number(&row[0]))
            .collect::<Vec<_>>(),
        (0..u64::from(msix::VECTORS)).map(Some).collect(),
    );
    for (vector, cause) in [
        (msix::FRAME_VECTOR, "FRAME_DONE"),
        (msix::ERROR_VECTOR, "ERROR"),
    ] {
        problems.require(
            &format!("vector {vector} carries {cause}"),
            vectors.rows.iter().any(|row| {
                number(&row[0]) == Some(vector.into())
                    && code_spans(&row[1])
                        .iter()
                        .any(|span| span.rsplit('.').next() == Some(cause))
            }),
        );
    }
    problems.assert_none();
}

/// What the definition says about one structure, and the heading of its section.
struct Structure {
    heading: &'static str,
    fields: &'static [Field],
    size: usize,
    /// Fields whose meaning lists named bits: (field, (name, bit mask)).
    bits: Vec<(&'static str, Vec<(&'static str, u64)>)>,
    /// Fields whose meaning lists named values: (field, (name, value)).
    values: Vec<(&'static str, Vec<(&'static str, u64)>)>,
}

fn structures() -> Vec<Structure> {
    fn widen<T: Copy + Into<u64>>(list: &[(&'static str, T)]) -> Vec<(&'static str, u64)> {
        list.iter().map(|&(name, v)| (name, v.into())).collect()
    }
    vec![
        Structure {
            heading: "Scatter/gather descriptor",
            fields: Descriptor::FIELDS,
            size: size_of::<Descriptor>(),
            bits: vec![("flags", widen(Descriptor::FLAGS))],
            values: vec![],
        },
        Structure {
            heading: "Submit entry",
            fields: SubmitEntry::FIELDS,
            size: size_of::<SubmitEntry>(),
            bits: vec![],
            values: vec![],
        },
        Structure {
            heading: "Completion record",
            fields: CompletionRecord::FIELDS,
            size: size_of::<CompletionRecord>(),
            bits: vec![("flags", widen(CompletionRecord::FLAGS))],
            values: vec![("status", widen(completion_status::ALL))],
        },
    ]
}

fn type_size(name: &str) -> Option<usize> {
    Some(match name {
        "u8" => 1,
        "u16" => 2,
        "u32" => 4,
        "u64" => 8,
        _ => return None,
    })
}

#[test]
fn dma_structures() {
    let structures = structures();
    let mut problems = Problems::default();
    let mut seen = BTreeSet::new();
    for table in tables(DOCUMENT) {
        let (Some(offset), Some(field), Some(kind), Some(meaning)) = (
            table.column("Offset"),
            table.column("Field"),
            table.column("Type"),
            table.column("Meaning"),
        ) else {
            continue;
        };
        // "4.1 Scatter/gather descriptor (16 bytes)": the name after the section number.
        let title = table
            .heading
            .split_once(' ')
            .map_or(table.heading.as_str(), |(_, title)| title);
        let Some(structure) = structures.iter().find(|s| title.starts_with(s.heading)) else {
            problems.require(
                &format!(
                    "line {}: a structure table under {:?}, which the definition lacks",
                    table.line, table.heading
                ),
                false,
            );
            continue;
        };
        seen.insert(structure.heading);
        let name = structure.heading;
        problems.require(
            &format!("{name}: size in the heading"),
            title.contains(&format!("({} bytes", structure.size)),
        );
        // (name, offset, size), in order.
        let documented: Vec<(String, usize, usize)> = table
            .rows
            .iter()
            .map(|row| {
                let field_name = code_spans(&row[field]).first().map_or("?", |s| s);
                let kind = code_spans(&row[kind])
                    .first()
                    .map_or(row[kind].as_str(), |s| s);
                (
                    field_name.to_string(),
                    row[offset].parse().unwrap_or(usize::MAX),
                    type_size(kind).unwrap_or(0),
                )
            })
            .collect();
        let defined: Vec<(String, usize, usize)> = structure
            .fields
            .iter()
            .map(|f| (f.name.to_string(), f.offset, f.size))
            .collect();
        problems.check(&format!("{name}: fields"), documented, defined);

        for row in &table.rows {
            let field_name = code_spans(&row[field]).first().copied().unwrap_or("?");
            let listed = numbered_names(&row[meaning]);
            let bits = structure.bits.iter().find(|(f, _)| *f == field_name);
            let values = structure.values.iter().find(|(f, _)| *f == field_name);
            let defined: BTreeSet<(String, u64)> = match (bits, values) {
                (Some((_, bits)), _) => bit_numbers(bits),
                (None, Some((_, values))) => values
                    .iter()
                    .map(|&(name, value)| (name.to_string(), value))
                    .collect(),
                (None, None) => BTreeSet::new(),
            };
            problems.check(
                &format!("{name}: `{field_name}` names"),
                as_set(listed),
                defined,
            );
        }
    }
    for structure in &structures {
        problems.require(
            &format!("{}: no table in the document", structure.heading),
            seen.contains(structure.heading),
        );
    }
    problems.assert_none();
}

#[test]
fn alignments() {
    let mut problems = Problems::default();
    let defined: BTreeMap<&str, usize> = [
        ("descriptor list", DESCRIPTOR_LIST_ALIGN),
        ("submit ring base", SUBMIT_RING_ALIGN),
        ("completion ring base", COMPLETION_RING_ALIGN),
        ("completion writeback", WRITEBACK_ALIGN),
    ]
    .into();
    let all = tables(DOCUMENT);
    let table = all
        .iter()
        .find(|table| table.header == ["Object", "Alignment"])
        .expect("the alignment table");
    let mut documented = BTreeMap::new();
    for row in &table.rows {
        if let Some(bytes) = row[1].strip_suffix(" bytes") {
            documented.insert(row[0].as_str(), bytes.parse().unwrap_or(0));
        }
    }
    problems.check("alignments", documented, defined);
    problems.assert_none();
}

#[test]
fn parser_reads_the_conventions() {
    assert_eq!(
        numbered_names("0 `ENABLE`, 1 `STOP`, 31 `RESET` (see below)"),
        [
            (0, "ENABLE".into()),
            (1, "STOP".into()),
            (31, "RESET".into())
        ]
    );
    assert_eq!(
        numbered_names("bit 0 `FRAME`: valid. Without `FRAME`: `NEXT_SEQUENCE`."),
        [(0, "FRAME".into())]
    );
    assert_eq!(
        leading_number("1 000 000 000: timestamps"),
        Some(1_000_000_000)
    );
    assert_eq!(leading_number("`0x0010_0000` (1 MiB): x"), Some(0x10_0000));
    assert_eq!(leading_number("RW, no effect"), None);
    assert_eq!(number("0x0c0"), Some(0xc0));
}

/// §3.8's feature table is the camera definition: every feature with its address and
/// access, enumeration values as `value `Name`` pairs, PFNC codes beside their names.
#[test]
fn feature_window_table() {
    use fgrab_hw::camera::{Access, Kind, FEATURES, PIXEL_FORMATS};
    let all = tables(DOCUMENT);
    let table = all
        .iter()
        .find(|table| table.header.first().map(String::as_str) == Some("Address"))
        .expect("the feature window table");
    let mut problems = Problems::default();
    let documented: Vec<(String, u64, String, String)> = table
        .rows
        .iter()
        .map(|row| {
            (
                code_spans(&row[1]).first().unwrap_or(&"").to_string(),
                code_spans(&row[0])
                    .first()
                    .and_then(|span| number(span))
                    .unwrap_or(u64::MAX),
                row[2].clone(),
                row[3].clone(),
            )
        })
        .collect();
    problems.check(
        "features",
        documented
            .iter()
            .map(|(name, address, ..)| (name.clone(), *address))
            .collect::<Vec<_>>(),
        FEATURES
            .iter()
            .map(|feature| (feature.name.to_string(), u64::from(feature.address)))
            .collect(),
    );
    for feature in FEATURES {
        let Some((_, _, access, meaning)) = documented.iter().find(|row| row.0 == feature.name)
        else {
            continue;
        };
        let expected = match feature.access {
            Access::Ro => "RO",
            Access::Rw => "RW",
        };
        problems.check(
            &format!("access of {}", feature.name),
            access.as_str(),
            expected,
        );
        match feature.kind {
            Kind::Enumeration(entries) if feature.name == "PixelFormat" => {
                for (name, code) in PIXEL_FORMATS {
                    problems.require(
                        &format!("PixelFormat {name} {code:#010x}"),
                        meaning.contains(&format!(
                            "`{name}` `0x{:04x}{:04x}`",
                            code >> 16,
                            code & 0xffff
                        )),
                    );
                }
                problems.check("PixelFormat entries", entries.len(), PIXEL_FORMATS.len());
            }
            Kind::Enumeration(entries) => problems.check(
                &format!("values of {}", feature.name),
                as_set(numbered_names_any(meaning)),
                entries
                    .iter()
                    .map(|&(name, value)| (name.to_string(), u64::from(value)))
                    .collect(),
            ),
            Kind::String => problems.require(
                &format!("{}: {} bytes", feature.name, feature.length),
                meaning.contains(&format!("string, {} bytes", feature.length)),
            ),
            _ => {}
        }
    }
    problems.assert_none();
}

/// Like [`numbered_names`], for entry names in any case ("0 `Continuous`").
fn numbered_names_any(text: &str) -> Vec<(u64, String)> {
    let parts: Vec<&str> = text.split('`').collect();
    let mut pairs = Vec::new();
    for i in (1..parts.len()).step_by(2) {
        let before = parts[i - 1].split_whitespace().last().unwrap_or("");
        if let Ok(n) = before.parse() {
            pairs.push((n, parts[i].to_string()));
        }
    }
    pairs
}
