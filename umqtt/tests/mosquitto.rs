//! The simple client against a real mosquitto started on a free loopback port.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use umqtt::simple::{Client, ClientConfig, Message};
use umqtt::transport::Transport;
use umqtt::{ConnectReturnCode, Error, QoS, TlsConfig, TransportError};
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::certs::TestCerts;

fn config(broker: &Mosquitto, client_id: &str) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_string(),
        server: "127.0.0.1".to_string(),
        port: Some(broker.port()),
        response_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

fn client(broker: &Mosquitto, client_id: &str) -> Client {
    Client::with_config(config(broker, client_id))
}

fn connected(broker: &Mosquitto, client_id: &str) -> Client {
    let mut c = client(broker, client_id);
    assert!(
        !c.connect(true).expect("connect"),
        "clean session has no session present"
    );
    c
}

fn expect_message(c: &mut Client) -> Message {
    c.wait_msg_timeout(Duration::from_secs(5))
        .expect("wait_msg")
        .expect("a message within 5 s")
}

fn expect_silence(c: &mut Client, wait: Duration) {
    if let Some(m) = c.wait_msg_timeout(wait).expect("wait_msg") {
        panic!("unexpected message {m:?}");
    }
}

#[test]
fn connect_publish_subscribe_disconnect() {
    let broker = Mosquitto::start();
    let mut sub = connected(&broker, "sub");
    assert_eq!(
        sub.subscribe("a/#", QoS::ExactlyOnce).unwrap(),
        QoS::ExactlyOnce
    );
    let mut publisher = connected(&broker, "pub");
    publisher
        .publish("a/b", b"hello", QoS::AtMostOnce, false)
        .unwrap();
    let m = expect_message(&mut sub);
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice(), m.qos, m.retain),
        ("a/b", &b"hello"[..], QoS::AtMostOnce, false)
    );
    publisher.ping().unwrap();
    publisher.disconnect().unwrap();
    assert!(!publisher.is_connected());
    assert!(matches!(
        publisher.publish("a/b", b"x", QoS::AtMostOnce, false),
        Err(Error::Usage(_))
    ));
    sub.disconnect().unwrap();
}

#[test]
fn qos_levels_in_both_directions() {
    let broker = Mosquitto::start();
    let mut sub = connected(&broker, "sub-qos");
    sub.subscribe_many(&[
        ("q/0", QoS::AtMostOnce),
        ("q/1", QoS::AtLeastOnce),
        ("q/2", QoS::ExactlyOnce),
    ])
    .unwrap();
    let mut publisher = connected(&broker, "pub-qos");
    for publish_qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for (topic, sub_qos) in [
            ("q/0", QoS::AtMostOnce),
            ("q/1", QoS::AtLeastOnce),
            ("q/2", QoS::ExactlyOnce),
        ] {
            let payload = format!("{publish_qos:?}->{topic}");
            let id = publisher
                .publish(topic, payload.as_bytes(), publish_qos, false)
                .unwrap();
            assert_eq!(id.is_some(), publish_qos != QoS::AtMostOnce);
            let m = expect_message(&mut sub);
            assert_eq!(m.topic, topic);
            assert_eq!(m.payload, payload.as_bytes());
            // The broker delivers at the lower of the publish and subscription QoS.
            assert_eq!(m.qos, publish_qos.min(sub_qos), "{payload}");
        }
    }
    assert_eq!(publisher.pending_publishes(), 0);
    expect_silence(&mut sub, Duration::from_millis(300));
}

#[test]
fn retained_message_reaches_new_subscriber() {
    let broker = Mosquitto::start();
    let mut publisher = connected(&broker, "pub-retain");
    publisher
        .publish("r/state", b"on", QoS::AtLeastOnce, true)
        .unwrap();
    let mut sub = connected(&broker, "sub-retain");
    sub.subscribe("r/#", QoS::AtLeastOnce).unwrap();
    let m = expect_message(&mut sub);
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice(), m.retain),
        ("r/state", &b"on"[..], true)
    );
    // A live publish is not flagged retained for an existing subscriber.
    publisher
        .publish("r/state", b"off", QoS::AtLeastOnce, true)
        .unwrap();
    let m = expect_message(&mut sub);
    assert_eq!((m.payload.as_slice(), m.retain), (&b"off"[..], false));
}

