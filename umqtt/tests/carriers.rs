//! Every transport end to end against a real mosquitto: WebSocket (through the testkit's
//! WebSocket bridge), secure WebSocket (a TLS terminator in front of the bridge), HTTP
//! CONNECT and SOCKS5 proxies, a Unix domain socket, and TLS with ALPN and session resumption
//! (a recording TLS terminator). Each carries a QoS 1 publish and a subscription through a
//! reconnect of the robust client; the servers count their tunnels, so the tests know the
//! client really went through them. Then the errors a bad server or proxy gives: typed, and
//! bounded by the connect timeout.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use umqtt::robust::{Client, FixedDelay, RobustConfig};
use umqtt::transport::{
    self, ProxyConfig, ProxyError, TlsConfig, TlsHandshake, Transport, TransportConfig,
    TransportError, WebSocketConfig, WebSocketError,
};
use umqtt::{simple, ClientConfig, QoS};
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::certs::TestCerts;
use umqtt_testkit::tunnel::{
    ProxyProtocol, ProxyServer, TlsTerminator, TlsVersions, WsAnswer, WsBridge,
};

/// Generous: only a failure waits this long.
const PATIENCE: Duration = Duration::from_secs(15);

fn config(host: &str, port: u16, client_id: &str) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_owned(),
        server: host.to_owned(),
        port: Some(port),
        keep_alive: 5,
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

fn tls_to(certs: &TestCerts) -> TlsConfig {
    TlsConfig::new().ca_file(certs.ca().cert_path())
}

/// Drives `client` until `done`, at most [`PATIENCE`].
fn drive_until(client: &mut Client, what: &str, mut done: impl FnMut(&mut Client) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done(client) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        client.run_for(Duration::from_millis(10)).unwrap();
    }
}

/// Publishes `payload` at QoS 1 to the client's own subscription and waits until it comes
/// back and the broker acknowledged it.
fn echo(client: &mut Client, topic: &str, payload: &[u8]) {
    client
        .publish(topic, payload, QoS::AtLeastOnce, false)
        .unwrap();
    let message = client
        .wait_msg(PATIENCE)
        .unwrap()
        .unwrap_or_else(|| panic!("{topic}: no message back"));
    assert_eq!(
        (message.topic.as_str(), &message.payload[..]),
        (topic, payload)
    );
    drive_until(client, "the PUBACK", |c| c.pending() == 0);
}

/// The scenario every transport must carry: connect, subscribe, a QoS 1 round trip; then
/// `cut` the link, and the same after the robust client reconnected on its own (`tunnels`
/// must then report a second tunnel).
fn through_a_reconnect(
    config: ClientConfig,
    cut: &dyn Fn(),
    tunnels: &dyn Fn(usize) -> bool,
) -> Client {
    let topic = format!("carrier/{}", config.client_id);
    let mut client = Client::with_robust_config(
        config,
        FixedDelay {
            delay: Duration::from_millis(50),
        },
        RobustConfig {
            clean_session: false,
            ..RobustConfig::default()
        },
    );
    client.subscribe(&topic, QoS::AtLeastOnce).unwrap();
    client.connect().unwrap();
    assert!(tunnels(1), "the first connection did not go through");
    echo(&mut client, &topic, b"before");

    cut();
    drive_until(&mut client, "the link to drop", |c| !c.is_connected());
    drive_until(&mut client, "the reconnect", |c| c.is_connected());
    assert!(tunnels(2), "the reconnect did not go through");
    echo(&mut client, &topic, b"after");
    assert_eq!(client.transport_stats().opened, 2);
    client
}

#[test]
fn websocket_carries_qos1_and_a_subscription_through_a_reconnect() {
    let broker = Mosquitto::start();
    let bridge = WsBridge::start(broker.port());
    let mut config = config("127.0.0.1", bridge.port(), "ws");
    config.transport = TransportConfig::websocket(
        WebSocketConfig::new("/mqtt").header("Authorization", "Bearer token-1"),
    );
    through_a_reconnect(config, &|| bridge.cut_all(), &|n| {
        bridge.wait_tunnels(n, PATIENCE)
    });
    let record = &bridge.records()[0];
    assert_eq!(record.path, "/mqtt");
    assert_eq!(record.subprotocols, ["mqtt"]);
    assert!(
        record
            .headers
            .contains(&("authorization".into(), "Bearer token-1".into())),
        "{:?}",
        record.headers
    );
}

