//! The simple client speaking MQTT 5 to a real mosquitto (its normal listener accepts MQTT 5)
//! started on a free loopback port.

use std::time::Duration;

use umqtt::simple::{Client, ClientConfig, Message};
use umqtt::{Error, ProtocolVersion, QoS};
use umqtt_core::packet::{Properties, Property, PropertyList, ReasonCode};
use umqtt_core::session::ConnectOptions;
use umqtt_testkit::broker::Mosquitto;

fn config(broker: &Mosquitto, client_id: &str) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_string(),
        server: "127.0.0.1".to_string(),
        port: Some(broker.port()),
        response_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        protocol: ProtocolVersion::V5,
        ..ClientConfig::default()
    }
}

fn connected(broker: &Mosquitto, client_id: &str, clean: bool) -> Client {
    let mut c = Client::with_config(config(broker, client_id));
    c.connect(clean).expect("connect");
    c
}

fn expect_message(c: &mut Client) -> Message {
    c.wait_msg_timeout(Duration::from_secs(5))
        .expect("wait_msg")
        .expect("a message within 5 s")
}

#[test]
fn qos_0_1_2_both_ways_with_properties() {
    let broker = Mosquitto::start();
    let mut sub = connected(&broker, "v5-sub", true);
    assert_eq!(
        sub.subscribe("v5/#", QoS::ExactlyOnce).unwrap(),
        QoS::ExactlyOnce
    );
    let mut publisher = connected(&broker, "v5-pub", true);
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = [qos as u8];
        let properties = [
            Property::UserProperty("sensor", "kitchen"),
            Property::UserProperty("sensor", "second value"),
            Property::ResponseTopic("v5/reply"),
            Property::CorrelationData(b"req-7"),
            Property::ContentType("application/octet-stream"),
        ];
        let id = publisher
            .publish_with(
                "v5/t",
                &payload,
                qos,
                false,
                Properties::List(&PropertyList(&properties)),
            )
            .unwrap();
        assert_eq!(id.is_some(), qos != QoS::AtMostOnce);
        let m = expect_message(&mut sub);
        assert_eq!(
            (m.topic.as_str(), m.payload.as_slice(), m.qos),
            ("v5/t", &payload[..], qos)
        );
        assert_eq!(
            m.user_properties().collect::<Vec<_>>(),
            [("sensor", "kitchen"), ("sensor", "second value")]
        );
        let props = m.properties();
        assert_eq!(props.response_topic(), Some("v5/reply"));
        assert_eq!(props.correlation_data(), Some(&b"req-7"[..]));
        assert_eq!(props.content_type(), Some("application/octet-stream"));
    }
    // And the other way: the subscriber publishes, the publisher receives.
    publisher.subscribe("back", QoS::ExactlyOnce).unwrap();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        sub.publish("back", b"x", qos, false).unwrap();
        assert_eq!(expect_message(&mut publisher).qos, qos);
    }
    publisher.disconnect().unwrap();
    sub.disconnect().unwrap();
}

#[test]
fn receive_maximum_is_the_in_flight_window_and_nothing_is_dropped() {
    let broker = Mosquitto::builder().max_inflight_messages(3).start();
    let mut sub = connected(&broker, "rm-sub", true);
    sub.subscribe("rm", QoS::AtLeastOnce).unwrap();
    let mut c = Client::with_config(ClientConfig {
        max_in_flight: 100,
        ..config(&broker, "rm-pub")
    });
    c.connect(true).unwrap();
    assert_eq!(c.session().broker_limits().receive_maximum, 3);
    for i in 0..60u32 {
        c.publish_nowait("rm", &i.to_be_bytes(), QoS::AtLeastOnce, false)
            .unwrap();
        assert!(
            c.session().in_flight() <= 3,
            "window {}",
            c.session().in_flight()
        );
        if i % 7 == 0 {
            c.flush().unwrap();
        }
    }
    c.wait_all_published(Duration::from_secs(10)).unwrap();
    let received: Vec<u32> = (0..60)
        .map(|_| {
            let m = expect_message(&mut sub);
            u32::from_be_bytes(m.payload.try_into().unwrap())
        })
        .collect();
    assert_eq!(received, (0..60).collect::<Vec<_>>());
}

