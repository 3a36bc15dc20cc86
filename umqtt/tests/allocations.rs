//! Steady-state publishing and receiving allocate nothing per message, against a real
//! mosquitto.
//!
//! A counting global allocator wraps `System` and counts, per thread, every `alloc`,
//! `alloc_zeroed` and `realloc`. Counting per thread keeps the test harness, the other tests
//! running in parallel and the helper publisher threads out of the measurement. Each test
//! warms the client up (buffers grow to their working size, the in-flight window fills once),
//! then counts the allocations of the measuring thread over many more messages.

use std::thread;
use std::time::Duration;

use umqtt::simple::{Client, ClientConfig, Message};
use umqtt::QoS;
use umqtt_testkit::alloc_count::{allocations, CountingAllocator};
use umqtt_testkit::broker::Mosquitto;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations made by the current thread while `f` runs.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = allocations();
    f();
    allocations() - before
}

const PAYLOAD: [u8; 64] = [0x5A; 64];
const WARM_UP: usize = 2_000;
const MEASURED: usize = 10_000;

fn config(broker: &Mosquitto, client_id: &str) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_owned(),
        server: "127.0.0.1".to_owned(),
        port: Some(broker.port()),
        response_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

fn connected(broker: &Mosquitto, client_id: &str) -> Client {
    let mut client = Client::with_config(config(broker, client_id));
    client.connect(true).expect("connect");
    client
}

#[test]
fn publish_qos0_allocates_nothing_per_message() {
    let broker = Mosquitto::start();
    let mut client = connected(&broker, "alloc-qos0");
    let publish = |client: &mut Client, count: usize| {
        for _ in 0..count {
            client
                .publish("alloc/qos0", &PAYLOAD, QoS::AtMostOnce, false)
                .expect("publish");
        }
    };
    publish(&mut client, WARM_UP);
    let allocations = allocations_during(|| publish(&mut client, MEASURED));
    assert_eq!(
        allocations, 0,
        "QoS 0 publish: {allocations} allocations for {MEASURED} messages"
    );

    // Batched: publish_nowait accumulates, flush writes.
    let batched = |client: &mut Client, count: usize| {
        for i in 0..count {
            client
                .publish_nowait("alloc/qos0", &PAYLOAD, QoS::AtMostOnce, false)
                .expect("publish_nowait");
            if i % 100 == 99 {
                client.flush().expect("flush");
            }
        }
        client.flush().expect("flush");
    };
    batched(&mut client, WARM_UP);
    let allocations = allocations_during(|| batched(&mut client, MEASURED));
    assert_eq!(
        allocations, 0,
        "QoS 0 publish_nowait: {allocations} allocations for {MEASURED} messages"
    );
}

#[test]
fn publish_qos1_waiting_for_each_ack_allocates_nothing_per_message() {
    let broker = Mosquitto::start();
    let mut client = connected(&broker, "alloc-qos1");
    let publish = |client: &mut Client, count: usize| {
        for _ in 0..count {
            let id = client
                .publish("alloc/qos1", &PAYLOAD, QoS::AtLeastOnce, false)
                .expect("publish");
            assert!(id.is_some());
        }
    };
    publish(&mut client, WARM_UP);
    let allocations = allocations_during(|| publish(&mut client, MEASURED));
    assert_eq!(
        allocations, 0,
        "QoS 1 publish: {allocations} allocations for {MEASURED} messages"
    );
}

#[test]
fn publish_qos1_pipelined_allocates_nothing_per_message() {
    // The default window (20) matches mosquitto's default max_inflight_messages.
    let broker = Mosquitto::start();
    let mut client = connected(&broker, "alloc-qos1-pipelined");
    let publish = |client: &mut Client, count: usize| {
        for i in 0..count {
            client
                .publish_nowait("alloc/qos1", &PAYLOAD, QoS::AtLeastOnce, false)
                .expect("publish_nowait");
            if i % 500 == 499 {
                client
                    .wait_all_published(Duration::from_secs(10))
                    .expect("wait_all_published");
            }
        }
        client
            .wait_all_published(Duration::from_secs(10))
            .expect("wait_all_published");
    };
    publish(&mut client, WARM_UP);
    let allocations = allocations_during(|| publish(&mut client, MEASURED));
    assert_eq!(
        allocations, 0,
        "pipelined QoS 1: {allocations} allocations for {MEASURED} messages"
    );
}