#[test]
fn secure_websocket_carries_qos1_through_a_reconnect_and_resumes_tls() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::start();
    let bridge = WsBridge::start(broker.port());
    let tls = TlsTerminator::start(certs.server(), bridge.port(), TlsVersions::Both, &[]);
    let mut config = config("localhost", tls.port(), "wss");
    config.tls = Some(tls_to(&certs));
    config.transport = TransportConfig::websocket(WebSocketConfig::default());
    let client = through_a_reconnect(config, &|| tls.cut_all(), &|n| {
        tls.wait_tunnels(n, PATIENCE) && bridge.wait_tunnels(n, PATIENCE)
    });
    let stats = client.transport_stats();
    assert_eq!(
        (stats.tls_full_handshakes, stats.tls_resumed_handshakes),
        (1, 1)
    );
}

#[test]
fn socks5_proxy_with_password_carries_qos1_through_a_reconnect() {
    let broker = Mosquitto::start();
    let proxy = ProxyServer::start(ProxyProtocol::Socks5, Some(("me", "secret")));
    let mut config = config("localhost", broker.port(), "socks");
    config.transport = TransportConfig::tcp()
        .proxy(ProxyConfig::socks5("127.0.0.1", proxy.port()).credentials("me", "secret"));
    through_a_reconnect(config, &|| proxy.cut_all(), &|n| {
        proxy.wait_tunnels(n, PATIENCE)
    });
    let records = proxy.records();
    // socks5h: the proxy resolved the broker's name.
    assert_eq!(records[0].target, format!("localhost:{}", broker.port()));
    assert_eq!(
        records[0].credentials,
        Some(("me".to_owned(), "secret".to_owned()))
    );
}

#[test]
fn http_connect_proxy_carries_tls_qos1_through_a_reconnect() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let proxy = ProxyServer::start(ProxyProtocol::HttpConnect, Some(("u", "p")));
    let mut config = config("localhost", broker.tls_port(), "http-connect");
    config.tls = Some(tls_to(&certs));
    config.transport = TransportConfig::tcp().proxy(ProxyConfig::parse(&proxy.url()).unwrap());
    through_a_reconnect(config, &|| proxy.cut_all(), &|n| {
        proxy.wait_tunnels(n, PATIENCE)
    });
    let record = &proxy.records()[0];
    assert_eq!(record.target, format!("localhost:{}", broker.tls_port()));
    assert_eq!(record.credentials, Some(("u".to_owned(), "p".to_owned())));
}

#[test]
fn unix_socket_carries_qos1_through_a_broker_restart() {
    let directory = tempfile::tempdir().unwrap();
    let socket = directory.path().join("mq.sock");
    let mut broker = Mosquitto::builder()
        .config_line(format!("listener 0 {}", socket.display()))
        .start();
    let mut config = config("ignored", 1, "unix");
    config.transport = TransportConfig::unix(&socket);
    let broker_cell = std::cell::RefCell::new(&mut broker);
    let connections = std::cell::Cell::new(0usize);
    through_a_reconnect(
        config,
        &|| broker_cell.borrow_mut().restart(),
        // The client counts its own opens (asserted in the scenario); the broker's log shows
        // each connection came in on the socket.
        &|n| {
            connections.set(n);
            true
        },
    );
    assert_eq!(connections.get(), 2);
}

#[test]
fn alpn_is_offered_and_the_selected_protocol_reported() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::start();
    let tls = TlsTerminator::start(
        certs.server(),
        broker.port(),
        TlsVersions::Both,
        &["x-amzn-mqtt-ca"],
    );
    let config_tls = tls_to(&certs).alpn(["x-amzn-mqtt-ca", "mqtt"]);
    let transport = transport::open(
        "localhost",
        tls.port(),
        Some(&config_tls),
        &TransportConfig::tcp(),
        PATIENCE,
    )
    .unwrap();
    assert_eq!(transport.alpn_protocol(), Some(&b"x-amzn-mqtt-ca"[..]));
    assert!(tls.wait_tunnels(1, PATIENCE));
    assert_eq!(
        tls.records()[0].alpn_offered,
        [b"x-amzn-mqtt-ca".to_vec(), b"mqtt".to_vec()]
    );

    // And end to end with the simple client, through a reconnect.
    let mut config = config("localhost", tls.port(), "alpn");
    config.tls = Some(config_tls);
    let mut client: simple::Client<Transport> = simple::Client::with_config(config);
    for round in 0..2 {
        client.connect(true).unwrap();
        client.subscribe("carrier/alpn", QoS::AtLeastOnce).unwrap();
        client
            .publish("carrier/alpn", b"hi", QoS::AtLeastOnce, false)
            .unwrap();
        let message = client.wait_msg_timeout(PATIENCE).unwrap().expect("echo");
        assert_eq!(&message.payload[..], b"hi", "round {round}");
        client.disconnect().unwrap();
    }
    assert!(tls.wait_tunnels(3, PATIENCE));
    assert!(tls.records()[1..]
        .iter()
        .all(|r| r.alpn_offered[0] == b"x-amzn-mqtt-ca"));
}

