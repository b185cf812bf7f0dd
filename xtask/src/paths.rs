//! Where things live: the checkout, the cache outside it, and per-run scratch directories.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The locations every step works with.
pub struct Env {
    /// Top of the checkout (the workspace root).
    pub root: PathBuf,
    /// Cache directory outside the checkout; survives `git clean` and fresh clones.
    pub cache: PathBuf,
    /// Stream child output instead of printing progress lines.
    pub verbose: bool,
}

/// Top of the checkout, from this crate's location (for commands that need no cache).
pub fn root() -> Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask must live one level below the workspace root")?
        .to_path_buf())
}

impl Env {
    /// Resolves the checkout from this crate's location and the cache from the environment.
    pub fn new() -> Result<Self> {
        let root = root()?;
        let cache = match std::env::var_os("FGRAB_CACHE") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache"))
                    })
                    .context("neither FGRAB_CACHE, XDG_CACHE_HOME nor HOME is set")?;
                base.join("fgrab")
            }
        };
        std::fs::create_dir_all(&cache)
            .with_context(|| format!("creating cache directory {}", cache.display()))?;
        let verbose = std::env::var_os("FGRAB_VERBOSE").is_some_and(|value| value != "0");
        Ok(Self {
            root,
            cache,
            verbose,
        })
    }

    /// Build outputs that belong to this checkout (module objects, initramfs, logs).
    pub fn target(&self) -> PathBuf {
        self.root.join("target")
    }

    /// A fresh scratch directory for one VM run; kept afterwards for its logs.
    pub fn run_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.target().join("vm-runs").join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("removing old run directory {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating run directory {}", dir.display()))?;
        Ok(dir)
    }
}

/// Marks `dir` as completely built for `key`; see [`is_complete`].
pub fn mark_complete(dir: &Path, key: &str) -> Result<()> {
    std::fs::write(dir.join(".fgrab-complete"), key)
        .with_context(|| format!("writing completion stamp in {}", dir.display()))
}

/// Whether `dir` holds a finished build for exactly `key` (an interrupted build has no stamp).
pub fn is_complete(dir: &Path, key: &str) -> bool {
    std::fs::read_to_string(dir.join(".fgrab-complete")).is_ok_and(|stamp| stamp == key)
}

/// Removes siblings of `current` named like it (`<prefix>-<key>`) but for another key,
/// except the most recently modified one.
///
/// Cached artifacts are keyed by their inputs; once an input changes, nothing leads back to
/// the old artifact, and kernel builds and sysroots hold gigabytes each. One previous entry
/// stays, so switching between two branches (or worktrees) whose inputs differ does not
/// rebuild a kernel at every switch.
pub fn prune_stale(current: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (current.parent(), current.file_name()) else {
        return Ok(());
    };
    let name = name.to_string_lossy();
    let Some((prefix, _)) = name.rsplit_once('-') else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    let mut others: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|entry| {
            let other = entry.file_name().to_string_lossy().into_owned();
            other != name && other.rsplit_once('-').is_some_and(|(p, _)| p == prefix)
        })
        .map(|entry| {
            let modified = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, entry.path())
        })
        .collect();
    others.sort();
    others.pop();
    for (_, path) in others {
        println!("    removing stale cache entry {}", path.display());
        std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}