/// Publishes `count` messages (64 B) on `topic` from another thread, at QoS 1 so that none is
/// lost and the receiver sees exactly `count`.
fn publish_from_thread(
    broker: &Mosquitto,
    topic: &'static str,
    count: usize,
) -> thread::JoinHandle<()> {
    let mut publisher = connected(broker, &format!("publisher-{topic}"));
    thread::spawn(move || {
        for i in 0..count {
            publisher
                .publish_nowait(topic, &PAYLOAD, QoS::AtLeastOnce, false)
                .expect("publish_nowait");
            if i % 200 == 199 {
                publisher
                    .wait_all_published(Duration::from_secs(10))
                    .expect("wait_all_published");
            }
        }
        publisher
            .wait_all_published(Duration::from_secs(10))
            .expect("wait_all_published");
    })
}

fn subscribed(broker: &Mosquitto, client_id: &str, filter: &str, qos: QoS) -> Client {
    let mut client = connected(broker, client_id);
    client.subscribe(filter, qos).expect("subscribe");
    client
}

#[test]
fn receive_allocates_nothing_per_message() {
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let broker = Mosquitto::start();
        let mut receiver = subscribed(&broker, "alloc-receiver", "alloc/in", qos);
        let publisher = publish_from_thread(&broker, "alloc/in", WARM_UP + MEASURED);
        let mut message = Message::default();
        let mut receive = |receiver: &mut Client, count: usize| {
            for _ in 0..count {
                receiver.wait_msg_into(&mut message).expect("wait_msg_into");
                assert_eq!(message.payload.len(), PAYLOAD.len());
            }
        };
        receive(&mut receiver, WARM_UP);
        let allocations = allocations_during(|| receive(&mut receiver, MEASURED));
        publisher.join().expect("publisher thread");
        assert_eq!(
            allocations, 0,
            "receive at {qos:?}: {allocations} allocations for {MEASURED} messages"
        );
    }
}

/// Messages that arrive while a call waits for its acknowledgement are queued inside the
/// client; the queue recycles the buffers that `check_msg_into` hands back.
#[test]
fn messages_queued_during_an_ack_wait_allocate_nothing() {
    let broker = Mosquitto::start();
    let mut client = subscribed(&broker, "alloc-echo", "alloc/echo/#", QoS::AtLeastOnce);
    let mut message = Message::default();
    let mut round = |client: &mut Client, count: usize| {
        for _ in 0..count {
            // The broker echoes this publish back to us, possibly before its PUBACK: it is
            // then queued while `publish` waits.
            client
                .publish("alloc/echo/1", &PAYLOAD, QoS::AtLeastOnce, false)
                .expect("publish");
            client
                .publish("alloc/echo/2", &PAYLOAD, QoS::AtLeastOnce, false)
                .expect("publish");
            let mut received = 0;
            while received < 2 {
                if client.check_msg_into(&mut message).expect("check_msg_into") {
                    received += 1;
                } else {
                    assert!(client
                        .wait_msg_timeout_into(&mut message, Duration::from_secs(10))
                        .expect("wait_msg_timeout_into"));
                    received += 1;
                }
            }
        }
    };
    round(&mut client, WARM_UP / 2);
    let allocations = allocations_during(|| round(&mut client, MEASURED / 2));
    assert_eq!(
        allocations, 0,
        "echo: {allocations} allocations for {MEASURED} messages"
    );
}

/// The control: the counter does see allocations, and `wait_msg`, which hands out an owned
/// `Message`, allocates its topic and payload for every message.
#[test]
fn counter_sees_the_allocations_of_wait_msg() {
    let broker = Mosquitto::start();
    let mut receiver = subscribed(&broker, "alloc-owned", "alloc/owned", QoS::AtLeastOnce);
    let count = 1_000;
    let publisher = publish_from_thread(&broker, "alloc/owned", WARM_UP + count);
    for _ in 0..WARM_UP {
        receiver.wait_msg().expect("wait_msg");
    }
    let mut kept = Vec::with_capacity(count);
    let allocations = allocations_during(|| {
        for _ in 0..count {
            kept.push(receiver.wait_msg().expect("wait_msg"));
        }
    });
    publisher.join().expect("publisher thread");
    assert!(
        allocations >= 2 * count as u64,
        "wait_msg: only {allocations} allocations for {count} messages"
    );
}

