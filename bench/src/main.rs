//! `bcl-bench`: the benchmarks behind BENCHMARKS.md. Each subcommand measures its figures side by side
//! in one run (these machines are shared and noisy), and prints a Markdown table.
//!
//!   cargo run --release -p bcl-bench -- render      # front PDF, raster, scramble, whole certificate
//!   cargo run --release -p bcl-bench -- issue       # Issue end to end over gRPC on an idle server
//!   cargo run --release -p bcl-bench -- ingest      # durable ingest throughput over gRPC
//!   cargo run --release -p bcl-bench -- catalogue   # every certificate type, 1 and 4 sheets
//!   cargo run --release -p bcl-bench -- audit       # Merkle hashing, proofs, auditor's fold
//!   cargo run --release -p bcl-bench -- fold        # the projection rebuild alone (for profiling)
//!   cargo run --release -p bcl-bench -- compare     # the same 住民票 by this engine, Typst and Chromium
//!   cargo run --release -p bcl-bench -- h2load      # kiosk-load's client vs h2load on the same server
//!   cargo run --release -p bcl-bench -- breakdown   # one Issue step by step, in process and over gRPC
//!   cargo run --release -p bcl-bench -- rss         # engine memory with 1 and 10 municipalities of 100k
//!   cargo run --release -p bcl-bench -- replication # East+West: SYNC cost and replication lag under load
//!   cargo run --release -p bcl-bench -- back-encoding # deflate candidates on a real certificate back

mod audit;
mod back_encoding;
mod breakdown;
mod catalogue;
mod fold;
mod compare;
mod h2load;
mod ingest;
mod issue;
mod render;
mod rss;
mod replication;
mod stats;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let rest = &args[args.len().min(1)..];
    match which {
        "render" => render::run(rest),
        "issue" => issue::run(rest),
        "ingest" => ingest::run(rest),
        "audit" => audit::run(rest),
        "fold" => fold::run(rest),
        "catalogue" => catalogue::run(rest),
        "compare" => compare::run(rest),
        "render-one" => compare::render_one(rest),
        "h2load" => h2load::run(rest),
        "breakdown" => breakdown::run(rest),
        "rss" => rss::run(rest),
        "replication" => replication::run(rest),
        "back-encoding" => back_encoding::run(rest),
        "all" => {
            render::run(rest);
            issue::run(rest);
            ingest::run(rest);
        }
        other => {
            eprintln!("unknown benchmark {other:?}; use render, issue, ingest or all");
            std::process::exit(2);
        }
    }
}

/// `--name value` from the arguments, parsed, or the default.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.windows(2).find(|w| w[0] == name).and_then(|w| w[1].parse().ok()).unwrap_or(default)
}
