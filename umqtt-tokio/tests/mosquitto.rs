//! The async robust client end to end against a real mosquitto (started by the test on free
//! ports): QoS 0/1/2 counted, a broker restart and fault-proxy cuts with nothing lost.
//! Timeouts here only guard against a hang; every assertion counts messages.

use std::collections::HashMap;
use std::time::Duration;

use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::proxy::FaultProxy;
use umqtt_tokio::robust::{
    Client, Delivery, Event, Events, ExponentialBackoff, Handle, Outcome, Receipt, RobustConfig,
};
use umqtt_tokio::{ClientConfig, QoS};

/// Guards against a hang; never part of what a test proves.
const GUARD: Duration = Duration::from_secs(20);

fn config(port: u16, client_id: &str) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_string(),
        server: "127.0.0.1".to_string(),
        port: Some(port),
        keep_alive: 2,
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    }
}

fn policy() -> ExponentialBackoff {
    ExponentialBackoff::new(Duration::from_millis(50), Duration::from_millis(500))
}

fn client(port: u16, client_id: &str) -> (Handle, Events) {
    Client::new(config(port, client_id), policy())
        .robust_config(RobustConfig {
            seed: Some(1),
            ..RobustConfig::default()
        })
        .spawn()
        .expect("inside a runtime")
}

