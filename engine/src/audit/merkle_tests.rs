//! The tree against the Certificate Transparency reference vectors (RFC 6962 test data used by
//! google/certificate-transparency and transparency-dev/merkle) and against a naive implementation of the
//! RFC's recursive definitions, written here separately so the two share no code but the two hash functions.

use super::*;

fn h(hex_str: &str) -> Hash {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

const LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

/// Root of the first n leaves, n = 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn reference_tree() -> MemoryTree {
    let mut t = MemoryTree::new();
    for l in LEAVES {
        t.push(&hex::decode(l).unwrap());
    }
    t
}

#[test]
fn roots_match_the_reference_vectors_for_every_size() {
    let mut t = MemoryTree::new();
    assert_eq!(t.root(), h(ROOTS[0]));
    for (n, l) in LEAVES.iter().enumerate() {
        t.push(&hex::decode(l).unwrap());
        assert_eq!(t.root(), h(ROOTS[n + 1]), "incremental root of size {}", n + 1);
    }
    for (n, want) in ROOTS.iter().enumerate() {
        assert_eq!(root(&t, n as u64).unwrap(), h(want), "stored-node root of size {n}");
    }
}

#[test]
fn inclusion_proofs_match_the_reference_vectors() {
    let t = reference_tree();
    let cases: [(u64, u64, &[&str]); 4] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    ];
    for (index, size, want) in cases {
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(inclusion_proof(&t, index, size).unwrap(), want, "proof of {index} in {size}");
        let leaf = leaf_hash(&hex::decode(LEAVES[index as usize]).unwrap());
        verify_inclusion(&leaf, index, size, &want, &h(ROOTS[size as usize])).unwrap();
    }
}

#[test]
fn consistency_proofs_match_the_reference_vectors() {
    let t = reference_tree();
    let cases: [(u64, u64, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (first, second, want) in cases {
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(consistency_proof(&t, first, second).unwrap(), want, "proof {first} -> {second}");
        verify_consistency(first, second, &h(ROOTS[first as usize]), &h(ROOTS[second as usize]), &want).unwrap();
    }
}

// ---- naive reference: the RFC 9162 §2.1 definitions, recursively over slices of leaf data ----

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => Sha256::digest(b"").into(),
        1 => {
            let mut x = vec![0u8];
            x.extend_from_slice(&d[0]);
            Sha256::digest(&x).into()
        }
        n => {
            let k = k_of(n);
            let mut x = vec![1u8];
            x.extend_from_slice(&mth(&d[..k]));
            x.extend_from_slice(&mth(&d[k..]));
            Sha256::digest(&x).into()
        }
    }
}

