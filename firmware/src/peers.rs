//! The footprint benchmark's job (BENCHMARKS.md) with the two embedded MQTT crates a device
//! would otherwise pick, both MQTT 5 only, with no allocator and no reconnect policy: connect,
//! subscribe, publish one QoS 1 message, receive one message of the subscription. Their
//! buffers are const parameters, so the same job is measured with the buffers first chosen
//! (1 KiB each for minimq, a 2 KiB bump buffer for rust-mqtt) and with 128 bytes, the largest
//! packet of the umqtt job on `Fixed<6, 128>`.

use embedded_nal_async::TcpConnect;

use crate::net::{Stack, BROKER_ADDR};

/// The job with minimq, in receive and transmit buffers of `RX` and `TX` bytes.
pub async fn minimq_job<const RX: usize, const TX: usize>() {
    use minimq::{
        Buffers, ConfigBuilder, Publication, QoS, Session, SubscriptionOptions, TopicFilter,
    };
    let stack = Stack;
    let (mut rx, mut tx) = ([0u8; RX], [0u8; TX]);
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

/// The job with rust-mqtt, its packets' contents in a bump buffer of `MEMORY` bytes (queues
/// of one entry each: the smallest that do the job).
pub async fn rust_mqtt_job<const MEMORY: usize>() {
    use rust_mqtt::buffer::BumpBuffer;
    use rust_mqtt::client::event::Event;
    use rust_mqtt::client::options::{
        ConnectOptions, PublicationOptions, SubscriptionOptions, TopicReference,
    };
    use rust_mqtt::client::Client;
    use rust_mqtt::types::{MqttString, TopicFilter, TopicName};
    use rust_mqtt::Bytes;

    let stack = Stack;
    let mut memory = [0u8; MEMORY];
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