#[test]
fn session_expiry_keeps_or_ends_the_session() {
    let broker = Mosquitto::start();
    // Default options: a persistent session (clean 0) never expires.
    let mut sub = connected(&broker, "persist", true);
    sub.disconnect().unwrap();
    let mut sub = connected(&broker, "persist", false);
    sub.subscribe("keep/t", QoS::AtLeastOnce).unwrap();
    sub.disconnect().unwrap();
    let mut publisher = connected(&broker, "persist-pub", true);
    publisher
        .publish("keep/t", b"while away", QoS::AtLeastOnce, false)
        .unwrap();
    let mut sub = Client::with_config(config(&broker, "persist"));
    assert!(sub.connect(false).unwrap(), "session resumed");
    assert_eq!(expect_message(&mut sub).payload, b"while away");
    sub.disconnect().unwrap();

    // Session Expiry Interval 0: the session ends with the connection even without a clean
    // start.
    let short = ClientConfig {
        v5: {
            let mut options = ConnectOptions::default();
            options.session_expiry_interval = Some(0);
            options
        },
        ..config(&broker, "short")
    };
    let mut c = Client::with_config(short.clone());
    assert!(!c.connect(false).unwrap());
    c.subscribe("short/t", QoS::AtLeastOnce).unwrap();
    c.disconnect().unwrap();
    let mut c = Client::with_config(short);
    assert!(!c.connect(false).unwrap(), "no session after expiry 0");
}

