//! The default backend: the log as one append-only file of checksummed batch frames, written and
//! `fdatasync`ed by the writer thread itself.
//!
//! **Why not sled.** The log is append-only and its reads are by position, so a B-tree buys nothing; what
//! sled cost was real: per batch an insert, a flush handed to its I/O thread pool and waited for (two
//! thread hand-offs on a 2-core machine), its own page cache next to the kernel's, and a flush that is not
//! power-loss durable without the extra syncs `SledStore` adds (see there). Here a durable batch is one
//! `pwrite` and one `fdatasync`, on the writer thread, and the kernel's page cache is the only cache.
//!
//! **File** `<dir>/batches`: a 16-byte header (`bcl-log\0`, u32 format version, 4 zero bytes), then one
//! frame per durable batch, each `u32 magic | u32 payload length | u64 position of the first leaf | u32
//! CRC-32 of (length, position, payload) | payload`, all little-endian. The payload is the
//! [`batch_record`](super::batch_record), the same bytes every backend stores.
//!
//! **Crash safety.** A batch is acknowledged only after its frame is written and `fdatasync` returned
//! (which also commits the file's new size). A crash can therefore leave at most one unfinished frame, at
//! the very end, never acknowledged: opening the store checks every frame and cuts such a torn tail off.
//! A damaged frame with an intact frame after it is not a crash but damage to acknowledged data, and the
//! store refuses to open (naming the position), like a log with a hole in it. The file is created under a
//! temporary name and renamed into place, so a half-created store never exists either.
//!
//! **One process at a time.** The file is locked exclusively while open (`flock`), so an auditor's tool
//! cannot open a log a running server is appending to.

use super::batch_record::{last_leaf_of, leaf_count, node_entry_guess, node_in_record, read_leaves, Batch, NODE_ENTRY};
use super::{LogStore, StorageError};
use crate::audit::merkle::{Hash, NodeId};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Name of the log file inside the store's directory.
pub const FILE_NAME: &str = "batches";
const HEADER: &[u8; 16] = b"bcl-log\0\x01\0\0\0\0\0\0\0";
const FRAME_MAGIC: u32 = 0xB0C1_1A6B;
const FRAME_HEADER: usize = 4 + 4 + 8 + 4;
/// No batch record is anywhere near this large (the writer caps a batch at 65,536 leaves of at most a few
/// kB); a length field above it is damage, not a batch.
const MAX_PAYLOAD: u32 = 1 << 30;

pub struct FileStore {
    dir: PathBuf,
    state: RwLock<State>,
    len: AtomicU64,
    /// The most recently decoded batch: proofs and catch-up reads hit the same batch many times in a row.
    last: Mutex<Option<Arc<Batch>>>,
}

struct State {
    file: File,
    /// One entry per frame, in log order.
    frames: Vec<Frame>,
    /// Where the next frame goes.
    end: u64,
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    first: u64,
    leaves: u32,
    /// Entries in the record's node section.
    nodes: u32,
    /// Offset of the payload in the file (the frame starts `FRAME_HEADER` bytes before it).
    payload: u64,
    payload_len: u32,
}

impl Frame {
    fn start(&self) -> u64 {
        self.payload - FRAME_HEADER as u64
    }

    fn end_offset(&self) -> u64 {
        self.payload + self.payload_len as u64
    }

