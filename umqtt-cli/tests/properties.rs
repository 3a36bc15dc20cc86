//! MQTT 5 on the command line, side by side with mosquitto_pub / mosquitto_sub 2.0 against a
//! real mosquitto: `-D command identifier value` puts the same properties in the same packets
//! (seen on the wire through a recording relay, and by their effect on the broker: sessions
//! kept or ended, will messages), `-x` as mosquitto's, `sub -F` prints every property
//! conversion byte for byte, and every mistake exits as mosquitto does, on one line.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use support::*;
use umqtt_core::packet::{decode_with, Decoded, Packet, Properties, Property, ProtocolVersion};
use umqtt_testkit::broker::Mosquitto;

/// A TCP relay to the broker that keeps what each client sent, for the core's decoder to read
/// back. (mosquitto shows no properties in its log.)
struct Tap {
    port: u16,
    /// The client-to-broker bytes of each finished connection, in the order they finished.
    finished: Arc<(Mutex<Vec<Vec<u8>>>, Condvar)>,
}

impl Tap {
    fn start(upstream: SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let finished = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let shared = Arc::clone(&finished);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    return;
                };
                let (mut client_read, mut client_write) = (client.try_clone().unwrap(), client);
                let (mut server_read, mut server_write) = (server.try_clone().unwrap(), server);
                thread::spawn(move || {
                    let _ = std::io::copy(&mut server_read, &mut client_write);
                    let _ = client_write.shutdown(Shutdown::Both);
                });
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let mut recorded = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while let Ok(n @ 1..) = client_read.read(&mut buffer) {
                        recorded.extend_from_slice(&buffer[..n]);
                        if server_write.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown(Shutdown::Both);
                    let (list, ready) = &*shared;
                    list.lock().unwrap().push(recorded);
                    ready.notify_all();
                });
            }
        });
        Tap { port, finished }
    }

    /// What the next connection to finish sent.
    #[track_caller]
    fn next(&self) -> Vec<u8> {
        let (list, ready) = &*self.finished;
        let deadline = Instant::now() + LOG_WAIT;
        let mut list = list.lock().unwrap();
        while list.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no connection finished through the tap");
            list = ready.wait_timeout(list, left).unwrap().0;
        }
        list.remove(0)
    }
}

/// A property list in a comparable form: the properties other than user properties sorted
/// (their order is free), then the user properties in the order sent (which MQTT keeps).
fn normalized(properties: &Properties<'_>) -> Vec<String> {
    let (users, mut others): (Vec<Property<'_>>, Vec<Property<'_>>) = properties
        .iter()
        .partition(|p| matches!(p, Property::UserProperty(..)));
    others.sort_by_key(|p| format!("{p:?}"));
    others
        .iter()
        .chain(&users)
        .map(|p| format!("{p:?}"))
        .collect()
}

/// Each CONNECT (and its will), PUBLISH, SUBSCRIBE, UNSUBSCRIBE and DISCONNECT a client sent,
/// with its properties.
fn sent_properties(stream: &[u8]) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let Ok(Decoded::Complete { packet, consumed }) =
            decode_with(rest, usize::MAX, ProtocolVersion::V5)
        else {
            panic!("not MQTT 5 packets: {rest:02x?}");
        };
        match packet {
            Packet::Connect(connect) => {
                out.push(("CONNECT", normalized(&connect.properties)));
                if let Some(will) = connect.will {
                    out.push(("will", normalized(&will.properties)));
                }
            }
            Packet::Publish(publish) => out.push(("PUBLISH", normalized(&publish.properties))),
            Packet::Subscribe(s) => out.push(("SUBSCRIBE", normalized(&s.properties))),
            Packet::Unsubscribe(u) => out.push(("UNSUBSCRIBE", normalized(&u.properties))),
            Packet::Disconnect(d) => out.push(("DISCONNECT", normalized(&d.properties))),
            _ => {}
        }
        rest = &rest[consumed..];
    }
    out
}

