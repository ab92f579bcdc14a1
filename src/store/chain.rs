//! The hash chain that makes every line tamper-evident.
//!
//! A stored line is the event's JSON object with two fields appended:
//!
//! ```text
//! {"id":"…",…,"status":"success","level":"info","seq":42,"hash":"<64 hex>"}
//! ```
//!
//! `seq` counts lines across all day files (1 for the first event ever) and
//! `hash = hex(SHA-256(previous hash as 64 hex digits ‖ the line's bytes
//! before `,"hash":`))`. The first line of a store chains to 64 zeros (or to
//! the anchor left by retention, see [`ANCHOR_FILE`]). Because every line
//! commits to its predecessor, a changed, removed, inserted or reordered line
//! breaks the chain at a point `evlog verify` can name.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash the first line of a store chains to.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// File in the storage directory that records where the chain starts when
/// its earliest days were deleted by retention: `{"seq":N,"hash":"…"}` of the
/// last deleted line.
pub const ANCHOR_FILE: &str = "chain.anchor";

const HASH_KEY: &[u8] = b",\"hash\":\"";
const SEQ_KEY: &[u8] = b",\"seq\":";
/// `,"hash":"` + 64 hex digits + `"}`.
const SUFFIX_LEN: usize = HASH_KEY.len() + 64 + 2;

/// The position of the chain after some line: its `seq` and `hash`.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Sequence number of the line (0 before the first line).
    pub seq: u64,
    /// Its hash.
    #[serde(with = "hex_hash")]
    pub hash: [u8; 32],
}

impl fmt::Debug for ChainHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHead({}, {})", self.seq, hex::encode(self.hash))
    }
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

impl ChainHead {
    /// The head before the first line of a store.
    pub const GENESIS: ChainHead = ChainHead {
        seq: 0,
        hash: GENESIS_HASH,
    };

    /// The hash as 64 lowercase hex digits.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

/// Reads the retention anchor of a storage directory, if any.
pub fn read_anchor(dir: &Path) -> std::io::Result<Option<ChainHead>> {
    match std::fs::read(dir.join(ANCHOR_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the retention anchor of `dir` atomically (temporary file, fsync,
/// rename, fsync of the directory): the chain head at the end of the newest
/// deleted day. Maintenance (rotation) calls it with the storage lock held.
pub fn write_anchor(dir: &Path, head: &ChainHead) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(head).map_err(std::io::Error::other)?;
    super::write_file_atomic(dir, ANCHOR_FILE, &bytes)
}

/// Computes the hash of a line whose bytes before `,"hash":` are `prefix`.
pub fn link_hash(prev: &[u8; 32], prefix: &[u8]) -> [u8; 32] {
    let mut prev_hex = [0u8; 64];
    hex::encode_to_slice(prev, &mut prev_hex).expect("64 = 2 * 32");
    let mut h = Sha256::new();
    h.update(prev_hex);
    h.update(prefix);
    h.finalize().into()
}

/// Appends the sealed line for `body` (a serialized JSON object) to `out`,
/// newline included, and returns the new head.
pub fn seal(prev: &ChainHead, body: &[u8], out: &mut Vec<u8>) -> ChainHead {
    debug_assert_eq!(body.last(), Some(&b'}'));
    let start = out.len();
    out.extend_from_slice(&body[..body.len() - 1]);
    let seq = prev.seq + 1;
    out.extend_from_slice(SEQ_KEY);
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    let hash = link_hash(&prev.hash, &out[start..]);
    out.extend_from_slice(HASH_KEY);
    let mut hex_buf = [0u8; 64];
    hex::encode_to_slice(hash, &mut hex_buf).expect("64 = 2 * 32");
    out.extend_from_slice(&hex_buf);
    out.extend_from_slice(b"\"}\n");
    ChainHead { seq, hash }
}

/// The chain fields of a stored line.
#[derive(Debug, Clone, Copy)]
pub struct Tail<'a> {
    /// The bytes the hash covers (everything before `,"hash":`).
    pub prefix: &'a [u8],
    /// The line's `seq`.
    pub seq: u64,
    /// The line's stored hash.
    pub hash: [u8; 32],
}

impl Tail<'_> {
    /// The head this line claims.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }
    /// Whether this line's stored hash is right for predecessor `prev`.
    pub fn links_to(&self, prev: &[u8; 32]) -> bool {
        link_hash(prev, self.prefix) == self.hash
    }
}

/// Splits a line (without its newline) into its chain fields, or `None` if it
/// does not end in `,"seq":N,"hash":"<64 hex>"}`.
pub fn parse_tail(line: &[u8]) -> Option<Tail<'_>> {
    if line.len() < SUFFIX_LEN + SEQ_KEY.len() + 2 {
        return None;
    }
    let split = line.len() - SUFFIX_LEN;
    let (prefix, suffix) = line.split_at(split);
    if !suffix.starts_with(HASH_KEY) || !suffix.ends_with(b"\"}") {
        return None;
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&suffix[HASH_KEY.len()..HASH_KEY.len() + 64], &mut hash).ok()?;
    let seq_at = memchr::memmem::rfind(prefix, SEQ_KEY)?;
    let digits = &prefix[seq_at + SEQ_KEY.len()..];
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let seq = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(Tail { prefix, seq, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_parse() {
        let mut out = Vec::new();
        let h1 = seal(&ChainHead::GENESIS, br#"{"a":1}"#, &mut out);
        let h2 = seal(&h1, br#"{"b":"x,\"seq\":9"}"#, &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with(r#"{"a":1,"seq":1,"hash":""#),
            "{}",
            lines[0]
        );
        // Each line is valid JSON.
        for l in &lines {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
        let t1 = parse_tail(lines[0].as_bytes()).unwrap();
        let t2 = parse_tail(lines[1].as_bytes()).unwrap();
        assert_eq!((t1.seq, t2.seq), (1, 2));
        assert_eq!(t1.head(), h1);
        assert_eq!(t2.head(), h2);
        assert!(t1.links_to(&GENESIS_HASH));
        assert!(t2.links_to(&h1.hash));
        assert!(!t2.links_to(&GENESIS_HASH));
    }

    #[test]
    fn parse_tail_rejects_lines_without_chain() {
        assert!(parse_tail(b"").is_none());
        assert!(parse_tail(br#"{"a":1}"#).is_none());
        let fake = format!(r#"{{"a":1,"seq":x,"hash":"{}"}}"#, "0".repeat(64));
        assert!(parse_tail(fake.as_bytes()).is_none());
        let fake = format!(r#"{{"a":1,"seq":3,"hash":"{}"}}"#, "g".repeat(64));
        assert!(parse_tail(fake.as_bytes()).is_none());
    }

    #[test]
    fn anchor_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_anchor(dir.path()).unwrap(), None);
        let head = ChainHead {
            seq: 7,
            hash: [3; 32],
        };
        std::fs::write(
            dir.path().join(ANCHOR_FILE),
            serde_json::to_vec(&head).unwrap(),
        )
        .unwrap();
        assert_eq!(read_anchor(dir.path()).unwrap(), Some(head));
    }
}
