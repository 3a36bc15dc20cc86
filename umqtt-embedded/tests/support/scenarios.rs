// The fault scenarios of `mosquitto.rs` and `mosquitto_fixed.rs`, included by both after they
// name the session's storage (`SessionStorage`).

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use support::{TokioClock, TokioTcp};
use umqtt_embedded::{
    Client, Delivery, Driver, EngineConfig, Event, ExponentialBackoff, MessageId, QoS, Server,
    Received, SessionConfig, UsageError,
};
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::proxy::{FaultProxy, Mode};

/// Guards against a hang; never part of what a test proves.
const GUARD: Duration = Duration::from_secs(20);

type TestClient = Client<ExponentialBackoff, TokioClock, SessionStorage>;

fn client(client_id: &str, seed: u64) -> TestClient {
    let session = SessionConfig {
        client_id: client_id.to_string(),
        keep_alive: 2,
        connect_timeout: Duration::from_secs(1),
        ..SessionConfig::default()
    };
    let policy = ExponentialBackoff::new(Duration::from_millis(50), Duration::from_millis(500));
    // Built at run time: on fixed storage its strings are leaked (`'static`), once per client.
    let config = EngineConfig::new(session).into_strings();
    Client::with_storage(config, policy, seed, TokioClock::new())
}

/// Runs `body` while the publisher's driver (to `publisher_addr`) and the subscriber's (to
/// `subscriber_addr`) run beside it, in one task.
async fn drive<T>(
    (publisher, publisher_addr): (&TestClient, SocketAddr),
    (subscriber, subscriber_addr): (&TestClient, SocketAddr),
    body: impl Future<Output = T>,
) -> T {
    let stack = TokioTcp;
    let publisher_servers = [Server::Addr(publisher_addr)];
    let subscriber_servers = [Server::Addr(subscriber_addr)];
    let (mut publisher_rx, mut subscriber_rx) = ([0u8; 1024], [0u8; 1024]);
    let publisher_driver = Driver::new(publisher, &stack, &publisher_servers, &mut publisher_rx);
    let subscriber_driver =
        Driver::new(subscriber, &stack, &subscriber_servers, &mut subscriber_rx);
    tokio::select! {
        biased;
        out = body => out,
        never = publisher_driver.run() => match never {},
        never = subscriber_driver.run() => match never {},
    }
}

/// What came out of a client's event stream so far.
#[derive(Debug, Default)]
struct Seen {
    delivered: BTreeSet<MessageId>,
    not_delivered: usize,
    subscribed: usize,
    sessions_lost: usize,
    disconnects: usize,
    payloads: BTreeSet<Vec<u8>>,
}

impl Seen {
    fn take(&mut self, client: &TestClient) {
        while let Some(event) = client.try_next_event() {
            match event {
                Event::Delivered { id } => {
                    self.delivered.insert(id);
                }
                Event::Expired { .. } | Event::Dropped { .. } => self.not_delivered += 1,
                Event::Subscribed { .. } => self.subscribed += 1,
                Event::SessionLost { .. } => self.sessions_lost += 1,
                Event::Disconnected { .. } => self.disconnects += 1,
                Event::Message(message) => {
                    self.payloads.insert(Received::payload(&message).to_vec());
                }
                _ => {}
            }
        }
    }
}

/// Both clients' events, taken until `done` holds (or the guard fails the test).
struct Watch<'a> {
    publisher: &'a TestClient,
    subscriber: &'a TestClient,
    publisher_seen: Seen,
    subscriber_seen: Seen,
}

