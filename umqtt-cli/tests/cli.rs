//! The built `umqtt` binary against a real mosquitto (one broker per test, free loopback
//! ports). Every child process has a time limit and is killed if a test fails, so a hang
//! shows up as a failure with the child's output, not as a stuck test run.
//!
//! A subscriber is known to be ready when the broker logs `Sending SUBACK to <id>`: mosquitto
//! is single-threaded, so a PUBLISH from a client that connects afterwards is routed to it.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use umqtt_testkit::broker::{free_port, Mosquitto};
use umqtt_testkit::certs::TestCerts;

#[test]
fn round_trip_pub_to_sub() {
    let broker = Mosquitto::start();
    let sub = subscriber(&broker, "rt-sub", &["-C", "1", "-t", "t", "-v"]);
    run_at(&broker, "pub", &["-t", "t", "-m", "hello"]).assert_success();
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "t hello\n");
}

#[test]
fn stdin_lines_on_one_connection() {
    let broker = Mosquitto::start();
    let sub = subscriber(&broker, "lines-sub", &["-C", "3", "-t", "lines"]);
    let mut args = vec!["pub".to_owned(), "-i".to_owned(), "lines-pub".to_owned()];
    args.extend(at(&broker, &["-t", "lines", "-l"]));
    spawn(&strs(&args))
        .input(b"one\ntwo\nthree\n")
        .finish()
        .assert_success();
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "one\ntwo\nthree\n");
    // All three went over one connection.
    assert_eq!(
        broker
            .log_contents()
            .matches("New client connected from 127.0.0.1")
            .count(),
        2,
        "{}",
        broker.log_contents()
    );
}

#[test]
fn timeout_exits_27_in_time() {
    let broker = Mosquitto::start();
    let started = Instant::now();
    let out = run_at(&broker, "sub", &["-t", "nothing/here", "-W", "1"]);
    let elapsed = started.elapsed();
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(27), "{out:?}");
    assert!(line.contains("Timed out"), "{line}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
}

#[test]
fn no_retained_skips_stale_but_prints_live() {
    let broker = Mosquitto::start();
    run_at(&broker, "pub", &["-t", "r", "-m", "stale", "-r"]).assert_success();
    // Without -R the retained message is printed: it really is there.
    let plain = run_at(&broker, "sub", &["-t", "r", "-C", "1", "-v"]);
    plain.assert_success();
    assert_eq!(plain.stdout_text(), "r stale\n");

    let sub = subscriber(&broker, "fresh-sub", &["-t", "r", "-C", "1", "-v", "-R"]);
    run_at(&broker, "pub", &["-t", "r", "-m", "live"]).assert_success();
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "r live\n");
}

#[test]
fn no_eol_and_null_message() {
    let broker = Mosquitto::start();
    let joined = subscriber(&broker, "noeol-sub", &["-t", "n", "-C", "3", "-N"]);
    let verbose = subscriber(&broker, "verbose-sub", &["-t", "n", "-C", "3", "-v"]);
    let plain = subscriber(&broker, "plain-sub", &["-t", "n", "-C", "3"]);
    run_at(&broker, "pub", &["-t", "n", "-m", "a"]).assert_success();
    run_at(&broker, "pub", &["-t", "n", "-n"]).assert_success();
    run_at(&broker, "pub", &["-t", "n", "-m", "b"]).assert_success();

    let joined = joined.finish();
    joined.assert_success();
    assert_eq!(joined.stdout_text(), "ab");
    let verbose = verbose.finish();
    verbose.assert_success();
    assert_eq!(verbose.stdout_text(), "n a\nn (null)\nn b\n");
    let plain = plain.finish();
    plain.assert_success();
    // As mosquitto_sub: an empty payload prints nothing without -v (it still counts).
    assert_eq!(plain.stdout_text(), "a\nb\n");
}