#[test]
fn last_will_published_when_socket_dies_not_on_disconnect() {
    let broker = Mosquitto::start();
    let mut watcher = connected(&broker, "watcher");
    watcher.subscribe("will/#", QoS::AtLeastOnce).unwrap();

    let mut polite = client(&broker, "polite");
    polite.set_last_will("will/polite", b"gone", false, QoS::AtLeastOnce);
    polite.connect(true).unwrap();
    polite.disconnect().unwrap();
    expect_silence(&mut watcher, Duration::from_millis(500));

    let mut doomed = client(&broker, "doomed");
    doomed.set_last_will("will/doomed", b"lost", false, QoS::AtLeastOnce);
    doomed.connect(true).unwrap();
    // The socket dies without DISCONNECT.
    match doomed.get_mut().unwrap() {
        Transport::Tcp(tcp) => tcp.shutdown(Shutdown::Both).unwrap(),
        _ => unreachable!("plain TCP test"),
    }
    drop(doomed);
    let m = expect_message(&mut watcher);
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice(), m.qos),
        ("will/doomed", &b"lost"[..], QoS::AtLeastOnce)
    );
}

#[test]
fn persistent_session_queues_messages_while_offline() {
    let broker = Mosquitto::builder().persistence(true).start();
    let mut sub = client(&broker, "persistent-sub");
    assert!(
        !sub.connect(false).unwrap(),
        "first connection has no stored session"
    );
    sub.subscribe("p/#", QoS::AtLeastOnce).unwrap();
    sub.disconnect().unwrap();

    let mut publisher = connected(&broker, "pub-offline");
    for i in 0..5 {
        publisher
            .publish("p/x", format!("{i}").as_bytes(), QoS::AtLeastOnce, false)
            .unwrap();
    }
    publisher.disconnect().unwrap();

    assert!(sub.connect(false).unwrap(), "broker resumed the session");
    // No resubscribe: the session kept the subscription and the queued messages.
    for i in 0..5 {
        let m = expect_message(&mut sub);
        assert_eq!(m.payload, format!("{i}").as_bytes());
    }
    sub.disconnect().unwrap();
}

#[test]
fn persistent_session_survives_broker_restart() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let mut sub = client(&broker, "restart-sub");
    sub.connect(false).unwrap();
    sub.subscribe("s/#", QoS::AtLeastOnce).unwrap();
    sub.disconnect().unwrap();
    let mut publisher = connected(&broker, "restart-pub");
    for i in 0..3 {
        publisher
            .publish("s/x", format!("{i}").as_bytes(), QoS::AtLeastOnce, false)
            .unwrap();
    }
    publisher.disconnect().unwrap();
    broker.stop();
    broker.restart();
    assert!(
        sub.connect(false).unwrap(),
        "session restored from mosquitto.db"
    );
    for i in 0..3 {
        assert_eq!(expect_message(&mut sub).payload, format!("{i}").as_bytes());
    }
}

#[test]
fn keepalive_pingreq_is_sent_automatically() {
    let broker = Mosquitto::start();
    let mut c = Client::with_config(ClientConfig {
        keep_alive: 1,
        ..config(&broker, "pinger")
    });
    c.connect(true).unwrap();
    // Nothing to receive: wait_msg must keep the connection alive on its own.
    expect_silence(&mut c, Duration::from_millis(2_500));
    assert!(c.is_connected());
    assert!(
        broker.wait_for_log("Received PINGREQ from pinger", Duration::from_secs(2)),
        "mosquitto log shows no PINGREQ:\n{}",
        broker.log_contents()
    );
    // Still usable after several keepalive periods.
    c.publish("k", b"still here", QoS::AtLeastOnce, false)
        .unwrap();
}

#[test]
fn credentials_accepted_and_refused() {
    let broker = Mosquitto::builder().user("alice", "secret").start();
    let mut good = Client::with_config(ClientConfig {
        username: Some("alice".into()),
        password: Some(b"secret".to_vec()),
        ..config(&broker, "alice-1")
    });
    good.connect(true).unwrap();
    good.publish("x", b"y", QoS::AtLeastOnce, false).unwrap();

    let mut bad = Client::with_config(ClientConfig {
        username: Some("alice".into()),
        password: Some(b"wrong".to_vec()),
        ..config(&broker, "alice-2")
    });
    match bad.connect(true) {
        Err(Error::ConnectionRefused(ConnectReturnCode::NotAuthorized)) => {}
        other => panic!("expected CONNACK 5 (not authorized), got {other:?}"),
    }
    assert!(!bad.is_connected());

    let mut anonymous = client(&broker, "anon");
    assert!(matches!(
        anonymous.connect(true),
        Err(Error::ConnectionRefused(ConnectReturnCode::NotAuthorized))
    ));
}

#[test]
fn tls_with_generated_ca_accepted_and_wrong_ca_refused() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let tls_config = |ca: &umqtt_testkit::certs::CertificateFiles| ClientConfig {
        port: Some(broker.tls_port()),
        tls: Some(TlsConfig::new().ca_file(ca.cert_path())),
        ..config(&broker, "tls-client")
    };
    let mut good = Client::with_config(tls_config(certs.ca()));
    good.connect(true).unwrap();
    good.subscribe("tls/#", QoS::AtLeastOnce).unwrap();
    good.publish("tls/x", b"secret", QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(expect_message(&mut good).payload, b"secret");
    good.disconnect().unwrap();

    let mut wrong = Client::with_config(tls_config(certs.other_ca()));
    match wrong.connect(true) {
        Err(Error::Transport(TransportError::Tls(_))) => {}
        other => panic!("expected a TLS verification error, got {other:?}"),
    }
}

