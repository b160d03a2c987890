//! The `bcl.v1` contract (see `proto/bcl/v1/*.proto`): message types, gRPC clients and servers, and serde
//! impls that follow the proto3 canonical JSON mapping, which is the JSON Lines interchange format of the
//! data link.

pub mod codec;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/bcl.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/bcl.v1.serde.rs"));
}

/// Encoded `FileDescriptorSet` of the contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bcl_descriptor.bin"));

pub use v1::*;
