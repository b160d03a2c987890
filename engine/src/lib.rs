//! The bcl issuance engine: storage of the log, the single writer, ingest, issuance, rendering, the
//! scrambled back, administration, and the gRPC server behind the `bcl` binary.

pub mod admin;
pub mod audit;
pub mod certificate;
pub mod cli;
pub mod clock;
pub mod commit_gate;
pub mod engine;
pub mod error;
pub mod ingest;
pub mod issuance;
pub mod keystore;
pub mod projection;
pub mod replication;
pub mod router;
pub mod render;
pub mod render_pool;
pub mod scramble;
pub mod secrets;
pub mod server;
pub mod shed;
pub mod storage;
pub mod verify;
pub mod writer;
