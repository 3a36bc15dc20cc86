//! MQTT 5 rules against a byte-exact fake broker (a `TcpListener` on 127.0.0.1, one scripted
//! thread per test), for what mosquitto will not do: send topic aliases, exceed our Receive
//! Maximum, send AUTH, or come back with a smaller Maximum Packet Size. The broker's bytes are
//! written by hand here, never with the codec under test; it asserts the exact bytes the
//! client sends on its way out (DISCONNECT with the reason code).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use umqtt::robust::{DropReason, Event, FixedDelay};
use umqtt::simple::{Client, ClientConfig};
use umqtt::{Error, ProtocolVersion, QoS};
use umqtt_core::session::{ConnectOptions, ProtocolError};
use umqtt_testkit::raw;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A packet: first byte, then the remaining length and `body`.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// An MQTT 5 CONNACK, accepted, with raw `properties`.
fn connack(session_present: bool, properties: &[u8]) -> Vec<u8> {
    let mut body = vec![u8::from(session_present), 0x00, properties.len() as u8];
    body.extend_from_slice(properties);
    frame(0x20, &body)
}

/// An MQTT 5 PUBLISH with a packet id for QoS 1/2 and an optional Topic Alias (0x23).
fn publish(topic: &str, alias: Option<u16>, qos: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&id.to_be_bytes());
    }
    match alias {
        Some(alias) => {
            body.push(3);
            body.push(0x23);
            body.extend_from_slice(&alias.to_be_bytes());
        }
        None => body.push(0),
    }
    body.extend_from_slice(payload);
    frame(0x30 | (qos << 1), &body)
}

/// Accepts one connection and reads its CONNECT; returns the socket and the CONNECT body.
fn accept(listener: &TcpListener) -> (TcpStream, Vec<u8>) {
    let (mut socket, _) = listener.accept().expect("accept");
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let (first, body) = raw::read_packet(&mut socket).expect("CONNECT");
    assert_eq!(first, 0x10, "CONNECT first");
    (socket, body)
}

/// Reads packets until a DISCONNECT; returns its body (the reason code, if any).
fn read_until_disconnect(socket: &mut TcpStream) -> Vec<u8> {
    loop {
        let (first, body) = raw::read_packet(socket).expect("DISCONNECT before close");
        if first == 0xE0 {
            return body;
        }
    }
}

fn client_config(port: u16, client_id: &str, v5: ConnectOptions) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_string(),
        server: "127.0.0.1".to_string(),
        port: Some(port),
        response_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        protocol: ProtocolVersion::V5,
        v5,
        ..ClientConfig::default()
    }
}

/// A fake broker running `script` on its own thread; returns the port and the thread.
fn fake_broker<T: Send + 'static>(
    script: impl FnOnce(&TcpListener) -> T + Send + 'static,
) -> (u16, thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    (port, thread::spawn(move || script(&listener)))
}

#[test]
fn broker_topic_aliases_reach_the_application_as_full_topics() {
    let (port, broker) = fake_broker(|listener| {
        let (mut socket, connect) = accept(listener);
        // CONNECT announced Topic Alias Maximum 4 (property 0x22).
        assert!(
            connect.windows(3).any(|w| w == [0x22, 0x00, 0x04]),
            "{connect:02x?}"
        );
        socket.write_all(&connack(false, &[])).unwrap();
        let mut script = publish("sensors/kitchen/temperature", Some(1), 0, 0, b"21");
        script.extend(publish("", Some(1), 1, 7, b"22"));
        // Alias 5 is above the maximum announced.
        script.extend(publish("x", Some(5), 0, 0, b"!"));
        socket.write_all(&script).unwrap();
        read_until_disconnect(&mut socket)
    });
    let mut options = ConnectOptions::default();
    options.topic_alias_maximum = Some(4);
    let mut client = Client::with_config(client_config(port, "aliases", options));
    client.connect(true).unwrap();
    for payload in [&b"21"[..], b"22"] {
        let m = client
            .wait_msg_timeout(IO_TIMEOUT)
            .unwrap()
            .expect("message");
        assert_eq!(
            (m.topic.as_str(), m.payload.as_slice()),
            ("sensors/kitchen/temperature", payload)
        );
    }
    match client.wait_msg_timeout(IO_TIMEOUT) {
        Err(Error::Protocol(ProtocolError::TopicAliasInvalid(5))) => {}
        other => panic!("expected TopicAliasInvalid(5), got {other:?}"),
    }
    // DISCONNECT 0x94 Topic Alias invalid, no properties.
    assert_eq!(broker.join().unwrap(), [0x94]);
}

