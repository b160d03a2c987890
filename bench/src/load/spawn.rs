//! Engines for a self-contained run: starts `bcl serve` processes on free ports, each with a fresh data
//! directory, and loads the fixture municipalities into any engine (spawned or given) over gRPC, the way
//! municipalities and the exchange centre do: Ingest.Append in batches, then Admin.UpdateSettings.

use bcl_fixtures::{Municipality, Spec};
use bcl_proto::{admin_client::AdminClient, ingest_client::IngestClient, AppendRequest, MunicipalitySettings};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The clock every spawned engine runs on: the fixtures' "today", so their ages and dates hold.
pub const NOW: &str = "2026-04-01T10:00:00+09:00";

/// Why engines cannot be started or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot find the bcl binary: pass --bcl PATH, set BCL_BIN, or build it (cargo build --release -p bcl-engine --bin bcl)")]
    NoBinary,
    #[error("starting bcl serve: {0}")]
    Start(#[source] std::io::Error),
    #[error("bcl serve did not announce its address (first line was {0:?})")]
    NoAddress(String),
    #[error("connecting to {url}: {source}")]
    Connect { url: String, source: tonic::transport::Error },
    #[error("loading municipality {code}: {status}")]
    Load { code: String, status: tonic::Status },
}

/// One running `bcl serve`, killed (and its data directory removed) on drop.
pub struct Spawned {
    child: Child,
    _data: tempfile::TempDir,
    pub url: String,
}

impl Spawned {
    /// Starts `bcl serve` on a free loopback port and waits for its "bcl listening on ADDR" line.
    pub fn start(bcl: &Path) -> Result<Spawned, SpawnError> {
        Self::start_with(bcl, &[])
    }

    /// [`Spawned::start`] with more `bcl serve` arguments (e.g. `--no-shed`).
    pub fn start_with(bcl: &Path, extra: &[String]) -> Result<Spawned, SpawnError> {
        Self::start_on(bcl, "127.0.0.1:0", extra)
    }

    /// Starts East and West as one replicated pair (docs/replication.md): each knows the other's address
    /// and both hold the same scramble master secret, so a request retried at the other centre is the same
    /// certificate and is charged once.
    pub fn start_pair(bcl: &Path, extra: &[String]) -> Result<(Spawned, Spawned), SpawnError> {
        let free = || -> Result<u16, SpawnError> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(SpawnError::Start)?
                .local_addr()
                .map_err(SpawnError::Start)?
                .port())
        };
        let (e, w) = (free()?, free()?);
        let secret = tempfile::NamedTempFile::new().map_err(SpawnError::Start)?;
        let mut bytes = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").map_err(SpawnError::Start)?, &mut bytes)
            .map_err(SpawnError::Start)?;
        std::fs::write(secret.path(), bytes).map_err(SpawnError::Start)?;
        let args = |centre: &str, peer: u16| -> Vec<String> {
            let secret = secret.path().display().to_string();
            let mut a: Vec<String> =
                ["--centre", centre, "--peer", &format!("127.0.0.1:{peer}"), "--master-secret", &secret]
                    .map(String::from)
                    .to_vec();
            a.extend_from_slice(extra);
            a
        };
        let (east_args, west_args) = (args("east", w), args("west", e));
        // Started together: each answers the other's status while deciding who sequences.
        let bcl_east = bcl.to_path_buf();
        let east = std::thread::spawn(move || Self::start_on(&bcl_east, &format!("127.0.0.1:{e}"), &east_args));
        let west = Self::start_on(bcl, &format!("127.0.0.1:{w}"), &west_args);
        let east = east.join().expect("east start thread");
        Ok((east?, west?))
    }

    fn start_on(bcl: &Path, listen: &str, extra: &[String]) -> Result<Spawned, SpawnError> {
        let data = tempfile::tempdir().map_err(SpawnError::Start)?;
        let mut child = Command::new(bcl)
            // Plaintext (`--insecure-dev`): the harness measures the engine, and its spawned engines only
            // listen on loopback for the duration of a run. A `--target` engine must run with it too.
            .args(["serve", "--insecure-dev", "--listen", listen, "--now", NOW, "--data-dir"])
            .arg(data.path())
            .args(extra)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(SpawnError::Start)?;
        // Other lines may come first (`bcl metrics on ADDR` with `--metrics-listen`); the listening line
        // says the server is ready. The rest of stdout is drained, so a later line never meets a closed pipe.
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut seen = Vec::new();
        let addr = loop {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(n) if n > 0 => match line.trim().strip_prefix("bcl listening on ") {
                    Some(addr) => break Some(addr.to_string()),
                    None => seen.push(line.trim().to_string()),
                },
                _ => break None,
            }
        };
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SpawnError::NoAddress(seen.join(" / ")));
        };
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Ok(Spawned { child, _data: data, url: format!("http://{addr}") })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size now, from /proc (Linux); None elsewhere.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// Peak resident set size (VmHWM) over the process's life.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// CPU seconds used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.pid())
    }

    /// SIGKILL now (fail-over drills); the data directory stays until drop.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat. Assumes the kernel's USER_HZ of
