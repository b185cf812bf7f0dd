//! Stable cache keys: FNV-1a over the inputs that determine an artifact.
//!
//! Not cryptographic; it only has to change when an input changes and stay the same across
//! runs, Rust versions and machines (which `std`'s `DefaultHasher` does not promise).

/// Accumulates inputs into a cache key.
pub struct Key(u64);

impl Key {
    /// Starts a key with a namespace so different artifacts never share a key.
    pub fn new(namespace: &str) -> Self {
        let mut key = Self(0xcbf2_9ce4_8422_2325);
        key.add(namespace.as_bytes());
        key
    }

    /// Adds one input; inputs are length-prefixed so ("ab", "c") differs from ("a", "bc").
    pub fn add(&mut self, bytes: &[u8]) -> &mut Self {
        for byte in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// The key as 16 hex digits, usable in a directory name.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}
