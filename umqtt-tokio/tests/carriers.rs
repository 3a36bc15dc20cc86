//! The async robust client over every transport against a real mosquitto: WebSocket and
//! secure WebSocket (the testkit's bridge and TLS terminator), SOCKS5 and HTTP CONNECT
//! proxies, a Unix socket. Each carries a subscription and a QoS 1 publish through a
//! reconnect; the servers count their tunnels, and a reconnect over TLS is resumed.

use std::time::Duration;

use umqtt::transport::{ProxyConfig, TlsConfig, TransportConfig, WebSocketConfig};
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::certs::TestCerts;
use umqtt_testkit::tunnel::{ProxyProtocol, ProxyServer, TlsTerminator, TlsVersions, WsBridge};
use umqtt_tokio::robust::{Client, Event, Events, FixedDelay, Handle, RobustConfig};
use umqtt_tokio::{ClientConfig, QoS};

/// Guards against a hang; never part of what a test proves.
const GUARD: Duration = Duration::from_secs(20);

fn config(host: &str, port: u16, client_id: &str) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_string(),
        server: host.to_string(),
        port: Some(port),
        keep_alive: 5,
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

async fn until(events: &mut Events, what: &str, mut done: impl FnMut(&Event) -> bool) {
    let found = tokio::time::timeout(GUARD, async {
        while let Some(event) = events.next().await {
            if done(&event) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "waiting for {what}");
}

/// A QoS 1 publish to the client's own subscription: back as a message, and acknowledged.
async fn echo(handle: &Handle, events: &mut Events, topic: &str, payload: &[u8]) {
    let _receipt = handle
        .publish(topic, payload, QoS::AtLeastOnce, false)
        .await
        .unwrap();
    until(
        events,
        "the message back",
        |event| matches!(event, Event::Message(m) if m.topic == topic && m.payload == payload),
    )
    .await;
    // The PUBACK's outcome passes through the event stream: keep reading it.
    let acknowledged = tokio::time::timeout(GUARD, async {
        while handle.pending() > 0 {
            let _ = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
        }
    })
    .await;
    assert!(acknowledged.is_ok(), "no PUBACK");
}

async fn through_a_reconnect(config: ClientConfig, cut: impl Fn()) -> Handle {
    let topic = format!("carrier/{}", config.client_id);
    let (handle, mut events) = Client::new(
        config,
        FixedDelay {
            delay: Duration::from_millis(50),
        },
    )
    .robust_config(RobustConfig {
        seed: Some(1),
        ..RobustConfig::default()
    })
    .spawn()
    .unwrap();
    handle.subscribe(&topic, QoS::AtLeastOnce).unwrap();
    until(&mut events, "the SUBACK", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    echo(&handle, &mut events, &topic, b"before").await;
    cut();
    until(&mut events, "the reconnect", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    echo(&handle, &mut events, &topic, b"after").await;
    assert_eq!(handle.transport_stats().opened, 2);
    handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_with_a_header() {
    let broker = Mosquitto::start();
    let bridge = WsBridge::start(broker.port());
    let mut config = config("127.0.0.1", bridge.port(), "async-ws");
    config.transport = TransportConfig::websocket(
        WebSocketConfig::new("/mqtt").header("Authorization", "Bearer async"),
    );
    through_a_reconnect(config, || bridge.cut_all()).await;
    assert!(bridge.wait_tunnels(2, GUARD));
    let record = &bridge.records()[0];
    assert_eq!(record.subprotocols, ["mqtt"]);
    assert!(record
        .headers
        .contains(&("authorization".into(), "Bearer async".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_websocket_resumes_tls() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::start();
    let bridge = WsBridge::start(broker.port());
    let tls = TlsTerminator::start(certs.server(), bridge.port(), TlsVersions::Both, &["mqtt"]);
    let mut config = config("localhost", tls.port(), "async-wss");
    config.tls = Some(
        TlsConfig::new()
            .ca_file(certs.ca().cert_path())
            .alpn(["mqtt"]),
    );
    config.transport = TransportConfig::websocket(WebSocketConfig::default());
    let handle = through_a_reconnect(config, || tls.cut_all()).await;
    let stats = handle.transport_stats();
    assert_eq!(
        (stats.tls_full_handshakes, stats.tls_resumed_handshakes),
        (1, 1)
    );
    assert!(tls.wait_tunnels(2, GUARD));
    let records = tls.records();
    assert_eq!(
        records.iter().map(|r| r.resumed).collect::<Vec<_>>(),
        [false, true]
    );
    assert!(records.iter().all(|r| r.alpn_offered == [b"mqtt".to_vec()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_and_http_connect_proxies() {
    let broker = Mosquitto::start();
    for protocol in [ProxyProtocol::Socks5, ProxyProtocol::HttpConnect] {
        let proxy = ProxyServer::start(protocol, Some(("me", "secret")));
        let mut config = config("localhost", broker.port(), &format!("async-{protocol:?}"));
        config.transport = TransportConfig::tcp().proxy(ProxyConfig::parse(&proxy.url()).unwrap());
        through_a_reconnect(config, || proxy.cut_all()).await;
        assert!(proxy.wait_tunnels(2, GUARD), "{protocol:?}");
        assert_eq!(
            proxy.records()[1].target,
            format!("localhost:{}", broker.port())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_through_a_broker_restart() {
    let directory = tempfile::tempdir().unwrap();
    let socket = directory.path().join("mq.sock");
    let broker = std::sync::Mutex::new(
        Mosquitto::builder()
            .config_line(format!("listener 0 {}", socket.display()))
            .start(),
    );
    let mut config = config("unused", 1, "async-unix");
    config.transport = TransportConfig::unix(&socket);
    through_a_reconnect(config, || broker.lock().unwrap().restart()).await;
}
