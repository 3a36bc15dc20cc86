//! The robust engine on `Fixed` storage allocates nothing, from being built on: a device's
//! whole life — subscriptions (one refused), messages received at QoS 0/1/2, messages published at
//! QoS 0/1/2 with every delivery contract, keepalive, a lost link with messages in flight, an
//! unsubscribe while offline, an attempt that fails, a deadline that passes, a full queue, a
//! resumed session with resends, a lost session with subscriptions renewed and messages
//! republished, a clean disconnect — with every allocation on this thread counted. The same
//! life on the heap is counted too (> 0), so a counter that sees nothing cannot pass for a
//! result; and both lives must settle every message exactly once.

mod support;

use std::time::Duration;

use support::counting;
use umqtt_core::message::Received;
use umqtt_core::packet::{decode, encode_publish_header, Decoded, Packet, Publish};
use umqtt_core::robust::{
    Action, Delivery, DropReason, Engine, EngineConfig, Event, FailureKind, FixedDelay,
};
use umqtt_core::session::{SessionConfig, UsageError};
use umqtt_core::storage::{Fixed, Heap, Storage};
use umqtt_core::{Instant, PacketId, QoS};

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// The engine with a driver and a scripted broker around it, on fixed-size arrays only.
struct Device<S: Storage> {
    engine: Engine<FixedDelay, (), S>,
    /// The broker reads what is written (false: a black hole).
    answering: bool,
    /// The broker's answers not yet read by the engine.
    owed: [u8; 256],
    owed_len: usize,
    opens: usize,
    closes: usize,
    connects: usize,
    sessions_lost: usize,
    publishes: usize,
    resends: usize,
    pings: usize,
    disconnects: usize,
    subscribes: usize,
    delivered: usize,
    expired: usize,
    dropped: [usize; 4],
    published: usize,
    subscribed: usize,
    refused: usize,
    unsubscribed: usize,
    received: usize,
}

impl<S: Storage> Device<S> {
    fn new(engine: Engine<FixedDelay, (), S>) -> Self {
        Device {
            engine,
            answering: true,
            owed: [0; 256],
            owed_len: 0,
            opens: 0,
            closes: 0,
            connects: 0,
            sessions_lost: 0,
            publishes: 0,
            resends: 0,
            pings: 0,
            disconnects: 0,
            subscribes: 0,
            delivered: 0,
            expired: 0,
            dropped: [0; 4],
            published: 0,
            subscribed: 0,
            refused: 0,
            unsubscribed: 0,
            received: 0,
        }
    }

    /// What a driver does after every input: actions, writes, events.
    fn service(&mut self, now: Instant) {
        loop {
            while let Some(action) = self.engine.poll_action() {
                match action {
                    Action::Open { .. } => self.opens += 1,
                    Action::Close => self.closes += 1,
                }
            }
            let mut busy = false;
            while let Some(bytes) = self.engine.poll_transmit(now) {
                let mut copy = [0u8; 512];
                copy[..bytes.len()].copy_from_slice(bytes);
                let len = bytes.len();
                self.broker_reads(&copy[..len]);
                busy = true;
            }
            if busy {
                self.engine.handle_written(now);
            }
            while let Some(event) = self.engine.poll_event() {
                // Taking events may let the engine go on with input it held: look again.
                busy = true;
                match event {
                    Event::Connected { .. } => self.connects += 1,
                    Event::SessionLost { .. } => self.sessions_lost += 1,
                    Event::Delivered { .. } => self.delivered += 1,
                    Event::Expired { .. } => self.expired += 1,
                    Event::Dropped { reason, .. } => {
                        let index = match reason {
                            DropReason::NotConnected => 0,
                            DropReason::LinkLost => 1,
                            DropReason::QueueOverflow => 2,
                            _ => 3,
                        };
                        self.dropped[index] += 1;
                    }
                    Event::Subscribed { filter, granted } => {
                        assert_ne!(&*filter, "refused/x");
                        assert_eq!(granted, QoS::AtLeastOnce);
                        self.subscribed += 1;
                    }
                    Event::SubscriptionRefused { filter } => {
                        assert_eq!(&*filter, "refused/x");
                        self.refused += 1;
                    }
                    Event::Unsubscribed { .. } => self.unsubscribed += 1,
                    Event::Message(message) => {
                        self.received += 1;
                        // The application took it.
                        self.engine.handle_consumed(now, message.payload().len());
                    }
                    _ => {}
                }
            }
            if !busy {
                return;
            }
        }
    }