#[test]
fn unsubscribe_stops_delivery() {
    let broker = Mosquitto::start();
    let mut sub = connected(&broker, "unsub");
    sub.subscribe_many(&[("u/a", QoS::AtLeastOnce), ("u/b", QoS::AtLeastOnce)])
        .unwrap();
    sub.unsubscribe("u/a").unwrap();
    let mut publisher = connected(&broker, "unsub-pub");
    publisher
        .publish("u/a", b"1", QoS::AtLeastOnce, false)
        .unwrap();
    publisher
        .publish("u/b", b"2", QoS::AtLeastOnce, false)
        .unwrap();
    let m = expect_message(&mut sub);
    assert_eq!(m.topic, "u/b");
    expect_silence(&mut sub, Duration::from_millis(300));
}

#[test]
fn pipelined_qos1_and_qos2_count_every_message() {
    let broker = Mosquitto::start();
    let mut sub = Client::with_config(ClientConfig {
        max_queued_messages: 10_000,
        ..config(&broker, "count-sub")
    });
    sub.connect(true).unwrap();
    sub.subscribe("c/#", QoS::ExactlyOnce).unwrap();
    let mut publisher = connected(&broker, "count-pub");
    let total = 2_000;
    for i in 0..total {
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        publisher
            .publish_nowait("c/n", format!("{i}").as_bytes(), qos, false)
            .unwrap();
        if i % 100 == 99 {
            publisher.flush().unwrap();
        }
    }
    publisher
        .wait_all_published(Duration::from_secs(20))
        .unwrap();
    assert_eq!(publisher.pending_publishes(), 0);
    let started = Instant::now();
    let mut seen = vec![false; total];
    let mut received = 0;
    while received < total && started.elapsed() < Duration::from_secs(20) {
        if let Some(m) = sub.wait_msg_timeout(Duration::from_secs(2)).unwrap() {
            let n: usize = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
            assert!(!seen[n], "message {n} delivered twice");
            seen[n] = true;
            received += 1;
        }
    }
    assert_eq!(received, total, "lost {} messages", total - received);
}

#[test]
fn connect_to_closed_port_is_a_transport_error() {
    let port = umqtt_testkit::broker::free_port();
    let mut c = Client::with_config(ClientConfig {
        port: Some(port),
        ..ClientConfig::default()
    });
    assert!(matches!(
        c.connect(true),
        Err(Error::Transport(TransportError::Connect { .. }))
    ));
}

/// MQTT allows messages up to 256 MiB; the 4 MiB default is a local limit, raised by
/// `max_packet_size`, and reported as one (not as a malformed packet) when it is not.
#[test]
fn eight_mib_message_is_received_only_with_a_raised_max_packet_size() {
    const SIZE: usize = 8 * 1024 * 1024;
    let broker = Mosquitto::start();
    let mut raised_config = config(&broker, "big-raised");
    raised_config.max_packet_size = SIZE + 1024;
    let mut raised = Client::with_config(raised_config);
    raised.connect(true).unwrap();
    raised.subscribe("big", QoS::AtLeastOnce).unwrap();
    let mut default = connected(&broker, "big-default");
    default.subscribe("big", QoS::AtLeastOnce).unwrap();

    let payload: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let mut publisher = connected(&broker, "big-pub");
    publisher
        .publish("big", &payload, QoS::AtLeastOnce, false)
        .unwrap();

    let message = raised
        .wait_msg_timeout(Duration::from_secs(20))
        .unwrap()
        .expect("the 8 MiB message");
    assert_eq!(message.payload.len(), SIZE);
    assert!(message.payload == payload, "payload differs");

    match default.wait_msg_timeout(Duration::from_secs(20)) {
        Err(Error::PacketTooLarge { size, max }) => {
            // Fixed header (1 + 4) + topic (2 + 3) + packet id (2) + payload.
            assert_eq!(size, 5 + 5 + 2 + SIZE);
            assert_eq!(max, 4 * 1024 * 1024);
            let text = Error::PacketTooLarge { size, max }.to_string();
            assert!(text.contains("configured maximum"), "{text}");
            assert!(!text.contains("malformed"), "{text}");
        }
        other => panic!("expected PacketTooLarge, got {other:?}"),
    }
    assert!(!default.is_connected());
    publisher.disconnect().unwrap();
    raised.disconnect().unwrap();
}
