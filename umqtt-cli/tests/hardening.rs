//! `umqtt pub` / `umqtt sub` against misbehaving brokers and oversized input (issue 10): a
//! scripted broker on a loopback socket (bytes written by hand with `umqtt_testkit::raw`), or a
//! real mosquitto for large messages.

mod support;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use support::*;
use umqtt_testkit::broker::{free_port, Mosquitto};
use umqtt_testkit::raw;

/// A one-connection scripted broker: accepts, answers CONNECT, reads the SUBSCRIBE, then runs
/// `after_subscribe` with the socket and the SUBSCRIBE's packet id.
fn scripted_broker(
    after_subscribe: impl FnOnce(&mut TcpStream, u16) + Send + 'static,
) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (first, _) = raw::read_packet(&mut stream).unwrap();
        assert_eq!(raw::packet_type(first), 1, "CONNECT");
        stream.write_all(&raw::CONNACK_ACCEPTED).unwrap();
        let (first, body) = raw::read_packet(&mut stream).unwrap();
        assert_eq!(raw::packet_type(first), 8, "SUBSCRIBE");
        let packet_id = u16::from_be_bytes([body[0], body[1]]);
        after_subscribe(&mut stream, packet_id);
        // Until the client closes.
        while raw::read_packet(&mut stream).is_ok() {}
    });
    (port, thread)
}

#[test]
fn sub_prints_messages_received_before_a_broken_suback() {
    let (port, broker) = scripted_broker(|stream, packet_id| {
        // A message before the SUBACK (allowed), then a SUBACK with two return codes for one
        // filter.
        let mut bytes = raw::publish_qos("s/1", b"early", 1, 5, false);
        let [hi, lo] = packet_id.to_be_bytes();
        bytes.extend_from_slice(&[0x90, 0x04, hi, lo, 0x01, 0x01]);
        stream.write_all(&bytes).unwrap();
    });
    let port = port.to_string();
    let out = run(&[
        "sub",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "s/#",
        "-q",
        "1",
        "-v",
    ]);
    let line = out.assert_one_line_error().to_owned();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout_text(), "s/1 early\n", "{out:?}");
    assert!(line.contains("SUBACK"), "{line}");
    broker.join().unwrap();
}

#[test]
fn sub_prints_messages_received_before_a_suback_that_never_matches() {
    let (port, broker) = scripted_broker(|stream, packet_id| {
        stream
            .write_all(&raw::publish_qos("s/1", b"early", 1, 5, false))
            .unwrap();
        // A SUBACK for another packet id: the subscription is never confirmed.
        let [hi, lo] = packet_id.wrapping_add(1).to_be_bytes();
        stream.write_all(&[0x90, 0x03, hi, lo, 0x01]).unwrap();
    });
    let port = port.to_string();
    // -W 2 bounds the wait for the SUBACK (the response timeout is 10 s otherwise).
    let out = run(&[
        "sub",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "s/#",
        "-q",
        "1",
        "-W",
        "2",
    ]);
    out.assert_one_line_error();
    assert_eq!(out.stdout_text(), "early\n", "{out:?}");
    broker.join().unwrap();
}

#[test]
fn pub_refuses_a_file_too_large_for_mqtt_before_connecting() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("huge.bin");
    // 300 MB, sparse: nothing is written to disk.
    std::fs::File::create(&file)
        .unwrap()
        .set_len(300_000_000)
        .unwrap();
    // No broker listens there: a connection attempt would fail with "Connection refused".
    // Largest QoS 0 payload on "t": 268 435 455 - 2 (topic length) - 1 (topic).
    let port = free_port().to_string();
    let out = run(&[
        "pub",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "t",
        "-f",
        file.to_str().unwrap(),
    ]);
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        line.contains("300000000 bytes") && line.contains("268435452 bytes"),
        "{line}"
    );
}

#[test]
fn max_packet_size_flag_lets_sub_receive_large_messages() {
    const SIZE: usize = 6 * 1024 * 1024;
    let broker = Mosquitto::start();
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("big.bin");
    std::fs::write(&file, vec![b'x'; SIZE]).unwrap();
    run_at(
        &broker,
        "pub",
        &["-t", "big", "-r", "-q", "1", "-f", file.to_str().unwrap()],
    )
    .assert_success();

    let out = run_at(&broker, "sub", &["-t", "big", "-C", "1"]);
    let line = out.assert_one_line_error();
    assert!(
        line.contains("exceeds the configured maximum of 4194304")
            && line.contains("--max-packet-size"),
        "{line}"
    );

    let out = run_at(
        &broker,
        "sub",
        &["-t", "big", "-C", "1", "--max-packet-size", "8000000"],
    );
    out.assert_success();
    assert_eq!(out.stdout.len(), SIZE + 1, "payload and newline");
}
