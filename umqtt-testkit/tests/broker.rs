//! Self-tests of the mosquitto harness against the real broker.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::raw;

const TIMEOUT: Duration = Duration::from_secs(5);

fn open(broker: &Mosquitto) -> TcpStream {
    let stream = TcpStream::connect(broker.addr()).expect("broker accepts TCP");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Connects anonymously and returns the stream and the CONNACK return code.
fn mqtt_connect(
    broker: &Mosquitto,
    client_id: &str,
    credentials: Option<(&str, &str)>,
) -> (TcpStream, u8) {
    let mut stream = open(broker);
    stream
        .write_all(&raw::connect_with_credentials(
            client_id,
            60,
            true,
            credentials,
        ))
        .unwrap();
    let (first, body) = raw::read_packet(&mut stream).expect("CONNACK");
    assert_eq!(
        raw::packet_type(first),
        2,
        "expected CONNACK, got {first:#04x}"
    );
    (stream, body[1])
}

#[test]
fn answers_connect_and_logs_pingreq() {
    let broker = Mosquitto::start();
    let (mut stream, return_code) = mqtt_connect(&broker, "ping-client", None);
    assert_eq!(return_code, 0);
    stream.write_all(&raw::PINGREQ).unwrap();
    let (first, body) = raw::read_packet(&mut stream).unwrap();
    assert_eq!((first, body.len()), (0xD0, 0), "PINGRESP");
    assert!(
        broker.wait_for_log("Received PINGREQ from ping-client", TIMEOUT),
        "log:\n{}",
        broker.log_contents()
    );
}

#[test]
fn password_file_from_mosquitto_passwd_rejects_anonymous() {
    let broker = Mosquitto::builder().user("alice", "secret").start();
    assert_eq!(mqtt_connect(&broker, "a1", Some(("alice", "secret"))).1, 0);
    // 5 = not authorized, 4 = bad user name or password [MQTT-3.2.2.3].
    assert_eq!(mqtt_connect(&broker, "a2", None).1, 5);
    assert_eq!(mqtt_connect(&broker, "a3", Some(("alice", "wrong"))).1, 5);
}

#[test]
fn builtin_password_hash_is_accepted_by_mosquitto() {
    let broker = Mosquitto::builder()
        .user("bob", "hunter2")
        .user("carol", "x")
        .force_builtin_password_hash(true)
        .start();
    assert_eq!(mqtt_connect(&broker, "b1", Some(("bob", "hunter2"))).1, 0);
    assert_eq!(mqtt_connect(&broker, "c1", Some(("carol", "x"))).1, 0);
    assert_ne!(mqtt_connect(&broker, "b2", Some(("bob", "nope"))).1, 0);
}

#[test]
fn persistence_keeps_retained_messages_across_restart_on_the_same_port() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let port = broker.port();
    let database = broker.persistence_file().unwrap();
    {
        let (mut stream, _) = mqtt_connect(&broker, "publisher", None);
        stream
            .write_all(&raw::publish("testkit/retained", b"kept", true))
            .unwrap();
        stream.write_all(&raw::DISCONNECT).unwrap();
    }
    assert!(broker.wait_for_log("Received PUBLISH from publisher", TIMEOUT));

    broker.stop();
    assert!(!broker.is_running());
    assert!(
        database.is_file(),
        "no {} after SIGTERM; stderr:\n{}",
        database.display(),
        broker.stderr_contents()
    );

    broker.restart();
    assert_eq!(broker.port(), port);
    let (mut stream, _) = mqtt_connect(&broker, "subscriber", None);
    stream
        .write_all(&raw::subscribe(1, "testkit/#", 0))
        .unwrap();
    let (first, _) = raw::read_packet(&mut stream).unwrap();
    assert_eq!(raw::packet_type(first), 9, "SUBACK");
    let (first, body) = raw::read_packet(&mut stream).unwrap();
    assert_eq!(raw::packet_type(first), 3, "PUBLISH");
    assert_eq!(first & 0x01, 1, "delivered with the retain flag");
    assert_eq!(
        raw::parse_publish_qos0(&body),
        Some(("testkit/retained".to_owned(), b"kept".to_vec()))
    );
}

#[test]
fn kill_then_restart_serves_again() {
    let mut broker = Mosquitto::start();
    let pid = broker.pid();
    broker.kill();
    assert!(!broker.is_running());
    assert!(
        TcpStream::connect(broker.addr()).is_err(),
        "port closed after kill"
    );
    broker.restart();
    assert!(broker.is_running());
    assert_ne!(broker.pid(), pid);
    assert_eq!(mqtt_connect(&broker, "again", None).1, 0);
}

#[test]
fn restart_while_running_stops_first() {
    let mut broker = Mosquitto::start();
    let (mut old_stream, _) = mqtt_connect(&broker, "old", None);
    broker.restart();
    // The old connection is closed by the old process.
    let mut buffer = [0u8; 1];
    assert!(matches!(
        std::io::Read::read(&mut old_stream, &mut buffer),
        Ok(0) | Err(_)
    ));
    assert_eq!(mqtt_connect(&broker, "new", None).1, 0);
}

#[test]
#[should_panic(expected = "did not start")]
fn a_broker_that_cannot_start_fails_loudly() {
    let _ = Mosquitto::builder()
        .config_line("no_such_mosquitto_option 1")
        .start();
}