#[test]
fn message_expiry_drops_what_waited_too_long() {
    let broker = Mosquitto::start();
    let mut sub = connected(&broker, "exp-sub", false);
    sub.subscribe("exp/t", QoS::AtLeastOnce).unwrap();
    sub.disconnect().unwrap();
    let mut publisher = connected(&broker, "exp-pub", true);
    let short = [Property::MessageExpiryInterval(1)];
    let long = [Property::MessageExpiryInterval(600)];
    publisher
        .publish_with(
            "exp/t",
            b"stale",
            QoS::AtLeastOnce,
            false,
            Properties::List(&PropertyList(&short)),
        )
        .unwrap();
    publisher
        .publish_with(
            "exp/t",
            b"fresh",
            QoS::AtLeastOnce,
            false,
            Properties::List(&PropertyList(&long)),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    let mut sub = Client::with_config(config(&broker, "exp-sub"));
    assert!(sub.connect(false).unwrap());
    let m = expect_message(&mut sub);
    assert_eq!(m.payload, b"fresh");
    // The broker forwards the remaining lifetime (section 3.3.2.3.3).
    let left = m.properties().message_expiry_interval().unwrap();
    assert!((590..=600).contains(&left), "{left}");
    assert!(sub
        .wait_msg_timeout(Duration::from_millis(300))
        .unwrap()
        .is_none());
}

/// mosquitto 2.0's `acl_file` grants every subscription (it filters at delivery); its dynamic
/// security plugin refuses one with 0x87 Not authorized.
const DYNAMIC_SECURITY: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";

#[test]
fn a_refused_subscription_reports_its_reason_code() {
    assert!(
        std::path::Path::new(DYNAMIC_SECURITY).exists(),
        "mosquitto's dynamic security plugin is missing at {DYNAMIC_SECURITY}"
    );
    // The plugin rewrites its file, as the broker's user: a directory anyone can write.
    let directory = tempfile::tempdir().unwrap();
    let mode = |path: &std::path::Path, mode| {
        let mut permissions = std::fs::metadata(path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, mode);
        std::fs::set_permissions(path, permissions).unwrap();
    };
    mode(directory.path(), 0o777);
    let file = directory.path().join("dynamic-security.json");
    std::fs::write(
        &file,
        r#"{
  "defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true,
                       "subscribe": true, "unsubscribe": true},
  "clients": [],
  "groups": [{"groupname": "anonymous", "roles": [{"rolename": "limited"}]}],
  "roles": [{"rolename": "limited", "acls": [
    {"acltype": "subscribePattern", "topic": "secret/#", "priority": 10, "allow": false}]}],
  "anonymousGroup": "anonymous"
}"#,
    )
    .unwrap();
    mode(&file, 0o666);
    let broker = Mosquitto::builder()
        .config_line(format!("plugin {DYNAMIC_SECURITY}"))
        .config_line(format!("plugin_opt_config_file {}", file.display()))
        .start();
    let mut c = connected(&broker, "acl", true);
    assert_eq!(
        c.subscribe("open/a", QoS::AtLeastOnce).unwrap(),
        QoS::AtLeastOnce
    );
    match c.subscribe("secret/a", QoS::AtLeastOnce) {
        Err(Error::SubscribeRefused {
            filter,
            reason_code,
        }) => {
            assert_eq!(filter, "secret/a");
            assert_eq!(reason_code, ReasonCode::NotAuthorized);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Several at once: the refused one is named.
    match c.subscribe_many(&[("open/b", QoS::ExactlyOnce), ("secret/b", QoS::AtMostOnce)]) {
        Err(Error::SubscribeRefused {
            filter,
            reason_code: ReasonCode::NotAuthorized,
        }) => assert_eq!(filter, "secret/b"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The connection is still fine.
    c.ping().unwrap();
}

#[test]
fn the_brokers_limits_are_adopted() {
    let broker = Mosquitto::builder()
        .config_line("max_keepalive 10")
        .config_line("max_packet_size 200")
        .start();
    let mut c = Client::with_config(ClientConfig {
        keep_alive: 60,
        ..config(&broker, "limits")
    });
    c.connect(true).unwrap();
    // Server Keep Alive overrides the 60 s asked for.
    assert_eq!(c.session().keep_alive(), 10);
    assert_eq!(c.session().broker_limits().maximum_packet_size, Some(200));
    // A PUBLISH larger than the broker's Maximum Packet Size is refused before sending.
    match c.publish("t", &[0; 300], QoS::AtLeastOnce, false) {
        Err(Error::Usage(umqtt_core::session::UsageError::PacketTooLarge { max: 200, .. })) => {}
        other => panic!("expected PacketTooLarge, got {other:?}"),
    }
    assert!(c.is_connected());
    c.publish("t", &[0; 100], QoS::AtLeastOnce, false).unwrap();
}

/// A TCP stream that counts the bytes written to it.
struct Counting {
    inner: std::net::TcpStream,
    written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl std::io::Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl std::io::Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl umqtt::transport::Stream for Counting {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.inner.set_read_timeout(timeout)
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.inner.set_write_timeout(timeout)
    }
    fn set_nonblocking(&mut self, nonblocking: bool) -> std::io::Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }
    fn shutdown(&mut self) -> std::io::Result<()> {
        self.inner.shutdown(std::net::Shutdown::Both)
    }
}

#[test]
fn topic_aliases_reach_the_subscriber_as_the_full_topic() {
    const TOPIC: &str = "alias/a/rather/long/topic/name";
    let broker = Mosquitto::start();
    let mut sub = connected(&broker, "alias-sub", true);
    sub.subscribe("alias/#", QoS::AtMostOnce).unwrap();
    let mut options = ConnectOptions::default();
    options.topic_aliases = true;
    let mut publisher = Client::<Counting>::with_config(ClientConfig {
        v5: options,
        ..config(&broker, "alias-pub")
    });
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stream = Counting {
        inner: std::net::TcpStream::connect(broker.addr()).unwrap(),
        written: written.clone(),
    };
    publisher.connect_with_stream(stream, true).unwrap();
    // mosquitto 2 takes 10 aliases by default.
    assert!(publisher.session().broker_limits().topic_alias_maximum > 0);
    let before = written.load(std::sync::atomic::Ordering::Relaxed);
    for i in 0..5u8 {
        publisher
            .publish(TOPIC, &[i], QoS::AtMostOnce, false)
            .unwrap();
    }
    let sent = written.load(std::sync::atomic::Ordering::Relaxed) - before;
    // In full each PUBLISH is 2 + 2 + 30 + 1 + 1 = 36 bytes; with the alias set up by the
    // first, the next four carry 3 alias bytes instead of the 30 topic bytes.
    assert_eq!(sent, (36 + 3) + 4 * (36 - 30 + 3));
    for i in 0..5u8 {
        let m = expect_message(&mut sub);
        assert_eq!((m.topic.as_str(), m.payload.as_slice()), (TOPIC, &[i][..]));
    }
    // The connection is still fine (a bad alias would have made mosquitto disconnect).
    publisher.ping().unwrap();
}

#[test]
fn unsuback_reason_codes_reach_the_caller() {
    let broker = Mosquitto::start();
    let mut c = connected(&broker, "unsub-codes", true);
    c.subscribe("u/a", QoS::AtLeastOnce).unwrap();
    // mosquitto says which filter had no subscription (0x11, informational: not an error).
    assert_eq!(
        c.unsubscribe_codes(&["u/a", "u/never"]).unwrap(),
        [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
    );
    assert_eq!(
        c.unsubscribe("u/a").unwrap(),
        ReasonCode::NoSubscriptionExisted
    );
}

/// The properties of SUBSCRIBE (a subscription identifier the broker puts on every matching
/// message), of the will (carried by the will message), of UNSUBSCRIBE, and of DISCONNECT
/// (a session expiry of 0 ends a session that would have lasted).
#[test]
fn subscribe_will_unsubscribe_and_disconnect_properties_reach_the_broker() {
    let broker = Mosquitto::start();
    let mut sub = connected(&broker, "props-sub", true);
    let subscribe = [
        Property::SubscriptionIdentifier(42),
        Property::UserProperty("why", "test"),
    ];
    assert_eq!(
        sub.subscribe_many_with(
            &[("props/#", QoS::AtLeastOnce)],
            Properties::List(&PropertyList(&subscribe)),
        )
        .unwrap(),
        [QoS::AtLeastOnce]
    );

    // A will with properties, published when its client vanishes without DISCONNECT.
    let mut willer = Client::with_config(config(&broker, "props-willer"));
    let will = [
        Property::ContentType("text/plain"),
        Property::UserProperty("state", "vanished"),
        Property::MessageExpiryInterval(600),
    ];
    willer
        .set_last_will_with(
            "props/will",
            b"gone",
            false,
            QoS::AtLeastOnce,
            Properties::List(&PropertyList(&will)),
        )
        .unwrap();
    // A property a will may not carry is refused at once.
    assert!(willer
        .set_last_will_with(
            "props/will",
            b"",
            false,
            QoS::AtMostOnce,
            Properties::List(&PropertyList(&[Property::TopicAlias(1)])),
        )
        .is_err());
    willer.connect(true).unwrap();
    drop(willer); // the socket closes without DISCONNECT
    let message = expect_message(&mut sub);
    assert_eq!(
        (message.topic.as_str(), &message.payload[..]),
        ("props/will", &b"gone"[..])
    );
    let properties = message.properties();
    assert_eq!(properties.content_type(), Some("text/plain"));
    assert_eq!(properties.message_expiry_interval(), Some(600));
    assert_eq!(
        properties.user_properties().collect::<Vec<_>>(),
        [("state", "vanished")]
    );
    assert_eq!(
        properties.subscription_identifiers().collect::<Vec<_>>(),
        [42]
    );

    // UNSUBSCRIBE with a user property: acknowledged, and nothing more arrives.
    let unsubscribe = [Property::UserProperty("why", "done")];
    sub.unsubscribe_many_with(&["props/#"], Properties::List(&PropertyList(&unsubscribe)))
        .unwrap();
    let mut publisher = connected(&broker, "props-pub", true);
    publisher
        .publish("props/late", b"x", QoS::AtLeastOnce, false)
        .unwrap();
    sub.ping().unwrap();
    assert_eq!(sub.check_msg().unwrap(), None);

    // A session meant to last an hour, ended by DISCONNECT's session expiry of 0.
    let mut cfg = config(&broker, "props-expiry");
    let mut options = ConnectOptions::default();
    options.session_expiry_interval = Some(3600);
    cfg.v5 = options;
    let mut client = Client::with_config(cfg.clone());
    client.connect(true).unwrap();
    client
        .disconnect_with(umqtt_core::packet::Disconnect::new(
            ReasonCode::Success,
            Properties::List(&PropertyList(&[Property::SessionExpiryInterval(0)])),
        ))
        .unwrap();
    let mut again = Client::with_config(cfg.clone());
    assert!(
        !again.connect(false).unwrap(),
        "the session should have ended"
    );
    // Without it, the same session is resumed.
    again.disconnect().unwrap();
    let mut resumed = Client::with_config(cfg);
    assert!(
        resumed.connect(false).unwrap(),
        "the session should have lasted"
    );
}
