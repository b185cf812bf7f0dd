//! `cargo xtask layers`: the driver's layer and dependency check.
//!
//! The driver is built in layers with one direction of dependency, so that each layer can be
//! read and reviewed knowing only the layers below it, and so that all code able to break
//! memory safety (`unsafe`, the kernel's raw `bindings`) sits in the lowest layer, which knows
//! nothing of fgrab. Neither the compiler nor Kbuild enforces that; this check does, on the
//! source text, without building anything (it runs in milliseconds, as a host check of
//! `cargo xtask test`).
//!
//! It reads only `driver/`: the module tree from `driver/fgrab_main.rs` (`mod x;` lines, with
//! `#[path]`), and in each module file the crate-internal paths (`crate::`, `super::`, `self::`,
//! including every leaf of nested `use` trees), `unsafe` and `bindings::`. A small lexer skips
//! comments (doc comments included) and string literals. Modules mounted from outside
//! `driver/` (the shared ABI `uapi`, a shared hardware definition) are leaves: known, never
//! read.
//!
//! Deliberate limits, all on the side of flagging too much rather than too little: macros are
//! not expanded, re-exports are not followed (a path depends on the deepest module it names),
//! `#[cfg]` is not evaluated (every declared module is read), and inline modules (`mod tests
//! { ... }`) belong to the file that holds them.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::{self, Write as _};
use std::path::{Component, Path, PathBuf};

/// The layer of each top-level module; deeper modules inherit their top-level module's.
/// A top-level module missing here is a violation: every module must have a place.
const LAYERS: &[(&str, u8)] = &[
    ("uapi", 0),
    ("abstractions", 1),
    ("hardware", 2),
    ("domain", 3),
    ("card", 4),
    ("file", 5),
    ("commands", 5),
    ("binding", 5),
];

/// What each layer is, for messages and the report.
const LAYER_NAMES: &[&str] = &[
    "shared ABI",
    "kernel abstractions",
    "hardware",
    "domain",
    "card",
    "file ops, commands, binding",
];

/// The kernel's marker traits for plain-old-data structures (`kernel::transmute`). Declaring
/// that a DMA structure may be viewed as bytes is the one `unsafe` the hardware layer needs;
/// it has no code, so allowing it there does not spread code that can break memory safety.
const MARKER_TRAITS: &[&str] = &["AsBytes", "FromBytes"];

/// A module's path from the crate root (`["domain", "stream"]`); empty for the root itself.
type ModPath = Vec<String>;

/// `cargo xtask layers [--dot]`: prints the report (or the concern graph as Graphviz DOT) and
/// exits 1 if the driver breaks a rule.
pub fn run(flags: &[String]) -> Result<()> {
    let dot = match flags {
        [] => false,
        [flag] if flag == "--dot" => true,
        _ => bail!("usage: cargo xtask layers [--dot]"),
    };
    let analysis = analyze(&crate::paths::root()?)?;
    if dot {
        print!("{}", analysis.dot());
        for violation in &analysis.violations {
            eprintln!("{violation}");
        }
    } else {
        print!("{}", analysis.report());
    }
    if !analysis.violations.is_empty() {
        if dot {
            eprintln!("{}", analysis.summary());
        }
        std::process::exit(1);
    }
    Ok(())
}