fn d(command: &str, identifier: &str, values: &[&str]) -> Vec<String> {
    let mut group = vec!["-D".to_owned(), command.to_owned(), identifier.to_owned()];
    group.extend(values.iter().map(|v| v.to_string()));
    group
}

/// (subcommand, arguments, --policy, the packets whose properties the case sets)
type WireCase<'a> = (&'a str, Vec<String>, Option<&'a str>, &'a [&'a str]);

/// Every -D command and identifier mosquitto_pub and mosquitto_sub send: the same properties
/// in the same packets from umqtt, with and without --policy (connect and will there).
#[test]
fn every_property_reaches_the_wire_as_from_mosquitto() {
    let broker = Mosquitto::start();
    let tap = Tap::start(broker.addr());
    let port = tap.port.to_string();
    let connect_and_will: Vec<String> = [
        d("connect", "session-expiry-interval", &["30"]),
        d("connect", "receive-maximum", &["7"]),
        d("connect", "topic-alias-maximum", &["10"]),
        d("connect", "maximum-packet-size", &["20000"]),
        d("connect", "request-problem-information", &["0"]),
        d("connect", "request-response-information", &["1"]),
        d("connect", "user-property", &["cu", "cv"]),
        d("connect", "user-property", &["cu", "cw"]),
        d("will", "content-type", &["wct"]),
        d("will", "correlation-data", &["w d"]),
        d("will", "message-expiry-interval", &["40"]),
        d("will", "payload-format-indicator", &["1"]),
        d("will", "response-topic", &["will/reply"]),
        d("will", "user-property", &["wu", "wv"]),
        d("will", "will-delay-interval", &["5"]),
    ]
    .concat();
    let publish_and_disconnect: Vec<String> = [
        d("publish", "content-type", &["text/plain"]),
        d("publish", "correlation-data", &["req-1"]),
        d("publish", "message-expiry-interval", &["50"]),
        d("publish", "payload-format-indicator", &["1"]),
        d("publish", "response-topic", &["reply/here"]),
        d("publish", "topic-alias", &["1"]),
        d("publish", "user-property", &["pu", "pv"]),
        d("disconnect", "session-expiry-interval", &["10"]),
        d("disconnect", "reason-string", &["bye"]),
        d("disconnect", "user-property", &["du", "dv"]),
    ]
    .concat();
    let subscribe_and_unsubscribe: Vec<String> = [
        d("subscribe", "subscription-identifier", &["9"]),
        d("subscribe", "user-property", &["su", "sv"]),
        d("unsubscribe", "user-property", &["uu", "uv"]),
        d("disconnect", "user-property", &["du", "dv"]),
    ]
    .concat();
    let will = ["--will-topic", "will/t", "--will-payload", "gone"];
    let connection = ["-h", "127.0.0.1", "-p", &port];

    let mut cases: Vec<WireCase> = Vec::new();
    let mut pub_args: Vec<String> = ["-t", "wire/p", "-m", "hello", "-q", "1"]
        .iter()
        .chain(&will)
        .map(|s| s.to_string())
        .collect();
    pub_args.extend(connect_and_will.clone());
    pub_args.extend(publish_and_disconnect.clone());
    cases.push((
        "pub",
        pub_args,
        None,
        &["CONNECT", "will", "PUBLISH", "DISCONNECT"],
    ));
    let mut sub_args: Vec<String> = ["-t", "wire/s", "-U", "wire/s", "-E", "-q", "1"]
        .iter()
        .chain(&will)
        .map(|s| s.to_string())
        .collect();
    sub_args.extend(connect_and_will.clone());
    sub_args.extend(subscribe_and_unsubscribe.clone());
    cases.push((
        "sub",
        sub_args,
        None,
        &["CONNECT", "will", "SUBSCRIBE", "UNSUBSCRIBE", "DISCONNECT"],
    ));
    // --policy: the same, through the robust client.
    let mut robust: Vec<String> = ["-t", "wire/r", "-m", "kept", "-q", "1"]
        .iter()
        .chain(&will)
        .map(|s| s.to_string())
        .collect();
    robust.extend(connect_and_will.clone());
    robust.extend(publish_and_disconnect.clone());
    cases.push((
        "pub",
        robust,
        Some("guaranteed"),
        &["CONNECT", "will", "PUBLISH", "DISCONNECT"],
    ));

    // A kept subscription through the robust client: it ends after the retained message.
    run_at(
        &broker,
        "pub",
        &["-t", "wire/rs", "-m", "kept", "-r", "-q", "1"],
    )
    .assert_success();
    let mut robust_sub: Vec<String> = ["-t", "wire/rs", "-C", "1", "-q", "1", "-V", "5"]
        .iter()
        .chain(&will)
        .map(|s| s.to_string())
        .collect();
    robust_sub.extend(connect_and_will.clone());
    robust_sub.extend(
        [
            d("subscribe", "subscription-identifier", &["9"]),
            d("subscribe", "user-property", &["su", "sv"]),
            d("disconnect", "user-property", &["du", "dv"]),
        ]
        .concat(),
    );
    cases.push((
        "sub",
        robust_sub,
        Some("fixed:1s"),
        &["CONNECT", "will", "SUBSCRIBE", "DISCONNECT"],
    ));

    for (subcommand, args, policy, covered) in cases {
        // mosquitto_sub -E now and then exits without sending its DISCONNECT (it does not
        // wait for the write): take a run that sent every packet the case covers.
        let mut expected = Vec::new();
        for _ in 0..5 {
            let mosquitto = match subcommand {
                "pub" => mosquitto_pub(),
                _ => mosquitto_sub(),
            }
            .args(connection)
            .args(&args)
            .output()
            .unwrap();
            assert!(mosquitto.status.success(), "{mosquitto:?}");
            expected = sent_properties(&tap.next());
            if covered
                .iter()
                .all(|kind| expected.iter().any(|(k, _)| k == kind))
            {
                break;
            }
        }

        let mut ours = vec![subcommand.to_owned()];
        ours.extend(connection.iter().map(|s| s.to_string()));
        ours.extend(args.iter().cloned());
        if let Some(policy) = policy {
            ours.extend(["--policy".to_owned(), policy.to_owned()]);
        }
        let out = run(&strs(&ours));
        out.assert_success();
        let actual = sent_properties(&tap.next());
        assert_eq!(actual, expected, "{subcommand} {policy:?}");
        // Not trivially equal: every packet the case sets properties for has them.
        for kind in covered {
            assert!(
                expected.iter().any(|(k, p)| k == kind && !p.is_empty()),
                "{subcommand}: no {kind} properties in {expected:?}"
            );
        }
    }
}

/// Spawns a subscriber (`mosquitto` or `umqtt`) with client id `id`, stdout piped.
fn spawn_sub(tool: &str, broker: &Mosquitto, id: &str, args: &[&str]) -> Child {
    let mut all = vec!["-i", id];
    all.extend_from_slice(args);
    let full = at(broker, &all);
    let mut cmd = match tool {
        "mosquitto" => {
            let mut cmd = mosquitto_sub();
            cmd.args(&full);
            cmd
        }
        _ => {
            let mut umqtt_args = vec!["sub".to_owned()];
            umqtt_args.extend(full);
            command(&strs(&umqtt_args))
        }
    };
    cmd.env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) for a spawned subscriber to finish.
#[track_caller]
fn finished(child: Child) -> Output {
    let (done, result) = std::sync::mpsc::channel();
    let pid = child.id();
    thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match result.recv_timeout(RUN_LIMIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("subscriber {pid} still running after {RUN_LIMIT:?}");
        }
    }
}

