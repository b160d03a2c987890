use super::*;

fn leaves(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|n| n.as_bytes().to_vec()).collect()
}

fn file_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(FILE_NAME)).unwrap().len()
}

/// Appends raw bytes at the end of the log file (what a crash in the middle of an append leaves).
fn append_raw(dir: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(dir.join(FILE_NAME)).unwrap();
    f.write_all(bytes).unwrap();
}

fn flip_byte(dir: &Path, offset: u64) {
    let f = OpenOptions::new().read(true).write(true).open(dir.join(FILE_NAME)).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], offset).unwrap();
}

#[test]
fn appends_are_contiguous_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        let node = (NodeId::new(1, 0), [7u8; 32]);
        assert_eq!(store.append_durable(&leaves(&["a", "b"]), &[node]).unwrap(), 0);
        assert_eq!(store.append_durable(&leaves(&["c"]), &[]).unwrap(), 2);
        assert_eq!(store.append_durable(&[], &[]).unwrap(), 3, "an empty batch writes nothing");
    }
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), 3);
    assert_eq!(store.read_node(NodeId::new(1, 0)).unwrap(), Some([7u8; 32]));
    assert_eq!(store.read_node(NodeId::new(0, 0)).unwrap(), None);
    assert_eq!(store.read_node(NodeId::new(5, 0)).unwrap(), None, "beyond the log");
    let all = store.read(0, 10).unwrap();
    assert_eq!(all, vec![(0, b"a".to_vec()), (1, b"b".to_vec()), (2, b"c".to_vec())]);
    assert_eq!(store.read(1, 1).unwrap(), vec![(1, b"b".to_vec())]);
    assert_eq!(store.read(1, 5).unwrap(), vec![(1, b"b".to_vec()), (2, b"c".to_vec())], "reads cross batches");
    assert!(store.read(3, 10).unwrap().is_empty());
}

#[test]
fn a_crash_anywhere_inside_an_append_keeps_exactly_the_acknowledged_batches() {
    // Write the log once with the last batch complete, then replay every possible cut of that last frame:
    // each byte count a crash could have left on disk.
    let dir = tempfile::tempdir().unwrap();
    let (before, full) = {
        let store = FileStore::open(dir.path()).unwrap();
        store.append_durable(&leaves(&["first", "second"]), &[(NodeId::new(0, 0), [1; 32])]).unwrap();
        let before = file_len(dir.path());
        store.append_durable(&leaves(&["unacknowledged"]), &[(NodeId::new(1, 0), [2; 32])]).unwrap();
        (before, std::fs::read(dir.path().join(FILE_NAME)).unwrap())
    };
    for cut in before..full.len() as u64 {
        std::fs::write(dir.path().join(FILE_NAME), &full[..cut as usize]).unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(store.len(), 2, "cut at byte {cut}");
        assert_eq!(file_len(dir.path()), before, "the torn tail is cut off (cut at byte {cut})");
        assert_eq!(store.read(0, 10).unwrap(), vec![(0, b"first".to_vec()), (1, b"second".to_vec())]);
        // Appending goes on where the acknowledged log ends, and survives another reopen.
        assert_eq!(store.append_durable(&leaves(&["next"]), &[]).unwrap(), 2);
        drop(store);
        assert_eq!(FileStore::open(dir.path()).unwrap().read(2, 1).unwrap(), vec![(2, b"next".to_vec())]);
    }
    // The whole frame is an acknowledged batch and stays.
    std::fs::write(dir.path().join(FILE_NAME), &full).unwrap();
    assert_eq!(FileStore::open(dir.path()).unwrap().len(), 3);
}

#[test]
fn zeros_or_garbage_after_the_last_frame_are_a_torn_tail() {
    for tail in [vec![0u8; 4096], vec![0xAB; 7], FRAME_MAGIC.to_le_bytes().repeat(9)] {
        let dir = tempfile::tempdir().unwrap();
        FileStore::open(dir.path()).unwrap().append_durable(&leaves(&["a"]), &[]).unwrap();
        let good = file_len(dir.path());
        append_raw(dir.path(), &tail);
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!((store.len(), file_len(dir.path())), (1, good));
    }
}