/// The check alone, for `cargo xtask test`: prints each violation, fails if there is any.
pub fn check(root: &Path) -> Result<()> {
    let analysis = analyze(root)?;
    for violation in &analysis.violations {
        println!("      {violation}");
    }
    if !analysis.violations.is_empty() {
        bail!(
            "{} (`cargo xtask layers` prints the graph and the report)",
            analysis.summary()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Lexer: just enough Rust to know what is code, what is a comment and what is a string.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// A string literal of any kind (plain, raw, byte, C); its text is kept for `#[path]`.
    Str(String),
    /// Numbers and character literals: never part of a path.
    Literal,
    Lifetime,
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

struct Lexed {
    tokens: Vec<Token>,
    /// Lines holding something other than blanks and comments.
    code_lines: usize,
}

fn lex(source: &str) -> Lexed {
    let chars: Vec<char> = source.chars().collect();
    let at = |index: usize| chars.get(index).copied();
    let mut tokens = Vec::new();
    let mut code = BTreeSet::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && at(i + 1) == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && at(i + 1) == Some('*') {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == Some('*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == Some('/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            continue;
        }
        let first_line = line;
        let tok;
        if c == '"' {
            let (text, end) = quoted(&chars, i + 1, &mut line);
            tok = Tok::Str(text);
            i = end;
        } else if c == '\'' {
            if let Some(end) = char_literal(&chars, i) {
                tok = Tok::Literal;
                i = end;
            } else {
                i += 1;
                while at(i).is_some_and(is_ident_continue) {
                    i += 1;
                }
                tok = Tok::Lifetime;
            }
        } else if is_ident_start(c) {
            let start = i;
            while at(i).is_some_and(is_ident_continue) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
            if matches!(word.as_str(), "r" | "br" | "cr") && at(i + hashes) == Some('"') {
                let (text, end) = raw_string(&chars, i + hashes + 1, hashes, &mut line);
                tok = Tok::Str(text);
                i = end;
            } else if word == "r" && hashes == 1 && at(i + 1).is_some_and(is_ident_start) {
                // A raw identifier, `r#type`.
                let start = i + 1;
                i = start;
                while at(i).is_some_and(is_ident_continue) {
                    i += 1;
                }
                tok = Tok::Ident(chars[start..i].iter().collect());
            } else if matches!(word.as_str(), "b" | "c") && at(i) == Some('"') {
                let (text, end) = quoted(&chars, i + 1, &mut line);
                tok = Tok::Str(text);
                i = end;
            } else if word == "b" && at(i) == Some('\'') {
                tok = Tok::Literal;
                i = char_literal(&chars, i).unwrap_or(i + 1);
            } else {
                tok = Tok::Ident(word);
            }
        } else if c.is_ascii_digit() {
            while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_')
                || (at(i) == Some('.') && at(i + 1).is_some_and(|c| c.is_ascii_digit()))
            {
                i += 1;
            }
            tok = Tok::Literal;
        } else if c == ':' && at(i + 1) == Some(':') {
            tok = Tok::PathSep;
            i += 2;
        } else {
            tok = Tok::Punct(c);
            i += 1;
        }
        code.extend(first_line..=line);
        tokens.push(Token {
            tok,
            line: first_line,
        });
    }
    Lexed {
        tokens,
        code_lines: code.len(),
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A `"..."` literal's text from `start` (after the quote) and the index after the closing
/// quote.
fn quoted(chars: &[char], start: usize, line: &mut usize) -> (String, usize) {
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if chars.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '"' => return (chars[start..i].iter().collect(), i + 1),
            c => {
                if c == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    (
        chars[start.min(chars.len())..].iter().collect(),
        chars.len(),
    )
}

/// An `r#"..."#` literal's text from `start` (after the opening quote).
fn raw_string(chars: &[char], start: usize, hashes: usize, line: &mut usize) -> (String, usize) {
    let mut i = start;
    while i < chars.len() {
        if chars[i] == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return (chars[start..i].iter().collect(), i + 1 + hashes);
        }
        if chars[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    (
        chars[start.min(chars.len())..].iter().collect(),
        chars.len(),
    )
}

/// The end of a character literal starting at the quote at `start`, or `None` for a lifetime
/// or label (`'a`, `'static`).
fn char_literal(chars: &[char], start: usize) -> Option<usize> {
    match (chars.get(start + 1), chars.get(start + 2)) {
        (Some('\\'), _) => {
            // An escape: `'\n'`, `'\''`, `'\u{1F600}'`.
            let mut i = start + 3;
            while i < chars.len() && chars[i] != '\'' && chars[i] != '\n' {
                i += 1;
            }
            Some(i + 1)
        }
        (Some(c), Some('\'')) if *c != '\n' => Some(start + 3),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Scanner: what one file declares and refers to.

/// A `mod name;` (with a file of its own; inline `mod name { }` is part of its file).
#[derive(Debug)]
struct ModDecl {
    name: String,
    /// Inline modules around the declaration, outermost first.
    inline: Vec<String>,
    path_attr: Option<String>,
    has_cfg: bool,
    line: usize,
}

/// One leaf of a crate-internal path as written (`["crate", "card", "Card"]`).
#[derive(Debug)]
struct RawRef {
    /// Inline modules around the path (a `super::` inside `mod tests { }` leaves `tests`).
    inline: Vec<String>,
    segments: Vec<String>,
    line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnsafeKind {
    Block,
    Fn,
    Impl,
    /// `unsafe trait`, `unsafe extern { }` blocks, `#[unsafe(...)]` attributes.
    Other,
}

#[derive(Debug)]
struct UnsafeUse {
    kind: UnsafeKind,
    /// How it reads in a message: `unsafe block`, `unsafe impl Send`.
    what: String,
    /// An `unsafe impl` of one of the kernel's [`MARKER_TRAITS`].
    marker_impl: bool,
    line: usize,
}

#[derive(Debug, Default)]
struct Scan {
    mods: Vec<ModDecl>,
    refs: Vec<RawRef>,
    unsafes: Vec<UnsafeUse>,
    /// Lines of each use of the kernel's raw bindings.
    bindings: Vec<usize>,
}

fn ident(tokens: &[Token], index: usize) -> Option<&str> {
    match tokens.get(index).map(|token| &token.tok) {
        Some(Tok::Ident(word)) => Some(word),
        _ => None,
    }
}

fn is_punct(tokens: &[Token], index: usize, c: char) -> bool {
    tokens
        .get(index)
        .is_some_and(|token| token.tok == Tok::Punct(c))
}

fn is_sep(tokens: &[Token], index: Option<usize>) -> bool {
    index.is_some_and(|index| {
        tokens
            .get(index)
            .is_some_and(|token| token.tok == Tok::PathSep)
    })
}

/// The index of the bracket closing the one at `open` (or the end, in broken code).
fn matching(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (index, token) in tokens.iter().enumerate().skip(open) {
        match token.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return index;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

fn scan(tokens: &[Token]) -> Scan {
    let aliases = marker_aliases(tokens);
    let mut out = Scan::default();
    let mut depth = 0usize;
    // Inline modules we are in, with the brace depth inside each.
    let mut inline: Vec<(String, usize)> = Vec::new();
    // Outer attributes waiting for the item they belong to.
    let mut attrs: Vec<&[Token]> = Vec::new();
    let inline_names =
        |inline: &[(String, usize)]| inline.iter().map(|(name, _)| name.clone()).collect();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].tok == Tok::Punct('#') {
            let inner = is_punct(tokens, i + 1, '!');
            let open = i + 1 + usize::from(inner);
            if is_punct(tokens, open, '[') {
                let close = matching(tokens, open);
                let body = &tokens[open + 1..close.min(tokens.len())];
                for token in body {
                    if token.tok == Tok::Ident("unsafe".into()) {
                        out.unsafes.push(UnsafeUse {
                            kind: UnsafeKind::Other,
                            what: "unsafe attribute".into(),
                            marker_impl: false,
                            line: token.line,
                        });
                    }
                }
                if !inner {
                    attrs.push(body);
                }
                i = close + 1;
                continue;
            }
        }
        let line = tokens[i].line;
        match &tokens[i].tok {
            Tok::Ident(word) if word == "pub" => {
                // Visibility, `pub(crate)`: the attributes still belong to what follows.
                i += 1;
                if is_punct(tokens, i, '(') {
                    i = matching(tokens, i) + 1;
                }
                continue;
            }
            Tok::Ident(word) if word == "mod" => {
                if let Some(name) = ident(tokens, i + 1) {
                    if is_punct(tokens, i + 2, ';') {
                        out.mods.push(ModDecl {
                            name: name.to_string(),
                            inline: inline_names(&inline),
                            path_attr: attrs.iter().find_map(|attr| path_attribute(attr)),
                            has_cfg: attrs.iter().any(|attr| ident(attr, 0) == Some("cfg")),
                            line,
                        });
                        attrs.clear();
                        i += 3;
                        continue;
                    }
                    if is_punct(tokens, i + 2, '{') {
                        depth += 1;
                        inline.push((name.to_string(), depth));
                        attrs.clear();
                        i += 3;
                        continue;
                    }
                }
            }
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, inside)| *inside == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && is_sep(tokens, Some(i + 1))
                    && !is_sep(tokens, i.checked_sub(1)) =>
            {
                let mut leaves = Vec::new();
                let next = parse_path(tokens, i, &mut Vec::new(), &mut leaves);
                for (segments, line) in leaves {
                    out.refs.push(RawRef {
                        inline: inline_names(&inline),
                        segments,
                        line,
                    });
                }
                attrs.clear();
                i = next;
                continue;
            }
            Tok::Ident(word) if word == "bindings" && is_bindings_use(tokens, i) => {
                out.bindings.push(line);
            }
            Tok::Ident(word) if word == "unsafe" => {
                out.unsafes.push(classify_unsafe(tokens, i, &aliases));
            }
            _ => {}
        }
        attrs.clear();
        i += 1;
    }
    out
}

/// `path = "..."` in an attribute's body.
fn path_attribute(body: &[Token]) -> Option<String> {
    match (ident(body, 0), is_punct(body, 1, '='), body.get(2)) {
        (
            Some("path"),
            true,
            Some(Token {
                tok: Tok::Str(path),
                ..
            }),
        ) => Some(path.clone()),
        _ => None,
    }
}

/// Parses the path whose first segment is at `start`, pushing one `(segments, line)` per leaf
/// (a plain path has one; `a::{b, c::{d, self}}` has three), where `line` is that of the
/// leaf's last segment. Returns the index after the path.
fn parse_path(
    tokens: &[Token],
    start: usize,
    prefix: &mut Vec<String>,
    leaves: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let base = prefix.len();
    let mut i = start;
    while let Some(name) = ident(tokens, i) {
        prefix.push(name.to_string());
        let line = tokens[i].line;
        i += 1;
        if !is_sep(tokens, Some(i)) {
            leaves.push((prefix.clone(), line));
            break;
        }
        i += 1;
        if is_punct(tokens, i, '{') {
            i = parse_group(tokens, i, prefix, leaves);
            break;
        }
        if is_punct(tokens, i, '*') {
            leaves.push((prefix.clone(), line));
            i += 1;
            break;
        }
        if ident(tokens, i).is_none() {
            // A turbofish `::<`: the arguments are scanned as code of their own.
            leaves.push((prefix.clone(), line));
            break;
        }
    }
    prefix.truncate(base);
    i
}

/// Parses the use-tree group `{ ... }` opening at `open`; returns the index after it.
fn parse_group(
    tokens: &[Token],
    open: usize,
    prefix: &mut Vec<String>,
    leaves: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let mut i = open + 1;
    while let Some(token) = tokens.get(i) {
        match &token.tok {
            Tok::Punct('}') => return i + 1,
            Tok::Punct('{') => i = parse_group(tokens, i, prefix, leaves),
            Tok::Punct('*') => {
                leaves.push((prefix.clone(), token.line));
                i += 1;
            }
            Tok::Ident(word) if word == "self" && !is_sep(tokens, Some(i + 1)) => {
                leaves.push((prefix.clone(), token.line));
                i += 1;
            }
            // `x as y`: skip the new name.
            Tok::Ident(word) if word == "as" => i += 2,
            Tok::Ident(_) => i = parse_path(tokens, i, prefix, leaves),
            _ => i += 1,
        }
    }
    i
}

/// Whether the `bindings` at `index` names the kernel crate's raw bindings: `bindings::x`,
/// `kernel::bindings`, or `bindings` inside `use kernel::{...}`.
fn is_bindings_use(tokens: &[Token], index: usize) -> bool {
    if is_sep(tokens, index.checked_sub(1)) {
        return index >= 2 && ident(tokens, index - 2) == Some("kernel");
    }
    if is_sep(tokens, Some(index + 1)) {
        return true;
    }
    if index == 0 || !(is_punct(tokens, index - 1, '{') || is_punct(tokens, index - 1, ',')) {
        return false;
    }
    // Find the group around it and look at what precedes the group.
    let mut depth = 0usize;
    for open in (0..index).rev() {
        match tokens[open].tok {
            Tok::Punct('}') => depth += 1,
            Tok::Punct('{') if depth > 0 => depth -= 1,
            Tok::Punct('{') => {
                return open >= 2
                    && is_sep(tokens, Some(open - 1))
                    && ident(tokens, open - 2) == Some("kernel");
            }
            _ => {}
        }
    }
    false
}

/// Names under which a file imports a marker trait (`FromBytes as KernelFromBytes`).
fn marker_aliases(tokens: &[Token]) -> BTreeSet<String> {
    (1..tokens.len().saturating_sub(1))
        .filter(|&i| ident(tokens, i) == Some("as"))
        .filter(|&i| ident(tokens, i - 1).is_some_and(|name| MARKER_TRAITS.contains(&name)))
        .filter_map(|i| ident(tokens, i + 1).map(str::to_string))
        .collect()
}

fn classify_unsafe(tokens: &[Token], index: usize, aliases: &BTreeSet<String>) -> UnsafeUse {
    let line = tokens[index].line;
    let (kind, what, marker_impl) = match ident(tokens, index + 1) {
        _ if is_punct(tokens, index + 1, '{') => (UnsafeKind::Block, "unsafe block".into(), false),
        Some("fn") => (UnsafeKind::Fn, "unsafe fn".into(), false),
        Some("extern") => {
            let mut next = index + 2;
            if matches!(tokens.get(next).map(|t| &t.tok), Some(Tok::Str(_))) {
                next += 1;
            }
            if ident(tokens, next) == Some("fn") {
                (UnsafeKind::Fn, "unsafe extern fn".into(), false)
            } else {
                (UnsafeKind::Other, "unsafe extern block".into(), false)
            }
        }
        Some("impl") => {
            let path = impl_trait(tokens, index + 2);
            let marker = path.split_last().is_some_and(|(name, qualifiers)| {
                (MARKER_TRAITS.contains(&name.as_str()) || aliases.contains(name))
                    && qualifiers
                        .iter()
                        .all(|segment| segment == "kernel" || segment == "transmute")
            });
            let what = if path.is_empty() {
                "unsafe impl".to_string()
            } else {
                format!("unsafe impl {}", path.join("::"))
            };
            (UnsafeKind::Impl, what, marker)
        }
        Some("trait") => (UnsafeKind::Other, "unsafe trait".into(), false),
        _ => (UnsafeKind::Other, "unsafe".into(), false),
    };
    UnsafeUse {
        kind,
        what,
        marker_impl,
        line,
    }
}

/// The trait path of `impl<...> Trait<...> for Type` starting after `impl` (generic arguments
/// left out); empty for an inherent impl.
fn impl_trait(tokens: &[Token], start: usize) -> Vec<String> {
    let mut angle = 0usize;
    let mut path = Vec::new();
    let mut i = start;
    while let Some(token) = tokens.get(i) {
        match &token.tok {
            Tok::Punct('<') => angle += 1,
            // `->` in a bound such as `F: Fn() -> T` is not a closing bracket.
            Tok::Punct('>') if !is_punct(tokens, i.wrapping_sub(1), '-') => {
                angle = angle.saturating_sub(1);
            }
            Tok::Ident(word) if angle == 0 && word == "for" => return path,
            Tok::Punct('{' | ';') => return Vec::new(),
            Tok::Ident(word) if angle == 0 => path.push(word.clone()),
            _ => {}
        }
        i += 1;
    }
    Vec::new()
}

// ---------------------------------------------------------------------------------------------
// Analysis: module tree, dependency graph over concerns, rules.

/// Where something was found, for messages: `driver/card.rs:12`.
#[derive(Debug, Clone)]
struct Site {
    file: String,
    line: usize,
    /// The path as written, `crate::card::Card`.
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// A module file to read.
struct Module {
    path: ModPath,
    file: PathBuf,
    /// Whether its `mod x;` lines look for files next to it (the crate root, `mod.rs`, files
    /// mounted with `#[path]`) rather than in a directory named after it.
    mod_rs: bool,
}

struct FileStats {
    file: String,
    module: ModPath,
    lines: usize,
    code_lines: usize,
    unsafe_blocks: usize,
    unsafe_fns: usize,
    unsafe_impls: usize,
    unsafe_other: usize,
    bindings: usize,
}

struct CFile {
    file: String,
    lines: usize,
    functions: usize,
}

/// Everything `cargo xtask layers` found.
struct Analysis {
    concerns: BTreeSet<ModPath>,
    /// Every dependency between two concerns, with where it is written.
    edges: BTreeMap<(ModPath, ModPath), Vec<Site>>,
    /// Edges that break a rule (drawn red in DOT).
    bad_edges: BTreeSet<(ModPath, ModPath)>,
    files: Vec<FileStats>,
    c_files: Vec<CFile>,
    notes: Vec<String>,
    violations: Vec<Violation>,
}

/// `domain::stream`, or `crate` for the root.
fn show(path: &[String]) -> String {
    if path.is_empty() {
        "crate".into()
    } else {
        path.join("::")
    }
}

/// The concern a module belongs to: itself, or its ancestor at depth 2.
fn concern(path: &[String]) -> ModPath {
    path[..path.len().min(2)].to_vec()
}

fn layer(path: &[String]) -> Option<u8> {
    let top = path.first()?;
    LAYERS
        .iter()
        .find(|(name, _)| name == top)
        .map(|&(_, layer)| layer)
}

/// `layer 3 (domain)`, `the crate root`, `no layer`.
fn describe_layer(path: &[String]) -> String {
    match layer(path) {
        Some(n) => format!("layer {n} ({})", LAYER_NAMES[usize::from(n)]),
        None if path.is_empty() => "the crate root".into(),
        None => "no layer".into(),
    }
}

/// Parent/child glue: one module is the other's ancestor.
fn is_glue(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `path` with `.` and `..` taken out, without touching the file system (the file may not
/// exist, and symlinks are not expected in the checkout).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The candidate files of a `mod` declared in `parent`, each with whether it is mod-rs-like.
fn child_files(parent: &Module, decl: &ModDecl) -> Vec<(PathBuf, bool)> {
    let dir = parent.file.parent().unwrap_or(Path::new(""));
    let mut own_dir = dir.to_path_buf();
    if !parent.mod_rs {
        if let Some(stem) = parent.file.file_stem() {
            own_dir.push(stem);
        }
    }
    own_dir.extend(&decl.inline);
    match &decl.path_attr {
        // Outside inline modules `#[path]` is relative to the declaring file's directory.
        Some(path) if decl.inline.is_empty() => vec![(normalize(&dir.join(path)), true)],
        Some(path) => vec![(normalize(&own_dir.join(path)), true)],
        None => vec![
            (normalize(&own_dir.join(format!("{}.rs", decl.name))), false),
            (normalize(&own_dir.join(&decl.name).join("mod.rs")), true),
        ],
    }
}

/// `path` relative to the checkout, for messages.
fn display(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Resolves a path as written in module `scope` to an absolute path (`None` if it climbs
/// above the crate root).
fn resolve(scope: &[String], segments: &[String]) -> Option<ModPath> {
    let (mut path, mut rest) = match segments.first()?.as_str() {
        "crate" => (Vec::new(), &segments[1..]),
        "self" => (scope.to_vec(), &segments[1..]),
        "super" => (scope.to_vec(), segments),
        _ => return None,
    };
    while let Some(first) = rest.first() {
        match first.as_str() {
            "super" => {
                path.pop()?;
            }
            "self" => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    path.extend(rest.iter().cloned());
    Some(path)
}

fn analyze(root: &Path) -> Result<Analysis> {
    let root = normalize(root);
    let driver = root.join("driver");
    let crate_root = driver.join("fgrab_main.rs");
    if !crate_root.is_file() {
        bail!("{} not found", crate_root.display());
    }
    let mut violations = Vec::new();
    let mut notes = Vec::new();

    // The module tree, breadth first from the crate root.
    let mut known: BTreeSet<ModPath> = BTreeSet::from([Vec::new()]);
    let mut declared_at: BTreeMap<ModPath, (String, usize)> = BTreeMap::new();
    let mut parsed: Vec<(Module, usize, Lexed, Scan)> = Vec::new();
    let mut seen = BTreeSet::from([crate_root.clone()]);
    let mut queue = VecDeque::from([Module {
        path: Vec::new(),
        file: crate_root,
        mod_rs: true,
    }]);
    while let Some(module) = queue.pop_front() {
        let source = std::fs::read_to_string(&module.file)
            .with_context(|| format!("reading {}", module.file.display()))?;
        let lexed = lex(&source);
        let scan = scan(&lexed.tokens);
        let here = display(&root, &module.file);
        for decl in &scan.mods {
            let mut path = module.path.clone();
            path.extend(decl.inline.iter().cloned());
            path.push(decl.name.clone());
            known.insert(path.clone());
            declared_at.insert(path.clone(), (here.clone(), decl.line));
            let candidates = child_files(&module, decl);
            if !candidates[0].0.starts_with(&driver) {
                // Mounted from outside the driver (the shared ABI): a leaf, not read.
                continue;
            }
            match candidates.iter().find(|(file, _)| file.is_file()) {
                Some((file, mod_rs)) => {
                    if seen.insert(file.clone()) {
                        queue.push_back(Module {
                            path,
                            file: file.clone(),
                            mod_rs: *mod_rs,
                        });
                    }
                }
                None => {
                    let looked: Vec<String> = candidates
                        .iter()
                        .map(|(file, _)| display(&root, file))
                        .collect();
                    let message = format!(
                        "module `{}` has no file (looked for {})",
                        show(&path),
                        looked.join(" and ")
                    );
                    if decl.has_cfg {
                        // Possibly configured out; the build will say if it is not.
                        notes.push(format!("{here}:{}: note: {message}", decl.line));
                    } else {
                        violations.push(Violation {
                            file: here.clone(),
                            line: decl.line,
                            message,
                        });
                    }
                }
            }
        }
        parsed.push((module, source.lines().count(), lexed, scan));
    }

    // Every top-level module has a layer.
    for path in known.iter().filter(|path| path.len() == 1) {
        if layer(path).is_none() {
            let (file, line) = declared_at.get(path).cloned().unwrap_or_default();
            let names: Vec<&str> = LAYERS.iter().map(|(name, _)| *name).collect();
            violations.push(Violation {
                file,
                line,
                message: format!(
                    "module `{}` is in no layer (top-level modules are {})",
                    show(path),
                    names.join(", ")
                ),
            });
        }
    }

    let concerns: BTreeSet<ModPath> = known
        .iter()
        .filter(|path| !path.is_empty())
        .map(|path| concern(path))
        .collect();
    let mut edges: BTreeMap<(ModPath, ModPath), Vec<Site>> = BTreeMap::new();
    let mut bad_edges = BTreeSet::new();
    let mut files = Vec::new();
    for (module, lines, lexed, scan) in &parsed {
        let file = display(&root, &module.file);
        let from_layer = layer(&module.path);
        let violation = |line: usize, message: String| Violation {
            file: file.clone(),
            line,
            message,
        };

        for raw in &scan.refs {
            let mut scope = module.path.clone();
            scope.extend(raw.inline.iter().cloned());
            let Some(target) = resolve(&scope, &raw.segments) else {
                continue;
            };
            let target = (0..=target.len())
                .rev()
                .map(|len| target[..len].to_vec())
                .find(|prefix| known.contains(prefix))
                .unwrap_or_default();
            // The crate root is exempt, and everything may name the root (an ancestor).
            if module.path.is_empty() || target.is_empty() {
                continue;
            }
            let (from, to) = (concern(&module.path), concern(&target));
            if from == to {
                continue;
            }
            let site = Site {
                file: file.clone(),
                line: raw.line,
                text: raw.segments.join("::"),
            };
            let edge = (from.clone(), to.clone());
            edges.entry(edge.clone()).or_default().push(site.clone());
            if is_glue(&from, &to) {
                continue;
            }
            let to_layer = layer(&to);
            let problem = match (from_layer, to_layer) {
                (Some(0), _) => Some(format!(
                    "the shared ABI `{}` must not depend on the driver: it names `{}`",
                    show(&from),
                    show(&to)
                )),
                (Some(1), to_layer) if to_layer != Some(1) => Some(format!(
                    "layer 1 knows nothing of fgrab: `{}` names `{}` ({})",
                    show(&from),
                    show(&to),
                    describe_layer(&to)
                )),
                (Some(from_layer), Some(to_layer)) if to_layer > from_layer => Some(format!(
                    "upward dependency: `{}` ({}) names `{}` ({})",
                    show(&from),
                    describe_layer(&from),
                    show(&to),
                    describe_layer(&to)
                )),
                _ => None,
            };
            if let Some(problem) = problem {
                violations.push(violation(
                    site.line,
                    format!("{problem} via `{}`", site.text),
                ));
                bad_edges.insert(edge);
            }
        }

        let place = format!("`{}`, {}", show(&module.path), describe_layer(&module.path));
        if from_layer != Some(1) {
            for &line in &scan.bindings {
                violations.push(violation(
                    line,
                    format!("`bindings::` outside layer 1 (in {place})"),
                ));
            }
        }
        for used in &scan.unsafes {
            let allowed = from_layer == Some(1) || (from_layer == Some(2) && used.marker_impl);
            if !allowed {
                let hint = if used.kind == UnsafeKind::Impl && from_layer == Some(2) {
                    "; layer 2 may only `unsafe impl` the kernel's `AsBytes`/`FromBytes`"
                } else {
                    ""
                };
                violations.push(violation(
                    used.line,
                    format!("`{}` outside layer 1 (in {place}){hint}", used.what),
                ));
            }
        }

        let count = |kind| scan.unsafes.iter().filter(|u| u.kind == kind).count();
        files.push(FileStats {
            file,
            module: module.path.clone(),
            lines: *lines,
            code_lines: lexed.code_lines,
            unsafe_blocks: count(UnsafeKind::Block),
            unsafe_fns: count(UnsafeKind::Fn),
            unsafe_impls: count(UnsafeKind::Impl),
            unsafe_other: count(UnsafeKind::Other),
            bindings: scan.bindings.len(),
        });
    }

    // Cycles among concerns, parent/child glue left out.
    let graph: BTreeMap<&ModPath, Vec<&ModPath>> = concerns
        .iter()
        .map(|node| {
            let successors = edges
                .keys()
                .filter(|(from, to)| from == node && !is_glue(from, to))
                .map(|(_, to)| to)
                .collect();
            (node, successors)
        })
        .collect();
    let mut cycle_violations = Vec::new();
    for component in strongly_connected(&graph) {
        let cycle = shortest_cycle(&graph, &component);
        let mut message = String::from("dependency cycle: ");
        let names: Vec<String> = cycle.iter().map(|node| show(node)).collect();
        message += &names.join(" -> ");
        if component.len() + 1 > cycle.len() {
            let all: Vec<String> = component.iter().map(|node| show(node)).collect();
            let _ = write!(message, " (all of {} depend on each other)", all.join(", "));
        }
        let mut first = None;
        for pair in cycle.windows(2) {
            let edge = (pair[0].clone(), pair[1].clone());
            if let Some(site) = edges.get(&edge).and_then(|sites| sites.first()) {
                let _ = write!(
                    message,
                    "\n    {} -> {}: {}:{} `{}`",
                    show(&pair[0]),
                    show(&pair[1]),
                    site.file,
                    site.line,
                    site.text
                );
                first.get_or_insert_with(|| site.clone());
            }
            bad_edges.insert(edge);
        }
        let first = first.unwrap_or(Site {
            file: String::new(),
            line: 0,
            text: String::new(),
        });
        cycle_violations.push(Violation {
            file: first.file,
            line: first.line,
            message,
        });
    }

    violations.sort();
    violations.extend(cycle_violations);
    Ok(Analysis {
        concerns,
        edges,
        bad_edges,
        files,
        c_files: c_files(&root, &driver)?,
        notes,
        violations,
    })
}

/// Strongly connected components with more than one node (Tarjan), in a stable order.
fn strongly_connected<'a>(
    graph: &BTreeMap<&'a ModPath, Vec<&'a ModPath>>,
) -> Vec<Vec<&'a ModPath>> {
    struct State<'a> {
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        components: Vec<Vec<&'a ModPath>>,
    }
    fn visit<'a>(
        node: &'a ModPath,
        graph: &BTreeMap<&'a ModPath, Vec<&'a ModPath>>,
        state: &mut State<'a>,
    ) {
        let index = state.index.len();
        state.index.insert(node, index);
        state.low.insert(node, index);
        state.stack.push(node);
        state.on_stack.insert(node);
        for &next in graph.get(node).into_iter().flatten() {
            if !state.index.contains_key(next) {
                visit(next, graph, state);
                let low = state.low[node].min(state.low[next]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.low[node].min(state.index[next]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member);
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.components.push(component);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for &node in graph.keys() {
        if !state.index.contains_key(node) {
            visit(node, graph, &mut state);
        }
    }
    state.components.sort();
    state.components
}

/// A shortest cycle through the first node of `component`, as `[a, b, ..., a]`.
fn shortest_cycle(
    graph: &BTreeMap<&ModPath, Vec<&ModPath>>,
    component: &[&ModPath],
) -> Vec<ModPath> {
    let start = component[0];
    let members: BTreeSet<&ModPath> = component.iter().copied().collect();
    let mut came_from: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in graph.get(node).into_iter().flatten() {
            if !members.contains(next) {
                continue;
            }
            if next == start {
                let mut cycle = vec![start.clone(), node.clone()];
                let mut at = node;
                while let Some(&previous) = came_from.get(at) {
                    cycle.push(previous.clone());
                    at = previous;
                }
                // The walk back ends at `start`, which has no predecessor.
                cycle.reverse();
                return cycle;
            }
            if !came_from.contains_key(next) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    vec![start.clone()]
}

// ---------------------------------------------------------------------------------------------
// The C shim.

/// Every `.c` and `.h` file under `driver/`, with its lines and function definitions.
fn c_files(root: &Path, driver: &Path) -> Result<Vec<CFile>> {
    let mut found = Vec::new();
    let mut dirs = vec![driver.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("listing {}", dir.display()))?
                .path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "c" || extension == "h")
            {
                let source = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                found.push(CFile {
                    file: display(root, &path),
                    lines: source.lines().count(),
                    functions: c_function_definitions(&source),
                });
            }
        }
    }
    found.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(found)
}

/// Top-level C function definitions: a `{` at file scope right after a `)`, in a declaration
/// without `=` (which would make it an initializer). Comments, literals and preprocessor
/// lines are left out first.
fn c_function_definitions(source: &str) -> usize {
    let chars: Vec<char> = source.chars().collect();
    let mut code = String::new();
    let mut i = 0;
    let mut line_start = true;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if line_start && c == '#' {
            // A directive, with its `\` continuations.
            while i < chars.len() && !(chars[i] == '\n' && chars[i - 1] != '\\') {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i - 1] == '*' && chars[i] == '/') {
                i += 1;
            }
            i += 1;
            code.push(' ');
            continue;
        }
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            code.push('0');
            continue;
        }
        if c == '\n' {
            line_start = true;
        } else if !c.is_whitespace() {
            line_start = false;
        }
        code.push(c);
        i += 1;
    }

    let mut depth = 0usize;
    let mut declaration = String::new();
    let mut functions = 0;
    for c in code.chars() {
        match c {
            '{' => {
                let head = declaration.trim_end();
                if depth == 0 && head.ends_with(')') && !head.contains('=') {
                    functions += 1;
                }
                depth += 1;
                declaration.clear();
            }
            '}' => {
                depth = depth.saturating_sub(1);
                declaration.clear();
            }
            ';' if depth == 0 => declaration.clear(),
            _ if depth == 0 => declaration.push(c),
            _ => {}
        }
    }
    functions
}

// ---------------------------------------------------------------------------------------------
// Output.

impl Analysis {
    /// Non-glue edges: what the closing line counts.
    fn dependency_count(&self) -> usize {
        self.edges
            .keys()
            .filter(|(from, to)| !is_glue(from, to))
            .count()
    }

    /// Concerns sorted by layer (no layer last), then name.
    fn sorted_concerns(&self) -> Vec<&ModPath> {
        let mut sorted: Vec<&ModPath> = self.concerns.iter().collect();
        sorted.sort_by_key(|path| (layer(path).unwrap_or(u8::MAX), (*path).clone()));
        sorted
    }

    /// The closing line.
    fn summary(&self) -> String {
        match self.violations.len() {
            0 => format!(
                "layers: ok ({} concerns, {} edges, no cycles, bindings:: and unsafe only in layer 1)",
                self.concerns.len(),
                self.dependency_count()
            ),
            1 => "layers: 1 violation".into(),
            n => format!("layers: {n} violations"),
        }
    }

    fn report(&self) -> String {
        let mut out = String::new();
        let layer_label = |path: &[String]| match layer(path) {
            Some(n) => n.to_string(),
            None => "?".into(),
        };

        let _ = writeln!(
            out,
            "concern graph (`(parent)`/`(child)`: module glue, not counted as a dependency):"
        );
        for node in self.sorted_concerns() {
            let deps: Vec<String> = self
                .edges
                .keys()
                .filter(|(from, _)| from == node)
                .map(|(_, to)| {
                    if to.starts_with(node) {
                        format!("{} (child)", show(to))
                    } else if node.starts_with(to) {
                        format!("{} (parent)", show(to))
                    } else {
                        show(to)
                    }
                })
                .collect();
            let deps = if deps.is_empty() {
                "(nothing)".to_string()
            } else {
                deps.join(", ")
            };
            let _ = writeln!(
                out,
                "  layer {}  {} -> {deps}",
                layer_label(node),
                show(node),
            );
        }

        let _ = writeln!(
            out,
            "\nfiles (code: lines without blanks and comments; unsafe: blocks/fns/impls/other):"
        );
        let _ = writeln!(
            out,
            "  {:<5}  {:<44} {:>6} {:>6} {:>12} {:>9}",
            "layer", "file", "lines", "code", "unsafe", "bindings"
        );
        let mut files: Vec<&FileStats> = self.files.iter().collect();
        files.sort_by_key(|stats| {
            let layer = if stats.module.is_empty() {
                0
            } else {
                layer(&stats.module).map_or(u8::MAX, |n| n + 1)
            };
            (layer, stats.file.clone())
        });
        for stats in &files {
            let unsafe_counts = format!(
                "{}/{}/{}/{}",
                stats.unsafe_blocks, stats.unsafe_fns, stats.unsafe_impls, stats.unsafe_other
            );
            let _ = writeln!(
                out,
                "  {:<5}  {:<44} {:>6} {:>6} {:>12} {:>9}",
                if stats.module.is_empty() {
                    "root".into()
                } else {
                    layer_label(&stats.module)
                },
                stats.file,
                stats.lines,
                stats.code_lines,
                unsafe_counts,
                stats.bindings
            );
        }

        let _ = writeln!(out, "\nlayers (Rust files in driver/):");
        let _ = writeln!(
            out,
            "  {:<36} {:>5} {:>6} {:>6} {:>13} {:>10} {:>9}",
            "layer", "files", "lines", "code", "unsafe blocks", "unsafe all", "bindings"
        );
        let mut rows: BTreeMap<(u8, String), [usize; 6]> = BTreeMap::new();
        for stats in &self.files {
            let key = match layer(&stats.module) {
                _ if stats.module.is_empty() => (0, "crate root".to_string()),
                Some(n) => (n + 1, format!("{n} {}", LAYER_NAMES[usize::from(n)])),
                None => (u8::MAX, "no layer".to_string()),
            };
            let row = rows.entry(key).or_default();
            let all = stats.unsafe_blocks + stats.unsafe_fns + stats.unsafe_impls;
            for (sum, value) in row.iter_mut().zip([
                1,
                stats.lines,
                stats.code_lines,
                stats.unsafe_blocks,
                all + stats.unsafe_other,
                stats.bindings,
            ]) {
                *sum += value;
            }
        }
        for ((_, name), [files, lines, code, blocks, all, bindings]) in &rows {
            let _ = writeln!(
                out,
                "  {name:<36} {files:>5} {lines:>6} {code:>6} {blocks:>13} {all:>10} {bindings:>9}"
            );
        }

        let _ = writeln!(out, "\nC shim (driver/**/*.c, *.h):");
        for c in &self.c_files {
            let _ = writeln!(
                out,
                "  {:<44} {:>6} lines {:>4} function definitions",
                c.file, c.lines, c.functions
            );
        }
        if self.c_files.is_empty() {
            let _ = writeln!(out, "  (none)");
        }

        if !self.notes.is_empty() {
            let _ = writeln!(out);
            for note in &self.notes {
                let _ = writeln!(out, "{note}");
            }
        }
        if !self.violations.is_empty() {
            let _ = writeln!(out, "\nviolations:");
            for violation in &self.violations {
                let _ = writeln!(out, "{violation}");
            }
        }
        let _ = writeln!(out, "\n{}", self.summary());
        out
    }

    /// The concern graph as Graphviz DOT: one cluster per layer, glue dashed, edges that
    /// break a rule red.
    fn dot(&self) -> String {
        let mut out = String::from("digraph layers {\n  node [shape=box];\n");
        let mut by_layer: BTreeMap<Option<u8>, Vec<&ModPath>> = BTreeMap::new();
        for node in self.sorted_concerns() {
            by_layer.entry(layer(node)).or_default().push(node);
        }
        for (layer, nodes) in &by_layer {
            let (id, label) = match layer {
                Some(n) => (
                    n.to_string(),
                    format!("layer {n}: {}", LAYER_NAMES[usize::from(*n)]),
                ),
                None => ("none".into(), "no layer".into()),
            };
            let _ = writeln!(
                out,
                "  subgraph cluster_layer_{id} {{\n    label=\"{label}\";"
            );
            for node in nodes {
                let _ = writeln!(out, "    \"{}\";", show(node));
            }
            let _ = writeln!(out, "  }}");
        }
        for (from, to) in self.edges.keys() {
            let style = if is_glue(from, to) {
                " [style=dashed, color=gray]"
            } else if self.bad_edges.contains(&(from.clone(), to.clone())) {
                " [color=red, penwidth=2]"
            } else {
                ""
            };
            let _ = writeln!(out, "  \"{}\" -> \"{}\"{style};", show(from), show(to));
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A checkout with a `driver/` directory in the system's temp directory, removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        fn new(files: &[(&str, String)]) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "xtask-layers-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            for (path, text) in files {
                let path = dir.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            Self(dir)
        }

        fn analyze(&self) -> Analysis {
            analyze(&self.0).unwrap()
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A small driver laid out as it should be: every layer, a deeper module, a `#[path]`
    /// mount from outside `driver/`, the marker-trait `unsafe impl` in hardware, and a C shim.
    fn clean() -> Vec<(&'static str, String)> {
        [
            (
                "driver/fgrab_main.rs",
                r#"//! Crate root: mounts the ABI, lists the layers.
#[allow(unused_attributes)]
#[path = "../uapi/src/lib.rs"]
pub mod uapi;

mod abstractions;
mod hardware;
pub(crate) mod domain;
mod card;
mod file;
mod commands;
mod binding;

kernel::module_pci_driver! {
    type: binding::Driver,
}
"#,
            ),
            (
                "driver/abstractions.rs",
                "//! Layer 1.\npub(crate) mod uring_cmd;\npub(crate) mod pci;\n",
            ),
            (
                "driver/abstractions/uring_cmd.rs",
                r#"use kernel::bindings;

pub(crate) struct UringCmd(*mut bindings::io_uring_cmd);

impl UringCmd {
    pub(crate) fn done(&self) {
        // SAFETY: the command is live.
        unsafe { bindings::io_uring_cmd_done(self.0) }
    }
}
"#,
            ),
            (
                "driver/abstractions/pci.rs",
                "use super::uring_cmd::UringCmd;\npub(crate) struct Bar;\n\
                 // SAFETY: plain data.\nunsafe impl Send for Bar {}\n",
            ),
            (
                "driver/hardware.rs",
                "pub(crate) mod regs;\n#[path = \"../hw/src/lib.rs\"]\npub(crate) mod definition;\n",
            ),
            (
                "driver/hardware/regs.rs",
                r#"use kernel::transmute::{AsBytes, FromBytes as KernelFromBytes};
use crate::{abstractions::pci::Bar, hardware::definition::REGS, uapi::Cmd};

#[repr(C)]
pub(crate) struct Entry(u64);
// SAFETY: plain data.
unsafe impl AsBytes for Entry {}
// SAFETY: plain data.
unsafe impl KernelFromBytes for Entry {}
unsafe impl kernel::transmute::FromBytes for Entry {}
"#,
            ),
            (
                "driver/domain.rs",
                "pub(crate) mod stream;\npub(crate) mod region;\n",
            ),
            (
                "driver/domain/stream.rs",
                r#"mod state;
use crate::{
    abstractions::{pci, uring_cmd::UringCmd},
    domain::region::Region,
    hardware::regs::Entry,
};
"#,
            ),
            (
                "driver/domain/stream/state.rs",
                "use super::super::region::Region;\n",
            ),
            ("driver/domain/region.rs", "use crate::uapi::MAX;\n"),
            ("driver/card.rs", "use crate::domain::stream::Stream;\n"),
            ("driver/file.rs", "use crate::card::Card;\n"),
            ("driver/commands.rs", "use crate::uapi::ops;\n"),
            (
                "driver/binding.rs",
                "use crate::{abstractions::pci, card::Card, file::Ops};\n",
            ),
            (
                "driver/abstractions/shim.c",
                "#include <x.h>\n#define F(x) { x }\nstatic const int t[] = { 1 };\n\
                 struct s { int a; };\n/* int no(void) { } */\n\
                 int one(void)\n{\n\treturn f(\"{\");\n}\nstatic void two(int a) { if (a) { } }\n",
            ),
        ]
        .into_iter()
        .map(|(path, text)| (path, text.to_string()))
        .collect()
    }

    /// `clean()` with `text` appended to the file at `path` (created if missing).
    fn with(mut files: Vec<(&'static str, String)>, path: &'static str, text: &str) -> Tree {
        match files.iter_mut().find(|(name, _)| *name == path) {
            Some((_, existing)) => existing.push_str(text),
            None => files.push((path, text.to_string())),
        }
        Tree::new(&files)
    }

    fn messages(analysis: &Analysis) -> Vec<String> {
        analysis.violations.iter().map(|v| v.to_string()).collect()
    }

    fn edge(analysis: &Analysis, from: &str, to: &str) -> bool {
        let path = |name: &str| -> ModPath { name.split("::").map(str::to_string).collect() };
        analysis.edges.contains_key(&(path(from), path(to)))
    }

    #[test]
    fn clean_tree_passes() {
        let tree = Tree::new(&clean());
        let analysis = tree.analyze();
        assert_eq!(messages(&analysis), Vec::<String>::new());
        // Folding: `domain::stream::state` counts as `domain::stream`.
        assert!(edge(&analysis, "domain::stream", "domain::region"));
        assert!(edge(&analysis, "domain::stream", "abstractions::uring_cmd"));
        assert!(edge(&analysis, "domain::stream", "abstractions::pci"));
        assert!(edge(&analysis, "hardware::regs", "hardware::definition"));
        assert!(edge(&analysis, "hardware::regs", "uapi"));
        assert!(edge(&analysis, "binding", "file"));
        assert!(analysis.concerns.contains(&vec!["uapi".to_string()]));
        let summary = analysis.summary();
        assert!(summary.starts_with("layers: ok ("), "{summary}");
        let regs = analysis
            .files
            .iter()
            .find(|f| f.file == "driver/hardware/regs.rs")
            .unwrap();
        assert_eq!(regs.unsafe_impls, 3);
        let uring = analysis
            .files
            .iter()
            .find(|f| f.file == "driver/abstractions/uring_cmd.rs")
            .unwrap();
        assert_eq!((uring.unsafe_blocks, uring.bindings), (1, 3));
        assert_eq!((uring.lines, uring.code_lines), (10, 7));
        assert!(analysis.dot().contains("\"file\" -> \"card\";"));
    }

    #[test]
    fn upward_edge_is_detected() {
        let tree = with(
            clean(),
            "driver/domain/region.rs",
            "\nfn f(_: crate::commands::Decoder) {}\n",
        );
        assert_eq!(
            messages(&tree.analyze()),
            ["driver/domain/region.rs:3: upward dependency: `domain::region` (layer 3 (domain)) \
              names `commands` (layer 5 (file ops, commands, binding)) via \
              `crate::commands::Decoder`"]
        );
    }

    #[test]
    fn layer_file_must_not_depend_upward() {
        let tree = with(clean(), "driver/domain.rs", "use crate::card::Card;\n");
        let found = messages(&tree.analyze());
        assert!(
            found
                .iter()
                .any(|m| m.starts_with("driver/domain.rs:3: upward dependency: `domain`")),
            "{found:?}"
        );
    }

    #[test]
    fn cycle_is_detected() {
        let tree = with(
            clean(),
            "driver/domain/region.rs",
            "use super::stream::Stream;\n",
        );
        let found = messages(&tree.analyze());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "driver/domain/region.rs:2: dependency cycle: \
                 domain::region -> domain::stream -> domain::region"
            ),
            "{found:?}"
        );
        assert!(
            found[0].ends_with(
                "\n    domain::region -> domain::stream: driver/domain/region.rs:2 \
                 `super::stream::Stream`\n    domain::stream -> domain::region: \
                 driver/domain/stream.rs:4 `crate::domain::region::Region`"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn bindings_outside_layer_1_is_detected() {
        let tree = with(
            clean(),
            "driver/domain/region.rs",
            "fn f(_: *mut kernel::bindings::file) {}\n",
        );
        assert_eq!(
            messages(&tree.analyze()),
            ["driver/domain/region.rs:2: `bindings::` outside layer 1 \
              (in `domain::region`, layer 3 (domain))"]
        );
    }

    #[test]
    fn unsafe_block_outside_layer_1_is_detected() {
        let tree = with(
            clean(),
            "driver/card.rs",
            "fn f() {\n    // SAFETY: none.\n    unsafe { g() }\n}\n",
        );
        assert_eq!(
            messages(&tree.analyze()),
            ["driver/card.rs:4: `unsafe block` outside layer 1 (in `card`, layer 4 (card))"]
        );
    }

    #[test]
    fn only_marker_trait_impls_are_allowed_in_hardware() {
        let tree = with(
            clean(),
            "driver/hardware/regs.rs",
            "unsafe impl Send for Entry {}\nunsafe impl<T> Other<T> for Entry {}\n",
        );
        let tree_domain = with(
            clean(),
            "driver/domain/region.rs",
            "unsafe impl AsBytes for R {}\n",
        );
        assert_eq!(
            messages(&tree.analyze()),
            [
                "driver/hardware/regs.rs:11: `unsafe impl Send` outside layer 1 (in \
                 `hardware::regs`, layer 2 (hardware)); layer 2 may only `unsafe impl` the \
                 kernel's `AsBytes`/`FromBytes`",
                "driver/hardware/regs.rs:12: `unsafe impl Other` outside layer 1 (in \
                 `hardware::regs`, layer 2 (hardware)); layer 2 may only `unsafe impl` the \
                 kernel's `AsBytes`/`FromBytes`",
            ]
        );
        assert_eq!(
            messages(&tree_domain.analyze()),
            [
                "driver/domain/region.rs:2: `unsafe impl AsBytes` outside layer 1 \
              (in `domain::region`, layer 3 (domain))"
            ]
        );
    }

    #[test]
    fn nested_use_trees_yield_every_leaf() {
        let lexed = lex(
            "use crate::{\n    abstractions::{pci::{self, Bar}, uring_cmd},\n    \
             domain::stream::Stream as S,\n    uapi::*,\n};\nlet x = self::f::<crate::T>();\n",
        );
        let leaves: Vec<String> = scan(&lexed.tokens)
            .refs
            .iter()
            .map(|r| format!("{}@{}", r.segments.join("::"), r.line))
            .collect();
        assert_eq!(
            leaves,
            [
                "crate::abstractions::pci@2",
                "crate::abstractions::pci::Bar@2",
                "crate::abstractions::uring_cmd@2",
                "crate::domain::stream::Stream@3",
                "crate::uapi@4",
                "self::f@6",
                "crate::T@6",
            ]
        );
    }

    #[test]
    fn layer_1_must_not_name_fgrab_even_in_a_nested_use_tree() {
        let tree = with(
            clean(),
            "driver/abstractions/pci.rs",
            "use crate::{\n    abstractions::uring_cmd,\n    uapi::{abi::{Cmd}},\n};\n",
        );
        assert_eq!(
            messages(&tree.analyze()),
            [
                "driver/abstractions/pci.rs:7: layer 1 knows nothing of fgrab: \
              `abstractions::pci` names `uapi` (layer 0 (shared ABI)) via `crate::uapi::abi::Cmd`"
            ]
        );
    }

    #[test]
    fn comments_and_strings_are_ignored() {
        let noise = r####"
// use crate::commands::X; unsafe { bindings::x }
/// [`crate::commands::Y`] unsafe fn
//! crate::commands::Z
/* crate::commands /* nested */ unsafe { } */
/** crate::commands::W */
const A: &str = "crate::commands::A unsafe { bindings::b } \" crate::commands";
const B: &str = r#"crate::commands::B " unsafe {"#;
const C: &[u8] = b"crate::commands::C";
const Q: char = '"';
const E: char = '\'';
fn f<'a>(x: &'a str) -> &'static str { x }
#[doc = "crate::commands::D unsafe {"]
struct S;
"####;
        let quiet = with(clean(), "driver/domain/region.rs", noise);
        assert_eq!(messages(&quiet.analyze()), Vec::<String>::new());
        // The lexer is back in step after all that: real code is still seen.
        let loud = with(
            clean(),
            "driver/domain/region.rs",
            &format!("{noise}use crate::commands::Real;\n"),
        );
        assert_eq!(
            messages(&loud.analyze()),
            ["driver/domain/region.rs:16: upward dependency: `domain::region` (layer 3 (domain)) \
              names `commands` (layer 5 (file ops, commands, binding)) via \
              `crate::commands::Real`"]
        );
    }

    #[test]
    fn super_inside_an_inline_module_starts_from_that_module() {
        let tree = with(
            clean(),
            "driver/domain/region.rs",
            "#[cfg(test)]\nmod tests {\n    use super::super::super::commands::X;\n}\n",
        );
        assert_eq!(
            messages(&tree.analyze()),
            ["driver/domain/region.rs:4: upward dependency: `domain::region` (layer 3 (domain)) \
              names `commands` (layer 5 (file ops, commands, binding)) via \
              `super::super::super::commands::X`"]
        );
    }

    #[test]
    fn modules_without_a_layer_or_a_file_are_reported() {
        let mut files = clean();
        files.push(("driver/pci.rs", "use crate::card::Card;\n".into()));
        let tree = with(files, "driver/fgrab_main.rs", "mod pci;\nmod later;\n");
        assert_eq!(
            messages(&tree.analyze()),
            [
                "driver/fgrab_main.rs:17: module `pci` is in no layer (top-level modules are \
                 uapi, abstractions, hardware, domain, card, file, commands, binding)",
                "driver/fgrab_main.rs:18: module `later` has no file (looked for \
                 driver/later.rs and driver/later/mod.rs)",
                "driver/fgrab_main.rs:18: module `later` is in no layer (top-level modules are \
                 uapi, abstractions, hardware, domain, card, file, commands, binding)",
            ]
        );
    }

    #[test]
    fn c_function_definitions_are_counted() {
        let tree = Tree::new(&clean());
        let analysis = tree.analyze();
        assert_eq!(analysis.c_files.len(), 1);
        assert_eq!(analysis.c_files[0].file, "driver/abstractions/shim.c");
        assert_eq!(analysis.c_files[0].functions, 2);
        assert_eq!(analysis.c_files[0].lines, 10);
    }
}
