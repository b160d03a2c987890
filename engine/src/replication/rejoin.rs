//! Start-up of a replicated centre: find the other centre, agree who sequences, and discard a tail of
//! this log that the other centre never received (it was never acknowledged to anyone) before following.

use super::{peer::Peer, CentreName, ReplicationConfig, Role};
use crate::audit::log::StoreNodes;
use crate::audit::merkle;
use crate::commit_gate::GateMode;
use crate::error::EngineError;
use crate::projection::Projection;
use crate::storage::LogStore;
use bcl_proto::{centre_status, leadership::Mode, log_leaf::Kind, CentreStatus, LogLeaf, RootAtRequest};
use prost::Message;
use std::path::Path;
use std::time::{Duration, Instant};

/// How this centre starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub role: Role,
    pub epoch: u64,
    /// A Leadership marker to write once the writer runs (a new primary, or a changed mode).
    pub marker: Option<GateMode>,
    /// Leaves discarded from this log (never acknowledged; a copy is kept in `discarded/`).
    pub discarded: u64,
}

/// Decides the start-up role, truncating this log when the other centre (the primary) does not hold its
/// tail. `projection` is the fold of `store` and is rebuilt by the caller if `discarded > 0`.
pub async fn decide(
    store: &dyn LogStore,
    projection: &Projection,
    config: &ReplicationConfig,
    data_dir: &Path,
    secret_fingerprint: &str,
) -> Result<Start, EngineError> {
    let peer = Peer::new(config)?;
    let me = config.centre;
    let (my_leader, my_epoch, my_mode) = match &projection.leadership {
        Some((_, l)) => (CentreName::parse(&l.centre), l.epoch, Some(l.mode)),
        None => (Some(config.first_primary), 0, None),
    };
    let deadline = Instant::now() + config.peer_wait;
    let status: Option<CentreStatus> = loop {
        match peer.status().await {
            Ok(s) => break Some(s),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => break None,
        }
    };
    if let Some(s) = &status {
        if !s.secret_fingerprint.is_empty() && s.secret_fingerprint != secret_fingerprint {
            return Err(EngineError::Diverged(
                "the two centres hold different scramble master secrets: provision the same file to both with \
                 --master-secret, or a certificate issued at one centre cannot be reproduced or verified at the other"
                    .into(),
            ));
        }
    }
    let marker_for = |mode: GateMode| {
        let wanted = match mode {
            GateMode::Sync => Mode::Sync,
            GateMode::Solo => Mode::Solo,
        } as i32;
        (my_mode != Some(wanted)).then_some(mode)
    };
    match status {
        Some(s) if s.role == centre_status::Role::Primary as i32 => {
            if s.epoch < my_epoch {
                return Err(EngineError::Diverged(format!(
                    "the other centre sequences at epoch {} but this log already holds epoch {my_epoch}",
                    s.epoch
                )));
            }
            let discarded = discard_unshared_tail(store, &peer, s.log_size, data_dir, me).await?;
            Ok(Start { role: Role::Follower, epoch: s.epoch, marker: None, discarded })
        }
        Some(s) => {
            // Neither sequences (both starting): the newer Leadership leaf of the two logs decides.
            let leader = if s.leader_epoch > my_epoch { CentreName::parse(&s.leader) } else { my_leader };
            if leader == Some(me) {
                let epoch = my_epoch.max(1);
                Ok(Start {
                    role: Role::Primary { epoch, mode: GateMode::Sync },
                    epoch,
                    marker: marker_for(GateMode::Sync).or((my_epoch == 0).then_some(GateMode::Sync)),
                    discarded: 0,
                })
            } else {
                Ok(Start { role: Role::Follower, epoch: my_epoch.max(s.leader_epoch), marker: None, discarded: 0 })
            }
        }
        None if my_leader == Some(me) => {
            // Alone at start and this log names this centre as primary: carry on alone, recorded as SOLO.
            let epoch = my_epoch.max(1);
            tracing::warn!(centre = me.as_str(), "the other centre is not reachable: starting alone (degraded)");
            let marker = marker_for(GateMode::Solo).or((my_epoch == 0).then_some(GateMode::Solo));
            Ok(Start { role: Role::Primary { epoch, mode: GateMode::Solo }, epoch, marker, discarded: 0 })
        }
        None => {
            tracing::warn!(
                centre = me.as_str(),
                "the other centre (the primary) is not reachable: following it when it appears; refusing issuance meanwhile"
            );
            Ok(Start { role: Role::Follower, epoch: my_epoch, marker: None, discarded: 0 })
        }
    }
}

