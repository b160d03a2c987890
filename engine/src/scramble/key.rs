//! The per-certificate scramble key and the deterministic keystream drawn from it.
//!
//! Every certificate gets its own key, derived from the operator's master secret and the certificate
//! id, so that leaking one certificate's key (a verification site must hold it to descramble) reveals
//! nothing about any other certificate, and so that an auditor who holds the master secret can
//! reproduce the back byte for byte from the certificate id alone.
//!
//! The keystream is the standard ChaCha20 stream cipher (20 rounds, 256-bit key, 64-bit block
//! counter from 0, 64-bit nonce 0; the original Bernstein variant, whose keystream equals RFC 8439's
//! for the first 2^32 blocks) keyed per purpose with `HMAC-SHA256(scramble key, label)`. A standard,
//! well-analysed cipher means a verification site written in another language reimplements the
//! scheme from `docs/scramble.md` with its platform's ChaCha20, and the frozen vectors in the tests
//! pin it: the output bytes of a back are part of a reproducible certificate.

use hmac::{Hmac, Mac};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;

/// Domain-separation prefix of the key derivation. Changing the scramble format means a new
/// version here, so that old backs still descramble with the old derivation.
const KEY_DERIVATION_LABEL: &[u8] = b"bcl-scramble-v1";

/// The secret that scrambles one certificate's back.
///
/// `ScrambleKey::derive(master, id)` = HMAC-SHA256(key = `master`, message = `"bcl-scramble-v1" || id`).
#[derive(Clone, PartialEq, Eq)]
pub struct ScrambleKey([u8; 32]);

impl ScrambleKey {
    /// Derives the key of certificate `certificate_id` from the operator's master secret.
    pub fn derive(master_secret: &[u8], certificate_id: &str) -> ScrambleKey {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master_secret)
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(KEY_DERIVATION_LABEL);
        mac.update(certificate_id.as_bytes());
        ScrambleKey(mac.finalize().into_bytes().into())
    }

    /// Wraps raw key bytes, e.g. a key handed to a verification site out of band.
    pub fn from_bytes(bytes: [u8; 32]) -> ScrambleKey {
        ScrambleKey(bytes)
    }

    /// The raw key bytes (for handing the key to a verification site).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The keystream for one purpose (`label`), independent of the streams for other purposes,
    /// so that adding a keyed decision never shifts the randomness of the existing ones.
    pub(crate) fn stream(&self, label: &str) -> KeyStream {
        KeyStream::new(self, label)
    }
}

/// Wipe the key when it goes out of scope, so it does not linger in freed memory of a long-running
/// server. Volatile writes keep the compiler from eliding the wipe of a value about to die.
impl Drop for ScrambleKey {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference to a byte of `self`.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// Never print key material, not even in a debug log.
impl std::fmt::Debug for ScrambleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrambleKey(<redacted>)")
    }
}

/// Deterministic keystream of one purpose: ChaCha20 with key `HMAC-SHA256(key, label)` and nonce
/// 0, read as little-endian `u32` words in keystream order.
pub(crate) struct KeyStream {
    rng: ChaCha20Rng,
}

impl KeyStream {
    fn new(key: &ScrambleKey, label: &str) -> KeyStream {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0)
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(label.as_bytes());
        let mut seed: [u8; 32] = mac.finalize().into_bytes().into();
        let rng = ChaCha20Rng::from_seed(seed);
        seed.fill(0);
        KeyStream { rng }
    }

    /// The next keystream word (bytes `4i..4i+4`, little-endian).
    pub(crate) fn next_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    /// A uniform value in `0..bound` (`bound > 0`), by rejection so that no value is favoured:
    /// a biased permutation would make some block placements more likely than others.
    pub(crate) fn below(&mut self, bound: u32) -> u32 {
        assert!(bound > 0, "below(0) has no valid value");
        // Largest multiple of `bound` that fits in 2^32; words at or above it are redrawn.
        let zone = u32::MAX - (u32::MAX - bound + 1) % bound;
        loop {
            let w = self.next_u32();
            if w <= zone {
                return w % bound;
            }
        }
    }

    /// A uniformly random permutation of `0..n` (Fisher-Yates).
    pub(crate) fn permutation(&mut self, n: u32) -> Vec<u32> {
        let mut p: Vec<u32> = (0..n).collect();
        for i in (1..n as usize).rev() {
            let j = self.below(i as u32 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_hmac_of_label_and_id() {
        let k = ScrambleKey::derive(b"master", "C-0001");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"master").unwrap();
        mac.update(b"bcl-scramble-v1C-0001");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(k.as_bytes(), &expected);
    }

    #[test]
    fn keystream_is_standard_chacha20() {
        // Bernstein's ChaCha20 keystream for the all-zero key and nonce (RFC 8439 test vector of
        // section A.1 #1), independent of this code: the stream seeds its cipher with
        // HMAC(key, label), so reach the cipher directly.
        let mut rng = ChaCha20Rng::from_seed([0; 32]);
        let words: Vec<u32> = (0..4).map(|_| rng.next_u32()).collect();
        assert_eq!(words, [0xade0_b876, 0x903d_f1a0, 0xe56a_5d40, 0x28bd_8653]);
        // And the stream is that cipher under HMAC-SHA256(key, label).
        let k = ScrambleKey::from_bytes([5; 32]);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[5; 32]).unwrap();
        mac.update(b"some/label");
        let mut direct = ChaCha20Rng::from_seed(mac.finalize().into_bytes().into());
        let mut s = k.stream("some/label");
        for _ in 0..100 {
            assert_eq!(s.next_u32(), direct.next_u32());
        }
    }

    #[test]
    fn keys_differ_per_certificate_and_per_master() {
        let a = ScrambleKey::derive(b"master", "C-0001");
        assert_ne!(a, ScrambleKey::derive(b"master", "C-0002"));
        assert_ne!(a, ScrambleKey::derive(b"master2", "C-0001"));
        assert_eq!(a, ScrambleKey::derive(b"master", "C-0001"));
    }

    #[test]
    fn debug_does_not_leak_key_bytes() {
        let k = ScrambleKey::from_bytes([0xAB; 32]);
        let s = format!("{k:?}");
        assert!(!s.to_lowercase().contains("ab"), "{s}");
    }

    #[test]
    fn streams_are_deterministic_and_label_separated() {
        let k = ScrambleKey::from_bytes([7; 32]);
        let a: Vec<u32> = (0..20)
            .map({
                let mut s = k.stream("x");
                move |_| s.next_u32()
            })
            .collect();
        let b: Vec<u32> = (0..20)
            .map({
                let mut s = k.stream("x");
                move |_| s.next_u32()
            })
            .collect();
        let c: Vec<u32> = (0..20)
            .map({
                let mut s = k.stream("y");
                move |_| s.next_u32()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut s = ScrambleKey::from_bytes([1; 32]).stream("t");
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[s.below(7) as usize] += 1;
        }
        // Each bucket expects 1000; a uniform draw lands within ±200 with overwhelming probability.
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }

    #[test]
    fn permutation_is_a_bijection() {
        let mut s = ScrambleKey::from_bytes([2; 32]).stream("p");
        let mut p = s.permutation(1000);
        let moved = p
            .iter()
            .enumerate()
            .filter(|(i, &v)| *i as u32 != v)
            .count();
        assert!(moved > 900, "only {moved} of 1000 moved");
        p.sort_unstable();
        assert!(p.iter().enumerate().all(|(i, &v)| i as u32 == v));
    }
}