#[test]
fn file_and_stdin_payloads_are_sent_byte_for_byte() {
    let broker = Mosquitto::start();
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("payload.bin");
    let payload: Vec<u8> = b"line 1\nline 2\r\n\x00\xff\xfe end".to_vec();
    std::fs::write(&file, &payload).unwrap();

    let sub = subscriber(&broker, "bytes-sub", &["-t", "f", "-C", "2", "-N"]);
    run_at(&broker, "pub", &["-t", "f", "-f", file.to_str().unwrap()]).assert_success();
    let mut args = vec!["pub".to_owned()];
    args.extend(at(&broker, &["-t", "f", "-s"]));
    spawn(&strs(&args))
        .input(b"from\nstdin\n")
        .finish()
        .assert_success();
    let out = sub.finish();
    out.assert_success();
    let mut expected = payload.clone();
    expected.extend_from_slice(b"from\nstdin\n");
    assert_eq!(out.stdout, expected, "{out:?}");

    let missing = run_at(&broker, "pub", &["-t", "f", "-f", "/nonexistent/file"]);
    let line = missing.assert_one_line_error();
    assert!(line.contains("/nonexistent/file"), "{line}");
}

#[test]
fn qos_1_and_2_complete_their_handshakes() {
    let broker = Mosquitto::start();
    for (qos, handshake) in [
        ("1", &["received PUBACK (Mid: 1, RC:0)"][..]),
        (
            "2",
            &[
                "received PUBREC (Mid: 1)",
                "sending PUBREL (m1)",
                "received PUBCOMP (Mid: 1, RC:0)",
            ][..],
        ),
    ] {
        let id = format!("qos{qos}-sub");
        let sub = subscriber(&broker, &id, &["-t", "q", "-q", qos, "-C", "1", "-v", "-d"]);
        let publisher = run_at(
            &broker,
            "pub",
            &["-t", "q", "-m", "hello", "-q", qos, "-d", "-i", "qos-pub"],
        );
        assert!(publisher.status.success(), "{publisher:?}");
        let sent =
            format!("Client qos-pub sending PUBLISH (d0, q{qos}, r0, m1, 'q', ... (5 bytes))");
        assert!(publisher.stderr.contains(&sent), "{publisher:?}");
        for step in handshake {
            assert!(publisher.stderr.contains(step), "{step}: {publisher:?}");
        }
        let out = sub.finish();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout_text(), "q hello\n");
        let received = format!("received PUBLISH (d0, q{qos}, r0, m1, 'q', ... (5 bytes))");
        assert!(out.stderr.contains(&received), "{out:?}");
        assert!(
            out.stderr.contains(&format!("Subscribed (mid: 1): {qos}")),
            "{out:?}"
        );
    }
}