fn path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return vec![];
    }
    let k = k_of(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn data(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf-{i}-{}", i * 7919 % 97).into_bytes()).collect()
}

#[test]
fn agrees_with_the_naive_definitions_for_every_size_up_to_70() {
    let d = data(70);
    let mut t = MemoryTree::new();
    for leaf in &d {
        t.push(leaf);
    }
    for n in 0..=d.len() {
        let want_root = mth(&d[..n]);
        assert_eq!(root(&t, n as u64).unwrap(), want_root, "root {n}");
        for m in 0..n {
            let p = inclusion_proof(&t, m as u64, n as u64).unwrap();
            assert_eq!(p, path(m, &d[..n]), "inclusion {m} in {n}");
            verify_inclusion(&leaf_hash(&d[m]), m as u64, n as u64, &p, &want_root).unwrap();
        }
        for m in 1..n {
            let p = consistency_proof(&t, m as u64, n as u64).unwrap();
            assert_eq!(p, subproof(m, &d[..n], true), "consistency {m} -> {n}");
            verify_consistency(m as u64, n as u64, &mth(&d[..m]), &want_root, &p).unwrap();
        }
    }
}

#[test]
fn frontier_restored_from_stored_nodes_continues_identically() {
    let d = data(300);
    let mut full = MemoryTree::new();
    for leaf in &d[..123] {
        full.push(leaf);
    }
    let mut restored = Frontier::restore(123, &full).unwrap();
    assert_eq!(restored.root(), full.root());
    let mut sink = Vec::new();
    for leaf in &d[123..] {
        full.push(leaf);
        restored.append(leaf_hash(leaf), &mut sink);
    }
    assert_eq!(restored.root(), full.root());
    assert_eq!(restored.root(), mth(&d));
    // Every reported node is where the reader says it is.
    for (id, hash) in sink {
        assert_eq!(full.node(id).unwrap(), hash, "{id:?}");
    }
}

#[test]
fn altered_proofs_and_claims_are_rejected() {
    let d = data(37);
    let mut t = MemoryTree::new();
    for leaf in &d {
        t.push(leaf);
    }
    for n in 2..=d.len() as u64 {
        let r = root(&t, n).unwrap();
        for m in 0..n {
            let leaf = leaf_hash(&d[m as usize]);
            let p = inclusion_proof(&t, m, n).unwrap();
            let mut flipped = p.clone();
            flipped[0][5] ^= 1;
            assert!(verify_inclusion(&leaf, m, n, &flipped, &r).is_err());
            assert!(verify_inclusion(&leaf, m, n, &p[..p.len() - 1], &r).is_err());
            let mut longer = p.clone();
            longer.push([0xab; 32]);
            assert!(verify_inclusion(&leaf, m, n, &longer, &r).is_err());
            assert!(verify_inclusion(&leaf_hash(b"other"), m, n, &p, &r).is_err());
            assert!(
                verify_inclusion(&leaf, (m + 1) % n, n, &p, &r).is_err() || d[((m + 1) % n) as usize] == d[m as usize]
            );
            assert!(verify_inclusion(&leaf, n, n, &p, &r).is_err());
        }
        for m in 1..n {
            let first = root(&t, m).unwrap();
            let p = consistency_proof(&t, m, n).unwrap();
            let mut flipped = p.clone();
            flipped[0][3] ^= 0x80;
            assert!(verify_consistency(m, n, &first, &r, &flipped).is_err(), "{m}->{n} flipped");
            assert!(verify_consistency(m, n, &first, &r, &p[..p.len() - 1]).is_err(), "{m}->{n} truncated");
            assert!(verify_consistency(m, n, &r, &first, &p).is_err(), "{m}->{n} roots swapped");
            assert!(verify_consistency(m, n, &first, &root(&t, n - 1).unwrap(), &p).is_err(), "{m}->{n} other root");
        }
    }
    let r4 = root(&t, 4).unwrap();
    verify_consistency(4, 4, &r4, &r4, &[]).unwrap();
    assert!(verify_consistency(4, 4, &r4, &root(&t, 5).unwrap(), &[]).is_err());
    verify_consistency(0, 8, &empty_root(), &root(&t, 8).unwrap(), &[]).unwrap();
    assert!(verify_consistency(5, 4, &r4, &r4, &[]).is_err());
    assert_eq!(inclusion_proof(&t, 8, 8), Err(MerkleError::IndexBeyondTree { index: 8, size: 8 }));
    assert_eq!(consistency_proof(&t, 9, 8), Err(MerkleError::FirstBeyondSecond { first: 9, second: 8 }));
}

#[test]
fn node_keys_round_trip_and_sort_by_level_then_index() {
    let ids = [NodeId::new(0, 5), NodeId::new(0, 300), NodeId::new(3, 1), NodeId::new(63, u64::MAX)];
    for id in ids {
        assert_eq!(NodeId::from_key(&id.to_key()), Some(id));
    }
    let mut keys: Vec<[u8; 9]> = ids.iter().map(|id| id.to_key()).collect();
    keys.sort();
    assert_eq!(keys, ids.iter().map(|id| id.to_key()).collect::<Vec<_>>());
    assert_eq!(NodeId::from_key(&[1, 2]), None);
}

/// Roots and proofs byte for byte equal to those of `ct-merkle`, an independent implementation.
#[test]
fn agrees_with_the_ct_merkle_crate() {
    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    type CtSha256 = sha2_for_ct_merkle::Sha256;
    let d = data(40);
    let mut ours = MemoryTree::new();
    let mut theirs: MemoryBackedTree<CtSha256, Vec<u8>> = MemoryBackedTree::new();
    let concat = |p: Vec<Hash>| p.concat();
    for leaf in &d {
        ours.push(leaf);
        theirs.push(leaf.clone());
        let n = ours.size();
        assert_eq!(ours.root().as_slice(), theirs.root().as_bytes().as_slice(), "root of {n}");
        for m in 0..n {
            let p = inclusion_proof(&ours, m, n).unwrap();
            assert_eq!(concat(p), theirs.prove_inclusion(m as usize).as_bytes(), "inclusion {m} in {n}");
        }
        for m in 1..n {
            let p = consistency_proof(&ours, m, n).unwrap();
            assert_eq!(concat(p), theirs.prove_consistency((n - m) as usize).as_bytes(), "consistency {m} -> {n}");
        }
    }
}

#[test]
fn parallel_leaf_hashes_equal_serial_ones_in_order() {
    for n in [0usize, 1, 4095, 4096, 10_001] {
        let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("leaf {i}").into_bytes()).collect();
        let serial: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        assert_eq!(leaf_hashes(&leaves), serial, "{n} leaves");
    }
}
