//! The engine's answers to `Audit.GetCheckpoint`, `GetInclusionProof` and `GetConsistencyProof`: proofs
//! are computed from the stored tree nodes, for any tree size up to the durable log.

use super::log::{SignedCheckpoint, StoreNodes};
use super::merkle::{self, Hash, MerkleError};
use crate::engine::Engine;
use crate::error::EngineError;
use std::sync::Arc;

fn proof_error(e: MerkleError) -> EngineError {
    match e {
        e @ (MerkleError::IndexBeyondTree { .. }
        | MerkleError::FirstBeyondSecond { .. }
        | MerkleError::SizeBeyondTree { .. }) => EngineError::Invalid(e.to_string()),
        other => EngineError::Internal(format!("audit tree: {other}")),
    }
}

impl Engine {
    /// The latest signed checkpoint (published after every durable batch).
    pub fn checkpoint(&self) -> Arc<SignedCheckpoint> {
        self.audit.checkpoint()
    }

    /// The C2SP verifier key of this log's checkpoints.
    pub fn verifier_key(&self) -> String {
        self.audit.verifier_key()
    }

    fn check_size(&self, field: &str, size: u64) -> Result<(), EngineError> {
        let available = self.store.len();
        if size > available {
            return Err(EngineError::Invalid(format!(
                "{field} {size} is beyond the log's current size {available}"
            )));
        }
        Ok(())
    }

    /// The audit path of leaf `leaf_index` in the tree of the first `tree_size` leaves.
    pub fn inclusion_proof(
        &self,
        leaf_index: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash>, EngineError> {
        self.check_size("tree_size", tree_size)?;
        if leaf_index >= tree_size {
            return Err(EngineError::Invalid(format!(
                "leaf_index {leaf_index} must be below tree_size {tree_size}"
            )));
        }
        merkle::inclusion_proof(&StoreNodes(self.store.as_ref()), leaf_index, tree_size)
            .map_err(proof_error)
    }

    /// The proof that the tree of `first_size` leaves is a prefix of the tree of `second_size` leaves.
    pub fn consistency_proof(
        &self,
        first_size: u64,
        second_size: u64,
    ) -> Result<Vec<Hash>, EngineError> {
        self.check_size("second_size", second_size)?;
        if first_size > second_size {
            return Err(EngineError::Invalid(format!(
                "first_size {first_size} must not be larger than second_size {second_size}"
            )));
        }
        merkle::consistency_proof(&StoreNodes(self.store.as_ref()), first_size, second_size)
            .map_err(proof_error)
    }
}
