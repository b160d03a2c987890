//! An acknowledged append survives `kill -9` of the server.

mod common;

use bcl_proto::AppendRequest;
use common::*;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_kill_9_mid_load() {
    let dir = tempfile::tempdir().unwrap();
    let events = fixture(400).events;
    assert!(events.len() > 2000, "enough load to be killed in the middle of it");
    let server = Server::start(dir.path(), NOW);

    // The loader appends batch after batch and publishes how many events were acknowledged and at which
    // positions. It keeps going (a request is in flight) when the server is killed.
    let (acked_tx, mut acked_rx) = watch::channel(Vec::<u64>::new());
    let mut client = server.ingest().await;
    let batches: Vec<Vec<_>> = events.chunks(25).map(|c| c.to_vec()).collect();
    let loader = tokio::spawn(async move {
        let mut positions = Vec::new();
        for batch in batches {
            match client.append(AppendRequest { events: batch }).await {
                Ok(resp) => {
                    positions.extend(resp.into_inner().positions);
                    acked_tx.send_replace(positions.clone());
                }
                Err(_) => break, // the server died under us
            }
        }
    });
    acked_rx.wait_for(|p| p.len() >= 1000).await.unwrap();
    server.kill9();
    loader.await.unwrap();
    let acked = acked_rx.borrow().clone();
    assert!(acked.len() < events.len(), "the server was killed before the load finished");

    // Restart on the same data directory: every acknowledged event is there, at its original position.
    let server = Server::start(dir.path(), NOW);
    let st = status(&server, CODE).await;
    assert!(st.received_seq >= acked.len() as u64, "received_seq {} < acked {}", st.received_seq, acked.len());
    assert_eq!(st.applied_seq, st.received_seq, "nothing half-applied after the crash");
    let mut client = server.ingest().await;
    let resent = client.append(AppendRequest { events: events[..acked.len()].to_vec() }).await.unwrap().into_inner();
    assert_eq!(resent.positions, acked, "re-sending acknowledged events finds them at their original positions");
    // And the rest of the load can continue where it stopped.
    for chunk in events[acked.len()..].chunks(500) {
        client.append(AppendRequest { events: chunk.to_vec() }).await.unwrap();
    }
    let st = status(&server, CODE).await;
    assert_eq!(st.applied_seq, events.len() as u64);
}