    /// The broker reads whole packets (the engine writes whole packets per slice here).
    fn broker_reads(&mut self, mut bytes: &[u8]) {
        if !self.answering {
            return;
        }
        while let Ok(Decoded::Complete { packet, consumed }) = decode(bytes, usize::MAX) {
            let answer: Option<[u8; 4]> = match packet {
                Packet::Publish(publish) => {
                    self.publishes += 1;
                    self.resends += usize::from(publish.dup);
                    let id = publish.packet_id.map(|id| id.get().to_be_bytes());
                    match (publish.qos, id) {
                        (QoS::AtLeastOnce, Some([hi, lo])) => Some([0x40, 2, hi, lo]),
                        (QoS::ExactlyOnce, Some([hi, lo])) => Some([0x50, 2, hi, lo]),
                        _ => None,
                    }
                }
                Packet::PubRel(ack) => {
                    let [hi, lo] = ack.packet_id.get().to_be_bytes();
                    Some([0x70, 2, hi, lo])
                }
                // The device's answer to a QoS 2 message from the broker.
                Packet::PubRec(ack) => {
                    let [hi, lo] = ack.packet_id.get().to_be_bytes();
                    Some([0x62, 2, hi, lo])
                }
                Packet::Subscribe(subscribe) => {
                    self.subscribes += 1;
                    let [hi, lo] = subscribe.packet_id.get().to_be_bytes();
                    let mut suback = [0x90, 2, hi, lo, 0, 0, 0, 0, 0, 0, 0, 0];
                    for (filter, _) in subscribe.topics.iter() {
                        // Granted at QoS 1 (whatever was asked), or refused.
                        let code = if filter == "refused/x" { 0x80 } else { 1 };
                        suback[usize::from(suback[1]) + 2] = code;
                        suback[1] += 1;
                    }
                    self.owe(&suback[..usize::from(suback[1]) + 2]);
                    None
                }
                Packet::Unsubscribe(unsubscribe) => {
                    let [hi, lo] = unsubscribe.packet_id.get().to_be_bytes();
                    Some([0xB0, 2, hi, lo])
                }
                Packet::PingReq => {
                    self.pings += 1;
                    self.owe(&[0xD0, 0]);
                    None
                }
                Packet::Disconnect(_) => {
                    self.disconnects += 1;
                    None
                }
                _ => None,
            };
            if let Some(answer) = answer {
                self.owe(&answer);
            }
            bytes = &bytes[consumed..];
        }
        assert!(bytes.is_empty(), "a packet split across writes");
    }

    fn owe(&mut self, bytes: &[u8]) {
        self.owed[self.owed_len..self.owed_len + bytes.len()].copy_from_slice(bytes);
        self.owed_len += bytes.len();
    }

