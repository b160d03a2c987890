//! `Audit.ReadLog`: a catch-up read of the durable log that can keep following new leaves.

use crate::engine::Engine;
use bcl_proto::{LogEntry, ReadLogRequest};
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::Status;

const PAGE: usize = 1024;

pub fn stream(engine: Arc<Engine>, req: ReadLogRequest) -> impl Stream<Item = Result<LogEntry, Status>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(PAGE);
    tokio::spawn(async move {
        let mut next = req.from_position;
        let mut remaining = if req.limit == 0 { u64::MAX } else { req.limit };
        let mut grown = engine.subscribe_len();
        while remaining > 0 {
            let page = match engine.read_log(next, PAGE.min(remaining as usize)) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(super::status::to_status(e))).await;
                    return;
                }
            };
            if page.is_empty() {
                if !req.follow {
                    return;
                }
                // Wait until the durable log grows past `next` (or the client goes away).
                tokio::select! {
                    changed = grown.wait_for(|&len| len > next) => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
                continue;
            }
            for (position, leaf) in page {
                next = position + 1;
                remaining -= 1;
                if tx.send(Ok(LogEntry { position, leaf })).await.is_err() {
                    return;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
