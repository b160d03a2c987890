//! Sealing a change event's personal fields before its leaf is hashed, and unsealing them in the fold.
//!
//! A sealed leaf is `LogLeaf { sealed_change_event }`: the event without its personal fields (readable,
//! it drives sequencing and eligibility), the resident's key id, a random 24-byte XChaCha20 nonce, the
//! ciphertext of the personal fields and the keyed digest of the whole event. The nonce is drawn once, at
//! append; the leaf bytes are what is stored and hashed, so nothing is ever encrypted twice under one nonce
//! and no nonce needs to be derived. Re-sends are compared on the keyed digest (HMAC-SHA-256 under the
//! store's idempotency key): a fresh ciphertext of the same event differs, its digest does not, and the
//! digest stays comparable after the resident's key is erased.

use super::{KeyId, KeyStore, KeyStoreError};
use bcl_proto::{log_leaf::Kind, ChangeEvent, LogLeaf, SealedChangeEvent};
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use prost::Message;
use sha2::{Digest, Sha256};

const AAD_DOMAIN: &[u8] = b"bcl-sealed/1";

/// An event ready for the writer: the leaf to store and the digest admission and the fold compare.
pub struct PreparedEvent {
    pub leaf: Vec<u8>,
    pub digest: [u8; 32],
}

/// Why a sealed leaf could not be read. Never carries any of the sealed data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    /// The key is not in the store: erased (forgotten) or not supplied.
    #[error("the resident's key is not in the key store")]
    KeyMissing,
    /// The leaf is not a well-formed sealed event.
    #[error("sealed event is malformed: {0}")]
    Malformed(&'static str),
    /// The key is there but the ciphertext, its nonce or the readable part was altered.
    #[error("sealed personal data does not authenticate")]
    Authentication,
}

/// HMAC-SHA-256 of an event's encoding under the idempotency key.
pub fn keyed_digest(idempotency_key: &[u8; 32], encoded_event: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(idempotency_key).expect("HMAC takes any key length");
    mac.update(encoded_event);
    mac.finalize().into_bytes().into()
}

fn aad(key_id: &[u8], digest: &[u8], event: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + key_id.len() + digest.len() + event.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(key_id);
    aad.extend_from_slice(digest);
    aad.extend_from_slice(event);
    aad
}

/// Seals `plaintext` bound to the leaf's readable part. Returns (nonce, ciphertext ‖ tag).
pub fn seal(key: &[u8; 32], key_id: &KeyId, digest: &[u8; 32], event: &[u8], plaintext: &[u8]) -> ([u8; 24], Vec<u8>) {
    use chacha20poly1305::aead::AeadCore;
    let nonce = XChaCha20Poly1305::generate_nonce(&mut chacha20poly1305::aead::OsRng);
    let cipher = XChaCha20Poly1305::new(key.into());
    let sealed = cipher
        .encrypt(&nonce, Payload { msg: plaintext, aad: &aad(key_id, digest, event) })
        .expect("XChaCha20-Poly1305 encrypts any message length used here");
    (nonce.into(), sealed)
}