    fn end_position(&self) -> u64 {
        self.first + self.leaves as u64
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> StorageError {
    move |e| StorageError::Backend(format!("{what}: {e}"))
}

fn crc(first: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(&first.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one frame holding `payload` (the batch starting at leaf `first`) to `out`.
fn push_frame(out: &mut Vec<u8>, first: u64, payload: &[u8]) {
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&crc(first, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why the bytes at an offset are not a frame.
#[derive(Debug)]
enum Bad {
    /// The file ends inside the frame.
    Short,
    /// Wrong magic, impossible length or checksum mismatch.
    Damaged,
}

/// Reads and checks the frame at `offset` of a file `file_len` long; returns it with its payload.
fn read_frame(file: &File, offset: u64, file_len: u64) -> Result<Result<(Frame, Vec<u8>), Bad>, StorageError> {
    if file_len - offset < FRAME_HEADER as u64 {
        return Ok(Err(Bad::Short));
    }
    let mut header = [0u8; FRAME_HEADER];
    file.read_exact_at(&mut header, offset).map_err(io("reading the log"))?;
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let (magic, len, stored_crc) = (word(0), word(4), word(16));
    let first = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if magic != FRAME_MAGIC || len > MAX_PAYLOAD {
        return Ok(Err(Bad::Damaged));
    }
    let payload_at = offset + FRAME_HEADER as u64;
    if file_len - payload_at < len as u64 {
        return Ok(Err(Bad::Short));
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact_at(&mut payload, payload_at).map_err(io("reading the log"))?;
    if crc(first, &payload) != stored_crc {
        return Ok(Err(Bad::Damaged));
    }
    let leaves = leaf_count(first, &payload)?;
    let leaves =
        u32::try_from(leaves).map_err(|_| StorageError::Corrupt { position: first, what: "batch too large" })?;
    // `leaf_count` has checked that the node section is there.
    let nodes = u32::from_le_bytes(payload[1..5].try_into().expect("4 bytes"));
    Ok(Ok((Frame { first, leaves, nodes, payload: payload_at, payload_len: len }, payload)))
}

/// Whether any intact frame starts after `offset`: what tells damage inside the log from a torn tail.
fn intact_frame_after(file: &File, offset: u64, file_len: u64) -> Result<bool, StorageError> {
    const WINDOW: usize = 1 << 20;
    let magic = FRAME_MAGIC.to_le_bytes();
    let mut buf = vec![0u8; WINDOW + 3];
    let mut at = offset + 1;
    while at < file_len {
        let n = ((file_len - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at).map_err(io("reading the log"))?;
        for i in buf[..n].windows(4).enumerate().filter(|(_, w)| *w == magic).map(|(i, _)| i) {
            if let Ok(Ok(_)) = read_frame(file, at + i as u64, file_len) {
                return Ok(true);
            }
        }
        at += WINDOW as u64;
    }
    Ok(false)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("syncing the log directory"))
}

impl FileStore {
    /// Opens (or creates) the log under `dir`: checks every frame, cuts off the torn tail a crash may have
    /// left (never an acknowledged batch: module docs), and refuses a log with damage inside it or batches
    /// that are not contiguous from position 0.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(io("creating the log directory"))?;
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            let temporary = dir.join(format!("{FILE_NAME}.new"));
            let mut f = File::create(&temporary).map_err(io("creating the log"))?;
            f.write_all(HEADER).and_then(|_| f.sync_all()).map_err(io("creating the log"))?;
            std::fs::rename(&temporary, &path).map_err(io("creating the log"))?;
            sync_dir(dir)?;
        }
        let state = Self::scan(&path)?;
        let len = state.frames.last().map_or(0, Frame::end_position);
        Ok(Self { dir: dir.to_owned(), state: RwLock::new(state), len: AtomicU64::new(len), last: Mutex::new(None) })
    }

    fn scan(path: &Path) -> Result<State, StorageError> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io("opening the log"))?;
        file.try_lock().map_err(|e| {
            StorageError::Backend(format!("the log is locked (is another bcl process using this data directory?): {e}"))
        })?;
        let file_len = file.metadata().map_err(io("opening the log"))?.len();
        let mut header = [0u8; HEADER.len()];
        if file_len < HEADER.len() as u64 || file.read_exact_at(&mut header, 0).is_err() || &header != HEADER {
            return Err(StorageError::Corrupt { position: 0, what: "not a bcl log file (bad header)" });
        }
        let mut frames: Vec<Frame> = Vec::new();
        let mut offset = HEADER.len() as u64;
        while offset < file_len {
            let expected = frames.last().map_or(0, Frame::end_position);
            match read_frame(&file, offset, file_len)? {
                Ok((frame, _)) if frame.first != expected => {
                    return Err(StorageError::Corrupt { position: expected, what: "batches are not contiguous" });
                }
                Ok((frame, _)) => {
                    offset = frame.end_offset();
                    frames.push(frame);
                }
                Err(bad) => {
                    if intact_frame_after(&file, offset, file_len)? {
                        return Err(StorageError::Corrupt {
                            position: expected,
                            what: "a damaged batch inside the log",
                        });
                    }
                    // An append that was cut short: it was never acknowledged (that needs its fdatasync), so
                    // it is discarded, durably, before anything is served.
                    tracing::warn!(
                        position = expected,
                        bytes = file_len - offset,
                        reason = ?bad,
                        "discarding an unfinished append at the end of the log"
                    );
                    file.set_len(offset).and_then(|_| file.sync_all()).map_err(io("cutting the torn tail"))?;
                    break;
                }
            }
        }
        Ok(State { file, frames, end: offset })
    }

    /// The frame holding leaf `position`, if the log is that long.
    fn frame_of(frames: &[Frame], position: u64) -> Option<Frame> {
        let i = frames.partition_point(|f| f.first <= position).checked_sub(1)?;
        Some(frames[i]).filter(|f| position < f.end_position())
    }

    /// The batch holding `position`, if the log is that long.
    fn batch_at(&self, position: u64) -> Result<Option<Arc<Batch>>, StorageError> {
        if let Some(b) = self.last.lock().expect("batch cache").as_ref() {
            if b.first <= position && position < b.end() {
                return Ok(Some(b.clone()));
            }
        }
        let state = self.state.read().expect("log state");
        let Some(frame) = Self::frame_of(&state.frames, position) else { return Ok(None) };
        let mut bytes = vec![0u8; FRAME_HEADER + frame.payload_len as usize];
        state.file.read_exact_at(&mut bytes, frame.start()).map_err(io("reading the log"))?;
        drop(state);
        // Checked again on every read: a bit flipped on disk since the store was opened is reported as
        // damage at its position, not served.
        let (header, payload) = bytes.split_at(FRAME_HEADER);
        if crc(frame.first, payload) != u32::from_le_bytes(header[16..20].try_into().expect("4 bytes")) {
            return Err(StorageError::Corrupt { position: frame.first, what: "batch checksum mismatch" });
        }
        let batch = Arc::new(Batch::decode(frame.first, payload)?);
        *self.last.lock().expect("batch cache") = Some(batch.clone());
        Ok(Some(batch))
    }

    /// Replaces everything from frame `from` on with `replacement` frames followed by the old frames
    /// `keep_from..` (if any), atomically: the new file is written beside the old one, synced, and renamed
    /// over it. Only for the rare rewrites (a truncation inside a batch, forensic tooling), never appends.
    fn rewrite(
        &self,
        state: &mut State,
        from: usize,
        replacement: &[u8],
        keep_from: Option<usize>,
    ) -> Result<(), StorageError> {
        let cut = state.frames.get(from).map_or(state.end, Frame::start);
        let temporary = self.dir.join(format!("{FILE_NAME}.rewrite"));
        let mut out = File::create(&temporary).map_err(io("rewriting the log"))?;
        let copy = |out: &mut File, from: u64, to: u64| -> Result<(), StorageError> {
            let mut buf = vec![0u8; 1 << 20];
            let mut at = from;
            while at < to {
                let n = ((to - at) as usize).min(buf.len());
                state.file.read_exact_at(&mut buf[..n], at).map_err(io("rewriting the log"))?;
                out.write_all(&buf[..n]).map_err(io("rewriting the log"))?;
                at += n as u64;
            }
            Ok(())
        };
        copy(&mut out, 0, cut)?;
        out.write_all(replacement).map_err(io("rewriting the log"))?;
        if let Some(k) = keep_from.filter(|k| *k < state.frames.len()) {
            copy(&mut out, state.frames[k].start(), state.end)?;
        }
        out.sync_all().map_err(io("rewriting the log"))?;
        drop(out);
        let path = self.dir.join(FILE_NAME);
        std::fs::rename(&temporary, &path).map_err(io("rewriting the log"))?;
        sync_dir(&self.dir)?;
        // The new file is scanned (and locked) like at open; the old handle, and its lock, go with the old
        // state.
        let fresh = Self::scan(&path)?;
        *state = fresh;
        *self.last.lock().expect("batch cache") = None;
        self.len.store(state.frames.last().map_or(0, Frame::end_position), Ordering::Release);
        Ok(())
    }

    /// Overwrites the stored bytes of one leaf, keeping everything else of its batch (including the tree
    /// nodes, which therefore no longer match) and giving the frame a valid checksum. This is what an
    /// attacker with disk access could do; it exists for tamper-detection tests and forensic tooling,
    /// never for the engine itself.
    pub fn rewrite_leaf_unchecked(&self, position: u64, leaf: Vec<u8>) -> Result<(), StorageError> {
        let batch = self.batch_at(position)?.ok_or(StorageError::Corrupt { position, what: "beyond the log" })?;
        let mut leaves = batch.leaves.clone();
        leaves[(position - batch.first) as usize] = leaf;
        let mut frame = Vec::new();
        push_frame(&mut frame, batch.first, &Batch::encode(&batch.nodes, &leaves));
        let mut state = self.state.write().expect("log state");
        let i = state.frames.partition_point(|f| f.first <= position) - 1;
        self.rewrite(&mut state, i, &frame, Some(i + 1))
    }
}

impl LogStore for FileStore {
    fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    fn append_durable(&self, leaves: &[Vec<u8>], nodes: &[(NodeId, Hash)]) -> Result<u64, StorageError> {
        let first = self.len();
        if leaves.is_empty() {
            return Ok(first);
        }
        let payload = Batch::encode(nodes, leaves);
        let payload_len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_PAYLOAD)
            .ok_or(StorageError::Backend("batch too large for one frame".into()))?;
        let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
        push_frame(&mut frame, first, &payload);
        // Only the writer appends, so nothing moves `end` between this read and the update below; readers
        // go on reading the frames before it meanwhile.
        let at = {
            let state = self.state.read().expect("log state");
            state.file.write_all_at(&frame, state.end).map_err(io("appending to the log"))?;
            state.file.sync_data().map_err(io("syncing the log to disk"))?;
            state.end
        };
        let mut state = self.state.write().expect("log state");
        let payload_at = at + FRAME_HEADER as u64;
        state.frames.push(Frame {
            first,
            leaves: leaves.len() as u32,
            nodes: nodes.len() as u32,
            payload: payload_at,
            payload_len,
        });
        state.end = payload_at + payload_len as u64;
        self.len.store(first + leaves.len() as u64, Ordering::Release);
        Ok(first)
    }

    fn read_node(&self, id: NodeId) -> Result<Option<Hash>, StorageError> {
        // The node is completed by the batch holding its last leaf.
        let Some(last_leaf) = last_leaf_of(id) else { return Ok(None) };
        if let Some(b) = self.last.lock().expect("batch cache").as_ref() {
            if b.first <= last_leaf && last_leaf < b.end() {
                return Ok(b.nodes.iter().find(|(n, _)| *n == id).map(|(_, h)| *h));
            }
        }
        // A proof touches about one node per level, each in another batch. The writer's order of a batch's
        // nodes tells where the node should be: one entry is read and checked; only if it is not there
        // (a batch cut by a truncation) is the node section scanned.
        let state = self.state.read().expect("log state");
        let Some(frame) = Self::frame_of(&state.frames, last_leaf) else { return Ok(None) };
        if let Some(k) = node_entry_guess(frame.first, id).filter(|k| *k < frame.nodes as u64) {
            let mut entry = [0u8; NODE_ENTRY];
            let at = frame.payload + 5 + k * NODE_ENTRY as u64;
            state.file.read_exact_at(&mut entry, at).map_err(io("reading the log"))?;
            if entry[0] == id.level && entry[1..9] == id.index.to_le_bytes() {
                return Ok(Some(entry[9..].try_into().expect("32 bytes")));
            }
        }
        let section = (5 + frame.nodes as usize * NODE_ENTRY).min(frame.payload_len as usize);
        let mut bytes = vec![0u8; section];
        state.file.read_exact_at(&mut bytes, frame.payload).map_err(io("reading the log"))?;
        node_in_record(frame.first, &bytes, id)
    }

    fn read(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        read_leaves(from, limit, |position| self.batch_at(position))
    }

    fn truncate(&self, len: u64) -> Result<(), StorageError> {
        if len >= self.len() {
            return Ok(());
        }
        let mut state = self.state.write().expect("log state");
        // Frames from `k` on start at or after `len` and go whole; frame k-1 may straddle `len`.
        let k = state.frames.partition_point(|f| f.first < len);
        match k.checked_sub(1).map(|i| (i, state.frames[i])).filter(|(_, f)| f.end_position() > len) {
            None => {
                // A cut between batches: one size change, durable with the file's data sync.
                let cut = state.frames.get(k).map_or(state.end, Frame::start);
                state.file.set_len(cut).and_then(|_| state.file.sync_data()).map_err(io("truncating the log"))?;
                state.frames.truncate(k);
                state.end = cut;
                *self.last.lock().expect("batch cache") = None;
                self.len.store(len, Ordering::Release);
                Ok(())
            }
            Some((i, straddling)) => {
                // The kept part of that batch may have been acknowledged: it is rewritten into a new file
                // that replaces the old one atomically, never cut in place.
                let mut payload = vec![0u8; straddling.payload_len as usize];
                state.file.read_exact_at(&mut payload, straddling.payload).map_err(io("reading the log"))?;
                let batch = Batch::decode(straddling.first, &payload)?;
                let keep = (len - batch.first) as usize;
                let nodes: Vec<_> = batch.nodes.iter().copied().filter(|(id, _)| super::node_end(*id) <= len).collect();
                let mut frame = Vec::new();
                push_frame(&mut frame, batch.first, &Batch::encode(&nodes, &batch.leaves[..keep]));
                self.rewrite(&mut state, i, &frame, None)
            }
        }
    }
}

#[cfg(test)]
mod tests;