/// 100, which Linux reports on every architecture it runs on.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// The `bcl` binary: `explicit`, else `$BCL_BIN`, else next to this executable (target/<profile>/), also
/// from a test binary in target/<profile>/deps/.
pub fn find_bcl(explicit: Option<&Path>) -> Result<PathBuf, SpawnError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("BCL_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|_| SpawnError::NoBinary)?;
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join(format!("bcl{}", std::env::consts::EXE_SUFFIX));
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(SpawnError::NoBinary)
}

/// The fixture specs of `n` municipalities: Chiyoda (131016) first, then neighbouring codes with their own
/// check digit and seed, so residents, cards and event ids never collide.
pub fn specs(n: usize, households: usize) -> Vec<Spec> {
    (0..n)
        .map(|i| {
            let base = 13101 + i as u32;
            let digits: Vec<u8> = format!("{base:05}").bytes().map(|b| b - b'0').collect();
            let first: [u8; 5] = digits.try_into().expect("five digits");
            let check = bcl_fixtures::identifiers::municipality_check_digit(&first);
            Spec { municipality_code: format!("{base:05}{check}"), seed: 1 + i as u64, households, ..Spec::default() }
        })
        .collect()
}

/// Ingests every municipality into the engine at `url` and enables every certificate type. Idempotent:
/// re-appending events the engine already holds is accepted, so a `--target` engine can be loaded twice.
pub async fn load(url: &str, municipalities: &[(Spec, Municipality)]) -> Result<(), SpawnError> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| SpawnError::Connect { url: url.into(), source: e })?
        .connect()
        .await
        .map_err(|e| SpawnError::Connect { url: url.into(), source: e })?;
    let mut ingest = IngestClient::new(channel.clone()).max_encoding_message_size(64 << 20).max_decoding_message_size(64 << 20);
    let mut admin = AdminClient::new(channel);
    for (spec, m) in municipalities {
        let code = spec.municipality_code.clone();
        for chunk in m.events.chunks(1000) {
            ingest.append(AppendRequest { events: chunk.to_vec() }).await.map_err(|status| SpawnError::Load { code: code.clone(), status })?;
        }
        admin
            .update_settings(MunicipalitySettings {
                enabled_types: (1..=9).collect(),
                personal_number_allowed: Some(true),
                ..bcl_fixtures::municipality_settings(&code)
            })
            .await
            .map_err(|status| SpawnError::Load { code, status })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn municipality_codes_are_valid_distinct_and_start_with_chiyoda() {
        let s = specs(12, 10);
        assert_eq!(s[0].municipality_code, "131016");
        for spec in &s {
            assert!(bcl_fixtures::identifiers::is_valid_municipality_code(&spec.municipality_code), "{}", spec.municipality_code);
        }
        let mut codes: Vec<_> = s.iter().map(|x| x.municipality_code.clone()).collect();
        codes.dedup();
        assert_eq!(codes.len(), 12);
    }

    #[test]
    fn own_process_rss_and_cpu_are_readable() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        let before = cpu_seconds(std::process::id()).unwrap();
        // Spin until the process has been charged 0.1 s of CPU (wall time depends on how busy the machine
        // is), bounded: if the counter never moves, the reading is broken.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        let mut used = 0.0;
        while used < 0.1 && t.elapsed() < std::time::Duration::from_secs(30) {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
            used = cpu_seconds(std::process::id()).unwrap() - before;
        }
        assert!(used >= 0.1, "spinning shows as CPU time: {used} s after {:?}", t.elapsed());
    }
}