/// Subscribes to `filter` and waits for the SUBACK.
async fn subscriber(port: u16, client_id: &str, filter: &str) -> (Handle, Events) {
    let (handle, mut events) = client(port, client_id);
    handle
        .subscribe(filter, QoS::ExactlyOnce)
        .expect("valid filter");
    let subscribed = tokio::time::timeout(GUARD, async {
        while let Some(event) = events.next().await {
            if matches!(event, Event::Subscribed { .. }) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(subscribed, Ok(true));
    (handle, events)
}

/// Counts received payloads per topic until `expected` distinct payloads arrived on each.
async fn receive(
    events: &mut Events,
    topics: &[&str],
    expected: usize,
) -> HashMap<String, HashMap<Vec<u8>, usize>> {
    let mut got: HashMap<String, HashMap<Vec<u8>, usize>> = HashMap::new();
    let done = |got: &HashMap<String, HashMap<Vec<u8>, usize>>| {
        topics
            .iter()
            .all(|t| got.get(*t).is_some_and(|m| m.len() >= expected))
    };
    let _ = tokio::time::timeout(GUARD, async {
        while !done(&got) {
            match events.next().await {
                Some(Event::Message(message)) => {
                    *got.entry(message.topic)
                        .or_default()
                        .entry(message.payload)
                        .or_default() += 1;
                }
                Some(_) => {}
                None => return,
            }
        }
    })
    .await;
    got
}

/// Waits for the outcome of the last receipt (the link is up and carrying traffic then).
async fn wait_for_last(receipts: &mut Vec<Receipt>) {
    if let Some(last) = receipts.pop() {
        let id = last.id();
        let outcome = tokio::time::timeout(GUARD, last.outcome()).await;
        assert_eq!(outcome, Ok(Ok(Outcome::Delivered)), "{id:?}");
    }
}

async fn settle(receipts: Vec<Receipt>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for receipt in receipts {
        match tokio::time::timeout(GUARD, receipt.outcome()).await {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            other => panic!("no outcome: {other:?}"),
        }
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_qos_0_1_2_counted() {
    let broker = Mosquitto::start();
    let (_sub, mut events) = subscriber(broker.port(), "async-sub", "q/#").await;
    let (publisher, publisher_events) = client(broker.port(), "async-pub");
    drop(publisher_events);
    const N: usize = 300;
    let topics = ["q/0", "q/1", "q/2"];
    let mut receipts = Vec::new();
    for n in 0..N {
        for (topic, qos) in topics
            .iter()
            .zip([QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
        {
            let receipt = publisher
                .publish_with(
                    topic,
                    n.to_string().as_bytes(),
                    qos,
                    false,
                    Delivery::Guaranteed,
                )
                .await
                .expect("accepted");
            receipts.push(receipt);
        }
    }
    let outcomes = settle(receipts).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Delivered));
    let got = receive(&mut events, &topics, N).await;
    for topic in topics {
        let per_payload = got.get(topic).cloned().unwrap_or_default();
        assert_eq!(per_payload.len(), N, "{topic}: every message arrived");
        assert!(
            per_payload.values().all(|count| *count == 1),
            "{topic}: none twice"
        );
    }
    assert_eq!(publisher.stats().delivered, 3 * N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_nothing() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let port = broker.port();
    let (_sub, mut events) = subscriber(port, "restart-sub", "r/#").await;
    let (publisher, publisher_events) = client(port, "restart-pub");
    drop(publisher_events);
    const N: usize = 200;
    let mut receipts = Vec::new();
    for n in 0..N {
        if n == N / 2 {
            // Mid-stream, with the link up and messages in flight: the broker goes down and
            // comes back (persistence on).
            wait_for_last(&mut receipts).await;
            for m in 0..20 {
                let receipt = publisher
                    .publish_with(
                        "r/1",
                        format!("x{m}").as_bytes(),
                        QoS::AtLeastOnce,
                        false,
                        Delivery::Guaranteed,
                    )
                    .await
                    .expect("accepted");
                receipts.push(receipt);
            }
            tokio::task::block_in_place(|| broker.restart());
        }
        let receipt = publisher
            .publish_with(
                "r/1",
                n.to_string().as_bytes(),
                QoS::AtLeastOnce,
                false,
                Delivery::Guaranteed,
            )
            .await
            .expect("accepted");
        receipts.push(receipt);
    }
    let outcomes = settle(receipts).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Delivered));
    let got = receive(&mut events, &["r/1"], N).await;
    let per_payload = got.get("r/1").cloned().unwrap_or_default();
    assert_eq!(
        per_payload.len(),
        N,
        "every message arrived (QoS 1: duplicates allowed)"
    );
    let stats = publisher.stats();
    assert!(
        stats.connects >= 2,
        "reconnected after the restart: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_cuts_lose_nothing_and_qos2_is_exactly_once() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let (_sub, mut events) = subscriber(broker.port(), "cut-sub", "c/#").await;
    let (publisher, publisher_events) = client(proxy.port(), "cut-pub");
    drop(publisher_events);
    const N: usize = 300;
    let mut receipts = Vec::new();
    for n in 0..N {
        if n % 60 == 30 {
            // With the link up and the messages just published in flight.
            wait_for_last(&mut receipts).await;
            for topic in ["c/1", "c/2"] {
                let receipt = publisher
                    .publish_with(
                        topic,
                        format!("x{n}").as_bytes(),
                        QoS::ExactlyOnce,
                        false,
                        Delivery::Guaranteed,
                    )
                    .await
                    .expect("accepted");
                receipts.push(receipt);
            }
            proxy.cut();
        }
        for (topic, qos) in [("c/1", QoS::AtLeastOnce), ("c/2", QoS::ExactlyOnce)] {
            let receipt = publisher
                .publish_with(
                    topic,
                    n.to_string().as_bytes(),
                    qos,
                    false,
                    Delivery::Guaranteed,
                )
                .await
                .expect("accepted");
            receipts.push(receipt);
        }
        tokio::task::yield_now().await;
    }
    let outcomes = settle(receipts).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Delivered));
    let extra = N.div_ceil(60);
    let got = receive(&mut events, &["c/1", "c/2"], N + extra).await;
    let qos1 = got.get("c/1").cloned().unwrap_or_default();
    let qos2 = got.get("c/2").cloned().unwrap_or_default();
    assert_eq!(qos1.len(), N + extra, "QoS 1: every message arrived");
    assert_eq!(qos2.len(), N + extra, "QoS 2: every message arrived");
    assert!(qos2.values().all(|c| *c == 1), "QoS 2: none twice");
    assert!(
        proxy.connections_accepted() >= 2,
        "the link was cut and came back"
    );
}

/// TLS through tokio-rustls with umqtt's `TlsConfig`; an untrusted CA is an attempt failure
/// the policy sees as a TLS failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_same_tls_config() {
    let certs = umqtt_testkit::certs::TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let mut config = config(broker.tls_port(), "tls-pub");
    config.tls = Some(umqtt::TlsConfig::new().ca_file(certs.ca().cert_path()));
    let (publisher, publisher_events) = Client::new(config.clone(), policy())
        .spawn()
        .expect("runtime");
    drop(publisher_events);
    let receipt = publisher
        .publish_with(
            "tls/1",
            b"secret",
            QoS::AtLeastOnce,
            false,
            Delivery::Guaranteed,
        )
        .await
        .expect("accepted");
    let outcome = tokio::time::timeout(GUARD, receipt.outcome()).await;
    assert_eq!(outcome, Ok(Ok(Outcome::Delivered)));

    config.client_id = "tls-wrong-ca".into();
    config.tls = Some(umqtt::TlsConfig::new().ca_file(certs.other_ca().cert_path()));
    let (_untrusting, mut events) = Client::new(config, policy()).spawn().expect("runtime");
    let failed = tokio::time::timeout(GUARD, async {
        while let Some(event) = events.next().await {
            if let Event::AttemptFailed { kind, .. } = event {
                return Some(kind);
            }
        }
        None
    })
    .await;
    assert_eq!(
        failed,
        Ok(Some(umqtt_tokio::robust::FailureKind::Tls)),
        "an untrusted certificate is a TLS failure"
    );
}

/// A link that silently stops carrying bytes (black hole: the socket stays open) is found
/// by the keepalive, the client reconnects once the path is back, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_is_detected_and_nothing_is_lost() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let (_sub, mut events) = subscriber(broker.port(), "hole-sub", "h/#").await;
    let (publisher, publisher_events) = client(proxy.port(), "hole-pub");
    drop(publisher_events);
    const N: usize = 100;
    let mut receipts = Vec::new();
    for n in 0..N {
        if n == N / 2 {
            wait_for_last(&mut receipts).await;
            proxy.set_mode(umqtt_testkit::proxy::Mode::BlackHole);
        }
        let receipt = publisher
            .publish_with(
                "h/1",
                n.to_string().as_bytes(),
                QoS::AtLeastOnce,
                false,
                Delivery::Guaranteed,
            )
            .await
            .expect("accepted");
        receipts.push(receipt);
    }
    // The keepalive (2 s) must notice: wait for the link to be declared lost.
    let lost = tokio::time::timeout(GUARD, async {
        while publisher.stats().disconnects == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        lost.is_ok(),
        "black hole never detected: {:?}",
        publisher.stats()
    );
    proxy.set_mode(umqtt_testkit::proxy::Mode::Forward);
    let outcomes = settle(receipts).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Delivered));
    let got = receive(&mut events, &["h/1"], N).await;
    assert_eq!(
        got.get("h/1").map_or(0, HashMap::len),
        N,
        "every message arrived"
    );
    assert!(publisher.stats().connects >= 2, "{:?}", publisher.stats());
}

