//! C2SP tlog-checkpoint bodies (https://c2sp.org/tlog-checkpoint): origin line, decimal tree size, base64
//! root hash, each ending in a newline. Signed as a note, this is the statement "the log named origin had
//! this many leaves with this root", which clients pin and auditors compare over time.

use super::merkle::Hash;
use super::note::{NoteError, NoteVerifier};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("checkpoint body is malformed: {0}")]
    Malformed(&'static str),
    #[error("checkpoint origin {found:?} is not the log the verifier key names ({expected:?})")]
    WrongOrigin { expected: String, found: String },
}

impl Checkpoint {
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a body; extension lines after the root are allowed and ignored.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(CheckpointError::Malformed("missing origin"))?;
        let size = lines
            .next()
            .ok_or(CheckpointError::Malformed("missing tree size"))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(CheckpointError::Malformed(
                "tree size must be a decimal number without leading zeros",
            ));
        }
        let size = size
            .parse()
            .map_err(|_| CheckpointError::Malformed("tree size out of range"))?;
        let root = lines
            .next()
            .ok_or(CheckpointError::Malformed("missing root hash"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(CheckpointError::Malformed(
                "root hash must be 32 bytes of base64",
            ))?;
        if !text.ends_with('\n') {
            return Err(CheckpointError::Malformed("body must end with a newline"));
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
        })
    }

    /// Verifies a signed checkpoint note with the log's verifier key; the origin must be the key's name.
    pub fn open(verifier: &NoteVerifier, note: &str) -> Result<Self, CheckpointError> {
        let checkpoint = Self::parse(verifier.open(note)?)?;
        if checkpoint.origin != verifier.name() {
            return Err(CheckpointError::WrongOrigin {
                expected: verifier.name().to_string(),
                found: checkpoint.origin,
            });
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::note::NoteSigner;

    #[test]
    fn parses_the_spec_example_and_round_trips() {
        // The example body of the C2SP tlog-checkpoint specification.
        let text = "example.com/origin\n923748\nnND/nri/U0xuHUrYSy0HtMeal2vzD9V4k/BO79C+QeI=\n";
        let c = Checkpoint::parse(text).unwrap();
        assert_eq!(c.origin, "example.com/origin");
        assert_eq!(c.size, 923748);
        assert_eq!(c.body(), text);
        let with_extension = format!("{text}extension line\n");
        assert_eq!(Checkpoint::parse(&with_extension).unwrap(), c);
    }

    #[test]
    fn rejects_malformed_bodies() {
        for bad in [
            "",
            "origin\n",
            "origin\n01\nnND/nri/U0xuHUrYSy0HtMeal2vzD9V4k/BO79C+QeI=\n",
            "origin\n-1\nnND/nri/U0xuHUrYSy0HtMeal2vzD9V4k/BO79C+QeI=\n",
            "origin\n5\nnND/nri/U0xuHUrYSy0HtMeal2vzD9V4k/BO79C+Q=\n",
            "origin\n5\nnND/nri/U0xuHUrYSy0HtMeal2vzD9V4k/BO79C+QeI=",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn open_checks_signature_and_origin() {
        let signer = NoteSigner::new("bcl.example/log-test", &[3u8; 32]).unwrap();
        let verifier = NoteVerifier::parse(&signer.verifier_key()).unwrap();
        let c = Checkpoint {
            origin: "bcl.example/log-test".into(),
            size: 42,
            root: [9u8; 32],
        };
        let note = signer.sign(&c.body()).unwrap();
        assert_eq!(Checkpoint::open(&verifier, &note).unwrap(), c);
        let other_origin = Checkpoint {
            origin: "bcl.example/other".into(),
            ..c.clone()
        };
        let note = signer.sign(&other_origin.body()).unwrap();
        assert!(matches!(
            Checkpoint::open(&verifier, &note),
            Err(CheckpointError::WrongOrigin { .. })
        ));
        let bigger = signer.sign(&c.body()).unwrap().replace("\n42\n", "\n43\n");
        assert!(matches!(
            Checkpoint::open(&verifier, &bigger),
            Err(CheckpointError::Note(NoteError::BadSignature(_)))
        ));
    }
}