/// `pub args…` through mosquitto_pub, then umqtt pub (each waits for its PUBACK, so the
/// broker forwards them in this order).
fn publish_both(broker: &Mosquitto, args: &[&str]) {
    let status = mosquitto_pub().args(at(broker, args)).status().unwrap();
    assert!(status.success(), "mosquitto_pub {args:?}");
    run_at(broker, "pub", args).assert_success();
}

/// Digits replaced by `0`: for output with times in it.
fn without_digits(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|b| if b.is_ascii_digit() { b'0' } else { *b })
        .collect()
}

/// `sub -F`: every MQTT 5 conversion, with flags and widths, and the properties of `%j` /
/// `%J --pretty`, print what mosquitto_sub prints for the same messages; and a message from
/// umqtt pub prints exactly as the same message from mosquitto_pub.
#[test]
fn sub_format_prints_every_property_as_mosquitto_sub() {
    let broker = Mosquitto::start();
    let formats = [
        "%P|%C|%R|%D|%E|%F|%S|%A",
        "%5A|%-5A|%05A|%5S|%-4S|%03S|%5E|%-5E|%05E|%3F|%-3F|%03F",
        "%12C|%-12C|%.3C|%8.2C|%-8.2C|%8R|%-8R|%.3R|%5D|%5P",
        "%j",
        "%J",
    ];
    let count = "6";
    let mut subscribers = Vec::new();
    for (index, format) in formats.iter().enumerate() {
        for tool in ["mosquitto", "umqtt"] {
            let id = format!("fmt-{tool}-{index}");
            let mut args = vec![
                "-t", "fmt/#", "-q", "1", "-C", count, "-F", format, "-V", "5",
            ];
            args.extend(["-D", "subscribe", "subscription-identifier", "5"]);
            if format.starts_with("%J") {
                args.push("--pretty");
            }
            subscribers.push((tool, *format, spawn_sub(tool, &broker, &id, &args)));
            wait_subscribed(&broker, &id);
        }
    }
    let every: Vec<String> = [
        d("publish", "user-property", &["k", "v"]),
        d("publish", "user-property", &["k", "v2"]),
        d("publish", "user-property", &["name", "a b"]),
        d("publish", "content-type", &["application/json"]),
        d("publish", "response-topic", &["reply/to/me"]),
        d("publish", "correlation-data", &["corr \"7\""]),
        d("publish", "message-expiry-interval", &["3600"]),
        d("publish", "payload-format-indicator", &["1"]),
    ]
    .concat();
    let mut first = vec!["-t", "fmt/all", "-m", r#"{"v":1}"#, "-q", "1"];
    first.extend(strs(&every));
    publish_both(&broker, &first);
    // No property at all (but the subscription identifier the broker adds).
    publish_both(
        &broker,
        &["-t", "fmt/none", "-m", "[2]", "-q", "1", "-V", "5"],
    );
    // Some: a payload format indicator of 0, one user property.
    publish_both(
        &broker,
        &[
            "-t",
            "fmt/some",
            "-m",
            "3",
            "-q",
            "1",
            "-D",
            "publish",
            "payload-format-indicator",
            "0",
            "-D",
            "publish",
            "user-property",
            "only",
            "one",
        ],
    );

    let mut outputs: Vec<(&str, &str, Output)> = subscribers
        .into_iter()
        .map(|(tool, format, child)| (tool, format, finished(child)))
        .collect();
    while let Some((tool, format, ours)) = outputs.pop() {
        let (mosquitto_tool, _, theirs) = outputs.pop().unwrap();
        assert_eq!((tool, mosquitto_tool), ("umqtt", "mosquitto"));
        assert!(theirs.status.success(), "{format}: {theirs:?}");
        assert!(ours.status.success(), "{format}: {ours:?}");
        let (expected, actual) = if format.starts_with('%') && format.len() == 2 {
            (without_digits(&theirs.stdout), without_digits(&ours.stdout))
        } else {
            (theirs.stdout.clone(), ours.stdout.clone())
        };
        assert_eq!(
            String::from_utf8_lossy(&actual),
            String::from_utf8_lossy(&expected),
            "-F {format}"
        );
        assert_eq!(ours.stderr, theirs.stderr, "-F {format}");
        // Each message printed twice in a row: from mosquitto_pub, then from umqtt pub.
        let text = String::from_utf8_lossy(&actual).into_owned();
        let messages: Vec<&str> = if format.starts_with("%J") {
            text.split("\n}\n").collect()
        } else {
            text.lines().collect()
        };
        let messages: Vec<&str> = messages.into_iter().filter(|m| !m.is_empty()).collect();
        assert_eq!(messages.len(), 6, "-F {format}: {text}");
        for pair in messages.chunks(2) {
            assert_eq!(pair[0], pair[1], "-F {format}: mosquitto_pub vs umqtt pub");
        }
    }
}

/// `-x`, `-D connect session-expiry-interval` and `-D disconnect session-expiry-interval`
/// keep or end the session on the broker as they do for mosquitto_sub: a QoS 1 message
/// published while the subscriber is away is delivered when it comes back with -c, or not.
#[test]
fn session_expiry_keeps_or_ends_the_session_as_mosquitto() {
    let broker = Mosquitto::start();
    let variants: [(&[&str], bool); 5] = [
        // -x alone is for MQTT 5 only (mosquitto: ignored with 3.1.1).
        (&["-x", "60", "-V", "5"], true),
        (&["-x", "60"], false),
        (&["-D", "connect", "session-expiry-interval", "60"], true),
        (&["-V", "5"], false),
        (
            &[
                "-x",
                "60",
                "-D",
                "disconnect",
                "session-expiry-interval",
                "0",
            ],
            false,
        ),
    ];
    for (index, (variant, kept)) in variants.iter().enumerate() {
        for tool in ["mosquitto", "umqtt"] {
            let id = format!("expiry-{tool}-{index}");
            let topic = format!("held/{tool}/{index}");
            let mut first = vec!["-t", &topic, "-q", "1", "-E"];
            first.extend_from_slice(variant);
            let out = finished(spawn_sub(tool, &broker, &id, &first));
            assert!(out.status.success(), "{tool} {variant:?}: {out:?}");
            run_at(&broker, "pub", &["-t", &topic, "-q", "1", "-m", "kept"]).assert_success();
            let back = [
                "-t", &topic, "-q", "1", "-c", "-V", "5", "-C", "1", "-W", "1",
            ];
            let out = finished(spawn_sub(tool, &broker, &id, &back));
            let (status, stdout) = (out.status.code(), String::from_utf8_lossy(&out.stdout));
            if *kept {
                assert_eq!(
                    (status, &*stdout),
                    (Some(0), "kept\n"),
                    "{tool} {variant:?}"
                );
            } else {
                assert_eq!((status, &*stdout), (Some(27), ""), "{tool} {variant:?}");
            }
        }
    }
}

/// Will properties reach the will message the broker publishes when the client vanishes:
/// mosquitto_sub prints the same for umqtt's will as for mosquitto_sub's.
#[test]
fn will_properties_reach_the_will_message() {
    let broker = Mosquitto::start();
    let format = "%C|%P|%R|%D|%E|%F|%p";
    let watcher = spawn_sub(
        "mosquitto",
        &broker,
        "will-watcher",
        &["-t", "will/#", "-V", "5", "-C", "2", "-F", format],
    );
    wait_subscribed(&broker, "will-watcher");
    let will: Vec<String> = [
        d("will", "content-type", &["text/plain"]),
        d("will", "user-property", &["why", "vanished"]),
        d("will", "response-topic", &["will/reply"]),
        d("will", "correlation-data", &["w-1"]),
        d("will", "message-expiry-interval", &["600"]),
        d("will", "payload-format-indicator", &["1"]),
        d("will", "will-delay-interval", &["0"]),
    ]
    .concat();
    for tool in ["mosquitto", "umqtt"] {
        let id = format!("willer-{tool}");
        let topic = format!("will/{tool}");
        let mut args = vec![
            "-t",
            "nothing",
            "--will-topic",
            &topic,
            "--will-payload",
            "gone",
        ];
        args.extend(strs(&will));
        let mut willer = spawn_sub(tool, &broker, &id, &args);
        wait_subscribed(&broker, &id);
        willer.kill().unwrap();
        let _ = willer.wait();
        assert!(
            broker.wait_for_log(&format!("'{topic}'"), LOG_WAIT),
            "no will on {topic}"
        );
    }
    let out = finished(watcher);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "text/plain|why:vanished|will/reply|w-1|600|1|gone",
            "text/plain|why:vanished|will/reply|w-1|600|1|gone"
        ]
    );
}