/// A reconnect resumes the TLS session (TLS 1.3 ticket, TLS 1.2 session id): counted in the
/// robust client's statistics and seen by the server; without resumption, every handshake
/// is full.
#[test]
fn reconnects_resume_the_tls_session_with_tls13_and_tls12() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::start();
    for (versions, name) in [(TlsVersions::Tls13, "tls13"), (TlsVersions::Tls12, "tls12")] {
        for resume in [true, false] {
            let tls = TlsTerminator::start(certs.server(), broker.port(), versions, &[]);
            let mut config = config("localhost", tls.port(), &format!("{name}-{resume}"));
            config.tls = Some(tls_to(&certs).session_resumption(resume));
            let client = through_a_reconnect(config, &|| tls.cut_all(), &|n| {
                tls.wait_tunnels(n, PATIENCE)
            });
            let stats = client.transport_stats();
            let resumed: Vec<bool> = tls.records().iter().map(|r| r.resumed).collect();
            if resume {
                assert_eq!(
                    (stats.tls_full_handshakes, stats.tls_resumed_handshakes),
                    (1, 1),
                    "{name}"
                );
                assert_eq!(resumed, [false, true], "{name}: the server's view");
            } else {
                assert_eq!(
                    (stats.tls_full_handshakes, stats.tls_resumed_handshakes),
                    (2, 0),
                    "{name}"
                );
                assert_eq!(resumed, [false, false], "{name}: the server's view");
            }
        }
    }
}

#[test]
fn the_handshake_kind_is_reported_per_transport() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let tls = tls_to(&certs);
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let transport =
            transport::connect("localhost", broker.tls_port(), Some(&tls), PATIENCE).unwrap();
        kinds.push(transport.tls_handshake());
        // The broker's session ticket arrives after the handshake: read until CONNACK.
        let mut client: simple::Client<Transport> =
            simple::Client::with_config(config("localhost", 1, "kind"));
        client.connect_with_stream(transport, true).unwrap();
        client.disconnect().unwrap();
    }
    assert_eq!(
        kinds,
        [Some(TlsHandshake::Full), Some(TlsHandshake::Resumed)]
    );
}

fn open_error(port: u16, tls: Option<&TlsConfig>, transport: &TransportConfig) -> TransportError {
    let started = Instant::now();
    let error = transport::open("127.0.0.1", port, tls, transport, Duration::from_secs(1))
        .expect_err("must fail");
    assert!(started.elapsed() < Duration::from_secs(5), "{error}");
    error
}

