//! C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys: the envelope of our checkpoints.
//!
//! A note is text (non-empty, every line ending in `\n`), a blank line, and signature lines
//! `— <key name> <base64(key id || signature)>`. The key id is the first 4 bytes of
//! SHA-256(name || `\n` || 0x01 || public key), so a verifier holding the vkey text
//! `<name>+<hex key id>+<base64(0x01 || public key)>` picks out the one line it can check and ignores others
//! (witness cosignatures, other logs). Following the format exactly is what lets off-the-shelf tools
//! (Go's `sumdb/note`, transparency-dev verifiers) check our checkpoints too.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature algorithm byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;
/// The em dash and space that open every signature line.
const SIG_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("key name must be non-empty and contain no '+' and no whitespace")]
    BadName,
    #[error("verifier key is malformed: {0}")]
    BadVerifierKey(&'static str),
    #[error("note text must be non-empty and end with a newline")]
    BadText,
    #[error("note is malformed: {0}")]
    Malformed(&'static str),
    #[error("the note carries no signature by key {0}")]
    NotSignedByKey(String),
    #[error("the signature by key {0} does not verify")]
    BadSignature(String),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Signs notes under one key name.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    id: [u8; 4],
}

impl NoteSigner {
    /// `seed` is the 32-byte Ed25519 private key.
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadName);
        }
        let key = SigningKey::from_bytes(seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_string(),
            key,
            id,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The C2SP vkey text of this key.
    pub fn verifier_key(&self) -> String {
        let mut material = vec![ALG_ED25519];
        material.extend_from_slice(self.key.verifying_key().as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.id),
            B64.encode(material)
        )
    }

    /// The signed note: `text`, a blank line, and this key's signature line. Ed25519 is deterministic, so
    /// the same text always gives the same note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if text.is_empty() || !text.ends_with('\n') {
            return Err(NoteError::BadText);
        }
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{})", self.name, hex::encode(self.id))
    }
}

/// Checks notes against one trusted verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses vkey text `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let vkey = vkey.trim();
        // The base64 part may itself contain '+': split at the first two only.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(material)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::BadVerifierKey("expected name+keyid+key"));
        };
        if !valid_name(name) {
            return Err(NoteError::BadName);
        }
        let id: [u8; 4] = hex::decode(id_hex)
            .ok()
            .filter(|_| {
                id_hex.len() == 8
                    && id_hex
                        .chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            })
            .and_then(|b| b.try_into().ok())
            .ok_or(NoteError::BadVerifierKey(
                "key id must be 8 lowercase hex digits",
            ))?;
        let material = B64
            .decode(material)
            .map_err(|_| NoteError::BadVerifierKey("key is not base64"))?;
        let (&alg, public) = material
            .split_first()
            .ok_or(NoteError::BadVerifierKey("key is empty"))?;
        if alg != ALG_ED25519 {
            return Err(NoteError::BadVerifierKey(
                "only Ed25519 (type 0x01) keys are supported",
            ));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| NoteError::BadVerifierKey("Ed25519 key must be 32 bytes"))?;
        if key_id(name, &public) != id {
            return Err(NoteError::BadVerifierKey(
                "key id does not match the name and key",
            ));
        }
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::BadVerifierKey("not an Ed25519 point"))?;
        Ok(Self {
            name: name.to_string(),
            id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies `note` and returns its text. Signatures by other keys are ignored; the note must carry a
    /// valid signature by this key.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        if !signatures.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must end with a newline",
            ));
        }
        let mut found = false;
        for line in signatures[..signatures.len() - 1].split('\n') {
            let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
                "signature line must start with an em dash",
            ))?;
            let (name, blob) = rest.rsplit_once(' ').ok_or(NoteError::Malformed(
                "signature line needs a name and a signature",
            ))?;
            let blob = B64
                .decode(blob)
                .map_err(|_| NoteError::Malformed("signature is not base64"))?;
            if blob.len() < 5 {
                return Err(NoteError::Malformed("signature too short"));
            }
            if name != self.name || blob[..4] != self.id {
                continue;
            }
            found = true;
            let signature = ed25519_dalek::Signature::from_slice(&blob[4..])
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
        }
        if found {
            Ok(text)
        } else {
            Err(NoteError::NotSignedByKey(self.name.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of golang.org/x/mod/sumdb/note (also in the C2SP signed-note spec's test data).
    const GO_SKEY_MATERIAL: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn go_signer() -> NoteSigner {
        let material = B64.decode(GO_SKEY_MATERIAL).unwrap();
        assert_eq!(material[0], ALG_ED25519);
        NoteSigner::new("PeterNeumann", &material[1..].try_into().unwrap()).unwrap()
    }

    #[test]
    fn reproduces_the_go_reference_note_and_key() {
        let signer = go_signer();
        assert_eq!(signer.verifier_key(), GO_VKEY);
        assert_eq!(signer.sign(GO_TEXT).unwrap(), GO_NOTE);
        assert_eq!(
            NoteVerifier::parse(GO_VKEY).unwrap().open(GO_NOTE).unwrap(),
            GO_TEXT
        );
    }

    #[test]
    fn rejects_altered_notes_and_foreign_keys() {
        let v = NoteVerifier::parse(GO_VKEY).unwrap();
        let altered = GO_NOTE.replace("cryptography", "cryptographY");
        assert_eq!(
            v.open(&altered),
            Err(NoteError::BadSignature("PeterNeumann".into()))
        );
        let other = NoteSigner::new("PeterNeumann", &[7u8; 32]).unwrap();
        let forged = other.sign(GO_TEXT).unwrap();
        assert_eq!(
            v.open(&forged),
            Err(NoteError::NotSignedByKey("PeterNeumann".into()))
        );
        // A second, unknown signer's line is ignored as long as ours verifies.
        let cosigned = format!("{GO_NOTE}{}", forged.rsplit("\n\n").next().unwrap());
        assert_eq!(v.open(&cosigned).unwrap(), GO_TEXT);
        assert!(matches!(v.open(GO_TEXT), Err(NoteError::Malformed(_))));
    }

    #[test]
    fn rejects_malformed_verifier_keys() {
        for bad in [
            "",
            "PeterNeumann",
            "PeterNeumann+c74f20a3",
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ] {
            assert!(NoteVerifier::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            NoteSigner::new("a b", &[0; 32]).err(),
            Some(NoteError::BadName)
        );
        assert_eq!(
            go_signer().sign("no newline").err(),
            Some(NoteError::BadText)
        );
    }
}
