//! The footprint benchmark's job with minimq (MQTT 5, no allocator, no reconnect policy):
//! connect, publish one QoS 1 message, receive one message of a subscription.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embedded_nal_async::TcpConnect;
use minimq::{Buffers, ConfigBuilder, Publication, QoS, Session, SubscriptionOptions, TopicFilter};
use panic_halt as _;
use umqtt_firmware::net::{Stack, BROKER_ADDR};

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    if let Some(peripherals) = cortex_m::Peripherals::take() {
        umqtt_firmware::time::start(peripherals.SYST);
    }
    let stack = Stack;
    let (mut rx, mut tx) = ([0u8; 1024], [0u8; 1024]);
    let Ok(config) = ConfigBuilder::new(Buffers::new(&mut rx, &mut tx)).client_id("footprint")
    else {
        return;
    };
    let mut session = Session::new(config);
    let Ok(io) = stack.connect(BROKER_ADDR).await else {
        return;
    };
    let Ok(mut connection) = session.connect(io).await else {
        return;
    };
    let filter = TopicFilter::new("fw/in")
        .options(SubscriptionOptions::default().maximum_qos(QoS::AtLeastOnce));
    if connection.subscribe(&[filter], &[]).await.is_err() {
        return;
    }
    let publication = Publication::new("fw/out", b"hello".as_slice()).qos(QoS::AtLeastOnce);
    if connection.publish(publication).await.is_err() {
        return;
    }
    if let Ok(message) = connection.recv().await {
        core::hint::black_box(message.payload());
    }
}
