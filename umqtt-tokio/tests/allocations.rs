//! Steady-state publishing through the async robust client allocates nothing per message,
//! against a real mosquitto.
//!
//! A counting global allocator wraps `System` and counts, per thread, every `alloc`,
//! `alloc_zeroed` and `realloc`. Each test runs a current-thread runtime on its own thread,
//! so the driver task, the publishing task and the event-stream task are all counted, and
//! the test harness and other tests are not. The client is warmed up first (buffers, the
//! receipt table and the engine's spare buffers grow to their working size), then the
//! allocations of many more messages are counted.

use std::time::Duration;

use umqtt_testkit::alloc_count::{allocations, CountingAllocator};
use umqtt_testkit::broker::Mosquitto;
use umqtt_tokio::robust::{Client, Event, FixedDelay, Outcome, RobustConfig};
use umqtt_tokio::{ClientConfig, QoS};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const PAYLOAD: [u8; 64] = [0x5A; 64];
const WARM_UP: usize = 3_000;
const MEASURED: usize = 10_000;
/// Messages published before awaiting the last one's receipt (ahead of the acks: most wait
/// in the engine's queue, as in a pipelined producer).
const CHUNK: usize = 500;
/// Guards against a hang; never part of what a test proves.
const GUARD: Duration = Duration::from_secs(30);

/// Publishes `WARM_UP` then `MEASURED` messages at `qos` in chunks of `CHUNK`, awaiting the
/// chunk's last receipt (outcomes come in order), and returns the allocations counted during
/// the measured part. With `read_events`, a task reads the event stream meanwhile; else it is
/// dropped.
fn publish_allocations(qos: QoS, client_id: &str, read_events: bool) -> u64 {
    let broker = Mosquitto::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let config = ClientConfig {
            client_id: client_id.to_owned(),
            server: "127.0.0.1".to_owned(),
            port: Some(broker.port()),
            // mosquitto's default max_inflight_messages.
            max_in_flight: 20,
            response_timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        };
        let (handle, mut events) = Client::new(config, FixedDelay::default())
            .robust_config(RobustConfig {
                seed: Some(1),
                ..RobustConfig::default()
            })
            .spawn()
            .expect("runtime");
        let reader = if read_events {
            Some(tokio::spawn(async move {
                let mut delivered = 0u64;
                while let Some(event) = events.next().await {
                    if matches!(event, Event::Delivered { .. }) {
                        delivered += 1;
                    }
                }
                delivered
            }))
        } else {
            drop(events);
            None
        };
        let publish = |count: usize| {
            let handle = &handle;
            async move {
                for i in 0..count {
                    let receipt = handle
                        .publish("alloc/async", &PAYLOAD, qos, false)
                        .await
                        .expect("publish");
                    if (i + 1) % CHUNK == 0 || i + 1 == count {
                        let outcome = tokio::time::timeout(GUARD, receipt.outcome())
                            .await
                            .expect("outcome in time");
                        assert_eq!(outcome, Ok(Outcome::Delivered));
                    }
                }
            }
        };
        publish(WARM_UP).await;
        let before = allocations();
        publish(MEASURED).await;
        let counted = allocations() - before;
        assert_eq!(handle.stats().delivered, (WARM_UP + MEASURED) as u64);
        drop(handle);
        if let Some(reader) = reader {
            let delivered = reader.await.expect("reader");
            assert_eq!(delivered, (WARM_UP + MEASURED) as u64);
        }
        counted
    })
}

#[test]
fn async_publish_qos1_pipelined_allocates_nothing_per_message() {
    let allocations = publish_allocations(QoS::AtLeastOnce, "alloc-async-qos1", false);
    assert_eq!(
        allocations, 0,
        "QoS 1: {allocations} allocations for {MEASURED} messages"
    );
}

#[test]
fn async_publish_qos0_allocates_nothing_per_message() {
    let allocations = publish_allocations(QoS::AtMostOnce, "alloc-async-qos0", false);
    assert_eq!(
        allocations, 0,
        "QoS 0: {allocations} allocations for {MEASURED} messages"
    );
}

#[test]
fn async_publish_with_the_event_stream_read_allocates_nothing_per_message() {
    let allocations = publish_allocations(QoS::AtLeastOnce, "alloc-async-events", true);
    assert_eq!(
        allocations, 0,
        "QoS 1, events read: {allocations} allocations for {MEASURED} messages"
    );
}
