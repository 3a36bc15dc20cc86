//! The footprint benchmark's job with rust-mqtt (MQTT 5, bump buffer, no reconnect policy):
//! connect, publish one QoS 1 message, receive one message of a subscription.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embedded_nal_async::TcpConnect;
use panic_halt as _;
use rust_mqtt::buffer::BumpBuffer;
use rust_mqtt::client::event::Event;
use rust_mqtt::client::options::{
    ConnectOptions, PublicationOptions, SubscriptionOptions, TopicReference,
};
use rust_mqtt::client::Client;
use rust_mqtt::types::{MqttString, TopicFilter, TopicName};
use rust_mqtt::Bytes;
use umqtt_firmware::net::{Stack, BROKER_ADDR};

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    if let Some(peripherals) = cortex_m::Peripherals::take() {
        umqtt_firmware::time::start(peripherals.SYST);
    }
    let stack = Stack;
    let mut memory = [0u8; 2048];
    let mut buffer = BumpBuffer::new(&mut memory);
    let mut client = Client::<'_, '_, _, _, 1, 1, 1, 1, 16, 0, 1>::new(&mut buffer);
    let Ok(io) = stack.connect(BROKER_ADDR).await else {
        return;
    };
    let (Ok(client_id), Ok(filter), Ok(topic)) = (
        MqttString::try_from("footprint"),
        MqttString::try_from("fw/in"),
        MqttString::try_from("fw/out"),
    ) else {
        return;
    };
    if client
        .connect(io, &ConnectOptions::new(), Some(client_id))
        .await
        .is_err()
    {
        return;
    }
    let Some(filter) = TopicFilter::new(filter) else {
        return;
    };
    if client
        .subscribe(filter, &SubscriptionOptions::new().at_least_once())
        .await
        .is_err()
    {
        return;
    }
    let Some(topic) = TopicName::new(topic) else {
        return;
    };
    let options = PublicationOptions::new(TopicReference::Name(topic)).at_least_once();
    if client
        .publish(&options, Bytes::from(b"hello".as_slice()))
        .await
        .is_err()
    {
        return;
    }
    while let Ok(event) = client.poll().await {
        if let Event::Publish(publish) = event {
            core::hint::black_box(publish);
            break;
        }
    }
}