/// Prepares the leaves of a batch of validated events: events with personal fields are sealed under their
/// resident's key (created on first use and synced before this returns), the others are logged as they are.
pub fn prepare_events(keys: &KeyStore, events: &[ChangeEvent]) -> Result<Vec<PreparedEvent>, KeyStoreError> {
    let subjects: Vec<String> = events
        .iter()
        .filter_map(|ev| {
            bcl_projections::personal::sealed_subject(ev).map(|r| super::subject(&ev.municipality_code, r))
        })
        .collect();
    let refs: Vec<&str> = subjects.iter().map(String::as_str).collect();
    let (subject_keys, created) = keys.keys_for(&refs)?;
    if created {
        keys.sync()?;
    }
    let idempotency = keys.idempotency_key().ok_or_else(|| {
        KeyStoreError::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "the key store has no idempotency key"))
    })?;
    let mut subject_keys = subject_keys.into_iter();
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        let encoded = ev.encode_to_vec();
        let Some((clear, personal)) = bcl_projections::personal::split(ev) else {
            let digest: [u8; 32] = Sha256::digest(&encoded).into();
            out.push(PreparedEvent { leaf: crate::writer::change_event_leaf(&encoded), digest });
            continue;
        };
        let (key_id, key) = subject_keys.next().expect("one key per sealed event");
        let digest = keyed_digest(&idempotency, &encoded);
        let event = clear.encode_to_vec();
        let (nonce, sealed) = seal(&key, &key_id, &digest, &event, &personal.encode_to_vec());
        let leaf = LogLeaf {
            kind: Some(Kind::SealedChangeEvent(SealedChangeEvent {
                event,
                key_id: key_id.to_vec(),
                nonce: nonce.to_vec(),
                sealed,
                digest: digest.to_vec(),
            })),
        };
        out.push(PreparedEvent { leaf: leaf.encode_to_vec(), digest });
    }
    Ok(out)
}

/// The readable part of a sealed leaf and its digest.
pub fn clear_part(sealed: &SealedChangeEvent) -> Result<(ChangeEvent, [u8; 32]), UnsealError> {
    SealedRef::of(sealed).clear_part()
}

/// The key id a stored leaf was sealed with, if it is a sealed change event.
pub fn sealed_key_id(leaf: &[u8]) -> Option<KeyId> {
    if leaf.first() != Some(&0x32) {
        return None;
    }
    let mut rest = &leaf[1..];
    prost::encoding::decode_varint(&mut rest).ok()?;
    SealedRef::parse(rest)?.key_id.try_into().ok()
}

/// The fields of an encoded `SealedChangeEvent`, borrowed from the leaf (the rebuild's hot path: no copies).
#[derive(Default, Clone, Copy)]
pub struct SealedRef<'a> {
    pub event: &'a [u8],
    pub key_id: &'a [u8],
    pub nonce: &'a [u8],
    pub sealed: &'a [u8],
    pub digest: &'a [u8],
}

impl<'a> SealedRef<'a> {
    pub fn of(sealed: &'a SealedChangeEvent) -> Self {
        SealedRef {
            event: &sealed.event,
            key_id: &sealed.key_id,
            nonce: &sealed.nonce,
            sealed: &sealed.sealed,
            digest: &sealed.digest,
        }
    }

    /// Borrows the fields of an encoded `SealedChangeEvent` as prost would decode them (a repeated field: the
    /// last one wins). `None` for anything else (other wire types, unknown fields, truncation): the caller
    /// then decodes with prost.
    pub fn parse(mut buf: &'a [u8]) -> Option<Self> {
        let mut r = SealedRef::default();
        while !buf.is_empty() {
            let key = prost::encoding::decode_varint(&mut buf).ok()?;
            if key & 7 != 2 {
                return None;
            }
            let len = usize::try_from(prost::encoding::decode_varint(&mut buf).ok()?).ok()?;
            if len > buf.len() {
                return None;
            }
            let (value, rest) = buf.split_at(len);
            buf = rest;
            match key >> 3 {
                1 => r.event = value,
                2 => r.key_id = value,
                3 => r.nonce = value,
                4 => r.sealed = value,
                5 => r.digest = value,
                _ => return None,
            }
        }
        Some(r)
    }

    /// The readable part and the digest.
    pub fn clear_part(&self) -> Result<(ChangeEvent, [u8; 32]), UnsealError> {
        let ev = ChangeEvent::decode(self.event).map_err(|_| UnsealError::Malformed("event does not decode"))?;
        let digest = self.digest.try_into().map_err(|_| UnsealError::Malformed("digest is not 32 bytes"))?;
        Ok((ev, digest))
    }
}

