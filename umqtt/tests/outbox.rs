//! The durable outbox: guaranteed messages survive the client process going away without a
//! goodbye, and come back with their packet ids.

use std::collections::BTreeMap;
use std::time::Duration;

use umqtt::outbox::DurableOutbox;
use umqtt::robust::{Client, Delivery, ExponentialBackoff, RobustConfig};
use umqtt::{simple, ClientConfig, QoS};
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::proxy::{FaultProxy, Mode};

fn config(port: u16, client_id: &str) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_string(),
        server: "127.0.0.1".to_string(),
        port: Some(port),
        keep_alive: 5,
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    }
}

/// A plain subscriber that only observes: not polled while the publishers work, so its
/// keepalive must outlast that work on a loaded machine.
fn observer(port: u16, client_id: &str) -> ClientConfig {
    ClientConfig {
        keep_alive: 60,
        ..config(port, client_id)
    }
}

fn policy() -> ExponentialBackoff {
    ExponentialBackoff::new(Duration::from_millis(20), Duration::from_millis(200))
}

fn count_messages(sub: &mut simple::Client, expected: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    while seen.len() < expected {
        match sub.wait_msg_timeout(Duration::from_secs(5)).unwrap() {
            Some(m) => {
                *seen
                    .entry(String::from_utf8(m.payload).unwrap())
                    .or_insert(0) += 1
            }
            None => break,
        }
    }
    seen
}

#[test]
fn stored_messages_are_sent_by_the_next_process() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let mut sub: simple::Client =
        simple::Client::with_config(observer(broker.port(), "outbox-sub"));
    sub.connect(true).unwrap();
    sub.subscribe("o/#", QoS::AtLeastOnce).unwrap();

    proxy.set_mode(Mode::Refuse);
    {
        let store = DurableOutbox::open(&path).unwrap();
        let mut first = Client::with_outbox(
            config(proxy.port(), "outbox-pub"),
            policy(),
            RobustConfig::default(),
            store,
        )
        .unwrap();
        for i in 0..30 {
            first
                .publish_with(
                    "o/n",
                    format!("{i}").as_bytes(),
                    QoS::AtLeastOnce,
                    false,
                    Delivery::Guaranteed,
                )
                .unwrap();
        }
        // Twenty more in one durable commit.
        let payloads: Vec<String> = (30..50).map(|i| i.to_string()).collect();
        let batch: Vec<(&str, &[u8])> = payloads.iter().map(|p| ("o/n", p.as_bytes())).collect();
        first
            .publish_batch(&batch, QoS::AtLeastOnce, false, Delivery::Guaranteed)
            .unwrap();
        assert_eq!(first.pending(), 50);
        // The process "dies": no disconnect, nothing delivered.
    }
    proxy.set_mode(Mode::Forward);
    let store = DurableOutbox::open(&path).unwrap();
    let mut second = Client::with_outbox(
        config(proxy.port(), "outbox-pub"),
        policy(),
        RobustConfig::default(),
        store,
    )
    .unwrap();
    assert_eq!(second.pending(), 50, "everything came back from disk");
    assert!(second.flush(Duration::from_secs(10)).unwrap());
    let seen = count_messages(&mut sub, 50);
    assert_eq!(
        seen.len(),
        50,
        "lost: {:?}",
        (0..50)
            .filter(|i| !seen.contains_key(&i.to_string()))
            .collect::<Vec<_>>()
    );
    drop(second);
    // Delivered messages are gone from the store.
    let store = DurableOutbox::open(&path).unwrap();
    let third = Client::with_outbox(
        config(proxy.port(), "outbox-pub"),
        policy(),
        RobustConfig::default(),
        store,
    )
    .unwrap();
    assert_eq!(third.pending(), 0);
}

#[test]
fn in_flight_messages_come_back_with_their_packet_ids_and_dup() {
    let broker = Mosquitto::builder().persistence(true).start();
    let proxy = FaultProxy::start(broker.addr());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let mut sub: simple::Client = simple::Client::with_config(observer(broker.port(), "dup-sub"));
    sub.connect(true).unwrap();
    sub.subscribe("d/#", QoS::AtLeastOnce).unwrap();
    {
        let store = DurableOutbox::open(&path).unwrap();
        let mut first = Client::with_outbox(
            config(proxy.port(), "dup-pub"),
            policy(),
            RobustConfig::default(),
            store,
        )
        .unwrap();
        first.connect().unwrap();
        // The broker stops answering: PUBLISH packets leave, no PUBACK comes back.
        proxy.set_mode(Mode::BlackHole);
        for i in 0..5 {
            first
                .publish_with(
                    "d/n",
                    format!("{i}").as_bytes(),
                    QoS::AtLeastOnce,
                    false,
                    Delivery::Guaranteed,
                )
                .unwrap();
        }
        first.run_for(Duration::from_millis(1200)).unwrap();
        assert_eq!(first.pending(), 5);
    }
    proxy.set_mode(Mode::Forward);
    proxy.cut();
    let store = DurableOutbox::open(&path).unwrap();
    let mut second = Client::with_outbox(
        config(proxy.port(), "dup-pub"),
        policy(),
        RobustConfig::default(),
        store,
    )
    .unwrap();
    assert!(second.flush(Duration::from_secs(10)).unwrap());
    let seen = count_messages(&mut sub, 5);
    assert_eq!(seen.len(), 5, "{seen:?}");
    let log = broker.log_contents();
    for packet_id in 1..=5 {
        let resent = format!("Received PUBLISH from dup-pub (d1, q1, r0, m{packet_id},");
        assert!(
            log.contains(&resent),
            "no DUP resend of m{packet_id} in:\n{log}"
        );
    }
}

#[test]
fn corrupt_outbox_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    std::fs::write(&path, b"this is not a database").unwrap();
    let error = DurableOutbox::open(&path).unwrap_err();
    assert!(error.to_string().contains("outbox"), "{error}");
}

/// A message the engine would refuse (a payload larger than one PUBLISH can carry) is
/// refused before it is stored: nothing is left in the outbox to be sent by the next process.
#[test]
fn a_message_the_engine_refuses_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    {
        let store = DurableOutbox::open(&path).unwrap();
        let mut client = Client::with_outbox(
            config(umqtt_testkit::broker::free_port(), "refused-pub"),
            policy(),
            RobustConfig::default(),
            store,
        )
        .unwrap();
        // 256 MiB: over the 268 435 455-byte packet limit with its header. Zeroed pages are
        // not touched, so this costs no real memory.
        let huge = vec![0u8; 256 * 1024 * 1024];
        let error = client
            .publish_with(
                "o/big",
                &huge,
                QoS::AtLeastOnce,
                false,
                Delivery::Guaranteed,
            )
            .unwrap_err();
        assert!(
            matches!(
                error,
                umqtt::Error::Usage(umqtt::UsageError::PayloadTooLarge { .. })
            ),
            "{error:?}"
        );
        assert_eq!(client.pending(), 0);
    }
    let mut reopened = DurableOutbox::open(&path).unwrap();
    assert_eq!(
        umqtt::outbox::OutboxStore::load(&mut reopened).unwrap(),
        Vec::new()
    );
}