/// The broker forgets everything (restart without persistence): the subscriber's engine sees
/// the lost session, subscribes again by itself and receives what is published afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_resubscribes_when_the_broker_lost_the_session() {
    let mut broker = Mosquitto::builder().persistence(false).start();
    let port = broker.port();
    let (subscriber_handle, mut events) = subscriber(port, "lost-sub", "l/#").await;
    tokio::task::block_in_place(|| broker.restart());
    // Resubscribed: wait for the new SUBACK.
    let resubscribed = tokio::time::timeout(GUARD, async {
        while let Some(event) = events.next().await {
            if matches!(event, Event::Subscribed { .. }) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(resubscribed, Ok(true));
    assert!(subscriber_handle.stats().sessions_lost >= 1);
    let (publisher, publisher_events) = client(port, "lost-pub");
    drop(publisher_events);
    const N: usize = 50;
    let mut receipts = Vec::new();
    for n in 0..N {
        let receipt = publisher
            .publish("l/1", n.to_string().as_bytes(), QoS::AtLeastOnce, false)
            .await
            .expect("accepted");
        receipts.push(receipt);
    }
    let outcomes = settle(receipts).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Delivered));
    let got = receive(&mut events, &["l/1"], N).await;
    assert_eq!(got.get("l/1").map_or(0, HashMap::len), N);
}

/// MQTT 5 Server Reference: a byte-exact fake broker refuses with CONNACK 0x9C Use another
/// server naming this mosquitto; the async robust client goes there and its message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reference_leads_to_the_named_broker() {
    use std::io::Write;
    let broker = Mosquitto::start();
    let (_sub, mut sub_events) = subscriber(broker.port(), "moved-sub", "moved/t").await;
    let reference = format!("127.0.0.1:{}", broker.port());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let fake_port = listener.local_addr().unwrap().port();
    let fake = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        socket.set_read_timeout(Some(GUARD)).unwrap();
        let (first, _) = umqtt_testkit::raw::read_packet(&mut socket).expect("CONNECT");
        assert_eq!(first, 0x10);
        // MQTT 5 CONNACK 0x9C Use another server with a Server Reference (0x1C).
        let mut properties = vec![0x1C];
        properties.extend_from_slice(&(reference.len() as u16).to_be_bytes());
        properties.extend_from_slice(reference.as_bytes());
        let mut packet = vec![0x20, (3 + properties.len()) as u8, 0x00, 0x9C];
        packet.push(properties.len() as u8);
        packet.extend_from_slice(&properties);
        socket.write_all(&packet).unwrap();
        let _ = umqtt_testkit::raw::read_packet(&mut socket);
        listener.set_nonblocking(true).unwrap();
        listener.accept().is_err()
    });
    let (handle, mut events) = Client::new(
        ClientConfig {
            protocol: umqtt::ProtocolVersion::V5,
            ..config(fake_port, "moved")
        },
        policy(),
    )
    .robust_config(RobustConfig {
        seed: Some(1),
        ..RobustConfig::default()
    })
    .spawn()
    .expect("inside a runtime");
    let receipt = handle
        .publish("moved/t", b"found you", QoS::AtLeastOnce, false)
        .await
        .expect("publish");
    let outcome = tokio::time::timeout(GUARD, receipt.outcome()).await;
    assert!(matches!(outcome, Ok(Ok(Outcome::Delivered))), "{outcome:?}");
    let got = receive(&mut sub_events, &["moved/t"], 1).await;
    assert_eq!(got["moved/t"].get(&b"found you"[..]), Some(&1));
    let mut redirected = None;
    let mut connected = None;
    while let Some(event) = events.try_next() {
        match event {
            Event::Redirected { address, .. } => redirected = Some(address),
            Event::Connected { server, .. } => connected = Some(server),
            _ => {}
        }
    }
    assert_eq!(
        redirected.map(|a| (a.host, a.port)),
        Some(("127.0.0.1".to_string(), Some(broker.port())))
    );
    assert_eq!(connected, Some(1), "one past the configured list");
    let stats = handle.stats();
    assert_eq!((stats.connects, stats.redirects), (1, 1));
    handle.disconnect().await;
    assert!(fake.join().unwrap(), "one connection to the fake broker");
}