impl Watch<'_> {
    async fn until(&mut self, what: &str, done: impl Fn(&Seen, &Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            self.publisher_seen.take(self.publisher);
            self.subscriber_seen.take(self.subscriber);
            if done(&self.publisher_seen, &self.subscriber_seen) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: {:?} {:?}",
                self.publisher_seen,
                self.subscriber_seen
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Publishes `count` guaranteed QoS 1 messages numbered from `*next`. When the engine
    /// holds all it can (fixed storage holds a few), waits for one of them to settle.
    async fn publish(&mut self, next: &mut usize, count: usize) {
        for _ in 0..count {
            loop {
                let queued = self.publisher.publish_with(
                    "e/1",
                    next.to_string().as_bytes(),
                    QoS::AtLeastOnce,
                    false,
                    Delivery::Guaranteed,
                );
                match queued {
                    Ok(_) => break,
                    Err(UsageError::OutgoingFull) => {
                        let settled = |p: &Seen| p.delivered.len() + p.not_delivered;
                        let before = settled(&self.publisher_seen);
                        self.until("room to publish", |p, _| settled(p) > before)
                            .await;
                    }
                    Err(error) => panic!("publish: {error}"),
                }
            }
            *next += 1;
        }
    }
}

/// What goes wrong in a scenario.
enum Fault<'a> {
    /// The broker restarts (with or without persistence, as it was started).
    Restart(&'a mut Mosquitto),
    /// The broker restarts without persistence once the first batch arrived: the session is
    /// lost; the subscriber's renewal is awaited.
    SessionLost(&'a mut Mosquitto),
    /// The proxy closes the link.
    Cut(&'a FaultProxy),
    /// The proxy stops forwarding (sockets open) until the publisher noticed.
    BlackHole(&'a FaultProxy),
}

async fn restart(broker: &mut Mosquitto) {
    // Blocks this thread (and so the drivers) while the broker is down: they find the link
    // dead when they run again.
    tokio::task::block_in_place(|| broker.restart());
}

impl Fault<'_> {
    async fn apply(self, watch: &mut Watch<'_>, batch: usize) {
        match self {
            Fault::Restart(broker) => restart(broker).await,
            Fault::SessionLost(broker) => {
                // Everything of the first batch delivered and received first: what the broker
                // held for the subscriber when it forgot the session would be the broker's
                // loss.
                watch
                    .until("first batch", |p, s| {
                        p.delivered.len() >= batch && s.payloads.len() >= batch
                    })
                    .await;
                restart(broker).await;
                watch
                    .until("resubscribed", |_, s| {
                        s.sessions_lost >= 1 && s.subscribed >= 2
                    })
                    .await;
            }
            Fault::Cut(proxy) => proxy.cut(),
            Fault::BlackHole(proxy) => {
                proxy.set_mode(Mode::BlackHole);
                // Only the keepalive (2 s) can notice a link that silently stopped.
                watch
                    .until("black hole detected", |p, _| p.disconnects >= 1)
                    .await;
                proxy.set_mode(Mode::Forward);
            }
        }
    }
}

/// Publishes `batch` messages, applies `fault` while they are in flight, publishes `batch`
/// more, and checks that every message was delivered and received.
async fn scenario(
    (publisher_addr, subscriber_addr): (SocketAddr, SocketAddr),
    batch: usize,
    fault: Fault<'_>,
) -> (Seen, Seen) {
    let publisher = client("emb-pub", 1);
    let subscriber = client("emb-sub", 2);
    subscriber
        .subscribe("e/#", QoS::AtLeastOnce)
        .expect("valid filter");
    let mut watch = Watch {
        publisher: &publisher,
        subscriber: &subscriber,
        publisher_seen: Seen::default(),
        subscriber_seen: Seen::default(),
    };
    let mut sent = 0;
    drive(
        (&publisher, publisher_addr),
        (&subscriber, subscriber_addr),
        async {
            watch.until("subscribed", |_, s| s.subscribed >= 1).await;
            watch.publish(&mut sent, batch).await;
            // A few of them written, the rest in the engine's window and queue.
            tokio::time::sleep(Duration::from_millis(5)).await;
            fault.apply(&mut watch, batch).await;
            watch.publish(&mut sent, batch).await;
            let total = sent;
            watch
                .until("all delivered and received", |p, s| {
                    p.delivered.len() >= total && s.payloads.len() >= total
                })
                .await;
        },
    )
    .await;
    let (publisher_seen, subscriber_seen) = (watch.publisher_seen, watch.subscriber_seen);
    assert_eq!(
        publisher_seen.delivered.len(),
        sent,
        "every message delivered"
    );
    assert_eq!(publisher_seen.not_delivered, 0);
    let expected: BTreeSet<Vec<u8>> = (0..sent).map(|n| n.to_string().into_bytes()).collect();
    assert_eq!(subscriber_seen.payloads, expected, "every message received");
    (publisher_seen, subscriber_seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_nothing() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let addr = broker.addr();
    let (publisher, _) = scenario((addr, addr), 100, Fault::Restart(&mut broker)).await;
    assert!(publisher.disconnects >= 1, "the restart was seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_cut_loses_nothing() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let (publisher, _) = scenario((proxy.addr(), broker.addr()), 100, Fault::Cut(&proxy)).await;
    assert!(publisher.disconnects >= 1);
    assert!(proxy.connections_accepted() >= 2, "the link came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_is_detected_and_nothing_is_lost() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let addrs = (proxy.addr(), broker.addr());
    let (publisher, _) = scenario(addrs, 50, Fault::BlackHole(&proxy)).await;
    assert!(publisher.disconnects >= 1);
}

/// The broker forgets everything (restart without persistence): the publisher publishes what
/// it still owed again, the subscriber sees the lost session and subscribes again by itself,
/// and every message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_lost_is_renewed_and_nothing_is_lost() {
    let mut broker = Mosquitto::builder().persistence(false).start();
    let addr = broker.addr();
    let (_, subscriber) = scenario((addr, addr), 50, Fault::SessionLost(&mut broker)).await;
    assert!(subscriber.sessions_lost >= 1);
}