/// Finds the longest common prefix with the primary (Merkle roots are equal exactly for equal prefixes)
/// and discards this log's leaves after it, unless one of them may have been acknowledged: a SOLO marker
/// of this centre among them means it acknowledged writes alone, and discarding would lose them.
async fn discard_unshared_tail(
    store: &dyn LogStore,
    peer: &Peer,
    peer_len: u64,
    data_dir: &Path,
    me: CentreName,
) -> Result<u64, EngineError> {
    let len = store.len();
    let nodes = StoreNodes(store);
    let ours = |size: u64| merkle::root(&nodes, size).map_err(|e| EngineError::Internal(format!("tree root: {e}")));
    let theirs = |size: u64| async move {
        let root =
            peer.replication().root_at(RootAtRequest { size }).await.map_err(super::forwarded)?.into_inner().root;
        Ok::<_, EngineError>(root)
    };
    let top = len.min(peer_len);
    let common = if ours(top)?.as_slice() == theirs(top).await?.as_slice() {
        top
    } else {
        // Equal at `lo`, different at `hi`.
        let (mut lo, mut hi) = (0u64, top);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if ours(mid)?.as_slice() == theirs(mid).await?.as_slice() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    };
    if common == len {
        return Ok(0);
    }
    let tail = store.read(common, (len - common) as usize)?;
    let mut kinds = std::collections::BTreeMap::<&str, u64>::new();
    for (position, bytes) in &tail {
        let kind = match LogLeaf::decode(bytes.as_slice()).ok().and_then(|l| l.kind) {
            Some(Kind::Leadership(l)) if l.centre == me.as_str() && l.mode == Mode::Solo as i32 => {
                return Err(EngineError::Diverged(format!(
                    "this centre acknowledged writes alone from position {position} that the primary does not \
                     hold; an operator must reconcile the two logs (nothing was discarded)"
                )))
            }
            Some(Kind::ChangeEvent(_)) => "change_event",
            Some(Kind::SealedChangeEvent(_)) => "sealed_change_event",
            Some(Kind::Forgotten(_)) => "forgotten",
            Some(Kind::Issuance(_)) => "issuance",
            Some(Kind::Admin(_)) => "admin",
            Some(Kind::LinkAnomaly(_)) => "link_anomaly",
            Some(Kind::Refusal(_)) => "refusal",
            Some(Kind::Leadership(_)) => "leadership",
            None => "unknown",
        };
        *kinds.entry(kind).or_default() += 1;
    }
    // Keep the discarded leaves for the auditor: length-prefixed, exactly as they were stored.
    let dir = data_dir.join("discarded");
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::Internal(format!("discarded/: {e}")))?;
    let mut copy = Vec::new();
    for (_, bytes) in &tail {
        copy.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        copy.extend_from_slice(bytes);
    }
    let file = dir.join(format!("positions-{common}-{len}.leaves"));
    crate::secrets::write_private(&file, &copy).map_err(|e| EngineError::Internal(format!("discarded/: {e}")))?;
    store.truncate(common)?;
    tracing::warn!(
        from = common,
        to = len,
        kinds = ?kinds,
        copy = %file.display(),
        "discarded this centre's unacknowledged tail that the primary never received"
    );
    Ok(len - common)
}