#[test]
fn bad_command_lines_fail_with_one_line() {
    let cases: &[&[&str]] = &[
        &["pub", "--bogus", "-t", "t", "-n"],
        &["sub", "-t", "t", "--bogus"],
        &["pub", "-t", "t", "-n", "-q", "3"],
        &["sub", "-t", "t", "-q", "3"],
        &["sub"],
        &["pub", "-n"],
        &["pub", "-t", "t"],
        &["pub", "-t", "t", "-m", "a", "-f", "b"],
        &["pub", "-t", "t", "-l", "-n"],
        &["pub", "-t", "a/#", "-n"],
        &["pub", "-t", "t", "-n", "-c"],
        &["pub", "-t", "t", "-n", "-p", "70000"],
        &["pub", "-t", "t", "-n", "--will-payload", "x"],
        &["pub", "-t", "t", "-n", "-L", "http://host/t"],
        &["sub", "-t", "t", "--policy", "backoff:9s..1s"],
        &["sub", "-t", "t", "-W", "0"],
        &["nosuchcommand"],
    ];
    for args in cases {
        let out = run(args);
        out.assert_one_line_error();
        // As mosquitto_pub / mosquitto_sub: 1, not clap's 2.
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    // Bad --policy syntax names the accepted forms.
    let out = run(&["pub", "-t", "t", "-n", "--policy", "sometimes"]);
    let line = out.assert_one_line_error();
    assert!(line.contains("unknown policy 'sometimes'"), "{line}");
    assert!(line.contains("guaranteed"), "{line}");
    assert_eq!(out.status.code(), Some(1));
    // --outbox only with a policy that keeps messages until delivered.
    for policy in [&[][..], &["--policy", "none"], &["--policy", "deadline:5s"]] {
        let mut args = vec!["pub", "-t", "t", "-n", "--outbox", "/tmp/unused-outbox"];
        args.extend_from_slice(policy);
        let out = run(&args);
        let line = out.assert_one_line_error();
        assert!(line.contains("--outbox needs a policy"), "{line}");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
    // Help is not an error.
    for args in [&["pub", "--help"][..], &["sub", "--help"], &["--help"]] {
        let out = run(args);
        assert!(out.status.success(), "{out:?}");
        assert!(out.stdout_text().contains("Usage: umqtt"), "{out:?}");
    }
}

#[test]
fn refused_credentials() {
    let broker = Mosquitto::builder().user("alice", "secret").start();
    for credentials in [&["-u", "alice", "-P", "wrong"][..], &[]] {
        let mut args = vec!["-t", "t", "-n"];
        args.extend_from_slice(credentials);
        let out = run_at(&broker, "pub", &args);
        let line = out.assert_one_line_error();
        assert!(
            line.contains("not authorised") || line.contains("not authorized"),
            "{line}"
        );
        // As mosquitto: the exit status is the CONNACK return code.
        assert_eq!(out.status.code(), Some(5), "{out:?}");
    }
    run_at(
        &broker,
        "pub",
        &["-t", "t", "-n", "-u", "alice", "-P", "secret"],
    )
    .assert_success();
}

#[test]
fn unreachable_broker() {
    let port = free_port().to_string();
    let out = run(&["pub", "-h", "127.0.0.1", "-p", &port, "-t", "t", "-m", "x"]);
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        line,
        format!("Error: unable to connect to 127.0.0.1:{port}: Connection refused")
    );
    let out = run(&["sub", "-h", "127.0.0.1", "-p", &port, "-t", "t"]);
    out.assert_one_line_error();
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}

#[test]
fn tls_with_cafile() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let tls_port = broker.tls_port().to_string();
    let ca = path(certs.ca().cert_path());
    let tls = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["-h", "127.0.0.1", "-p", &tls_port, "--cafile", ca]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    let mut sub_args = vec!["sub".to_owned()];
    sub_args.extend(tls(&["-i", "tls-sub", "-t", "s", "-C", "2", "-v"]));
    let sub = spawn(&strs(&sub_args));
    wait_subscribed(&broker, "tls-sub");
    let mut pub_args = vec!["pub".to_owned()];
    pub_args.extend(tls(&["-t", "s", "-m", "over tls", "-q", "1"]));
    run(&strs(&pub_args)).assert_success();
    // mqtts:// in a URL means TLS on the given port.
    let url = format!("mqtts://127.0.0.1:{tls_port}/s");
    run(&["pub", "-L", &url, "--cafile", ca, "-m", "via url"]).assert_success();
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "s over tls\ns via url\n");

    // A CA that did not sign the broker's certificate.
    let wrong_ca = path(certs.other_ca().cert_path());
    let port = tls_port.as_str();
    let out = run(&[
        "pub",
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "--cafile",
        wrong_ca,
        "-t",
        "s",
        "-n",
    ]);
    let line = out.assert_one_line_error();
    assert!(
        line.contains("TLS") && line.contains("certificate"),
        "{line}"
    );
    assert_eq!(out.status.code(), Some(1));

    // --tls-insecure-accept-any-cert connects anyway, with a warning.
    let out = run(&[
        "pub",
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "--cafile",
        wrong_ca,
        "--tls-insecure-accept-any-cert",
        "-t",
        "s",
        "-n",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr
            .starts_with("Warning: --tls-insecure-accept-any-cert"),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

#[test]
fn url_form() {
    let broker = Mosquitto::builder().user("bob", "pw").start();
    let url = format!("mqtt://bob:pw@127.0.0.1:{}/url/topic", broker.port());
    let sub = spawn(&["sub", "-L", &url, "-i", "url-sub", "-C", "1", "-v"]);
    wait_subscribed(&broker, "url-sub");
    run(&["pub", "-L", &url, "-m", "x"]).assert_success();
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "url/topic x\n");
}

#[test]
fn mqtt_5_is_spoken_on_request() {
    let broker = Mosquitto::start();
    for (qos, handshake) in [
        ("1", &["received PUBACK (Mid: 1, RC:0)"][..]),
        (
            "2",
            &[
                "received PUBREC (Mid: 1)",
                "sending PUBREL (m1)",
                "received PUBCOMP (Mid: 1, RC:0)",
            ][..],
        ),
    ] {
        let id = format!("v5-sub-{qos}");
        let sub = subscriber(
            &broker,
            &id,
            &["-t", "v5", "-q", qos, "-C", "1", "-v", "-d", "-V", "mqttv5"],
        );
        let publisher = run_at(
            &broker,
            "pub",
            &[
                "-t", "v5", "-m", "new", "-q", qos, "-d", "-V", "5", "-i", "v5-pub",
            ],
        );
        assert!(publisher.status.success(), "{publisher:?}");
        for step in handshake {
            assert!(publisher.stderr.contains(step), "{step}: {publisher:?}");
        }
        let out = sub.finish();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout_text(), "v5 new\n");
        assert!(
            out.stderr.contains(&format!("Subscribed (mid: 1): {qos}")),
            "{out:?}"
        );
    }
    let log = broker.log_contents();
    // "(p5, …)" is mosquitto's mark for protocol level 5.
    assert!(log.contains("as v5-pub (p5,"), "{log}");
    assert!(log.contains("as v5-sub-1 (p5,"), "{log}");
}

