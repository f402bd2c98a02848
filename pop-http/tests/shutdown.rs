//! Graceful shutdown over HTTP: when `pop_http::serve`'s shutdown signal fires, the server stops
//! accepting connections, a request already in flight (its body half sent) is read to the end and
//! answered, and every submission that was acknowledged (200) is in the store when it is opened again
//! after the server stopped.
//!
//! `cargo test -p pop-http --test shutdown`

mod common;

use common::{OWNER, OWNER_TOKEN, Server, Who, agenda, engine_at, world};
use pop_core::authz::Principal;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_and_nothing_acknowledged_is_lost() {
    let mut server = Server::start().await;
    world(&server.engine).await;
    let addr = server.base.trim_start_matches("http://").to_owned();

    // A request in flight: its headers and half of its body are sent, the rest comes later.
    let body = serde_json::to_vec(&agenda(OWNER, "in-flight")).expect("json");
    let mut in_flight = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /pop/agenda HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {OWNER_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.expect("send the head");
    in_flight.write_all(&body[..body.len() / 2]).await.expect("send half the body");

    // Meanwhile four clients submit as fast as they can, until the server stops answering.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for c in 0..4 {
        let client = Who::Owner.client(&server.base);
        let acknowledged = Arc::clone(&acknowledged);
        clients.push(tokio::spawn(async move {
            let mut refused = 0;
            for i in 0.. {
                match client.submit(&agenda(OWNER, &format!("load-{c}-{i}"))).await {
                    Ok(a) => acknowledged.lock().expect("lock").push(a.id.expect("id")),
                    Err(_) => {
                        refused += 1;
                        if refused > 3 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = acknowledged.lock().expect("lock").len();
    assert!(before > 0, "the clients got answers before the shutdown");

    server.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connection is accepted...
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "a connection was accepted after the shutdown signal"
    );
    // ... but the request in flight is read to the end and answered.
    in_flight.write_all(&body[body.len() / 2..]).await.expect("send the rest of the body");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), in_flight.read_to_end(&mut answer))
        .await
        .expect("the in-flight request is answered")
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "the in-flight request: {answer}");
    let json: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).expect("a body")).expect("a JSON body");
    let in_flight_id = json["all"][0]["id"].as_str().expect("the stored agenda's id").to_owned();

    tokio::time::timeout(Duration::from_secs(10), server.join())
        .await
        .expect("the server stops once its requests are answered")
        .expect("the server stops without an error");
    for c in clients {
        c.await.expect("client task");
    }

    // Open the store again: every acknowledged submission is there, with its progress.
    let mut acknowledged = acknowledged.lock().expect("lock").clone();
    acknowledged.push(in_flight_id);
    let dir = server.dir.take().expect("dir");
    drop(server);
    let engine = engine_at(dir.path());
    let su = Principal::superuser("check");
    for id in &acknowledged {
        engine.agendas().get(&su, id).await.unwrap_or_else(|e| panic!("acknowledged agenda {id} lost: {e}"));
        let p = engine.progress().agenda_progress(&su, id).await.unwrap_or_else(|e| panic!("progress of {id}: {e}"));
        assert_eq!(p.operation_progress.len(), 1, "{id}");
    }
    println!(
        "{} acknowledged submissions (one in flight at the signal), all found after the restart",
        acknowledged.len()
    );
}