    /// The engine reads `bytes`, at most its input room at a time.
    fn read(&mut self, now: Instant, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = bytes.len().min(self.engine.input_room());
            assert!(n > 0, "no input room after servicing");
            self.engine.handle_read(now, &bytes[..n]);
            self.service(now);
            bytes = &bytes[n..];
        }
    }

    /// The broker's answers reach the engine, until there are none.
    fn answer(&mut self, now: Instant) {
        while self.owed_len > 0 {
            let (owed, len) = (self.owed, self.owed_len);
            self.owed_len = 0;
            self.read(now, &owed[..len]);
        }
    }

    /// The broker sends a message (and completes its QoS 2 handshake).
    fn deliver(&mut self, now: Instant, topic: &str, qos: QoS, id: u16) {
        let publish = Publish {
            dup: false,
            qos,
            retain: false,
            topic,
            packet_id: PacketId::new(id),
            payload: b"on",
            properties: Default::default(),
        };
        let mut buf = [0u8; 64];
        let n = encode_publish_header(&publish, &mut buf).expect("fits");
        buf[n..n + 2].copy_from_slice(b"on");
        self.read(now, &buf[..n + 2]);
        self.answer(now);
    }

    fn publish(&mut self, now: Instant, payload: &[u8], qos: QoS, delivery: Delivery) {
        self.engine
            .publish_with(now, "device/reading", payload, qos, false, delivery)
            .unwrap();
        self.published += 1;
        self.service(now);
    }

    /// Opens the transport the engine asked for, and the broker accepts.
    fn connect(&mut self, now: Instant, session_present: bool) {
        self.engine.handle_timeout(now);
        self.service(now);
        self.engine.handle_opened(now);
        self.service(now);
        self.read(now, &[0x20, 2, u8::from(session_present), 0]);
        assert!(self.engine.is_connected());
    }

    fn lose_link(&mut self, now: Instant) {
        self.owed_len = 0;
        self.engine
            .handle_connection_lost(now, FailureKind::ConnectionLost, ());
        self.service(now);
    }
}

