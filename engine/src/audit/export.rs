//! The export file of `bcl audit export`: a signed checkpoint, the leaf hashes the log recorded in its
//! tree, and the leaves, so an auditor can verify a log offline, trusting only the verifier key.
//!
//! Layout (all integers big-endian):
//! `"bcl-audit-export/1\n"`, u32 note length, note (UTF-8), u64 tree size `n`, `n` × 32-byte recorded leaf
//! hashes (level 0 of the log's tree), then the leaves as u32 length + bytes up to the end of the file.
//!
//! The recorded hashes are untrusted hints: they count only once they fold to the signed root. Then any
//! leaf that no longer hashes to its recorded hash is named by position, even when leaves were dropped or
//! reordered (the hashes section has its own length, so it keeps the original positions).

use super::merkle::Hash;
use std::io::{Read, Write};

pub const MAGIC: &[u8] = b"bcl-audit-export/1\n";
/// Refuses absurd lengths from a damaged file instead of allocating them.
const MAX_LEAF_BYTES: u32 = 64 << 20;
const MAX_NOTE_BYTES: u32 = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub note: String,
    pub recorded_hashes: Vec<Hash>,
    pub leaves: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not a bcl audit export (bad magic)")]
    BadMagic,
    #[error("export is malformed: {0}")]
    Malformed(&'static str),
    #[error("export I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the header (checkpoint and recorded hashes); the leaves follow with `write_leaf`.
pub fn write_header(
    w: &mut impl Write,
    note: &str,
    recorded_hashes: &[Hash],
) -> std::io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&(note.len() as u32).to_be_bytes())?;
    w.write_all(note.as_bytes())?;
    w.write_all(&(recorded_hashes.len() as u64).to_be_bytes())?;
    for h in recorded_hashes {
        w.write_all(h)?;
    }
    Ok(())
}

pub fn write_leaf(w: &mut impl Write, leaf: &[u8]) -> std::io::Result<()> {
    w.write_all(&(leaf.len() as u32).to_be_bytes())?;
    w.write_all(leaf)
}

impl Export {
    pub fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        write_header(w, &self.note, &self.recorded_hashes)?;
        self.leaves.iter().try_for_each(|l| write_leaf(w, l))
    }

    pub fn read(r: &mut impl Read) -> Result<Self, ExportError> {
        let mut magic = [0u8; MAGIC.len()];
        r.read_exact(&mut magic)
            .map_err(|_| ExportError::BadMagic)?;
        if magic != MAGIC {
            return Err(ExportError::BadMagic);
        }
        let note_len = read_u32(r)?.ok_or(ExportError::Malformed("truncated note length"))?;
        if note_len > MAX_NOTE_BYTES {
            return Err(ExportError::Malformed("note too long"));
        }
        let mut note = vec![0u8; note_len as usize];
        r.read_exact(&mut note)
            .map_err(|_| ExportError::Malformed("truncated note"))?;
        let note =
            String::from_utf8(note).map_err(|_| ExportError::Malformed("note is not UTF-8"))?;
        let mut size = [0u8; 8];
        r.read_exact(&mut size)
            .map_err(|_| ExportError::Malformed("truncated tree size"))?;
        let size = u64::from_be_bytes(size);
        // The size is the file's claim: reserve only what a small export needs and let real data grow the
        // vector, so a few bytes declaring 2^64 hashes cannot make the reader allocate hundreds of MiB.
        let mut recorded_hashes = Vec::with_capacity(size.min(1 << 12) as usize);
        for _ in 0..size {
            let mut h = [0u8; 32];
            r.read_exact(&mut h)
                .map_err(|_| ExportError::Malformed("truncated recorded hashes"))?;
            recorded_hashes.push(h);
        }
        let mut leaves = Vec::with_capacity(recorded_hashes.len());
        while let Some(len) = read_u32(r)? {
            if len > MAX_LEAF_BYTES {
                return Err(ExportError::Malformed("leaf length out of range"));
            }
            let mut leaf = vec![0u8; len as usize];
            r.read_exact(&mut leaf)
                .map_err(|_| ExportError::Malformed("truncated leaf"))?;
            leaves.push(leaf);
        }
        Ok(Self {
            note,
            recorded_hashes,
            leaves,
        })
    }
}

/// A big-endian u32, or `None` at a clean end of file.
fn read_u32(r: &mut impl Read) -> Result<Option<u32>, ExportError> {
    let mut b = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut b[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(ExportError::Malformed("truncated length")),
            n => got += n,
        }
    }
    Ok(Some(u32::from_be_bytes(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let e = Export {
            note: "n\n\n— x y\n".into(),
            recorded_hashes: vec![[1; 32], [2; 32]],
            leaves: vec![b"a".to_vec(), vec![]],
        };
        let mut bytes = Vec::new();
        e.write(&mut bytes).unwrap();
        assert_eq!(Export::read(&mut bytes.as_slice()).unwrap(), e);
        assert!(matches!(
            Export::read(&mut &bytes[1..]),
            Err(ExportError::BadMagic)
        ));
        assert!(matches!(
            Export::read(&mut &bytes[..bytes.len() - 1]),
            Err(ExportError::Malformed(_))
        ));
    }
}
