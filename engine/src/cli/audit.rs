//! `bcl audit key|export|verify|prove`: the auditor's side of the transparency log.
//!
//! `verify` trusts only the verifier key: the checkpoint must be signed by it, the leaves must hash to the
//! signed root, and every certificate must re-render to its recorded SHA-256. The server (or export file)
//! supplies data, never verdicts.

use super::CliResult;
use crate::audit::checkpoint::Checkpoint;
use crate::audit::export::Export;
use crate::audit::log::{self, AuditLog, StoreNodes};
use crate::audit::merkle::{self, leaf_hash, Hash, NodeReader};
use crate::audit::note::NoteVerifier;
use crate::audit::verify::{self, PrefixOracle, Reproducer};
use crate::secrets::{MasterSecret, MASTER_SECRET_FILE};
use bcl_proto::{
    audit_client::AuditClient, log_leaf::Kind, ConsistencyProofRequest, GetCheckpointRequest,
    InclusionProofRequest, LogLeaf, ReadLogRequest,
};
use prost::Message;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub tls: super::ClientTlsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the C2SP verifier key of a data directory's checkpoints.
    Key {
        #[arg(long, default_value = "./bcl-data")]
        data_dir: PathBuf,
    },
    /// Write the log (signed checkpoint, recorded leaf hashes, leaves) to a file.
    Export(ExportArgs),
    /// Verify a log from a server or an export file, trusting only the verifier key.
    Verify(VerifyArgs),
    /// Inclusion proofs of a certificate's issuance and of every event it was rendered from.
    Prove(ProveArgs),
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Read from a running server (gRPC URL).
    #[arg(
        long,
        conflicts_with = "data_dir",
        required_unless_present = "data_dir"
    )]
    pub server: Option<String>,
    /// Read a stopped server's data directory directly.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long, short)]
    pub out: PathBuf,
    /// Also write a snapshot of the key store (with --data-dir) to this file, mode 0600: it unseals the
    /// personal data of every resident not forgotten, so it is as sensitive as the resident data itself.
    #[arg(long, requires = "data_dir")]
    pub keys_out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Verify against a running server (gRPC URL).
    #[arg(long, conflicts_with = "export", required_unless_present = "export")]
    pub server: Option<String>,
    /// Verify an export file.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// The verifier key: C2SP vkey text, or a file holding it (e.g. <data-dir>/checkpoint.vkey).
    #[arg(long)]
    pub vkey: String,
    /// A checkpoint saved by an earlier run: the log must extend it. The new checkpoint is saved here when
    /// verification succeeds.
    #[arg(long)]
    pub previous: Option<PathBuf>,
    /// The server's scramble master secret, needed to re-render certificates.
    #[arg(long)]
    pub scramble_secret: Option<PathBuf>,
    /// Take the scramble master secret and the key store from this data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A key-store snapshot (`bcl audit export --keys-out`) to unseal personal data with, needed to re-render
    /// certificates (instead of the one in --data-dir).
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// Do not re-render certificates (the log and projections are still verified).
    #[arg(long)]
    pub skip_reproduction: bool,
    /// Machine-readable report on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ProveArgs {
    pub certificate_id: String,
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// The verifier key: C2SP vkey text, or a file holding it.
    #[arg(long)]
    pub vkey: String,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> CliResult {
    match args.command {
        Command::Key { data_dir } => {
            println!(
                "{}",
                log::read_verifier_key(&data_dir).map_err(|e| format!(
                    "{}: {e}",
                    data_dir.join(log::VERIFIER_KEY_FILE).display()
                ))?
            );
            Ok(())
        }
        Command::Export(a) => export_log(a, &args.tls),
        Command::Verify(a) => verify_log(a, &args.tls),
        Command::Prove(a) => prove(a, &args.tls),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// An `https://` server is reached with mutual TLS as `auditor` unless `--identity` says otherwise.
async fn client(
    url: &str,
    tls: &super::ClientTlsArgs,
) -> Result<AuditClient<Channel>, Box<dyn std::error::Error + Send + Sync>> {
    let channel = tls.connect(url, "auditor").await?;
    Ok(AuditClient::new(channel).max_decoding_message_size(64 << 20))
}

fn verifier(vkey: &str) -> Result<NoteVerifier, Box<dyn std::error::Error + Send + Sync>> {
    let text = if Path::new(vkey).is_file() {
        std::fs::read_to_string(vkey)?
    } else {
        vkey.to_string()
    };
    Ok(NoteVerifier::parse(&text)?)
}

fn hash_of(bytes: &[u8]) -> Result<Hash, String> {
    bytes
        .try_into()
        .map_err(|_| "the server sent a hash that is not 32 bytes".to_string())
}

/// The first `size` leaves from a server, with a progress line.
async fn read_leaves(
    client: &mut AuditClient<Channel>,
    size: u64,
) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
    let mut leaves = Vec::with_capacity(size as usize);
    let mut stream = client
        .read_log(ReadLogRequest {
            from_position: 0,
            limit: size,
            follow: false,
        })
        .await?
        .into_inner();
    while let Some(entry) = stream.message().await? {
        if entry.position != leaves.len() as u64 {
            return Err(format!(
                "the server sent position {} where {} was expected",
                entry.position,
                leaves.len()
            )
            .into());
        }
        leaves.push(entry.leaf);
        if leaves.len().is_multiple_of(65_536) {
            progress("download", leaves.len() as u64, size);
        }
    }
    progress("download", leaves.len() as u64, size);
    Ok(leaves)
}

fn progress(stage: &str, done: u64, total: u64) {
    eprint!("\r{stage}: {done}/{total}   ");
    if done >= total {
        eprintln!();
    }
}

fn export_log(args: ExportArgs, tls: &super::ClientTlsArgs) -> CliResult {
    let export = if let Some(url) = &args.server {
        runtime()?.block_on(async {
            let mut c = client(url, tls).await?;
            let cp = c
                .get_checkpoint(GetCheckpointRequest {})
                .await?
                .into_inner();
            let leaves = read_leaves(&mut c, cp.tree_size).await?;
            // A server does not hand out its stored leaf hashes: record the hashes of what it sent, which
            // still names any leaf changed in the file later.
            let recorded_hashes = leaves.iter().map(|l| leaf_hash(l)).collect();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Export {
                note: cp.note,
                recorded_hashes,
                leaves,
            })
        })?
    } else {
        let dir = args
            .data_dir
            .as_ref()
            .expect("clap requires --server or --data-dir");
        // Checked first: opening the log of a directory that has none would create an empty one.
        if !dir.join(log::SIGNING_KEY_FILE).exists() {
            return Err("the data directory has no checkpoint signing key".into());
        }
        let store = crate::storage::open(&dir.join("log"))
            .map_err(|e| format!("cannot open the log (is the server still running?): {e}"))?;
        let signer = log::load_or_create_signer(dir)?;
        let note = AuditLog::open(store.as_ref(), signer)?.checkpoint().note.clone();
        let size = store.len();
        let nodes = StoreNodes(store.as_ref());
        let recorded_hashes = (0..size)
            .map(|i| nodes.node(merkle::NodeId::new(0, i)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut leaves = Vec::with_capacity(size as usize);
        while (leaves.len() as u64) < size {
            let chunk = store.read(leaves.len() as u64, 8192)?;
            if chunk.is_empty() {
                return Err(format!("leaf {} is missing from the store", leaves.len()).into());
            }
            leaves.extend(chunk.into_iter().map(|(_, l)| l));
        }
        Export {
            note,
            recorded_hashes,
            leaves,
        }
    };
    if let (Some(out), Some(dir)) = (&args.keys_out, &args.data_dir) {
        let keys = crate::keystore::KeyStore::load_snapshot(&dir.join("keys").join("keys.bin"))
            .map_err(|e| format!("cannot read the key store: {e}"))?;
        let n = keys.write_snapshot(out)?;
        eprintln!("wrote {n} keys to {} (keep it as safe as the resident data)", out.display());
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(&args.out)?);
    export.write(&mut w)?;
    w.flush()?;
    eprintln!(
        "exported {} leaves to {}",
        export.leaves.len(),
        args.out.display()
    );
    Ok(())
}

/// Consistency proofs from the server, checked against the signed checkpoint.
struct ServerOracle<'a> {
    runtime: &'a tokio::runtime::Runtime,
    client: AuditClient<Channel>,
    size: u64,
    root: Hash,
}

impl PrefixOracle for ServerOracle<'_> {
    fn prefix_matches(&mut self, first: u64, root: &Hash) -> Result<bool, String> {
        let req = ConsistencyProofRequest {
            first_size: first,
            second_size: self.size,
        };
        let proof = self
            .runtime
            .block_on(self.client.get_consistency_proof(req))
            .map_err(|s| s.message().to_string())?;
        let hashes = proof
            .into_inner()
            .hashes
            .iter()
            .map(|h| hash_of(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(verify::prefix_matches_with_proof(
            first, root, self.size, &self.root, &hashes,
        ))
    }
}

fn load_secret(path: &Path) -> Result<MasterSecret, Box<dyn std::error::Error + Send + Sync>> {
    let mut bytes = [0u8; 32];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("scramble master secret {}: {e}", path.display()))?;
    Ok(MasterSecret::from_bytes(bytes))
}

fn verify_log(args: VerifyArgs, tls: &super::ClientTlsArgs) -> CliResult {
    let verifier = verifier(&args.vkey)?;
    let previous = match &args.previous {
        Some(p) if p.exists() => Some(std::fs::read_to_string(p)?),
        _ => None,
    };
    let secret_path = args
        .scramble_secret
        .clone()
        .or_else(|| args.data_dir.as_ref().map(|d| d.join(MASTER_SECRET_FILE)));
    let secret = match (&secret_path, args.skip_reproduction) {
        (Some(p), false) => Some(load_secret(p)?),
        _ => None,
    };
    let renderer = match secret {
        Some(_) => Some(
            crate::render::Renderer::load_default()
                .map_err(|e| format!("cannot load fonts: {e}"))?,
        ),
        None => None,
    };
    let reproducer = match (&renderer, &secret) {
        (Some(renderer), Some(secret)) => Some(Reproducer { renderer, secret }),
        _ => None,
    };
    let keys_path = args.keys.clone().or_else(|| args.data_dir.as_ref().map(|d| d.join("keys").join("keys.bin")));
    let keys = match &keys_path {
        Some(p) => Some(std::sync::Arc::new(
            crate::keystore::KeyStore::load_snapshot(p).map_err(|e| format!("key store {}: {e}", p.display()))?,
        )),
        None if reproducer.is_some() => {
            return Err("re-rendering needs the key store: pass --keys or --data-dir, or --skip-reproduction".into())
        }
        None => None,
    };
    let rt = runtime()?;
    let (note, leaves, recorded, mut oracle) = if let Some(url) = &args.server {
        let (note, leaves, client) = rt.block_on(async {
            let mut c = client(url, tls).await?;
            let cp = c
                .get_checkpoint(GetCheckpointRequest {})
                .await?
                .into_inner();
            let leaves = read_leaves(&mut c, cp.tree_size).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((cp.note, leaves, c))
        })?;
        // The oracle may only be trusted with a root the verifier key signed.
        let oracle = Checkpoint::open(&verifier, &note)
            .ok()
            .map(|cp| ServerOracle {
                runtime: &rt,
                client,
                size: cp.size,
                root: cp.root,
            });
        (note, leaves, None, oracle)
    } else {
        let path = args
            .export
            .as_ref()
            .expect("clap requires --server or --export");
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let export = Export::read(&mut std::io::BufReader::new(file))?;
        (
            export.note,
            export.leaves,
            Some(export.recorded_hashes),
            None,
        )
    };
    let mut show = |stage: &str, done: u64, total: u64| progress(stage, done, total);
    let mut report = verify::verify(
        &verifier,
        verify::Source {
            note: &note,
            leaves: &leaves,
            recorded_hashes: recorded.as_deref(),
        },
        verify::Options {
            previous_note: previous.as_deref(),
            keys,
            reproducer,
            oracle: oracle.as_mut().map(|o| o as &mut dyn PrefixOracle),
            progress: &mut show,
        },
    );
    if report.issuances > 0 && renderer.is_none() && !args.skip_reproduction {
        report.failures.push(verify::Failure {
            check: "reproduce",
            position: None,
            detail: format!(
                "{} certificates not re-rendered: pass --scramble-secret or --data-dir, or --skip-reproduction",
                report.issuances
            ),
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print_report(&report);
    }
    if !report.ok() {
        return Err(format!("verification failed: {} problem(s)", report.failures.len()).into());
    }
    if let Some(p) = &args.previous {
        std::fs::write(p, &note)?;
    }
    Ok(())
}

fn print_report(r: &verify::Report) {
    println!("log        {}", r.origin);
    println!("tree size  {}", r.tree_size);
    println!("root hash  {}", hex::encode(r.root));
    println!(
        "leaves     {} hashed in {:.3} s, folded in {:.3} s",
        r.leaves, r.hash_seconds, r.fold_seconds
    );
    println!(
        "issuances  {} ({} re-rendered byte for byte in {:.3} s)",
        r.issuances, r.reproduced, r.reproduce_seconds
    );
    if r.forgotten_residents > 0 || r.sealed_unreadable > 0 {
        println!(
            "forgotten  {} resident(s) erased; {} sealed event(s) unreadable; {} certificate(s) not reproducible because their personal data was erased",
            r.forgotten_residents,
            r.sealed_unreadable,
            r.forgotten_certificates.len()
        );
    }
    for (p, id) in &r.forgotten_certificates {
        println!("FORGOTTEN  certificate {id} at position {p}: printed from erased personal data (not a failure)");
    }
    if r.ok() {
        println!("OK");
    }
    for f in &r.failures {
        match f.position {
            Some(p) => println!("FAIL {} at position {p}: {}", f.check, f.detail),
            None => println!("FAIL {}: {}", f.check, f.detail),
        }
    }
}

fn prove(args: ProveArgs, tls: &super::ClientTlsArgs) -> CliResult {
    let verifier = verifier(&args.vkey)?;
    let rt = runtime()?;
    let (proved, cp) = rt.block_on(async {
        let mut c = client(&args.server, tls).await?;
        let note = c
            .get_checkpoint(GetCheckpointRequest {})
            .await?
            .into_inner()
            .note;
        let cp = Checkpoint::open(&verifier, &note)?;
        // The server names the issuance's position (Reproduce answers with it); the leaf and its proof
        // then have to bear that out. A certificate that no longer reproduces is exactly one an auditor
        // wants proofs for, so then the position is found by scanning the log instead.
        let named = c
            .reproduce(bcl_proto::ReproduceRequest {
                certificate_id: args.certificate_id.clone(),
            })
            .await;
        let position = match named {
            Ok(r) => r.into_inner().log_position,
            Err(status) => {
                eprintln!(
                    "Reproduce refused ({}); scanning the log for the issuance",
                    status.code()
                );
                find_issuance(&mut c, &args.certificate_id, cp.size).await?
            }
        };
        let (leaf, proof) = leaf_with_proof(&mut c, position, &cp).await?;
        let record = match LogLeaf::decode(leaf.as_slice()).map(|l| l.kind) {
            Ok(Some(Kind::Issuance(r))) if r.certificate_id == args.certificate_id => r,
            _ => {
                return Err(format!(
                    "the leaf at position {position} is not the issuance of this certificate"
                )
                .into())
            }
        };
        let mut proved = vec![("issuance", position, leaf_hash(&leaf), proof)];
        for &source in &record.source_positions {
            let (leaf, proof) = leaf_with_proof(&mut c, source, &cp).await?;
            proved.push(("source", source, leaf_hash(&leaf), proof));
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((proved, cp))
    })?;
    if args.json {
        let entries: Vec<_> = proved
            .iter()
            .map(|(role, position, leaf, proof)| {
                serde_json::json!({
                    "role": role, "position": position, "leaf_hash": hex::encode(leaf),
                    "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(), "verified": true,
                })
            })
            .collect();
        let out = serde_json::json!({
            "certificate_id": args.certificate_id, "origin": cp.origin, "tree_size": cp.size,
            "root_hash": hex::encode(cp.root), "entries": entries,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "certificate {} in {} (tree size {}, root {})",
            args.certificate_id,
            cp.origin,
            cp.size,
            hex::encode(cp.root)
        );
        for (role, position, leaf, proof) in &proved {
            println!(
                "  {role:8} position {position:>10}  leaf {}  proof of {} hashes: verified",
                hex::encode(leaf),
                proof.len()
            );
        }
    }
    Ok(())
}

/// The position of a certificate's issuance leaf among the first `size` leaves.
async fn find_issuance(
    c: &mut AuditClient<Channel>,
    certificate_id: &str,
    size: u64,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let mut stream = c
        .read_log(ReadLogRequest {
            from_position: 0,
            limit: size,
            follow: false,
        })
        .await?
        .into_inner();
    while let Some(entry) = stream.message().await? {
        // Only issuance leaves (field 2 of LogLeaf) are decoded.
        if entry.leaf.first() == Some(&0x12) {
            if let Ok(LogLeaf {
                kind: Some(Kind::Issuance(r)),
            }) = LogLeaf::decode(entry.leaf.as_slice())
            {
                if r.certificate_id == certificate_id {
                    return Ok(entry.position);
                }
            }
        }
    }
    Err(format!("no issuance of certificate {certificate_id} in the first {size} leaves").into())
}

/// The leaf at `position` and its inclusion proof, verified against the signed checkpoint.
async fn leaf_with_proof(
    c: &mut AuditClient<Channel>,
    position: u64,
    cp: &Checkpoint,
) -> Result<(Vec<u8>, Vec<Hash>), Box<dyn std::error::Error + Send + Sync>> {
    let mut stream = c
        .read_log(ReadLogRequest {
            from_position: position,
            limit: 1,
            follow: false,
        })
        .await?
        .into_inner();
    let entry = stream
        .message()
        .await?
        .filter(|e| e.position == position)
        .ok_or_else(|| format!("the server did not send leaf {position}"))?;
    let proof = c
        .get_inclusion_proof(InclusionProofRequest {
            leaf_index: position,
            tree_size: cp.size,
        })
        .await?
        .into_inner();
    let hashes = proof
        .hashes
        .iter()
        .map(|h| hash_of(h))
        .collect::<Result<Vec<_>, _>>()?;
    merkle::verify_inclusion(
        &leaf_hash(&entry.leaf),
        position,
        cp.size,
        &hashes,
        &cp.root,
    )
    .map_err(|e| format!("inclusion proof of position {position}: {e}"))?;
    Ok((entry.leaf, hashes))
}