/// Restores the whole event of a sealed leaf with its key: the readable part merged with the unsealed
/// personal fields. `ev` is the readable part (from [`clear_part`]) and is completed in place.
pub fn unseal_into(keys: &KeyStore, sealed: &SealedChangeEvent, ev: &mut ChangeEvent) -> Result<(), UnsealError> {
    unseal_ref(keys, &SealedRef::of(sealed), ev)
}

/// [`unseal_into`] on borrowed fields.
pub fn unseal_ref(keys: &KeyStore, sealed: &SealedRef<'_>, ev: &mut ChangeEvent) -> Result<(), UnsealError> {
    unseal_ref_with(keys, sealed, ev, &mut UnsealScratch::default())
}

/// Buffers a decoding thread reuses from one sealed leaf to the next (the associated data and the
/// plaintext), so a rebuild does not allocate and free two of them per leaf. The last plaintext stays in
/// memory until it is overwritten or the scratch is dropped at the end of the fold, no longer than the
/// decoded events that hold the same fields.
#[derive(Default)]
pub struct UnsealScratch {
    aad: Vec<u8>,
    plaintext: Vec<u8>,
}

/// [`unseal_ref`] with reused buffers.
pub fn unseal_ref_with(
    keys: &KeyStore,
    sealed: &SealedRef<'_>,
    ev: &mut ChangeEvent,
    scratch: &mut UnsealScratch,
) -> Result<(), UnsealError> {
    let key = <&KeyId>::try_from(sealed.key_id).ok().and_then(|id| keys.key(id));
    unseal_ref_with_key(key.as_ref(), sealed, ev, scratch)
}

