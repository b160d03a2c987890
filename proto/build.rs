//! Compiles `bcl/v1/*.proto` with protox (pure Rust, so no `protoc` on the machine) and generates the prost
//! types, the tonic services and the pbjson serde impls that give ChangeEvent its canonical JSON mapping.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["bcl/v1/events.proto", "bcl/v1/common.proto", "bcl/v1/ingest.proto", "bcl/v1/issuance.proto",
        "bcl/v1/audit.proto", "bcl/v1/admin.proto", "bcl/v1/log.proto", "bcl/v1/verify.proto", "bcl/v1/replication.proto"];
    println!("cargo:rerun-if-changed=bcl");
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_bytes = prost::Message::encode_to_vec(&fds);
    std::fs::write(out.join("bcl_descriptor.bin"), &descriptor_bytes)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::codec::BclCodec")
        .compile_fds(fds)?;
    pbjson_build::Builder::new().register_descriptors(&descriptor_bytes)?.build(&[".bcl.v1"])?;
    Ok(())
}