#[test]
fn websocket_servers_that_do_not_speak_mqtt_give_typed_errors() {
    let broker = Mosquitto::start();
    let bridge = WsBridge::start(broker.port());
    let ws = TransportConfig::websocket(WebSocketConfig::default());
    bridge.answer_with(WsAnswer::Status(403));
    let error = open_error(bridge.port(), None, &ws);
    assert!(
        matches!(
            error,
            TransportError::WebSocket(WebSocketError::Rejected { status: 403 })
        ),
        "{error:?}"
    );
    for answer in [
        WsAnswer::Subprotocol("wamp".into()),
        WsAnswer::NoSubprotocol,
    ] {
        bridge.answer_with(answer);
        let error = open_error(bridge.port(), None, &ws);
        assert!(
            matches!(
                error,
                TransportError::WebSocket(WebSocketError::Subprotocol { .. })
            ),
            "{error:?}"
        );
    }
    bridge.answer_with(WsAnswer::Garbage(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()));
    let error = open_error(bridge.port(), None, &ws);
    assert!(
        matches!(
            error,
            TransportError::WebSocket(WebSocketError::Handshake(_) | WebSocketError::Io(_))
        ),
        "{error:?}"
    );
    // The server completed only the two upgrades with the wrong sub-protocol, which the
    // client then refused. The bridge counts an upgrade on its own thread, possibly after the
    // client already gave up on it: wait for the count (the timeout only guards a hang).
    assert!(bridge.wait_tunnels(2, Duration::from_secs(10)));
    assert_eq!(bridge.tunnels(), 2);

    // A server that accepts and never answers: a timeout, within the connect timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let error = open_error(silent.local_addr().unwrap().port(), None, &ws);
    assert!(
        matches!(&error, TransportError::WebSocket(WebSocketError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut),
        "{error:?}"
    );
}

#[test]
fn proxies_that_refuse_give_typed_errors() {
    let broker = Mosquitto::start();
    let socks = ProxyServer::start(ProxyProtocol::Socks5, Some(("me", "secret")));
    let via = |proxy: ProxyConfig| TransportConfig::tcp().proxy(proxy);
    let error = open_error(
        broker.port(),
        None,
        &via(ProxyConfig::socks5("127.0.0.1", socks.port()).credentials("me", "wrong")),
    );
    assert!(
        matches!(
            error,
            TransportError::Proxy {
                source: ProxyError::AuthRejected,
                ..
            }
        ),
        "{error:?}"
    );
    let error = open_error(
        broker.port(),
        None,
        &via(ProxyConfig::socks5("127.0.0.1", socks.port())),
    );
    assert!(
        matches!(
            error,
            TransportError::Proxy {
                source: ProxyError::NoAcceptableAuth,
                ..
            }
        ),
        "{error:?}"
    );
    socks.refuse_with(2);
    let error = open_error(
        broker.port(),
        None,
        &via(ProxyConfig::socks5("127.0.0.1", socks.port()).credentials("me", "secret")),
    );
    assert!(
        matches!(
            error,
            TransportError::Proxy {
                source: ProxyError::SocksReply { code: 2 },
                ..
            }
        ),
        "{error:?}"
    );

    let http = ProxyServer::start(ProxyProtocol::HttpConnect, None);
    http.refuse_with(403);
    let error = open_error(
        broker.port(),
        None,
        &via(ProxyConfig::http_connect("127.0.0.1", http.port())),
    );
    assert!(
        matches!(
            error,
            TransportError::Proxy {
                source: ProxyError::HttpStatus { status: 403 },
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(socks.tunnels() + http.tunnels(), 0);

    // Not a proxy at all (mosquitto answers nothing to an HTTP request it cannot parse, or
    // closes): typed, in time.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let error = open_error(
        broker.port(),
        None,
        &via(ProxyConfig::http_connect(
            "127.0.0.1",
            silent.local_addr().unwrap().port(),
        )),
    );
    assert!(
        matches!(
            error,
            TransportError::Proxy {
                source: ProxyError::Io(_),
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_missing_unix_socket_is_a_typed_error() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("none.sock");
    let error = open_error(0, None, &TransportConfig::unix(&path));
    assert!(
        matches!(&error, TransportError::Unix { path: p, source } if *p == path && source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
}

/// Frames as MQTT 3.1.1 §6 has them: a packet split over frames and pings in between are
/// read as one byte stream; a text frame ends the connection [MQTT-6.0.0-1].
#[test]
fn websocket_frames_make_a_byte_stream_and_text_frames_are_refused() {
    use std::io::{Read, Write};
    use umqtt::transport::tungstenite::{self, Message};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        // tungstenite's callback type, large error included.
        #[allow(clippy::result_large_err)]
        let answer_mqtt =
            |_: &tungstenite::handshake::server::Request,
             mut response: tungstenite::handshake::server::Response| {
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
                Ok(response)
            };
        let mut ws = tungstenite::accept_hdr(socket, answer_mqtt).unwrap();
        let Message::Binary(connect) = ws.read().unwrap() else {
            panic!("MQTT must come in a binary frame")
        };
        assert_eq!(connect[0], 0x10, "CONNECT");
        // CONNACK in two frames around a ping, then a PINGRESP and a text frame.
        ws.send(Message::binary(vec![0x20, 0x02])).unwrap();
        ws.send(Message::Ping(vec![1].into())).unwrap();
        ws.send(Message::binary(vec![0x00, 0x00, 0xD0, 0x00]))
            .unwrap();
        ws.send(Message::text("not mqtt")).unwrap();
        // The client answered the ping.
        loop {
            match ws.read() {
                Ok(Message::Pong(payload)) => return payload.to_vec(),
                Ok(_) => {}
                Err(error) => panic!("no pong: {error}"),
            }
        }
    });
    let mut transport = transport::open(
        "127.0.0.1",
        port,
        None,
        &TransportConfig::websocket(WebSocketConfig::default()),
        PATIENCE,
    )
    .unwrap();
    use umqtt::transport::Stream;
    transport.set_read_timeout(Some(PATIENCE)).unwrap();
    transport
        .write_all(&umqtt_testkit::raw::connect("ws-frames", 60, true))
        .unwrap();
    transport.flush().unwrap();
    let mut received = [0u8; 6];
    transport.read_exact(&mut received).unwrap();
    assert_eq!(received, [0x20, 0x02, 0x00, 0x00, 0xD0, 0x00]);
    let error = transport.read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    assert_eq!(server.join().unwrap(), [1]);
}
