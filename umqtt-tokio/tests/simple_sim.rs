//! The simple async client on tokio's paused clock against the simulated broker: its timers
//! (keepalive, response timeout) run on tokio's clock, so an idle hour takes milliseconds.

mod support;

use std::time::Duration;

use support::sim::Sim;
use umqtt_testkit::sim::{ServerMode, SimNet};
use umqtt_tokio::simple::Client;
use umqtt_tokio::{ClientConfig, QoS};

fn client() -> Client<support::sim::SimStream> {
    Client::new(ClientConfig {
        client_id: "simple-sim".into(),
        keep_alive: 10,
        response_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    })
}

/// An hour of `wait_msg` on an idle link: keepalive pings keep it up (the broker would drop a
/// silent client after 15 s), then a message published at the hour arrives.
#[tokio::test(start_paused = true)]
async fn wait_msg_keeps_an_idle_link_alive_for_an_hour() {
    let sim = Sim::new(SimNet::new(21));
    let mut client = client();
    let stream = sim.open(0).await.expect("open");
    client
        .connect_with_stream(stream, true)
        .await
        .expect("connect");
    client
        .subscribe("t", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let publisher = sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        publisher.with(|net, now| {
            net.broker_mut(0)
                .publish(now, "t", b"at last", QoS::AtLeastOnce, false)
        });
    });
    let started = tokio::time::Instant::now();
    let message = client.wait_msg().await.expect("message");
    assert_eq!(message.payload, b"at last");
    assert!(started.elapsed() >= Duration::from_secs(3600));
    let connects = sim.with(|net, _| net.broker(0).connects().len());
    assert_eq!(connects, 1, "the link stayed up");
}

/// A black-holed link: `publish` at QoS 1 fails with a timeout at the response timeout, and
/// the next `wait_msg` learns of the dead link from the keepalive.
#[tokio::test(start_paused = true)]
async fn black_hole_is_detected_by_the_response_timeout_and_keepalive() {
    let sim = Sim::new(SimNet::new(22));
    let mut client = client();
    let stream = sim.open(0).await.expect("open");
    client
        .connect_with_stream(stream, true)
        .await
        .expect("connect");
    sim.with(|net, now| net.set_mode(now, 0, ServerMode::BlackHole));
    let started = tokio::time::Instant::now();
    let result = client.publish("t", b"1", QoS::AtLeastOnce, false).await;
    assert!(matches!(result, Err(umqtt::Error::Timeout)), "{result:?}");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(5),
        "the response timeout exactly"
    );
    let result = client.wait_msg().await;
    assert!(
        matches!(result, Err(umqtt::Error::KeepAliveTimeout)),
        "{result:?}"
    );
    assert!(!client.is_connected());
}