/// Bad `-D` and `-x` input: the same exit status as mosquitto_pub / mosquitto_sub, one clear
/// line, no panic.
#[test]
fn bad_property_input_exits_like_mosquitto() {
    let broker = Mosquitto::start();
    let cases: &[(&str, &[&str], &str)] = &[
        ("pub", &["-D"], "not enough arguments"),
        (
            "pub",
            &["-D", "connect", "receive-maximum"],
            "not enough arguments",
        ),
        (
            "sub",
            &["-D", "connect", "user-property", "k"],
            "not enough arguments",
        ),
        (
            "pub",
            &["-D", "bogus", "receive-maximum", "1"],
            "Invalid command",
        ),
        (
            "pub",
            &["-D", "suback", "reason-string", "x"],
            "Invalid command",
        ),
        (
            "sub",
            &["-D", "connect", "bogus", "1"],
            "Invalid property name",
        ),
        (
            "pub",
            &["-D", "publish", "session-expiry-interval", "1"],
            "session-expiry-interval property not allowed for publish",
        ),
        (
            "pub",
            &["-D", "will", "topic-alias", "1"],
            "topic-alias property not allowed for will",
        ),
        (
            "sub",
            &["-D", "subscribe", "content-type", "x"],
            "content-type property not allowed for subscribe",
        ),
        (
            "pub",
            &["-D", "puback", "reason-string", "x"],
            "not supported for puback",
        ),
        (
            "pub",
            &["-D", "auth", "authentication-method", "x"],
            "not supported for auth",
        ),
        (
            "pub",
            &["-D", "connack", "reason-string", "x"],
            "not supported for connack",
        ),
        (
            "pub",
            &["-D", "publish", "subscription-identifier", "1"],
            "not supported for publish",
        ),
        (
            "pub",
            &["-D", "connect", "receive-maximum", "70000"],
            "Property value (70000) out of range for property receive-maximum.",
        ),
        (
            "sub",
            &["-D", "connect", "session-expiry-interval", "-1"],
            "Property value (-1) out of range",
        ),
        (
            "pub",
            &[
                "-D",
                "publish",
                "message-expiry-interval",
                "99999999999999999999",
            ],
            "out of range",
        ),
        (
            "pub",
            &["-D", "connect", "receive-maximum", "abc"],
            "is not a whole number",
        ),
        (
            "pub",
            &["-D", "connect", "receive-maximum", "0"],
            "Error in CONNECT properties",
        ),
        (
            "pub",
            &["-D", "connect", "maximum-packet-size", "0"],
            "Error in CONNECT properties",
        ),
        (
            "pub",
            &["-D", "publish", "topic-alias", "0"],
            "Error in PUBLISH properties",
        ),
        (
            "pub",
            &["-D", "connect", "request-problem-information", "2"],
            "must be 0 or 1",
        ),
        (
            "pub",
            &[
                "-D",
                "connect",
                "receive-maximum",
                "5",
                "-D",
                "connect",
                "receive-maximum",
                "6",
            ],
            "Duplicate property",
        ),
        (
            "pub",
            &[
                "-D",
                "publish",
                "message-expiry-interval",
                "1",
                "-D",
                "publish",
                "message-expiry-interval",
                "2",
            ],
            "Error in PUBLISH properties: Duplicate property",
        ),
        (
            "pub",
            &[
                "-i",
                "dup",
                "-x",
                "10",
                "-D",
                "connect",
                "session-expiry-interval",
                "5",
            ],
            "Duplicate property",
        ),
        (
            "pub",
            &["-x", "abc"],
            "session-expiry-interval not a number.",
        ),
        (
            "pub",
            &["-x", "12s"],
            "session-expiry-interval not a number.",
        ),
        (
            "sub",
            &["-x", "4294967296"],
            "session-expiry-interval out of range.",
        ),
        (
            "sub",
            &["-x", "-2"],
            "session-expiry-interval out of range.",
        ),
        ("pub", &["-x"], "session-expiry-interval"),
        (
            "pub",
            &["-V", "5", "-c"],
            "You must provide a client id if you are using an infinite session expiry interval.",
        ),
        (
            "sub",
            &["-V", "5", "-x", "-1"],
            "You must provide a client id if you are using an infinite session expiry interval.",
        ),
        (
            "pub",
            &["-D", "connect", "user-property", "a", "b", "-V", "mqttv311"],
            "MQTT 5",
        ),
        (
            "pub",
            &["--property=connect", "user-property", "a", "b"],
            "--property",
        ),
    ];
    for (subcommand, flags, message) in cases {
        let mut args: Vec<&str> = vec!["-t", "t"];
        if *subcommand == "pub" {
            args.extend(["-m", "x"]);
        }
        args.extend_from_slice(flags);
        let full = at(&broker, &args);
        let mosquitto = match *subcommand {
            "pub" => mosquitto_pub(),
            _ => mosquitto_sub(),
        }
        .args(&full)
        .stdin(Stdio::null())
        .output()
        .unwrap();
        let mut ours = vec![subcommand.to_string()];
        ours.extend(full);
        let out = run(&strs(&ours));
        let line = out.assert_one_line_error();
        assert_eq!(
            out.status.code(),
            mosquitto.status.code(),
            "{subcommand} {flags:?}: mosquitto said {:?}",
            String::from_utf8_lossy(&mosquitto.stderr)
        );
        assert!(line.contains(message), "{flags:?}: {line}");
    }

    // An authentication method the broker does not know: refused, exit status 140 (the
    // CONNACK reason code), as mosquitto_pub.
    let args = at(
        &broker,
        &[
            "-t",
            "t",
            "-m",
            "x",
            "-D",
            "connect",
            "authentication-method",
            "x-unknown",
        ],
    );
    let mosquitto = mosquitto_pub().args(&args).output().unwrap();
    assert_eq!(mosquitto.status.code(), Some(140));
    let mut ours = vec!["pub".to_owned()];
    ours.extend(args);
    let out = run(&strs(&ours));
    out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(140), "{out:?}");
    // The same through the robust client: a permanent refusal, with its reason code.
    ours.extend(["--policy".to_owned(), "guaranteed".to_owned()]);
    let out = run(&strs(&ours));
    assert_eq!(out.status.code(), Some(140), "--policy: {out:?}");

    // --outbox stores no properties: refused, not dropped.
    let outbox = tempfile::tempdir().unwrap();
    let outbox = outbox.path().join("outbox.redb");
    let outbox = outbox.to_str().unwrap();
    let out = run_at(
        &broker,
        "pub",
        &[
            "-t",
            "t",
            "-m",
            "x",
            "--policy",
            "guaranteed",
            "--outbox",
            outbox,
            "-D",
            "publish",
            "content-type",
            "x",
        ],
    );
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1));
    assert!(line.contains("not kept in the --outbox file"), "{line}");
}
