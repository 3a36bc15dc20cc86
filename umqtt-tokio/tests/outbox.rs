//! The durable outbox under the async client: a guaranteed message whose `publish` returned
//! survives the process being killed (SIGKILL, no goodbye) and is delivered by the next
//! process; every message is counted by a subscriber.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use umqtt::outbox::{DurableOutbox, OutboxStore};
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::proxy::{FaultProxy, Mode};
use umqtt_tokio::robust::{Client, Delivery, Event, ExponentialBackoff, RobustConfig};
use umqtt_tokio::{ClientConfig, Error, QoS, UsageError};

/// Guards against a hang; never part of what a test proves.
const GUARD: Duration = Duration::from_secs(30);
const CHILD_ENV: &str = "UMQTT_TOKIO_OUTBOX_CHILD";

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

fn client(port: u16, client_id: &str) -> Client {
    Client::new(
        config(port, client_id),
        ExponentialBackoff::new(Duration::from_millis(20), Duration::from_millis(200)),
    )
    .robust_config(RobustConfig {
        seed: Some(3),
        ..RobustConfig::default()
    })
}

/// Not a test of its own: the publishing process the test below kills. It publishes
/// guaranteed messages through a proxy that refuses every connection, printing each one
/// whose `publish` returned, and waits to be killed.
#[test]
fn outbox_child_publisher() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split(',');
    let port: u16 = parts.next().unwrap().parse().unwrap();
    let path = parts.next().unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = DurableOutbox::open(&path).unwrap();
        let (handle, events) = client(port, "outbox-async-pub")
            .outbox(store)
            .unwrap()
            .spawn()
            .unwrap();
        drop(events);
        for n in 0.. {
            handle
                .publish_with(
                    "oa/1",
                    format!("m{n}").as_bytes(),
                    QoS::AtLeastOnce,
                    false,
                    Delivery::Guaranteed,
                )
                .await
                .unwrap();
            println!("stored m{n}");
        }
    });
}

#[test]
fn published_messages_survive_sigkill_and_the_next_process_sends_them() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    proxy.set_mode(Mode::Refuse);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A subscriber on a persistent session, straight to the broker.
    let (_sub, mut sub_events) = runtime.block_on(async {
        let (sub, mut events) = client(broker.port(), "outbox-async-sub").spawn().unwrap();
        sub.subscribe("oa/#", QoS::AtLeastOnce).unwrap();
        tokio::time::timeout(GUARD, async {
            while let Some(event) = events.next().await {
                if matches!(event, Event::Subscribed { .. }) {
                    return;
                }
            }
        })
        .await
        .expect("subscribed");
        (sub, events)
    });

    // The first process: killed once 40 publishes returned.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "outbox_child_publisher",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, format!("{},{}", proxy.port(), path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stored = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(payload) = line.strip_prefix("stored ") {
            stored.push(payload.to_owned());
            if stored.len() == 40 {
                break;
            }
        }
    }
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
    assert_eq!(stored.len(), 40, "the child published");

    // The next process (here: a new client on the same file and client id), broker reachable.
    proxy.set_mode(Mode::Forward);
    let seen = runtime.block_on(async {
        let store = DurableOutbox::open(&path).unwrap();
        let (handle, events) = client(proxy.port(), "outbox-async-pub")
            .outbox(store)
            .unwrap()
            .spawn()
            .unwrap();
        drop(events);
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let _ = tokio::time::timeout(GUARD, async {
            while stored.iter().any(|p| !seen.contains_key(p)) {
                match sub_events.next_message(|_| {}).await {
                    Some(message) => {
                        *seen
                            .entry(String::from_utf8(message.payload).unwrap())
                            .or_default() += 1;
                    }
                    None => return,
                }
            }
        })
        .await;
        // Everything the killed process stored is settled, and forgotten by the store.
        tokio::time::timeout(GUARD, async {
            while handle.pending() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("settled");
        drop(handle);
        seen
    });
    for payload in &stored {
        assert!(seen.contains_key(payload), "{payload} lost; got {seen:?}");
    }
    drop(runtime);
    let mut reopened = DurableOutbox::open(&path).unwrap();
    assert_eq!(
        reopened.load().unwrap(),
        Vec::new(),
        "settled messages are forgotten"
    );
}

#[test]
fn a_refused_durable_publish_is_not_stored() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = DurableOutbox::open(&path).unwrap();
        // Nothing listens on this port: the link stays down, messages wait.
        let (handle, events) = Client::new(
            config(umqtt_testkit::broker::free_port(), "refused"),
            ExponentialBackoff::new(Duration::from_secs(60), Duration::from_secs(60)),
        )
        .robust_config(RobustConfig {
            max_queued: 2,
            seed: Some(1),
            ..RobustConfig::default()
        })
        .outbox(store)
        .unwrap()
        .spawn()
        .unwrap();
        drop(events);
        let publish = |topic: &'static str| {
            handle.try_publish_with(topic, b"x", QoS::AtLeastOnce, false, Delivery::Guaranteed)
        };
        assert!(publish("a").is_ok());
        assert!(publish("b").is_ok());
        assert_eq!(
            publish("c").unwrap_err(),
            Error::Usage(UsageError::OutgoingFull)
        );
        assert!(matches!(
            publish("bad/#").unwrap_err(),
            Error::Usage(UsageError::InvalidTopicName(_))
        ));
        drop(handle);
    });
    drop(runtime);
    let mut reopened = DurableOutbox::open(&path).unwrap();
    let topics: Vec<String> = reopened
        .load()
        .unwrap()
        .into_iter()
        .map(|m| m.topic)
        .collect();
    assert_eq!(topics, ["a", "b"], "only the accepted messages are stored");
}