#[test]
fn mqtt_31_is_spoken_on_request() {
    let broker = Mosquitto::start();
    let sub = subscriber(&broker, "v31-sub", &["-t", "v", "-C", "1", "-V", "mqttv31"]);
    run_at(
        &broker,
        "pub",
        &["-t", "v", "-m", "old", "-V", "31", "-i", "v31-pub"],
    )
    .assert_success();
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "old\n");
    let log = broker.log_contents();
    // "(p1, …)" is mosquitto's mark for protocol level 3, i.e. MQTT 3.1.
    assert!(log.contains("as v31-pub (p1,"), "{log}");
    assert!(log.contains("as v31-sub (p1,"), "{log}");
}

#[test]
fn will_is_delivered_when_the_publisher_is_killed() {
    let broker = Mosquitto::start();
    let sub = subscriber(&broker, "will-sub", &["-t", "will/#", "-C", "1", "-v"]);
    let mut args = vec!["pub".to_owned()];
    args.extend(at(
        &broker,
        &[
            "-i",
            "doomed",
            "-t",
            "work",
            "-l",
            "--will-topic",
            "will/doomed",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
        ],
    ));
    // Stdin stays open: a long-lived `pub -l`.
    let mut doomed = spawn(&strs(&args));
    assert!(
        broker.wait_for_log("as doomed (p2, c1, k60)", LOG_WAIT),
        "{}",
        broker.log_contents()
    );
    let child = doomed.child.as_mut().unwrap();
    child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix: no DISCONNECT is sent.
    child.wait().unwrap();

    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "will/doomed gone\n");
}

#[test]
fn closed_stdout_ends_sub_quietly() {
    let broker = Mosquitto::start();
    let mut child = command(&strs(&{
        let mut args = vec!["sub".to_owned(), "-i".to_owned(), "pipe-sub".to_owned()];
        args.extend(at(&broker, &["-t", "p"]));
        args
    }))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = collect(child.stderr.take().unwrap());
    let mut guard = Running {
        child: Some(child),
        stdin: None,
        stdout: None,
        stderr: None,
    };
    wait_subscribed(&broker, "pipe-sub");
    run_at(&broker, "pub", &["-t", "p", "-m", "first"]).assert_success();
    let child = guard.child.as_mut().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    // Like `| head -1`: the reader goes away, then more messages arrive.
    drop(reader);
    run_at(&broker, "pub", &["-t", "p", "-m", "second"]).assert_success();

    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sub did not exit after its stdout closed"
        );
        thread::sleep(Duration::from_millis(10));
    };
    guard.child = None;
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert!(status.success(), "{status:?}, stderr {stderr:?}");
    assert_eq!(stderr, "");
}