#[test]
fn more_unacknowledged_publishes_than_our_receive_maximum_end_with_0x93() {
    let (port, broker) = fake_broker(|listener| {
        let (mut socket, connect) = accept(listener);
        // Receive Maximum 1 announced (property 0x21).
        assert!(connect.windows(3).any(|w| w == [0x21, 0x00, 0x01]));
        socket.write_all(&connack(false, &[])).unwrap();
        // Two QoS 2 messages and no PUBREL: the second is one too many.
        let mut script = publish("t", None, 2, 1, b"1");
        script.extend(publish("t", None, 2, 2, b"2"));
        socket.write_all(&script).unwrap();
        read_until_disconnect(&mut socket)
    });
    let mut options = ConnectOptions::default();
    options.receive_maximum = Some(1);
    let mut client = Client::with_config(client_config(port, "recvmax", options));
    client.connect(true).unwrap();
    let first = client.wait_msg_timeout(IO_TIMEOUT).unwrap().expect("first");
    assert_eq!(first.payload, b"1");
    match client.wait_msg_timeout(IO_TIMEOUT) {
        Err(Error::Protocol(ProtocolError::ReceiveMaximumExceeded { max: 1 })) => {}
        other => panic!("expected ReceiveMaximumExceeded, got {other:?}"),
    }
    assert_eq!(broker.join().unwrap(), [0x93]);
}

#[test]
fn auth_from_the_broker_is_refused_with_a_protocol_error() {
    let (port, broker) = fake_broker(|listener| {
        let (mut socket, _) = accept(listener);
        socket.write_all(&connack(false, &[])).unwrap();
        // AUTH 0x18 Continue authentication, no properties.
        socket.write_all(&[0xF0, 0x02, 0x18, 0x00]).unwrap();
        read_until_disconnect(&mut socket)
    });
    let mut client = Client::with_config(client_config(port, "auth", ConnectOptions::default()));
    client.connect(true).unwrap();
    match client.wait_msg_timeout(IO_TIMEOUT) {
        Err(Error::Protocol(ProtocolError::UnexpectedAuth)) => {}
        other => panic!("expected UnexpectedAuth, got {other:?}"),
    }
    assert_eq!(broker.join().unwrap(), [0x82]);
}

/// A reconnection to a broker with a smaller Maximum Packet Size: the robust client drops the
/// stored message that no longer fits (reported, counted) instead of sending it — which would
/// make the broker disconnect it at every reconnection — and the rest flows on the same link.
#[test]
fn a_stored_message_too_large_for_the_new_maximum_packet_size_is_dropped_without_a_loop() {
    let (port, broker) = fake_broker(|listener| {
        // Connection 1: no limit. The large QoS 1 PUBLISH arrives and is never acknowledged.
        let (mut socket, _) = accept(listener);
        socket.write_all(&connack(false, &[])).unwrap();
        let (first, body) = raw::read_packet(&mut socket).unwrap();
        assert_eq!((first & 0xF0, body.len() > 300), (0x30, true));
        drop(socket);
        // Connection 2: the session resumes, Maximum Packet Size 100 (property 0x27).
        let (mut socket, _) = accept(listener);
        socket
            .write_all(&connack(true, &[0x27, 0, 0, 0, 100]))
            .unwrap();
        // The first PUBLISH to arrive is the small one, which is acknowledged.
        let (first, body) = raw::read_packet(&mut socket).unwrap();
        assert_eq!(first & 0xF0, 0x30, "a PUBLISH");
        assert!(
            body.len() < 100,
            "only the small message: {} bytes",
            body.len()
        );
        // PUBACK for its packet id (after the 2 + 1 bytes of topic "t").
        socket.write_all(&[0x40, 0x02, body[3], body[4]]).unwrap();
        // No third connection: the listener sees none while the client finishes.
        listener.set_nonblocking(true).unwrap();
        let _ = read_until_disconnect(&mut socket);
        listener.accept().is_err()
    });
    let config = client_config(port, "too-large", ConnectOptions::default());
    let policy = FixedDelay {
        delay: Duration::from_millis(10),
    };
    let mut client = umqtt::robust::Client::new(config, policy);
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    client.set_event_handler(move |event| sink.lock().unwrap().push(event.clone()));
    let big = client
        .publish("t", &[1; 300], QoS::AtLeastOnce, false)
        .unwrap();
    // Until the second connection is up and has dropped the large message.
    let deadline = Instant::now() + IO_TIMEOUT;
    while client.stats().connects < 2 || client.stats().dropped_by.too_large == 0 {
        assert!(Instant::now() < deadline, "stats {:?}", client.stats());
        client.run_for(Duration::from_millis(10)).unwrap();
    }
    let small = client
        .publish("t", &[2; 10], QoS::AtLeastOnce, false)
        .unwrap();
    assert!(
        client.flush(IO_TIMEOUT).unwrap(),
        "the small one is delivered"
    );
    client.disconnect().unwrap();
    assert!(broker.join().unwrap(), "no third connection");
    let events = log.lock().unwrap().clone();
    assert!(events.contains(&Event::Dropped {
        id: big,
        reason: DropReason::TooLarge {
            size: 309,
            max: 100
        }
    }));
    assert!(events.contains(&Event::Delivered { id: small }));
    let stats = client.stats();
    assert_eq!((stats.connects, stats.dropped_by.too_large), (2, 1));
}

