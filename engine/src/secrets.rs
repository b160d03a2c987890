//! Server secrets kept next to the log in the data directory.
//!
//! The scramble master secret keys every certificate's back image (key = HMAC-SHA256(secret, certificate
//! id)), so it must survive restarts (reproduction and descrambling need it) and never leave the machine in
//! a log line. It is created once from the OS random source with owner-only permissions.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const MASTER_SECRET_FILE: &str = "scramble-master.key";

pub struct MasterSecret([u8; 32]);

impl MasterSecret {
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(MASTER_SECRET_FILE);
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                let mut bytes = [0u8; 32];
                f.read_exact(&mut bytes)?;
                Ok(Self(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
                write_private(&path, &bytes)?;
                Ok(Self(bytes))
            }
            Err(e) => Err(e),
        }
    }

    /// Installs a provisioned secret (the same for East and West, so either centre can reproduce and
    /// verify the other's certificates): copied into a new data directory, and refused if the directory
    /// already holds a different one (its certificates would no longer verify).
    pub fn provision(data_dir: &Path, file: &Path) -> std::io::Result<()> {
        let wanted = std::fs::read(file)?;
        if wanted.len() != 32 {
            return Err(std::io::Error::other("a master secret file holds exactly 32 bytes"));
        }
        let path = data_dir.join(MASTER_SECRET_FILE);
        match std::fs::read(&path) {
            Ok(existing) if existing == wanted => Ok(()),
            Ok(_) => Err(std::io::Error::other(
                "the data directory already holds a different scramble master secret; refusing to replace it",
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_private(&path, &wanted),
            Err(e) => Err(e),
        }
    }

    /// A public fingerprint of the secret (HMAC of a fixed label), to check two centres share it.
    pub fn fingerprint(&self) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"bcl-master-secret-fingerprint-v1");
        hex::encode(&mac.finalize().into_bytes()[..12])
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSecret(..)")
    }
}

/// Writes a file readable by the owner only, durably (write to a temp file, fsync, rename, fsync the
/// directory: without the last step a power cut can lose the new name, i.e. the key).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp: PathBuf = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}