#[test]
fn persistent_session_with_disable_clean_session() {
    let broker = Mosquitto::start();
    let first = subscriber(&broker, "keeper", &["-c", "-t", "k", "-q", "1", "-C", "1"]);
    run_at(&broker, "pub", &["-t", "k", "-q", "1", "-m", "online"]).assert_success();
    let out = first.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "online\n");
    // Published while the subscriber is away: the broker keeps it for the session.
    run_at(&broker, "pub", &["-t", "k", "-q", "1", "-m", "queued"]).assert_success();
    let out = run_at(
        &broker,
        "sub",
        &["-c", "-i", "keeper", "-t", "k", "-q", "1", "-C", "1"],
    );
    out.assert_success();
    assert_eq!(out.stdout_text(), "queued\n");
}

#[test]
fn idle_stdin_lines_keep_the_connection_alive() {
    let broker = Mosquitto::start();
    let sub = subscriber(&broker, "idle-sub", &["-t", "idle", "-C", "1"]);
    let mut args = vec!["pub".to_owned(), "-i".to_owned(), "idle-pub".to_owned()];
    args.extend(at(&broker, &["-t", "idle", "-l", "-k", "1"]));
    let mut publisher = spawn(&strs(&args));
    // Keepalive 1 s: the broker drops a client silent for 1.5 s, which mosquitto 2.0 notices
    // within about 5 s. Stay quiet on stdin for longer; the publisher must ping meanwhile.
    thread::sleep(Duration::from_secs(8));
    publisher
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"still here\n")
        .unwrap();
    let out = publisher.finish();
    out.assert_success();
    let log = broker.log_contents();
    assert!(log.contains("Received PINGREQ from idle-pub"), "{log}");
    assert!(!log.contains("idle-pub has exceeded timeout"), "{log}");
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "still here\n");
}

/// Ctrl-C (SIGINT) and SIGTERM end `sub` and `pub -l` with DISCONNECT, so the broker does not
/// publish their last will — unlike SIGKILL above.
#[test]
fn sigint_and_sigterm_disconnect_cleanly_without_the_will() {
    let broker = Mosquitto::start();
    for (subcommand, signal) in [("sub", "-INT"), ("pub", "-TERM")] {
        let id = format!("polite-{subcommand}");
        let mut args = vec![subcommand.to_owned()];
        let will_topic = format!("will/{id}");
        let mut flags = vec![
            "-i",
            &id,
            "-t",
            "work",
            "--will-topic",
            &will_topic,
            "--will-payload",
            "gone",
        ];
        if subcommand == "pub" {
            flags.push("-l");
        }
        args.extend(at(&broker, &flags));
        let mut running = spawn(&strs(&args));
        assert!(
            broker.wait_for_log(&format!("as {id} ("), LOG_WAIT),
            "{}",
            broker.log_contents()
        );
        let watcher = subscriber(
            &broker,
            &format!("watch-{subcommand}"),
            &["-t", "will/#", "-W", "2"],
        );
        let pid = running.child.as_ref().unwrap().id().to_string();
        let started = Instant::now();
        assert!(std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
        let status = running.child.as_mut().unwrap().wait().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{subcommand} took {:?}",
            started.elapsed()
        );
        assert_eq!(status.code(), Some(0), "{subcommand} after {signal}");
        assert!(
            broker.wait_for_log(&format!("Received DISCONNECT from {id}"), LOG_WAIT),
            "{}",
            broker.log_contents()
        );
        let out = watcher.finish();
        assert_eq!(
            out.stdout_text(),
            "",
            "the will was published for {subcommand}"
        );
    }
}