#[test]
fn a_refused_unsubscribe_is_a_typed_error() {
    let (port, broker) = fake_broker(|listener| {
        let (mut socket, _) = accept(listener);
        socket.write_all(&connack(false, &[])).unwrap();
        let (first, body) = raw::read_packet(&mut socket).unwrap();
        assert_eq!(first, 0xA2, "UNSUBSCRIBE");
        // UNSUBACK: its packet id, no properties, 0x87 Not authorized.
        socket
            .write_all(&[0xB0, 0x04, body[0], body[1], 0x00, 0x87])
            .unwrap();
        read_until_disconnect(&mut socket)
    });
    let mut client = Client::with_config(client_config(port, "unsub", ConnectOptions::default()));
    client.connect(true).unwrap();
    match client.unsubscribe("private/#") {
        Err(Error::UnsubscribeRefused {
            filter,
            reason_code: umqtt_core::packet::ReasonCode::NotAuthorized,
        }) if filter == "private/#" => {}
        other => panic!("expected UnsubscribeRefused, got {other:?}"),
    }
    // A refusal leaves the connection up.
    client.disconnect().unwrap();
    assert_eq!(broker.join().unwrap(), Vec::<u8>::new());
}

/// MQTT 5 Server Reference: a fake broker refuses with CONNACK 0x9C Use another server and a
/// Server Reference naming a real mosquitto on another port; the robust client goes there and
/// its message arrives at a subscriber of that mosquitto.
#[test]
fn a_server_reference_leads_the_robust_client_to_the_named_broker() {
    use umqtt_testkit::broker::Mosquitto;
    let mosquitto = Mosquitto::start();
    let mut subscriber = Client::with_config(client_config(
        mosquitto.port(),
        "moved-sub",
        ConnectOptions::default(),
    ));
    subscriber.connect(true).unwrap();
    subscriber.subscribe("moved/t", QoS::AtLeastOnce).unwrap();
    let reference = format!("127.0.0.1:{}", mosquitto.port());
    let (port, broker) = fake_broker(move |listener| {
        let (mut socket, _) = accept(listener);
        // CONNACK 0x9C Use another server, Server Reference (0x1C).
        let mut properties = vec![0x1C];
        properties.extend_from_slice(&(reference.len() as u16).to_be_bytes());
        properties.extend_from_slice(reference.as_bytes());
        let mut body = vec![0x00, 0x9C, properties.len() as u8];
        body.extend_from_slice(&properties);
        socket.write_all(&frame(0x20, &body)).unwrap();
        // The client goes away and does not come back here.
        let _ = raw::read_packet(&mut socket);
        listener.set_nonblocking(true).unwrap();
        listener.accept().is_err()
    });
    let policy = FixedDelay {
        delay: Duration::from_millis(10),
    };
    let mut client = umqtt::robust::Client::new(
        client_config(port, "moved", ConnectOptions::default()),
        policy,
    );
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    client.set_event_handler(move |event| sink.lock().unwrap().push(event.clone()));
    let id = client
        .publish("moved/t", b"found you", QoS::AtLeastOnce, false)
        .unwrap();
    assert!(client.flush(IO_TIMEOUT).unwrap(), "delivered");
    let message = subscriber
        .wait_msg_timeout(IO_TIMEOUT)
        .unwrap()
        .expect("the message at the referenced broker");
    assert_eq!(message.payload, b"found you");
    client.disconnect().unwrap();
    assert!(broker.join().unwrap(), "one connection to the fake broker");
    let events = log.lock().unwrap().clone();
    assert!(events.contains(&Event::Redirected {
        address: umqtt_core::robust::ServerAddress {
            host: "127.0.0.1".into(),
            port: Some(mosquitto.port()),
        },
        reason_code: umqtt_core::packet::ReasonCode::UseAnotherServer,
    }));
    // Connected to index 1: one past the configured list, the referenced server.
    assert!(events.contains(&Event::Connected {
        session_present: false,
        server: 1
    }));
    assert!(events.contains(&Event::Delivered { id }));
    let stats = client.stats();
    assert_eq!((stats.attempts, stats.connects, stats.redirects), (2, 1, 1));
}
