//! Bad network input and name resolution through the embedded driver: a broker that sends
//! garbage ends the attempt with a typed protocol failure (never a panic), a host name is
//! resolved through the driver's `Dns`, and one that does not resolve is a DNS failure the
//! policy sees. Real sockets on 127.0.0.1 only; counts, no timing assertions.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use support::{TokioClock, TokioTcp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use umqtt_embedded::{
    Client, Driver, EngineConfig, Event, FailureKind, FixedDelay, Server, SessionConfig,
};

const GUARD: Duration = Duration::from_secs(20);

fn client(client_id: &str) -> Client<FixedDelay, TokioClock> {
    let session = SessionConfig {
        client_id: client_id.to_string(),
        keep_alive: 5,
        connect_timeout: Duration::from_secs(2),
        ..SessionConfig::default()
    };
    let policy = FixedDelay {
        delay: Duration::from_millis(50),
    };
    Client::new(EngineConfig::new(session), policy, 1, TokioClock::new())
}

/// The first `AttemptFailed` or `Connected` event, resolving through `dns` if any (else a
/// driver without a resolver, `Driver::new`).
async fn first_outcome(
    client: &Client<FixedDelay, TokioClock>,
    dns: Option<TestDns>,
    servers: &[Server<'_>],
) -> Event {
    let stack = TokioTcp;
    let mut rx = [0u8; 64];
    let (mut driver, mut with_dns) = (None, None);
    match dns {
        Some(dns) => with_dns = Some(Driver::with_dns(client, &stack, dns, servers, &mut rx)),
        None => driver = Some(Driver::new(client, &stack, servers, &mut rx)),
    }
    let run = async {
        match (driver, with_dns) {
            (Some(driver), _) => match driver.run().await {},
            (_, Some(driver)) => match driver.run().await {},
            _ => std::future::pending().await,
        }
    };
    let outcome = async {
        loop {
            let event = client.next_event().await;
            if matches!(event, Event::AttemptFailed { .. } | Event::Connected { .. }) {
                return event;
            }
        }
    };
    tokio::time::timeout(GUARD, async {
        tokio::select! {
            event = outcome => event,
            never = run => never,
        }
    })
    .await
    .expect("an outcome before the guard")
}

#[tokio::test]
async fn garbage_from_the_broker_is_a_protocol_failure() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut connect = [0u8; 256];
            let _ = socket.read(&mut connect).await;
            // A reserved packet type, then a remaining length that never ends.
            let _ = socket
                .write_all(&[0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
                .await;
        }
    });
    let client = client("garbage");
    let event = first_outcome(&client, None, &[Server::Addr(addr)]).await;
    assert!(
        matches!(
            event,
            Event::AttemptFailed {
                kind: FailureKind::Protocol,
                ..
            }
        ),
        "{event:?}"
    );
}

/// Resolves `broker.test` to 127.0.0.1; nothing else.
struct TestDns;

impl umqtt_embedded::Dns for TestDns {
    type Error = ();

    async fn get_host_by_name(
        &self,
        host: &str,
        _addr_type: embedded_nal_async::AddrType,
    ) -> Result<IpAddr, ()> {
        (host == "broker.test")
            .then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .ok_or(())
    }

    async fn get_host_by_address(&self, _addr: IpAddr, _result: &mut [u8]) -> Result<usize, ()> {
        Err(())
    }
}

#[tokio::test]
async fn host_names_resolve_through_the_drivers_dns() {
    let broker = umqtt_testkit::broker::Mosquitto::start();
    let port = broker.port();
    let resolved = client("dns-ok");
    let event = first_outcome(
        &resolved,
        Some(TestDns),
        &[Server::Host("broker.test", port)],
    )
    .await;
    assert!(matches!(event, Event::Connected { .. }), "{event:?}");

    let unknown = client("dns-unknown");
    let event = first_outcome(
        &unknown,
        Some(TestDns),
        &[Server::Host("nowhere.test", port)],
    )
    .await;
    assert!(
        matches!(
            event,
            Event::AttemptFailed {
                kind: FailureKind::Dns,
                ..
            }
        ),
        "{event:?}"
    );

    let no_resolver = client("dns-none");
    let event = first_outcome(&no_resolver, None, &[Server::Host("broker.test", port)]).await;
    assert!(
        matches!(
            event,
            Event::AttemptFailed {
                kind: FailureKind::Configuration,
                ..
            }
        ),
        "{event:?}"
    );
}

/// MQTT 5 Server Reference with `follow_server_references`: a fake broker answers CONNACK
/// 0x9C Use another server naming `broker.test` on mosquitto's port; the driver resolves it
/// through its `Dns` and connects there (server index 1, one past the list).
#[tokio::test]
async fn a_server_reference_is_resolved_and_followed() {
    let broker = umqtt_testkit::broker::Mosquitto::start();
    let reference = format!("broker.test:{}", broker.port());
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let (mut socket, _) = fake.accept().await.unwrap();
        let mut connect = [0u8; 64];
        let _ = socket.read(&mut connect).await.unwrap();
        // MQTT 5 CONNACK 0x9C with a Server Reference (0x1C).
        let mut properties = vec![0x1C];
        properties.extend_from_slice(&(reference.len() as u16).to_be_bytes());
        properties.extend_from_slice(reference.as_bytes());
        let mut packet = vec![0x20, (3 + properties.len()) as u8, 0x00, 0x9C];
        packet.push(properties.len() as u8);
        packet.extend_from_slice(&properties);
        socket.write_all(&packet).await.unwrap();
        1
    });
    let session = SessionConfig {
        client_id: "moved".to_string(),
        keep_alive: 5,
        connect_timeout: Duration::from_secs(2),
        protocol: umqtt_core::packet::ProtocolVersion::V5,
        ..SessionConfig::default()
    };
    let mut config = EngineConfig::new(session);
    config.follow_server_references = true;
    let policy = FixedDelay {
        delay: Duration::from_millis(10),
    };
    let client = Client::new(config, policy, 1, TokioClock::new());
    let stack = TokioTcp;
    let mut rx = [0u8; 64];
    let servers = [Server::Addr(fake_addr)];
    let driver = Driver::with_dns(&client, &stack, TestDns, &servers, &mut rx);
    let connected = async {
        loop {
            if let Event::Connected { server, .. } = client.next_event().await {
                return server;
            }
        }
    };
    let server = tokio::time::timeout(GUARD, async {
        tokio::select! {
            server = connected => server,
            never = driver.run() => match never {},
        }
    })
    .await
    .expect("connected before the guard");
    assert_eq!(server, 1, "the referenced server");
    assert_eq!(accepted.await.unwrap(), 1);
    assert_eq!(client.stats().redirects, 1);
}
