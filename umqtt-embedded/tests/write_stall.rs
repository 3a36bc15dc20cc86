//! A broker that stops reading (its receive window full, the socket open): the driver's write
//! cannot complete, and after the session's link timeout (keepalive + PINGRESP wait) the link
//! counts as lost, with a typed `WriteStalled`, and the engine reconnects. tokio's paused
//! clock and in-memory pipes: deterministic, no real waiting.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use embedded_io_adapters::tokio_1::FromTokio;
use support::TokioClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use umqtt_embedded::{
    Client, Driver, EngineConfig, Event, FixedDelay, QoS, Server, SessionConfig, TcpConnect,
    TransportError,
};

/// Each connection is a small in-memory pipe whose broker end answers CONNECT with CONNACK
/// and then never reads again.
struct StallingBroker;

impl TcpConnect for StallingBroker {
    type Error = std::io::Error;
    type Connection<'a> = FromTokio<DuplexStream>;

    async fn connect<'a>(&'a self, _remote: SocketAddr) -> std::io::Result<Self::Connection<'a>> {
        let (client, mut broker) = tokio::io::duplex(256);
        tokio::spawn(async move {
            let mut connect = [0u8; 256];
            let _ = broker.read(&mut connect).await;
            let _ = broker.write_all(&[0x20, 0x02, 0x00, 0x00]).await;
            // Holds the pipe open, reading nothing.
            std::future::pending::<()>().await;
            drop(broker);
        });
        Ok(FromTokio::new(client))
    }
}

#[tokio::test(start_paused = true)]
async fn a_broker_that_stops_reading_is_a_lost_link() {
    let session = SessionConfig {
        client_id: "stall".into(),
        keep_alive: 10,
        ..SessionConfig::default()
    };
    let link_timeout = session.link_timeout().expect("keepalive on");
    let policy = FixedDelay {
        delay: Duration::from_secs(1),
    };
    let client = Client::new(EngineConfig::new(session), policy, 1, TokioClock::new());
    let stack = StallingBroker;
    let servers = [Server::Addr(SocketAddr::from(([127, 0, 0, 1], 1883)))];
    let mut rx = [0u8; 256];
    let driver = Driver::new(&client, &stack, &servers, &mut rx);
    let body = async {
        loop {
            if let Event::Connected { .. } = client.next_event().await {
                break;
            }
        }
        // Larger than the pipe: the write cannot complete.
        let stuck_at = tokio::time::Instant::now();
        client
            .publish("big", &[7u8; 4096], QoS::AtLeastOnce, false)
            .expect("queued");
        let error = loop {
            if let Event::Disconnected { error, .. } = client.next_event().await {
                break error;
            }
        };
        let waited = stuck_at.elapsed();
        let reconnected = loop {
            if let Event::Connected { .. } = client.next_event().await {
                break true;
            }
        };
        (error, waited, reconnected)
    };
    let (error, waited, reconnected) = tokio::select! {
        out = body => out,
        never = driver.run() => match never {},
    };
    assert_eq!(
        error,
        umqtt_core::robust::LinkError::Transport(TransportError::WriteStalled)
    );
    // On the virtual clock: given up at the bound, not before (a counted instant, not a
    // measured duration).
    assert!(waited >= link_timeout, "{waited:?} < {link_timeout:?}");
    assert!(reconnected);
    assert_eq!(client.pending(), 1, "the message waits for the next link");
}
