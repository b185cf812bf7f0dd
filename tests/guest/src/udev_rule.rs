//! What `udev/99-fgrab.rules` assigns to `/dev/fgrabN`, read from the file itself.
//!
//! The guest has no udev: the test `nonroot-clients` applies the rule's group and mode with
//! this reading of the file built into the binary. The guest crate's unit tests do not run
//! on the host, so xtask includes this file (`#[path]`) and runs the tests below there.

/// The rule file as shipped, built in.
pub const RULES: &str = include_str!("../../../udev/99-fgrab.rules");

/// The assignments of the rule that matches the fgrab nodes.
#[derive(Debug, PartialEq, Eq)]
pub struct NodeRule {
    /// `GROUP=`: the group name.
    pub group: String,
    /// `MODE=`: permission bits.
    pub mode: u32,
}

/// One `KEY op "value"` of a rule line: `(key, operator, value)`.
fn pairs(line: &str) -> Result<Vec<(&str, &str, &str)>, String> {
    line.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let at = part
                .find(['=', '!', '+', ':'])
                .ok_or_else(|| format!("no operator in `{part}`"))?;
            let (key, rest) = part.split_at(at);
            let operator_len = rest.find('"').ok_or_else(|| format!("unquoted `{part}`"))?;
            let (operator, value) = rest.split_at(operator_len);
            let value = value
                .strip_prefix('"')
                .and_then(|value| value.strip_suffix('"'))
                .ok_or_else(|| format!("badly quoted `{part}`"))?;
            Ok((key.trim(), operator.trim(), value))
        })
        .collect()
}

/// The group and mode that `rules` gives `misc` devices named `fgrabN`: exactly one rule
/// must match them, and it must assign both.
pub fn parse(rules: &str) -> Result<NodeRule, String> {
    let mut found = None;
    for line in rules.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let pairs = pairs(line)?;
        let matches = |key: &str, value: &str| pairs.contains(&(key, "==", value));
        if !(matches("SUBSYSTEM", "misc") && matches("KERNEL", "fgrab[0-9]*")) {
            continue;
        }
        let assigned = |key: &str| {
            pairs
                .iter()
                .find(|(name, operator, _)| *name == key && matches!(*operator, "=" | ":="))
                .map(|(_, _, value)| *value)
                .ok_or_else(|| format!("the fgrab rule assigns no {key}: `{line}`"))
        };
        let mode = assigned("MODE")?;
        let rule = NodeRule {
            group: assigned("GROUP")?.to_string(),
            mode: u32::from_str_radix(mode, 8).map_err(|_| format!("MODE `{mode}`"))?,
        };
        if found.replace(rule).is_some() {
            return Err("more than one rule matches the fgrab nodes".into());
        }
    }
    found.ok_or_else(|| "no rule matches SUBSYSTEM==\"misc\", KERNEL==\"fgrab[0-9]*\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped rule: the `fgrab` group, 0660 (issue 14).
    #[test]
    fn shipped_rule() {
        assert_eq!(
            parse(RULES),
            Ok(NodeRule {
                group: "fgrab".into(),
                mode: 0o660,
            })
        );
    }

    /// The memlock snippets raise the limit for the group the rule names.
    #[test]
    fn packaging_names_the_same_group() {
        let group = parse(RULES).unwrap().group;
        let limits = include_str!("../../../packaging/limits.d/90-fgrab-memlock.conf");
        let entries: Vec<Vec<&str>> = limits
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        let entry = &entries[0];
        assert_eq!(entry[..3], [format!("@{group}").as_str(), "-", "memlock"]);
        let kib: u64 = entry[3].parse().unwrap();
        assert!(
            kib > 8 << 10,
            "limits.d does not raise the 8 MiB default: {kib} KiB"
        );
        let systemd = include_str!("../../../packaging/systemd/fgrab-memlock.conf");
        assert!(systemd.lines().any(|line| line == "[Service]"));
        assert!(systemd
            .lines()
            .any(|line| line == format!("SupplementaryGroups={group}")));
        assert!(systemd
            .lines()
            .any(|line| line.starts_with("LimitMEMLOCK=")));
    }

    #[test]
    fn rules_that_do_not_say_enough_are_refused() {
        let rule = r#"SUBSYSTEM=="misc", KERNEL=="fgrab[0-9]*", GROUP="fgrab""#;
        assert!(parse(rule).unwrap_err().contains("no MODE"));
        assert!(parse("# nothing\n").is_err());
        let twice = format!("{rule}, MODE=\"0660\"\n{rule}, MODE=\"0666\"\n");
        assert!(parse(&twice).unwrap_err().contains("more than one"));
        let other = r#"SUBSYSTEM=="misc", KERNEL=="other", GROUP="x", MODE="0600""#;
        assert!(parse(other).is_err());
    }
}