/// [`unseal_ref_with`] with the key already looked up: `key` is the key store's key for `sealed.key_id`
/// (`None` if there is none), as [`KeyStore::keys_of`] returns it for a chunk of leaves at once. The errors
/// are the same, in the same order: a malformed key id before a missing key.
pub fn unseal_ref_with_key(
    key: Option<&[u8; 32]>,
    sealed: &SealedRef<'_>,
    ev: &mut ChangeEvent,
    scratch: &mut UnsealScratch,
) -> Result<(), UnsealError> {
    if sealed.key_id.len() != std::mem::size_of::<KeyId>() {
        return Err(UnsealError::Malformed("key id is not 16 bytes"));
    }
    let key = key.ok_or(UnsealError::KeyMissing)?;
    if sealed.nonce.len() != 24 {
        return Err(UnsealError::Malformed("nonce is not 24 bytes"));
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    let UnsealScratch { aad, plaintext } = scratch;
    aad.clear();
    for part in [AAD_DOMAIN, sealed.key_id, sealed.digest, sealed.event] {
        aad.extend_from_slice(part);
    }
    plaintext.clear();
    plaintext.extend_from_slice(sealed.sealed);
    cipher
        .decrypt_in_place(XNonce::from_slice(sealed.nonce), aad, plaintext)
        .map_err(|_| UnsealError::Authentication)?;
    ev.merge(plaintext.as_slice()).map_err(|_| UnsealError::Malformed("personal part does not decode"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcl_proto::change_event::Body;
    use bcl_proto::{CardIssued, ResidentRegistered};

    fn registration(id: &str) -> ChangeEvent {
        ChangeEvent {
            municipality_code: "131016".into(),
            source_seq: 1,
            event_id: "00000000-0000-4000-8000-000000000001".into(),
            effective_date: "2026-04-01".into(),
            body: Some(Body::ResidentRegistered(ResidentRegistered {
                resident_id: id.into(),
                household_id: "H1".into(),
                family_name: "髙橋".into(),
                given_name: "花子".into(),
                birth_date: "1990-01-02".into(),
                address: "東京都千代田区千代田1番1号".into(),
                personal_number: "123456789018".into(),
                ..Default::default()
            })),
        }
    }

    fn sealed_of(leaf: &[u8]) -> SealedChangeEvent {
        match LogLeaf::decode(leaf).unwrap().kind {
            Some(Kind::SealedChangeEvent(s)) => s,
            other => panic!("not sealed: {other:?}"),
        }
    }

    #[test]
    fn seal_unseal_round_trip_and_nothing_personal_in_the_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyStore::open(dir.path()).unwrap();
        let ev = registration("R1");
        let card = ChangeEvent {
            body: Some(Body::CardIssued(CardIssued { resident_id: "R1".into(), card_serial: "K".into() })),
            ..ev.clone()
        };
        let prepared = prepare_events(&keys, &[ev.clone(), card.clone()]).unwrap();
        let leaf = &prepared[0].leaf;
        for needle in ["髙橋", "花子", "1990-01-02", "千代田1番1号", "123456789018"] {
            assert!(!leaf.windows(needle.len()).any(|w| w == needle.as_bytes()), "a personal field is in the leaf");
        }
        let sealed = sealed_of(leaf);
        let (mut back, digest) = clear_part(&sealed).unwrap();
        assert_eq!(digest, prepared[0].digest);
        unseal_into(&keys, &sealed, &mut back).unwrap();
        assert_eq!(back, ev);
        // The card event has no personal fields: logged as a plain change event, digest = SHA-256.
        assert_eq!(prepared[1].leaf, crate::writer::change_event_leaf(&card.encode_to_vec()));
        assert_eq!(prepared[1].digest, bcl_projections::event_digest(&card));

        // A re-send seals afresh (new nonce, new ciphertext) but keeps its digest.
        let again = prepare_events(&keys, std::slice::from_ref(&ev)).unwrap();
        assert_ne!(again[0].leaf, prepared[0].leaf);
        assert_eq!(again[0].digest, prepared[0].digest);

        // Erased key: the readable part is still there, the rest is gone.
        keys.delete_subject(&crate::keystore::subject("131016", "R1")).unwrap();
        let (mut clear, _) = clear_part(&sealed).unwrap();
        assert_eq!(unseal_into(&keys, &sealed, &mut clear), Err(UnsealError::KeyMissing));
        assert_eq!(clear, bcl_projections::personal::redact(&ev));
    }

    #[test]
    fn borrowed_parse_matches_prost() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyStore::open(dir.path()).unwrap();
        let leaf = &prepare_events(&keys, &[registration("R3")]).unwrap()[0].leaf;
        let sealed = sealed_of(leaf);
        let inner = &leaf[1 + prost::length_delimiter_len(sealed.encoded_len())..];
        let r = SealedRef::parse(inner).expect("parses");
        let o = SealedRef::of(&sealed);
        assert_eq!((r.event, r.key_id, r.nonce, r.sealed, r.digest), (o.event, o.key_id, o.nonce, o.sealed, o.digest));
        let mut ev = r.clear_part().unwrap().0;
        unseal_ref(&keys, &r, &mut ev).unwrap();
        assert_eq!(ev, registration("R3"));
        assert!(SealedRef::parse(&inner[..inner.len() - 1]).is_none(), "truncated");
        assert!(SealedRef::parse(&[0x30, 0x01]).is_none(), "a varint field is not ours");
    }

    #[test]
    fn any_flipped_byte_fails_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyStore::open(dir.path()).unwrap();
        let sealed = sealed_of(&prepare_events(&keys, &[registration("R2")]).unwrap()[0].leaf);
        let fields: [fn(&mut SealedChangeEvent) -> &mut Vec<u8>; 4] =
            [|s| &mut s.sealed, |s| &mut s.nonce, |s| &mut s.digest, |s| &mut s.event];
        for (f, field) in fields.iter().enumerate() {
            for i in [0usize, 7, usize::MAX] {
                let mut damaged = sealed.clone();
                let bytes = field(&mut damaged);
                let i = i.min(bytes.len() - 1);
                bytes[i] ^= 0x01;
                let mut ev = ChangeEvent::decode(damaged.event.as_slice()).unwrap_or_default();
                assert_eq!(
                    unseal_into(&keys, &damaged, &mut ev),
                    Err(UnsealError::Authentication),
                    "field {f} byte {i}"
                );
            }
        }
    }
}