/// Runs a whole life and returns the allocations it made, building the engine included.
fn life<S: Storage>() -> usize {
    counting::start();
    let mut config = EngineConfig::new(SessionConfig {
        client_id: "device".into(),
        keep_alive: 30,
        max_in_flight: 4,
        ..SessionConfig::default()
    });
    config.max_queued = 6;
    let engine = Engine::with_storage(config, FixedDelay::default(), 7, t(0));
    let mut d = Device::<S>::new(engine);

    d.connect(t(0), false);
    // Subscriptions, one refused; a message of each QoS arrives.
    for (filter, qos) in [
        ("cmd/#", QoS::ExactlyOnce),
        ("cfg", QoS::AtLeastOnce),
        ("refused/x", QoS::AtMostOnce),
    ] {
        d.engine.subscribe(t(100), filter, qos).unwrap();
        d.service(t(100));
    }
    d.answer(t(150));
    assert_eq!((d.subscribed, d.refused), (2, 1));
    d.deliver(t(200), "cmd/led", QoS::AtMostOnce, 0);
    d.deliver(t(200), "cfg", QoS::AtLeastOnce, 1);
    d.deliver(t(200), "cmd/arm", QoS::ExactlyOnce, 2);
    assert_eq!(d.received, 3);
    assert_eq!(d.engine.subscriptions().count(), 2);
    // Every kind of message, acknowledged.
    d.publish(t(1_000), b"21.5", QoS::AtMostOnce, Delivery::NoRetry);
    d.publish(
        t(1_000),
        b"press",
        QoS::AtLeastOnce,
        Delivery::Within(Duration::from_secs(15)),
    );
    d.publish(t(1_000), b"alarm", QoS::ExactlyOnce, Delivery::Guaranteed);
    d.publish(t(1_000), b"alarm", QoS::AtLeastOnce, Delivery::Guaranteed);
    d.answer(t(1_100));
    assert_eq!(d.engine.pending(), 0);
    // Keepalive.
    d.engine.handle_timeout(t(32_000));
    d.service(t(32_000));
    d.answer(t(32_100));
    assert_eq!(d.pings, 1);

    // The link goes while two messages wait for their acknowledgement.
    d.answering = false;
    d.publish(t(40_000), b"a", QoS::AtLeastOnce, Delivery::Guaranteed);
    d.publish(t(40_000), b"b", QoS::ExactlyOnce, Delivery::Guaranteed);
    d.lose_link(t(40_500));
    // Offline: an unsubscribe waits for the link, a no-retry reading is dropped, a button
    // press waits 5 s, an alarm waits.
    d.engine.unsubscribe(t(41_000), "cmd/#").unwrap();
    d.service(t(41_000));
    d.publish(t(41_000), b"21.6", QoS::AtMostOnce, Delivery::NoRetry);
    d.publish(
        t(41_000),
        b"press",
        QoS::AtLeastOnce,
        Delivery::Within(Duration::from_secs(5)),
    );
    d.publish(t(41_000), b"c", QoS::AtLeastOnce, Delivery::Guaranteed);
    // An attempt fails; the deadline passes before the next.
    d.engine.handle_timeout(t(42_500));
    d.service(t(42_500));
    d.engine
        .handle_open_failed(t(42_600), FailureKind::TcpConnect, ());
    d.service(t(42_600));
    d.engine.handle_timeout(t(46_100));
    d.service(t(46_100));
    assert_eq!(
        d.expired,
        1,
        "{:?} {:?} pending {}",
        d.engine.stats(),
        d.dropped,
        d.engine.pending()
    );
    // The queue fills: the application hears so (RefuseNew).
    let mut refused = false;
    for n in 0..10u8 {
        match d.engine.publish_with(
            t(46_200),
            "device/reading",
            &[n; 8],
            QoS::AtLeastOnce,
            false,
            Delivery::Guaranteed,
        ) {
            Ok(_) => d.published += 1,
            Err(UsageError::OutgoingFull) => {
                refused = true;
                break;
            }
            Err(error) => panic!("{error}"),
        }
        d.service(t(46_200));
    }
    assert!(refused);
    // Back, with the session: resends with DUP, then the rest.
    d.answering = true;
    d.connect(t(48_600), true);
    d.answer(t(48_700));
    assert!(d.resends >= 2, "{} resends", d.resends);
    assert_eq!(d.engine.pending(), 0);
    assert_eq!(d.unsubscribed, 1);

    // The link goes again with a message in flight, and the broker lost the session: it is
    // published again as a new message.
    d.answering = false;
    d.publish(t(60_000), b"d", QoS::AtLeastOnce, Delivery::Guaranteed);
    d.lose_link(t(60_500));
    d.answering = true;
    d.connect(t(62_500), false);
    d.answer(t(62_600));
    assert_eq!(d.sessions_lost, 1);
    assert_eq!(d.engine.pending(), 0);
    // The kept subscription was renewed; then it is dropped.
    assert_eq!(d.subscribed, 3);
    d.engine.unsubscribe(t(65_000), "cfg").unwrap();
    d.service(t(65_000));
    d.answer(t(65_100));
    assert_eq!(d.unsubscribed, 2);
    assert_eq!(d.engine.subscriptions().count(), 0);

    d.engine.disconnect(t(70_000));
    d.service(t(70_000));
    assert_eq!(d.disconnects, 1);
    let allocations = counting::stop();

    // Every message settled exactly once.
    let dropped: usize = d.dropped.iter().sum();
    assert_eq!(
        d.delivered + d.expired + dropped,
        d.published,
        "{:?}",
        d.dropped
    );
    assert_eq!(d.dropped, [1, 0, 0, 0]);
    assert_eq!(d.connects, 3);
    assert!(d.opens >= 4 && d.closes >= 3);
    assert_eq!(d.engine.stats().events_overflowed, 0);
    allocations
}

#[test]
fn a_device_life_allocates_nothing_on_fixed_storage() {
    assert_eq!(life::<Fixed<12, 128>>(), 0);
}

#[test]
fn the_same_life_on_the_heap_allocates() {
    let allocations = life::<Heap>();
    eprintln!("the same life on the heap: {allocations} allocations");
    assert!(allocations > 0);
}
