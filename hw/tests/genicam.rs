//! The card's GenICam XML (`hw/genicam/fgrab.xml`) must describe exactly the feature
//! registers of `fgrab_hw::camera::FEATURES`: every feature once, with the definition's
//! type, address, length, access and enumeration values, and nothing else on the port.
//!
//! The parser knows the file's conventions, not XML at large: one element per line for
//! values, features as `<Kind Name="...">` blocks whose register is named by `pValue` (or
//! which are the register themselves, for strings). Whether the XML is valid GenApi is the
//! host test that loads it in the `genicam` package's node map (`xtask/src/genicam.rs`).

use fgrab_hw::camera::{Access, Kind, FEATURES, WINDOW_SIZE, XML_MAX_SIZE};
use std::collections::BTreeMap;

const XML: &str = include_str!("../genicam/fgrab.xml");

/// One top-level node: its element name, `Name` attribute and body.
struct Node<'a> {
    element: &'a str,
    name: &'a str,
    body: &'a str,
}

/// The direct children of `RegisterDescription` that have a `Name`.
fn nodes(xml: &str) -> Vec<Node<'_>> {
    let mut nodes = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("\n  <") {
        rest = &rest[start + 4..];
        if rest.starts_with('!') || rest.starts_with('/') {
            continue;
        }
        let element_end = rest.find([' ', '>']).expect("element name");
        let element = &rest[..element_end];
        let Some(name) = rest
            .split_once("Name=\"")
            .and_then(|(_, tail)| tail.split_once('"'))
            .map(|(name, _)| name)
        else {
            continue;
        };
        let close = format!("</{element}>");
        let (body, end) = match rest.find(&close) {
            Some(end) => (&rest[..end], end),
            None => ("", 0),
        };
        nodes.push(Node {
            element,
            name,
            body,
        });
        rest = &rest[end..];
    }
    nodes
}

/// The text of the first `<tag>...</tag>` in `body`.
fn value<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find('<')?;
    Some(body[start..start + end].trim())
}

fn number(text: &str) -> u32 {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .unwrap_or_else(|_| panic!("number {text:?}"))
}

#[test]
fn xml_fits_its_place_in_bar0() {
    assert!(XML.len() <= XML_MAX_SIZE as usize, "{} bytes", XML.len());
    assert!(XML.starts_with("<?xml"));
    assert!(XML.contains("SchemaMajorVersion=\"1\""));
    assert!(XML.contains("<Port Name=\"Device\""));
}

#[test]
fn xml_registers_are_the_definitions() {
    let nodes = nodes(XML);
    let by_name: BTreeMap<&str, &Node> = nodes.iter().map(|node| (node.name, node)).collect();
    assert_eq!(by_name.len(), nodes.len(), "a node name appears twice");
    let mut problems = Vec::new();
    let mut registers_seen = 0;
    for feature in FEATURES {
        let Some(node) = by_name.get(feature.name) else {
            problems.push(format!("{} is not in the XML", feature.name));
            continue;
        };
        let (expected_element, register) = match feature.kind {
            Kind::String => ("StringReg", *node),
            kind => {
                let element = match kind {
                    Kind::Integer => "Integer",
                    Kind::Boolean => "Boolean",
                    Kind::Enumeration(_) => "Enumeration",
                    Kind::Command => "Command",
                    Kind::Float => "Float",
                    Kind::String => unreachable!(),
                };
                let register_name = value(node.body, "pValue").unwrap_or("");
                let Some(register) = by_name.get(register_name) else {
                    problems.push(format!("{}: no register {register_name:?}", feature.name));
                    continue;
                };
                (element, *register)
            }
        };
        registers_seen += 1;
        if node.element != expected_element {
            problems.push(format!(
                "{} is a {}, the definition says {expected_element}",
                feature.name, node.element
            ));
        }
        let register_element = match feature.kind {
            Kind::String => "StringReg",
            Kind::Float => "FloatReg",
            _ => "IntReg",
        };
        if register.element != register_element {
            problems.push(format!(
                "{}: register is a {}, expected {register_element}",
                feature.name, register.element
            ));
        }
        let address = value(register.body, "Address").map(number);
        let length = value(register.body, "Length").map(number);
        if address != Some(feature.address) || length != Some(feature.length) {
            problems.push(format!(
                "{}: XML address/length {address:?}/{length:?}, definition {:#x}/{}",
                feature.name, feature.address, feature.length
            ));
        }
        let access = match feature.access {
            Access::Ro => "RO",
            Access::Rw => "RW",
        };
        if value(register.body, "AccessMode") != Some(access) {
            problems.push(format!("{}: access is not {access}", feature.name));
        }
        if value(register.body, "pPort") != Some("Device") {
            problems.push(format!("{}: not on port Device", feature.name));
        }
        if register_element != "StringReg"
            && value(register.body, "Endianess") != Some("LittleEndian")
        {
            problems.push(format!("{}: not little endian", feature.name));
        }
        if let Kind::Enumeration(entries) = feature.kind {
            let xml_entries: Vec<(String, u32)> = node
                .body
                .split("<EnumEntry Name=\"")
                .skip(1)
                .map(|entry| {
                    let name = entry.split('"').next().unwrap_or("").to_string();
                    (name, number(value(entry, "Value").unwrap_or("")))
                })
                .collect();
            let defined: Vec<(String, u32)> = entries
                .iter()
                .map(|&(name, value)| (name.to_string(), value))
                .collect();
            if xml_entries != defined {
                problems.push(format!(
                    "{}: entries {xml_entries:?}, definition {defined:?}",
                    feature.name
                ));
            }
        }
        if feature.kind == Kind::Command && value(node.body, "CommandValue") != Some("1") {
            problems.push(format!("{}: CommandValue is not 1", feature.name));
        }
    }
    // No register on the port that the definition lacks.
    let registers = nodes
        .iter()
        .filter(|node| matches!(node.element, "IntReg" | "FloatReg" | "StringReg"))
        .count();
    if registers != registers_seen {
        problems.push(format!(
            "{registers} registers in the XML, {registers_seen} in the definition"
        ));
    }
    for node in &nodes {
        if let Some(address) = value(node.body, "Address") {
            if number(address) >= WINDOW_SIZE {
                problems.push(format!("{} lies outside the window", node.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
