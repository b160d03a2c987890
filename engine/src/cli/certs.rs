//! `bcl certs init|issue`: a private CA and the certificates of every role, for local use, the demo and the
//! tests. A production deployment uses the government network's own PKI with the same URI SANs
//! (`docs/operations.md`); nothing in the server depends on these files having been made here.

use super::CliResult;
use crate::server::tls::{cert_path, key_path, CA_CERT, CA_KEY, SERVER};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a private CA, a server certificate and one client certificate per role in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Municipalities that get a link and an admin certificate.
        #[arg(long = "municipality", default_value = "131016")]
        municipalities: Vec<String>,
        /// Extra DNS names or IP addresses of the server certificate (besides localhost and 127.0.0.1).
        #[arg(long)]
        san: Vec<String>,
        /// Replace existing files (by default an existing ca.pem is an error, so a CA is never lost).
        #[arg(long)]
        force: bool,
    },
    /// Issue one more client certificate signed by the CA in DIR, e.g.
    /// `--name link-132012 --grant bcl://link/132012`.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// The identity: the certificate's CN and its file names (NAME.pem, NAME.key).
        #[arg(long)]
        name: String,
        /// A `bcl://` URI of the grant (repeatable), see docs/operations.md.
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
    },
}

/// The client identities `certs init` creates, with their grants: `(name, uris)`.
pub fn default_identities(municipalities: &[String]) -> Vec<(String, Vec<String>)> {
    let mut ids = vec![
        ("centre-east".to_string(), vec!["bcl://centre/east".to_string()]),
        ("centre-west".to_string(), vec!["bcl://centre/west".to_string()]),
        ("auditor".to_string(), vec!["bcl://auditor".to_string()]),
        ("peer-east".to_string(), vec!["bcl://peer/east".to_string()]),
        ("peer-west".to_string(), vec!["bcl://peer/west".to_string()]),
        ("monitor".to_string(), vec!["bcl://monitor".to_string()]),
    ];
    for code in municipalities {
        ids.push((format!("link-{code}"), vec![format!("bcl://link/{code}")]));
        ids.push((format!("admin-{code}"), vec![format!("bcl://municipality-admin/{code}")]));
    }
    ids
}

pub fn run(args: Args) -> CliResult {
    match args.command {
        Command::Init { dir, municipalities, san, force } => {
            init(&dir, &municipalities, &san, force)?;
            println!("wrote a private CA, the server certificate and client certificates to {}", dir.display());
            Ok(())
        }
        Command::Issue { dir, name, grants } => {
            for g in &grants {
                if crate::server::auth::Grant::parse(g).is_none() {
                    return Err(format!("not a bcl:// grant: {g}").into());
                }
            }
            let ca = load_ca(&dir)?;
            write_leaf(&dir, &ca, &name, &grants, Leaf::Client)?;
            println!("wrote {} and {}", cert_path(&dir, &name).display(), key_path(&dir, &name).display());
            Ok(())
        }
    }
}

/// Creates the CA and every certificate in `dir` (see [`default_identities`]).
pub fn init(dir: &Path, municipalities: &[String], extra_sans: &[String], force: bool) -> CliResult {
    for code in municipalities {
        bcl_projections::validate::check_municipality_code(code)
            .map_err(|_| format!("--municipality {code}: not a valid 6-digit local government code"))?;
    }
    if dir.join(CA_CERT).exists() && !force {
        return Err(format!("{} already exists (use --force to replace the CA)", dir.join(CA_CERT).display()).into());
    }
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params(SystemTime::now())?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write_file(&dir.join(CA_CERT), ca_cert.pem().as_bytes(), 0o644)?;
    write_file(&dir.join(CA_KEY), ca_key.serialize_pem().as_bytes(), 0o600)?;
    let ca = Issuer::new(ca_params, ca_key);
    let mut server_names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    server_names.extend(extra_sans.iter().cloned());
    write_leaf(dir, &ca, SERVER, &server_names, Leaf::Server)?;
    for (name, grants) in default_identities(municipalities) {
        write_leaf(dir, &ca, &name, &grants, Leaf::Client)?;
    }
    Ok(())
}

fn ca_params(now: SystemTime) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "bcl private CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(10 * 365 * 86_400)).into();
    Ok(params)
}

fn load_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, Box<dyn std::error::Error + Send + Sync>> {
    let key = KeyPair::from_pem(&std::fs::read_to_string(dir.join(CA_KEY))?)?;
    let pem = std::fs::read_to_string(dir.join(CA_CERT))?;
    Ok(Issuer::from_ca_cert_pem(&pem, key)?)
}

enum Leaf {
    /// `names` are DNS names or IP addresses.
    Server,
    /// `names` are `bcl://` grant URIs.
    Client,
}

fn write_leaf(dir: &Path, ca: &Issuer<'_, KeyPair>, name: &str, names: &[String], kind: Leaf) -> CliResult {
    let now = SystemTime::now();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(2 * 365 * 86_400)).into();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    match kind {
        Leaf::Server => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.subject_alt_names = names
                .iter()
                .map(|n| match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => Ok(SanType::IpAddress(ip)),
                    Err(_) => Ok(SanType::DnsName(n.as_str().try_into()?)),
                })
                .collect::<Result<_, rcgen::Error>>()?;
        }
        Leaf::Client => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.subject_alt_names =
                names.iter().map(|u| Ok(SanType::URI(u.as_str().try_into()?))).collect::<Result<_, rcgen::Error>>()?;
        }
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    write_file(&cert_path(dir, name), cert.pem().as_bytes(), 0o644)?;
    write_file(&key_path(dir, name), key.serialize_pem().as_bytes(), 0o600)?;
    Ok(())
}

/// Writes through a temporary file created with its final mode, so a key is never readable by others, not
/// even for a moment, and a crash never leaves half a PEM file.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
