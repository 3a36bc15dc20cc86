//! The simple async client against a real mosquitto: every operation, QoS 0/1/2 counted, and
//! cancelled calls (a publish dropped after its first poll, `wait_msg` dropped while waiting)
//! that lose and duplicate nothing.

use std::time::Duration;

use umqtt_testkit::broker::Mosquitto;
use umqtt_tokio::simple::Client;
use umqtt_tokio::{ClientConfig, QoS};

/// Guards against a hang; never part of what a test proves.
const GUARD: Duration = Duration::from_secs(20);

fn client_config(port: u16, client_id: &str) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_string(),
        server: "127.0.0.1".to_string(),
        port: Some(port),
        keep_alive: 5,
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

fn client(port: u16, client_id: &str) -> Client {
    Client::new(client_config(port, client_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_and_qos_0_1_2_counted() {
    let broker = Mosquitto::start();
    let mut client = client(broker.port(), "simple-async");
    let run = async {
        assert!(!client.connect(true).await.expect("connect"));
        assert_eq!(
            client
                .subscribe("s/#", QoS::ExactlyOnce)
                .await
                .expect("sub"),
            QoS::ExactlyOnce
        );
        client.ping().await.expect("ping");
        const N: usize = 100;
        for n in 0..N {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let topic = format!("s/{}", qos as u8);
                let id = client
                    .publish(&topic, n.to_string().as_bytes(), qos, false)
                    .await
                    .expect("publish");
                assert_eq!(id.is_some(), qos != QoS::AtMostOnce);
            }
        }
        let mut counts = [0usize; 3];
        let mut next = [0usize; 3];
        while counts.iter().sum::<usize>() < 3 * N {
            let message = client.wait_msg().await.expect("message");
            let class = message.topic.as_bytes()[2] - b'0';
            let n: usize = String::from_utf8_lossy(&message.payload)
                .parse()
                .expect("number");
            assert_eq!(n, next[class as usize], "in order, once: {}", message.topic);
            next[class as usize] += 1;
            counts[class as usize] += 1;
        }
        assert_eq!(counts, [N, N, N]);
        client.unsubscribe("s/#").await.expect("unsub");
        client
            .publish("s/1", b"after", QoS::AtLeastOnce, false)
            .await
            .expect("publish");
        assert_eq!(client.check_msg().await.expect("check"), None);
        client.disconnect().await.expect("disconnect");
        assert!(!client.is_connected());
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_lose_and_duplicate_nothing() {
    let broker = Mosquitto::start();
    let mut client = client(broker.port(), "simple-cancel");
    let run = async {
        client.connect(true).await.expect("connect");
        client
            .subscribe("c/#", QoS::AtLeastOnce)
            .await
            .expect("sub");
        const N: usize = 50;
        let mut cancelled = 0;
        for n in 0..N {
            // Polled once (the message is queued in the session), then dropped.
            let payload = n.to_string();
            tokio::select! {
                biased;
                result = client.publish("c/1", payload.as_bytes(), QoS::AtLeastOnce, false) => {
                    result.expect("publish");
                }
                () = std::future::ready(()) => cancelled += 1,
            }
        }
        assert!(cancelled > 0);
        let mut got = Vec::new();
        let mut waits_cancelled = 0;
        while got.len() < N {
            // `wait_msg` dropped by a short timer over and over.
            match tokio::time::timeout(Duration::from_micros(200), client.wait_msg()).await {
                Ok(message) => {
                    got.push(String::from_utf8(message.expect("message").payload).expect("utf-8"))
                }
                Err(_) => waits_cancelled += 1,
            }
        }
        let expected: Vec<String> = (0..N).map(|n| n.to_string()).collect();
        assert_eq!(got, expected, "every message once, in order");
        // Every publish was acknowledged by later calls.
        client.ping().await.expect("ping");
        assert_eq!(client.session().outgoing_len(), 0);
        assert_eq!(
            client.check_msg().await.expect("check"),
            None,
            "no duplicate"
        );
        let _ = waits_cancelled;
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_5_qos_0_1_2_both_ways() {
    let broker = Mosquitto::start();
    let mut client = Client::new(ClientConfig {
        protocol: umqtt::ProtocolVersion::V5,
        ..client_config(broker.port(), "simple-async-v5")
    });
    let run = async {
        assert!(!client.connect(true).await.expect("connect"));
        assert_eq!(
            client
                .subscribe("v5/#", QoS::ExactlyOnce)
                .await
                .expect("sub"),
            QoS::ExactlyOnce
        );
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            client
                .publish("v5/t", &[qos as u8], qos, false)
                .await
                .expect("publish");
            let message = client.wait_msg().await.expect("message");
            assert_eq!((message.qos, message.payload), (qos, vec![qos as u8]));
        }
        // UNSUBACK reason codes: 0x11 No subscription existed is informational.
        use umqtt_core::packet::ReasonCode;
        assert_eq!(
            client.unsubscribe("v5/#").await.expect("unsub"),
            ReasonCode::Success
        );
        assert_eq!(
            client.unsubscribe("v5/#").await.expect("unsub again"),
            ReasonCode::NoSubscriptionExisted
        );
        client.disconnect().await.expect("disconnect");
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
}

/// A protocol violation (AUTH from a broker, which the client never invited) ends the call
/// with a typed error, and the client says why on its way out: DISCONNECT 0x82. A byte-exact
/// fake broker, since mosquitto never sends AUTH unasked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_from_the_broker_is_answered_with_disconnect_0x82() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let broker = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        socket.set_read_timeout(Some(GUARD)).unwrap();
        let (first, _) = umqtt_testkit::raw::read_packet(&mut socket).expect("CONNECT");
        assert_eq!(first, 0x10);
        // MQTT 5 CONNACK accepted, no properties; then AUTH 0x18, no properties.
        socket
            .write_all(&[0x20, 0x03, 0x00, 0x00, 0x00, 0xF0, 0x02, 0x18, 0x00])
            .unwrap();
        loop {
            let (first, body) = umqtt_testkit::raw::read_packet(&mut socket).expect("DISCONNECT");
            if first == 0xE0 {
                return body;
            }
        }
    });
    let mut client = Client::new(ClientConfig {
        protocol: umqtt::ProtocolVersion::V5,
        ..client_config(port, "auth-v5")
    });
    let run = async {
        client.connect(true).await.expect("connect");
        match client.ping().await {
            Err(umqtt::Error::Protocol(umqtt_core::session::ProtocolError::UnexpectedAuth)) => {}
            other => panic!("expected UnexpectedAuth, got {other:?}"),
        }
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
    assert_eq!(broker.join().unwrap(), [0x82]);
}