/// The robust (engine) client, publishing ahead of the acknowledgements: messages wait in
/// the engine's queue and refill the in-flight window as PUBACKs come.
#[test]
fn robust_publish_qos1_pipelined_allocates_nothing_per_message() {
    use umqtt::robust::{Client as RobustClient, FixedDelay, RobustConfig};

    let broker = Mosquitto::start();
    let mut client = RobustClient::with_robust_config(
        config(&broker, "alloc-robust"),
        FixedDelay::default(),
        RobustConfig {
            clean_session: true,
            ..RobustConfig::default()
        },
    );
    // Events (one Delivered per message) are handed to the handler as they come.
    client.set_event_handler(|_| {});
    client.connect().expect("connect");
    let publish = |client: &mut RobustClient, count: usize| {
        for i in 0..count {
            client
                .publish("alloc/robust", &PAYLOAD, QoS::AtLeastOnce, false)
                .expect("publish");
            if i % 500 == 499 {
                assert!(client.flush(Duration::from_secs(10)).expect("flush"));
            }
        }
        assert!(client.flush(Duration::from_secs(10)).expect("flush"));
    };
    publish(&mut client, WARM_UP);
    let allocations = allocations_during(|| publish(&mut client, MEASURED));
    assert_eq!(
        allocations, 0,
        "robust pipelined QoS 1: {allocations} allocations for {MEASURED} messages"
    );
}

/// MQTT 5 messages whose PUBLISH carries only a broker topic alias: the topic comes from the
/// session's alias table, borrowed, so receiving them allocates nothing either. mosquitto does
/// not send aliases to clients: a byte-exact fake broker thread (its allocations are not
/// counted) sends one PUBLISH that sets the alias up, then alias-only ones.
#[test]
fn receive_with_broker_topic_aliases_allocates_nothing_per_message() {
    use std::io::Write;
    const TOPIC: &str = "alloc/aliased/topic";
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let broker = thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        let _connect = umqtt_testkit::raw::read_packet(&mut socket).expect("CONNECT");
        // MQTT 5 CONNACK, accepted, no properties.
        socket.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).unwrap();
        // QoS 0 PUBLISH: topic, properties (Topic Alias 1), payload.
        let publish = |topic: &str| {
            let mut body = (topic.len() as u16).to_be_bytes().to_vec();
            body.extend_from_slice(topic.as_bytes());
            body.extend_from_slice(&[3, 0x23, 0x00, 0x01]);
            body.extend_from_slice(&PAYLOAD);
            let mut packet = vec![0x30, body.len() as u8];
            packet.extend_from_slice(&body);
            packet
        };
        socket.write_all(&publish(TOPIC)).unwrap();
        let alias_only = publish("");
        for _ in 0..WARM_UP + MEASURED {
            socket.write_all(&alias_only).unwrap();
        }
        // Wait for the client to leave.
        let _ = umqtt_testkit::raw::read_packet(&mut socket);
    });
    let mut options = umqtt_core::session::ConnectOptions::default();
    options.topic_alias_maximum = Some(1);
    let mut receiver = Client::with_config(ClientConfig {
        port: Some(port),
        protocol: umqtt::ProtocolVersion::V5,
        v5: options,
        client_id: "alloc-alias".to_owned(),
        server: "127.0.0.1".to_owned(),
        response_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    });
    receiver.connect(true).expect("connect");
    let mut message = Message::default();
    let mut receive = |receiver: &mut Client, count: usize| {
        for _ in 0..count {
            receiver.wait_msg_into(&mut message).expect("wait_msg_into");
            assert_eq!(message.topic, TOPIC);
        }
    };
    receive(&mut receiver, WARM_UP + 1);
    let allocations = allocations_during(|| receive(&mut receiver, MEASURED));
    receiver.disconnect().expect("disconnect");
    broker.join().expect("broker thread");
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for {MEASURED} alias-only messages"
    );
}