#[test]
fn damage_before_an_intact_batch_refuses_to_open_and_names_the_position() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        store.append_durable(&leaves(&["a", "b"]), &[]).unwrap();
        store.append_durable(&leaves(&["c"]), &[]).unwrap();
        store.append_durable(&leaves(&["d"]), &[]).unwrap();
    }
    let size = file_len(dir.path());
    // A byte of the second frame's payload ("c").
    let second = HEADER.len() as u64 + (FRAME_HEADER + Batch::encode(&[], &leaves(&["a", "b"])).len()) as u64;
    flip_byte(dir.path(), second + FRAME_HEADER as u64 + 12);
    match FileStore::open(dir.path()) {
        Err(StorageError::Corrupt { position, .. }) => assert_eq!(position, 2),
        other => panic!("expected corruption at position 2, got {:?}", other.map(|s| s.len())),
    }
    assert_eq!(file_len(dir.path()), size, "nothing acknowledged is cut off");
}

#[test]
fn damage_after_opening_is_reported_on_read_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    store.append_durable(&leaves(&["a"]), &[]).unwrap();
    store.append_durable(&leaves(&["b"]), &[]).unwrap();
    flip_byte(dir.path(), file_len(dir.path()) - 1);
    assert_eq!(store.read(0, 1).unwrap(), vec![(0, b"a".to_vec())]);
    assert!(matches!(store.read(1, 1), Err(StorageError::Corrupt { position: 1, .. })));
}

#[test]
fn a_file_that_is_not_a_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), b"something else entirely").unwrap();
    assert!(matches!(FileStore::open(dir.path()), Err(StorageError::Corrupt { position: 0, .. })));
}

#[test]
fn a_second_process_cannot_open_a_log_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let err = FileStore::open(dir.path()).err().expect("the log is locked");
    assert!(err.to_string().contains("locked"), "{err}");
    drop(store);
    FileStore::open(dir.path()).unwrap();
}

#[test]
fn truncate_between_batches_and_inside_one_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        store.append_durable(&leaves(&["a"]), &[(NodeId::new(0, 0), [1; 32])]).unwrap();
        let nodes = [(NodeId::new(0, 1), [2; 32]), (NodeId::new(1, 0), [3; 32]), (NodeId::new(0, 2), [4; 32])];
        store.append_durable(&leaves(&["b", "c"]), &nodes).unwrap();
        store.append_durable(&leaves(&["d"]), &[(NodeId::new(0, 3), [5; 32])]).unwrap();
        store.append_durable(&leaves(&["e"]), &[]).unwrap();
        store.truncate(4).unwrap();
        assert_eq!(store.len(), 4, "a cut between batches");
        assert!(store.read(4, 1).unwrap().is_empty());
        store.truncate(2).unwrap();
        assert_eq!(store.len(), 2, "a cut inside a batch");
        assert_eq!(store.read(0, 10).unwrap(), vec![(0, b"a".to_vec()), (1, b"b".to_vec())]);
        assert_eq!(store.append_durable(&leaves(&["x"]), &[]).unwrap(), 2, "appends continue at the cut");
    }
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), 3);
    assert_eq!(store.read(0, 10).unwrap(), vec![(0, b"a".to_vec()), (1, b"b".to_vec()), (2, b"x".to_vec())]);
    assert_eq!(store.read_node(NodeId::new(1, 0)).unwrap(), Some([3; 32]), "a node inside the kept prefix stays");
    assert_eq!(store.read_node(NodeId::new(0, 2)).unwrap(), None, "a node of a discarded leaf goes");
    assert!(!dir.path().join(format!("{FILE_NAME}.rewrite")).exists());
}

#[test]
fn rewritten_leaf_is_served_and_the_rest_of_the_log_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    store.append_durable(&leaves(&["a", "b"]), &[(NodeId::new(1, 0), [1; 32])]).unwrap();
    store.append_durable(&leaves(&["c"]), &[]).unwrap();
    store.rewrite_leaf_unchecked(1, b"a longer leaf".to_vec()).unwrap();
    assert_eq!(store.read(1, 1).unwrap(), vec![(1, b"a longer leaf".to_vec())]);
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    let expected = vec![(0, b"a".to_vec()), (1, b"a longer leaf".to_vec()), (2, b"c".to_vec())];
    assert_eq!(store.read(0, 10).unwrap(), expected);
    assert_eq!(store.read_node(NodeId::new(1, 0)).unwrap(), Some([1; 32]));
    assert_eq!(store.append_durable(&leaves(&["d"]), &[]).unwrap(), 3);
}
