//! `umqtt pub` / `umqtt sub` as drop-ins for mosquitto_pub / mosquitto_sub: reconnecting by
//! default, signals in every state, command-line errors, TLS name checks, and output formats
//! compared byte for byte with mosquitto_sub (when it is installed).

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::certs::TestCerts;
use umqtt_testkit::tunnel::{ProxyProtocol, ProxyServer, TlsTerminator, TlsVersions, WsBridge};

/// How many times `needle` is in the broker's log.
fn log_count(broker: &Mosquitto, needle: &str) -> usize {
    broker.log_contents().matches(needle).count()
}

/// Waits until the broker's log holds `needle` at least `count` times.
#[track_caller]
fn wait_log_count(broker: &Mosquitto, needle: &str, count: usize) {
    let deadline = Instant::now() + LOG_WAIT;
    while log_count(broker, needle) < count {
        assert!(
            Instant::now() < deadline,
            "{needle:?} not {count} times in the log:\n{}",
            broker.log_contents()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn kill(signal: &str, pid: u32) {
    assert!(Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// Waits for `running` to exit after a signal; panics if it takes longer than `limit`.
#[track_caller]
fn exited_within(running: &mut Running, limit: Duration) -> std::process::ExitStatus {
    let child = running.child.as_mut().unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "still running {limit:?} after the signal"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Item 1 and 2: without --policy, `sub` and `pub -l` come back after a broker restart, as
/// mosquitto_sub / mosquitto_pub -l do, saying so on stderr once each way.
#[test]
fn sub_and_pub_lines_reconnect_after_a_broker_restart_by_default() {
    let mut broker = Mosquitto::start();
    let sub = subscriber(&broker, "back-sub", &["-t", "t", "-v", "-C", "2"]);
    let mut args = vec!["pub".to_owned(), "-i".to_owned(), "back-pub".to_owned()];
    args.extend(at(&broker, &["-t", "t", "-l", "-q", "1"]));
    let mut publisher = spawn(&strs(&args));
    let stdin = publisher.stdin.as_mut().unwrap();
    stdin.write_all(b"before\n").unwrap();
    wait_log_count(&broker, "Received PUBLISH from back-pub", 1);

    broker.restart();
    // Both come back by themselves; the subscriber subscribes again (clean session).
    wait_log_count(&broker, "Sending SUBACK to back-sub", 2);
    wait_log_count(&broker, "as back-pub (", 2);
    let stdin = publisher.stdin.as_mut().unwrap();
    stdin.write_all(b"after\n").unwrap();

    let published = publisher.finish();
    assert!(published.status.success(), "{published:?}");
    let out = sub.finish();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout_text(), "t before\nt after\n");
    for stderr in [&out.stderr, &published.stderr] {
        assert_eq!(
            stderr.lines().collect::<Vec<_>>(),
            [
                "umqtt: connection lost (the broker closed the connection); reconnecting",
                "umqtt: reconnected"
            ],
            "{stderr}"
        );
    }
}

/// `--quiet` silences the link notices (and errors, as mosquitto's --quiet).
#[test]
fn quiet_silences_link_notices_and_errors() {
    let mut broker = Mosquitto::start();
    let sub = subscriber(&broker, "quiet-sub", &["-t", "t", "-C", "1", "--quiet"]);
    broker.restart();
    wait_log_count(&broker, "Sending SUBACK to quiet-sub", 2);
    run_at(&broker, "pub", &["-t", "t", "-m", "x"]).assert_success();
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "x\n");

    let port = umqtt_testkit::broker::free_port().to_string();
    let out = run(&[
        "pub",
        "-p",
        &port,
        "-h",
        "127.0.0.1",
        "-t",
        "t",
        "-n",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");
}

/// A refusal on reconnecting ends the command with mosquitto's CONNACK exit status.
#[test]
fn a_refusal_while_reconnecting_ends_sub() {
    let mut broker = Mosquitto::builder().user("alice", "secret").start();
    let sub = subscriber(
        &broker,
        "refused-sub",
        &["-t", "t", "-u", "alice", "-P", "secret"],
    );
    // The same broker, now with a different password for alice.
    let password_file = broker.directory().join("passwords");
    let line = format!(
        "alice:{}\n",
        umqtt_testkit::broker::hash_password("changed")
    );
    std::fs::write(&password_file, line).unwrap();
    broker.restart();
    let out = sub.finish();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(out.stderr.contains("umqtt: connection lost"), "{out:?}");
    assert!(
        out.stderr
            .ends_with("Error: Connection Refused: not authorised.\n"),
        "{out:?}"
    );
}

/// Item 6: a broker that accepts TCP and never sends CONNACK. mosquitto_sub ends at once on
/// SIGTERM; so must we, with or without --policy (liveness bound, not a timing test).
#[test]
fn sigterm_while_waiting_for_connack_ends_the_command() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let accepted = thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(4) {
            held.push(stream);
        }
        thread::sleep(Duration::from_secs(20));
        drop(held);
    });
    let cases: [&[&str]; 4] = [
        &["sub", "-t", "t"],
        &["sub", "-t", "t", "--policy", "fixed:1s"],
        &["pub", "-t", "t", "-m", "x"],
        &["pub", "-t", "t", "-l", "--policy", "guaranteed"],
    ];
    for case in cases {
        let mut args: Vec<&str> = case.to_vec();
        args.extend(["-h", "127.0.0.1", "-p", &port]);
        let mut running = spawn(&args);
        // Give it time to connect and send CONNECT.
        thread::sleep(Duration::from_millis(500));
        let pid = running.child.as_ref().unwrap().id();
        kill("-TERM", pid);
        let status = exited_within(&mut running, Duration::from_secs(3));
        // As mosquitto_sub interrupted before its CONNACK: exit(-1).
        assert_eq!(status.code(), Some(255), "{case:?}: {status:?}");
    }
    drop(accepted);
}

/// Item 6: a subscriber whose stdout pipe is full (nobody reads it) still ends on SIGTERM,
/// and says DISCONNECT to the broker.
#[test]
fn sigterm_while_stdout_is_full_ends_sub_with_disconnect() {
    let broker = Mosquitto::start();
    let mut args = vec!["sub".to_owned(), "-i".to_owned(), "stuck-sub".to_owned()];
    args.extend(at(&broker, &["-t", "flood"]));
    let mut child = command(&strs(&args))
        .stdin(Stdio::null())
        .stdout(Stdio::piped()) // never read
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect(child.stderr.take().unwrap());
    let mut running = Running {
        child: Some(child),
        stdin: None,
        stdout: None,
        stderr: None,
    };
    wait_subscribed(&broker, "stuck-sub");
    // 4 MiB in 64 KiB messages: far more than a pipe (64 KiB) holds.
    let payload = "x".repeat(64 * 1024);
    let mut flood = spawn(&strs(&{
        let mut args = vec!["pub".to_owned()];
        args.extend(at(&broker, &["-t", "flood", "-l", "-i", "flooder"]));
        args
    }));
    {
        let stdin = flood.stdin.as_mut().unwrap();
        for _ in 0..64 {
            stdin.write_all(payload.as_bytes()).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
    }
    flood.finish().assert_success();
    // The subscriber is now blocked on its full stdout.
    thread::sleep(Duration::from_millis(500));
    let pid = running.child.as_ref().unwrap().id();
    kill("-TERM", pid);
    let status = exited_within(&mut running, Duration::from_secs(3));
    running.child = None;
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert_eq!(status.code(), Some(0), "stderr {stderr:?}");
    assert!(
        broker.wait_for_log("Received DISCONNECT from stuck-sub", LOG_WAIT),
        "{}",
        broker.log_contents()
    );
}

/// Item 5: `sub -q 2 -C 1` finishes the QoS 2 exchange (PUBREL / PUBCOMP) before DISCONNECT.
#[test]
fn qos2_count_finishes_the_handshake_before_disconnecting() {
    let broker = Mosquitto::start();
    let sub = subscriber(
        &broker,
        "q2-sub",
        &["-t", "q", "-q", "2", "-C", "1", "-c", "-d"],
    );
    run_at(&broker, "pub", &["-t", "q", "-q", "2", "-m", "once"]).assert_success();
    let out = sub.finish();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout_text(), "once\n");
    let sent_pubcomp = out.stderr.find("sending PUBCOMP").expect("no PUBCOMP sent");
    let sent_disconnect = out
        .stderr
        .find("sending DISCONNECT")
        .expect("no DISCONNECT");
    assert!(sent_pubcomp < sent_disconnect, "{}", out.stderr);
    assert!(
        broker.wait_for_log("Received PUBCOMP from q2-sub", LOG_WAIT),
        "{}",
        broker.log_contents()
    );
    // The persistent session owes nothing: a second run receives nothing within 1 s.
    let again = run_at(
        &broker,
        "sub",
        &["-t", "q", "-q", "2", "-c", "-i", "q2-sub", "-W", "1"],
    );
    assert_eq!(again.status.code(), Some(27), "{again:?}");
    assert_eq!(again.stdout_text(), "");
}

/// Item 5: command-line mistakes exit 1, as mosquitto's clients, with a clear line.
#[test]
fn usage_errors_exit_1_with_clear_messages() {
    let long_topic = "a".repeat(70_000);
    let cases: [(&[&str], &str); 6] = [
        (&["sub", "-t", "t", "-q", "-1"], "must be 0, 1 or 2"),
        (&["sub", "-t", "t", "-C", "0"], "1 or more (1..)"),
        (
            &["pub", "--topi", "t", "-n"],
            "a similar argument exists: '--topic'",
        ),
        (&["sub", "--bogus"], "unexpected argument '--bogus'"),
        (&["pub", "-t", "a/+", "-n"], "invalid topic"),
        (&["pub", "-t", &long_topic, "-n"], "(70000 bytes)"),
    ];
    for (args, expected) in cases {
        let out = run(args);
        let line = out.assert_one_line_error();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(line.contains(expected), "{expected:?} not in {line}");
        assert!(!line.contains("18446744073709551615"), "{line}");
        assert!(line.len() < 400, "{} bytes: {}", line.len(), &line[..200]);
    }
}

/// Item 3: `--insecure` skips only the host-name check, as in mosquitto: a certificate for
/// another name is accepted, one from an unknown CA is not. The old meaning has its own loud
/// flag.
#[test]
fn insecure_skips_the_name_check_only() {
    let certs = TestCerts::generate();
    // The certificate names only `localhost`; we connect to 127.0.0.1.
    let broker = Mosquitto::builder()
        .tls_with(certs.ca(), certs.server_dns_only())
        .start();
    let port = broker.tls_port().to_string();
    let ca = certs.ca().cert_path().to_str().unwrap().to_owned();
    let other_ca = certs.other_ca().cert_path().to_str().unwrap().to_owned();
    let tls_pub = |extra: &[&str]| {
        let mut args = vec!["pub", "-h", "127.0.0.1", "-p", &port, "-t", "s", "-n"];
        args.extend_from_slice(extra);
        run(&args)
    };
    // Without --insecure: the name does not match.
    let out = tls_pub(&["--cafile", &ca]);
    let line = out.assert_one_line_error();
    assert!(line.contains("certificate"), "{line}");
    // --insecure: the chain is checked, the name is not.
    tls_pub(&["--cafile", &ca, "--insecure"]).assert_success();
    // --insecure with the wrong CA still fails, as in mosquitto.
    let out = tls_pub(&["--cafile", &other_ca, "--insecure"]);
    let line = out.assert_one_line_error();
    assert!(line.contains("certificate"), "{line}");
    // mosquitto_pub agrees on all three.
    let mosquitto_accepts = |extra: &[&str]| {
        mosquitto_pub()
            .args(["-h", "127.0.0.1", "-p", &port, "-t", "s", "-n"])
            .args(extra)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!mosquitto_accepts(&["--cafile", &ca]));
    assert!(mosquitto_accepts(&["--cafile", &ca, "--insecure"]));
    assert!(!mosquitto_accepts(&["--cafile", &other_ca, "--insecure"]));
    // Accepting anything needs the loud flag, and warns.
    let out = tls_pub(&["--cafile", &other_ca, "--tls-insecure-accept-any-cert"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr
            .starts_with("Warning: --tls-insecure-accept-any-cert"),
        "{out:?}"
    );
}

/// Runs `sub` with the same arguments through mosquitto_sub and umqtt (TZ=UTC for both);
/// returns (mosquitto's stdout, stderr; umqtt's stdout, stderr).
fn both(broker: &Mosquitto, args: &[&str]) -> (Vec<u8>, String, Vec<u8>, String) {
    both_in(broker, "UTC", args)
}

/// [`both`] with `TZ=tz`.
fn both_in(broker: &Mosquitto, tz: &str, args: &[&str]) -> (Vec<u8>, String, Vec<u8>, String) {
    let full: Vec<String> = at(broker, args);
    let mosquitto = mosquitto_sub()
        .args(&full)
        .env("TZ", tz)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut umqtt_args = vec!["sub".to_owned()];
    umqtt_args.extend(full);
    let mut umqtt = command(&strs(&umqtt_args));
    let umqtt = umqtt.env("TZ", tz).stdin(Stdio::null()).output().unwrap();
    assert_eq!(
        mosquitto.status.code(),
        umqtt.status.code(),
        "{args:?}: exit status"
    );
    (
        mosquitto.stdout,
        String::from_utf8_lossy(&mosquitto.stderr).into_owned(),
        umqtt.stdout,
        String::from_utf8_lossy(&umqtt.stderr).into_owned(),
    )
}

/// Digits replaced by `0`: for output with times in it.
fn without_digits(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|b| if b.is_ascii_digit() { b'0' } else { *b })
        .collect()
}

/// Item 7, `-F`: every specifier, flag, width, precision and escape prints what mosquitto_sub
/// 2.0 prints, byte for byte (times: the same shape).
#[test]
fn format_matches_mosquitto_sub_byte_for_byte() {
    let broker = Mosquitto::start();
    // Retained, so that both subscribers get the same three messages, in the same order, with
    // the same packet ids (1, 2, 3: each is a fresh QoS 1 session).
    run_at(
        &broker,
        "pub",
        &["-t", "fmt/a", "-m", "hello \"w\"", "-r", "-q", "1"],
    )
    .assert_success();
    let binary = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(binary.path(), b"a\tb\x01\xff\x00z\n\\").unwrap();
    let binary_path = binary.path().to_str().unwrap();
    run_at(
        &broker,
        "pub",
        &["-t", "fmt/b", "-f", binary_path, "-r", "-q", "1"],
    )
    .assert_success();
    let json = r#" {"x": [1, 2.50, -0, 1e300, "\u00e9\n"], "e": {}, "n": null, "t": true} "#;
    run_at(
        &broker,
        "pub",
        &["-t", "fmt/c", "-m", json, "-r", "-q", "1"],
    )
    .assert_success();

    let exact = [
        "%t|%p|%q|%r|%l|%m",
        "%x %X|%10x|%3X|%-12x|%012x|",
        "%10t|%-10t|%.2t|%5.1t|%05l|%-5l|%5l|%05m|%-05t|",
        "%10p|%-10p|%.2p|%04p|",
        "%A|%5A|%C|%5C|%D|%E|%F|%P|%R|%S|%05S|%%",
        "\\n\\t\\e\\a\\0\\v\\r|\\\\",
        "plain text @@ 100%%",
    ];
    for format in exact {
        for extra in [&[][..], &["-N"]] {
            let mut args = vec!["-t", "fmt/#", "-q", "1", "-C", "3", "-F", format];
            args.extend_from_slice(extra);
            let (expected, _, actual, stderr) = both(&broker, &args);
            assert_eq!(
                String::from_utf8_lossy(&actual),
                String::from_utf8_lossy(&expected),
                "-F {format:?} {extra:?}"
            );
            assert_eq!(actual, expected, "-F {format:?} {extra:?}");
            assert_eq!(stderr, "", "-F {format:?}");
        }
    }
    let timed = [
        "%I|%U|%15I|%-30I|",
        "@Y-@m-@dT@H:@M:@S.@N @Z @z @a @A @b @B @j @p @s @e @D",
        "%j",
        "%J",
    ];
    for format in timed {
        for pretty in [false, true] {
            let mut args = vec!["-t", "fmt/#", "-q", "1", "-C", "3", "-F", format];
            if pretty {
                args.push("--pretty");
            }
            let (expected, expected_err, actual, stderr) = both(&broker, &args);
            assert!(!expected.is_empty());
            assert_eq!(
                String::from_utf8_lossy(&without_digits(&actual)),
                String::from_utf8_lossy(&without_digits(&expected)),
                "-F {format:?} pretty {pretty}"
            );
            // %J: the two payloads that are not JSON get mosquitto's error line.
            assert_eq!(stderr, expected_err, "-F {format:?}");
        }
    }
}

/// Item 7, `-F` local time: the zone comes from $TZ / the tz database, as the C library's.
#[test]
fn format_local_time_zone_matches_mosquitto_sub() {
    let broker = Mosquitto::start();
    run_at(&broker, "pub", &["-t", "tz", "-m", "x", "-r"]).assert_success();
    for tz in [
        "Asia/Kolkata",
        "America/New_York",
        ":Europe/Paris",
        "UTC",
        "",
    ] {
        let (expected, _, actual, _) =
            both_in(&broker, tz, &["-t", "tz", "-C", "1", "-F", "@Z @z|%I"]);
        let (expected, actual) = (
            String::from_utf8_lossy(&expected).into_owned(),
            String::from_utf8_lossy(&actual).into_owned(),
        );
        // The zone and offset, and the offset that closes %I.
        assert_eq!(
            actual.split('|').next(),
            expected.split('|').next(),
            "TZ={tz}"
        );
        assert_eq!(
            actual.trim_end().rsplit(['+', '-']).next(),
            expected.trim_end().rsplit(['+', '-']).next(),
            "TZ={tz}"
        );
        assert!(!actual.is_empty());
    }
}

/// Item 7, `-F` mistakes: mosquitto's messages and exit status 1.
#[test]
fn bad_formats_are_refused_like_mosquitto_sub() {
    for (format, message) in [
        ("%", "Incomplete format specifier."),
        ("%5", "Incomplete format specifier."),
        ("%Z", "Invalid format specifier 'Z'."),
        ("@", "Incomplete format specifier."),
        ("\\", "Incomplete escape specifier."),
        ("\\z", "Invalid escape specifier 'z'."),
    ] {
        let mosquitto = mosquitto_sub()
            .args(["-t", "t", "-F", format])
            .output()
            .unwrap();
        let expected = String::from_utf8_lossy(&mosquitto.stderr).into_owned();
        assert!(
            expected.starts_with(&format!("Error: {message}")),
            "{expected}"
        );
        let out = run(&["sub", "-t", "t", "-F", format]);
        let line = out.assert_one_line_error();
        assert_eq!(out.status.code(), mosquitto.status.code(), "{format}");
        assert!(line.contains(message), "{format}: {line}");
    }
}

/// Runs `sub args…` through mosquitto_sub or umqtt; returns (status, stdout).
fn sub_with(tool: &str, broker: &Mosquitto, args: &[&str]) -> (Option<i32>, String) {
    let full = at(broker, args);
    let output = if tool == "mosquitto" {
        mosquitto_sub()
            .args(&full)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    } else {
        let mut all = vec!["sub".to_owned()];
        all.extend(full);
        command(&strs(&all)).stdin(Stdio::null()).output().unwrap()
    };
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Item 7: -E sets up a persistent session and exits, -U removes a subscription from it; the
/// same steps give the same output and statuses with mosquitto_sub and umqtt.
#[test]
fn exit_after_subscribe_and_unsubscribe_like_mosquitto_sub() {
    let broker = Mosquitto::start();
    let mut results = Vec::new();
    for tool in ["mosquitto", "umqtt"] {
        let id = format!("{tool}-keeper");
        let topic = format!("{tool}/a");
        let other = format!("{tool}/b");
        let mut steps = Vec::new();
        steps.push(sub_with(
            tool,
            &broker,
            &["-c", "-i", &id, "-t", &topic, "-q", "1", "-E"],
        ));
        run_at(&broker, "pub", &["-t", &topic, "-q", "1", "-m", "one"]).assert_success();
        // The queued message arrives; then -U ends the subscription to `topic`.
        steps.push(sub_with(
            tool,
            &broker,
            &[
                "-c", "-i", &id, "-t", &other, "-U", &topic, "-q", "1", "-C", "1",
            ],
        ));
        run_at(&broker, "pub", &["-t", &topic, "-q", "1", "-m", "two"]).assert_success();
        steps.push(sub_with(
            tool,
            &broker,
            &["-c", "-i", &id, "-t", &other, "-q", "1", "-W", "1"],
        ));
        results.push(steps);
    }
    assert_eq!(
        results[1],
        [
            (Some(0), String::new()),
            (Some(0), "one\n".to_owned()),
            (Some(27), String::new())
        ]
    );
    assert_eq!(results[0][..2], results[1][..2], "mosquitto_sub vs umqtt");
    // After -U, "two" reaches neither. (mosquitto_sub -C 1 sometimes disconnects before its
    // PUBACK for "one" is out, and gets "one" again here; umqtt acknowledges first.)
    assert_eq!(results[0][2].0, Some(27));
    assert!(!results[0][2].1.contains("two"), "{:?}", results[0]);
}

/// Item 7: -T filters topics out, --retained-only prints only what the broker had retained,
/// --remove-retained clears what it prints.
#[test]
fn retained_only_filter_out_and_remove_retained() {
    let broker = Mosquitto::start();
    let retain = |topic: &str, message: &str| {
        run_at(&broker, "pub", &["-t", topic, "-m", message, "-r"]).assert_success();
    };
    retain("r/1", "a");
    retain("r/2", "b");
    retain("r/x/3", "c");
    for tool in ["mosquitto", "umqtt"] {
        let out = sub_with(
            tool,
            &broker,
            &["-t", "r/#", "-T", "r/x/#", "-v", "-W", "1"],
        );
        assert_eq!(out, (Some(27), "r/1 a\nr/2 b\n".to_owned()), "{tool}");
        let out = sub_with(
            tool,
            &broker,
            &["-t", "r/#", "--retained-only", "-v", "-W", "1"],
        );
        assert_eq!(
            out,
            (Some(27), "r/1 a\nr/2 b\nr/x/3 c\n".to_owned()),
            "{tool}"
        );
    }
    // --retained-only ends at the first live message (here: the clearing messages coming
    // back). mosquitto_sub 2.0.11 can hang in this case (it waits for the acknowledgement of
    // a publish it already had); umqtt ends with status 0.
    let out = run_at(
        &broker,
        "sub",
        &[
            "-t",
            "r/#",
            "-T",
            "r/x/#",
            "--retained-only",
            "--remove-retained",
            "-v",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout_text(), "r/1 a\nr/2 b\n");
    let out = run_at(&broker, "sub", &["-t", "r/#", "-v", "-W", "1"]);
    assert_eq!(out.status.code(), Some(27), "{out:?}");
    assert_eq!(
        out.stdout_text(),
        "r/x/3 c\n",
        "only the filtered-out one is left"
    );
}

/// Item 7: --unix reaches a broker on its Unix domain socket (as mosquitto's clients).
#[test]
fn unix_socket() {
    let directory = tempfile::tempdir().unwrap();
    let socket = directory.path().join("mq.sock");
    let socket = socket.to_str().unwrap().to_owned();
    let broker = Mosquitto::builder()
        .config_line(format!("listener 0 {socket}"))
        .start();
    let sub = spawn(&[
        "sub", "--unix", &socket, "-i", "unix-sub", "-t", "u", "-C", "2", "-v",
    ]);
    wait_subscribed(&broker, "unix-sub");
    run(&["pub", "--unix", &socket, "-t", "u", "-m", "from umqtt"]).assert_success();
    let status = mosquitto_pub()
        .args(["--unix", &socket, "-t", "u", "-m", "from mosquitto_pub"])
        .status()
        .unwrap();
    assert!(status.success());
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "u from umqtt\nu from mosquitto_pub\n");
    // A missing socket: one line, status 1.
    let missing = directory.path().join("none.sock");
    let out = run(&["pub", "--unix", missing.to_str().unwrap(), "-t", "u", "-n"]);
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1));
    assert!(line.contains("No such file or directory"), "{line}");
}

/// Item 7: the options files ~/.config/mosquitto_sub and mosquitto_pub ($XDG_CONFIG_HOME
/// first) are read as mosquitto reads them, and the command line overrides them.
#[test]
fn options_files_like_mosquitto() {
    let broker = Mosquitto::start();
    let config = tempfile::tempdir().unwrap();
    let port = broker.port().to_string();
    std::fs::write(
        config.path().join("mosquitto_pub"),
        format!("# umqtt test\n-h 127.0.0.1\n-p {port}\n-r\n"),
    )
    .unwrap();
    // A wrong port first: the command line's -p wins.
    std::fs::write(
        config.path().join("mosquitto_sub"),
        "-h 127.0.0.1\n-p 1\n-F %t=%p @@\n-W 5\n",
    )
    .unwrap();
    let out = command(&["pub", "-t", "cfg", "-m", "kept"])
        .env("XDG_CONFIG_HOME", config.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut outputs = Vec::new();
    for tool in ["mosquitto", "umqtt"] {
        let args = ["-p", port.as_str(), "-t", "cfg", "-C", "1"];
        let output = if tool == "mosquitto" {
            mosquitto_sub()
                .args(args)
                .env("XDG_CONFIG_HOME", config.path())
                .output()
                .unwrap()
        } else {
            let mut all = vec!["sub"];
            all.extend(args);
            command(&all)
                .env("XDG_CONFIG_HOME", config.path())
                .output()
                .unwrap()
        };
        outputs.push((output.status.code(), output.stdout));
    }
    // -r from the pub file: the message was retained; -F from the sub file.
    assert_eq!(outputs[1], (Some(0), b"cfg=kept @\n".to_vec()));
    assert_eq!(outputs[0], outputs[1], "mosquitto_sub vs umqtt");
    // A mistake in the file: the error says where the options came from.
    std::fs::write(config.path().join("mosquitto_sub"), "--bogus\n").unwrap();
    let out = command(&["sub", "-t", "t"])
        .env("XDG_CONFIG_HOME", config.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'--bogus'") && stderr.contains("options were read from"),
        "{stderr}"
    );
}

/// Item 7: -I, --repeat / --repeat-delay, --random-filter, -M, -x, and the flags umqtt cannot
/// honour, each with its reason.
#[test]
fn more_mosquitto_flags() {
    let broker = Mosquitto::start();
    // -I: prefix + process id.
    run_at(&broker, "pub", &["-I", "prefix-", "-t", "t", "-n"]).assert_success();
    assert!(
        broker.wait_for_log(" as prefix-", LOG_WAIT),
        "{}",
        broker.log_contents()
    );
    // --repeat 3 with a delay: three messages on one connection.
    let sub = subscriber(&broker, "repeat-sub", &["-t", "rep", "-C", "3"]);
    run_at(
        &broker,
        "pub",
        &[
            "-i",
            "repeater",
            "-t",
            "rep",
            "-m",
            "again",
            "--repeat",
            "3",
            "--repeat-delay",
            "0.1",
        ],
    )
    .assert_success();
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "again\nagain\nagain\n");
    assert_eq!(log_count(&broker, "as repeater ("), 1);
    // --random-filter: 0.1 to 100 percent, as mosquitto_sub (0 is refused). At 100 every
    // message is printed; mosquitto_sub 2.0.11 prints about a tenth of what it is asked to
    // (measured: 5 of 40 at 100), so only the refusal is compared.
    run_at(&broker, "pub", &["-t", "rf/1", "-m", "a", "-r"]).assert_success();
    run_at(&broker, "pub", &["-t", "rf/2", "-m", "b", "-r"]).assert_success();
    for tool in ["mosquitto", "umqtt"] {
        let out = sub_with(
            tool,
            &broker,
            &["-t", "rf/#", "-C", "2", "--random-filter", "0", "-W", "5"],
        );
        assert_eq!(out, (Some(1), String::new()), "{tool}");
    }
    let out = sub_with(
        "umqtt",
        &broker,
        &["-t", "rf/#", "-C", "2", "--random-filter", "100", "-W", "5"],
    );
    assert_eq!(out, (Some(0), "a\nb\n".to_owned()));
    // -M: a positive count; 0 is refused, as mosquitto does.
    run_at(&broker, "pub", &["-t", "t", "-n", "-q", "1", "-M", "1"]).assert_success();
    let out = run(&["pub", "-t", "t", "-n", "-M", "0"]);
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1));
    assert!(line.contains("greater than 0"), "{line}");
    // -x: an MQTT 5 property; with MQTT 3.1.1, said so and ignored.
    let out = run_at(&broker, "pub", &["-t", "t", "-n", "-x", "60"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.starts_with("Warning: -x ignored"), "{out:?}");
    // What umqtt cannot do says why, in one line, status 1.
    let cases: [(&[&str], &str); 5] = [
        (&["-A", "127.0.0.1"][..], "-A"),
        (&["--ciphers", "HIGH"], "rustls"),
        (
            &["--psk", "abcd", "--psk-identity", "me"],
            "pre-shared keys",
        ),
        (&["--tls-engine", "pkcs11"], "OpenSSL engines"),
        (&["-I", "p", "-i", "id"], "cannot be used with"),
    ];
    for (flags, reason) in cases {
        let mut args = vec!["pub", "-t", "t", "-n"];
        args.extend_from_slice(flags);
        let out = run_at(&broker, args[0], &args[1..]);
        let line = out.assert_one_line_error();
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        assert!(line.contains(reason), "{flags:?}: {line}");
    }
}

/// Item 7: --capath trusts the certificates in a directory (as OpenSSL's CApath).
#[test]
fn capath_trusts_a_directory_of_certificates() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let port = broker.tls_port().to_string();
    let directory = tempfile::tempdir().unwrap();
    std::fs::copy(certs.ca().cert_path(), directory.path().join("5ed36f99.0")).unwrap();
    std::fs::write(directory.path().join("README"), "not a certificate").unwrap();
    let capath = directory.path().to_str().unwrap();
    run(&[
        "pub",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--capath",
        capath,
        "-t",
        "t",
        "-n",
    ])
    .assert_success();
    // A directory with the wrong CA fails the handshake; an empty one says so.
    let wrong = tempfile::tempdir().unwrap();
    std::fs::copy(certs.other_ca().cert_path(), wrong.path().join("ca.pem")).unwrap();
    let out = run(&[
        "pub",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--capath",
        wrong.path().to_str().unwrap(),
        "-t",
        "t",
        "-n",
    ]);
    let line = out.assert_one_line_error();
    assert!(line.contains("certificate"), "{line}");
    let empty = tempfile::tempdir().unwrap();
    let out = run(&[
        "pub",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--capath",
        empty.path().to_str().unwrap(),
        "-t",
        "t",
        "-n",
    ]);
    let line = out.assert_one_line_error();
    assert!(line.contains("no PEM certificate"), "{line}");
}

/// Item 7: --proxy socks5h://… (as mosquitto's clients), plain and with TLS end to end, and
/// the same proxy works for mosquitto_pub.
#[test]
fn socks5_proxy_plain_and_tls() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let proxy_server = ProxyServer::start(ProxyProtocol::Socks5, Some(("me", "secret")));
    let proxy_port = proxy_server.port();
    let proxy = format!("socks5h://me:secret@127.0.0.1:{proxy_port}");
    let sub = subscriber(&broker, "proxy-sub", &["-t", "p", "-C", "3"]);
    let port = broker.port().to_string();
    run(&[
        "pub",
        "--proxy",
        &proxy,
        "-h",
        "localhost",
        "-p",
        &port,
        "-t",
        "p",
        "-m",
        "plain",
    ])
    .assert_success();
    let tls_port = broker.tls_port().to_string();
    let ca = certs.ca().cert_path().to_str().unwrap().to_owned();
    run(&[
        "pub",
        "--proxy",
        &proxy,
        "-h",
        "localhost",
        "-p",
        &tls_port,
        "--cafile",
        &ca,
        "-t",
        "p",
        "-m",
        "tls",
    ])
    .assert_success();
    let status = mosquitto_pub()
        .args([
            "--proxy",
            &proxy,
            "-h",
            "localhost",
            "-p",
            &port,
            "-t",
            "p",
            "-m",
            "mosquitto",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "plain\ntls\nmosquitto\n");
    // The proxy resolved the name (socks5h).
    let targets: Vec<String> = proxy_server
        .records()
        .into_iter()
        .map(|record| record.target)
        .collect();
    assert_eq!(
        targets,
        [
            format!("localhost:{port}"),
            format!("localhost:{tls_port}"),
            format!("localhost:{port}")
        ]
    );
    // Wrong password: one line, status 1.
    let wrong = format!("socks5h://me:wrong@127.0.0.1:{proxy_port}");
    let out = run(&[
        "pub",
        "--proxy",
        &wrong,
        "-h",
        "localhost",
        "-p",
        &port,
        "-t",
        "p",
        "-n",
    ]);
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1));
    assert!(line.contains("user name or password"), "{line}");
    let out = run(&["pub", "--proxy", "ftp://x", "-t", "p", "-n"]);
    let line = out.assert_one_line_error();
    assert!(line.contains("unsupported proxy URL"), "{line}");
}

/// Item 7: --tls-version and --tls-alpn.
#[test]
fn tls_version_and_alpn() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let port = broker.tls_port().to_string();
    let ca = certs.ca().cert_path().to_str().unwrap().to_owned();
    for flags in [
        &["--tls-version", "tlsv1.3"][..],
        &["--tls-version", "tlsv1.2"],
        &["--tls-alpn", "mqtt"],
    ] {
        let mut args = vec![
            "pub",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--cafile",
            &ca,
            "-t",
            "t",
            "-n",
        ];
        args.extend_from_slice(flags);
        run(&args).assert_success();
    }
    let out = run(&["pub", "-t", "t", "-n", "--tls-version", "tlsv1.0"]);
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1));
    assert!(line.contains("tlsv1.3, tlsv1.2 or tlsv1.1"), "{line}");
}

/// Default output (no -F), -v, -N, and an empty payload: the same bytes as mosquitto_sub, on
/// live messages received side by side.
#[test]
fn default_output_matches_mosquitto_sub() {
    let broker = Mosquitto::start();
    let variants: [&[&str]; 4] = [&[], &["-v"], &["-N"], &["-v", "-N"]];
    let mut running = Vec::new();
    for (index, flags) in variants.iter().enumerate() {
        for tool in ["mosquitto", "umqtt"] {
            let id = format!("{tool}-{index}");
            // -W: every child ends, even if a message went missing.
            let mut args = vec!["-i", id.as_str(), "-t", "live/#", "-C", "4", "-W", "10"];
            args.extend_from_slice(flags);
            let full = at(&broker, &args);
            let child = if tool == "mosquitto" {
                mosquitto_sub()
                    .args(&full)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            } else {
                let mut all = vec!["sub".to_owned()];
                all.extend(full);
                command(&strs(&all))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            };
            wait_subscribed(&broker, &id);
            running.push((tool, *flags, child));
        }
    }
    for (topic, message) in [
        ("live/a", "one"),
        ("live/b", ""),
        ("live/c", "two words"),
        ("live/a", "x"),
    ] {
        let mut args = vec!["-t", topic];
        if message.is_empty() {
            args.push("-n");
        } else {
            args.extend(["-m", message]);
        }
        run_at(&broker, "pub", &args).assert_success();
    }
    let mut outputs = Vec::new();
    for (tool, flags, child) in running {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{tool} {flags:?}: {output:?}");
        outputs.push((flags, output.stdout));
    }
    for pair in outputs.chunks(2) {
        assert_eq!(
            String::from_utf8_lossy(&pair[1].1),
            String::from_utf8_lossy(&pair[0].1),
            "{:?}: umqtt vs mosquitto_sub",
            pair[0].0
        );
    }
    assert_eq!(
        outputs[2].1,
        b"live/a one\nlive/b (null)\nlive/c two words\nlive/a x\n"
    );
}

/// Item 6: a broker that accepts the connection but never acknowledges a QoS 1 PUBLISH. On
/// SIGTERM, `pub` (single message and -l) ends at once and says DISCONNECT, so the broker
/// drops the will; it exits 1 because the message was not acknowledged.
#[test]
fn sigterm_while_waiting_for_puback_sends_disconnect() {
    use std::io::Read;
    for lines in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let broker = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut received = Vec::new();
            let mut buffer = [0u8; 1024];
            let mut acknowledged = false;
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => return received,
                    Ok(n) => received.extend_from_slice(&buffer[..n]),
                }
                if !acknowledged && received.first() == Some(&0x10) {
                    stream.write_all(&[0x20, 0x02, 0x00, 0x00]).unwrap(); // CONNACK
                    acknowledged = true;
                }
            }
        });
        let mut args = vec!["pub", "-h", "127.0.0.1", "-p", &port, "-t", "t", "-q", "1"];
        if lines {
            args.push("-l");
        } else {
            args.extend(["-m", "never acknowledged"]);
        }
        let mut running = spawn(&args);
        if lines {
            let stdin = running.stdin.as_mut().unwrap();
            stdin.write_all(b"never acknowledged\n").unwrap();
        }
        thread::sleep(Duration::from_millis(700));
        kill("-TERM", running.child.as_ref().unwrap().id());
        let status = exited_within(&mut running, Duration::from_secs(3));
        assert_eq!(status.code(), Some(1), "-l {lines}");
        let received = broker.join().unwrap();
        assert!(
            received.ends_with(&[0xE0, 0x00]),
            "-l {lines}: no DISCONNECT at the end of {received:02x?}"
        );
    }
}

/// Item 5: --tls-use-os-certs trusts the operating system's CA bundle ($SSL_CERT_FILE first,
/// as OpenSSL and so mosquitto_pub), not umqtt's built-in Mozilla roots.
#[test]
fn tls_use_os_certs_reads_the_os_bundle() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let port = broker.tls_port().to_string();
    let args = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "t",
        "-n",
        "--tls-use-os-certs",
    ];
    let mut umqtt_args = vec!["pub"];
    umqtt_args.extend(args);
    for (bundle, trusted) in [
        (certs.ca().cert_path(), true),
        (certs.other_ca().cert_path(), false),
    ] {
        let out = command(&umqtt_args)
            .env("SSL_CERT_FILE", bundle)
            .output()
            .unwrap();
        assert_eq!(out.status.success(), trusted, "umqtt {bundle:?}: {out:?}");
        let mosquitto = mosquitto_pub()
            .args(args)
            .env("SSL_CERT_FILE", bundle)
            .output()
            .unwrap();
        assert_eq!(
            mosquitto.status.success(),
            trusted,
            "mosquitto_pub {bundle:?}"
        );
    }
    // The system bundle (readable by rustls) does not hold the test CA.
    let out = command(&umqtt_args)
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
}

/// `pub -l -q 1` pipelines its lines (clean session, the default) and loses none when the
/// link is cut mid-stream: the same session goes on after reconnecting and publishes again
/// what the broker had not acknowledged. Counted (unique lines; at least once allows
/// duplicates) by a persistent QoS 1 subscriber.
#[test]
fn pub_lines_pipelined_lose_nothing_across_link_cuts() {
    use std::collections::BTreeSet;
    use umqtt::simple::{Client, ClientConfig};
    use umqtt_testkit::proxy::FaultProxy;
    const LINES: usize = 3000;
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let mut counter: Client = Client::with_config(ClientConfig {
        client_id: "cut-sub".into(),
        server: "127.0.0.1".into(),
        port: Some(broker.port()),
        max_queued_messages: 100_000,
        ..ClientConfig::default()
    });
    counter.connect(true).unwrap();
    counter.subscribe("cut", umqtt::QoS::AtLeastOnce).unwrap();
    let counted = thread::spawn(move || {
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < LINES && Instant::now() < deadline {
            if let Some(m) = counter
                .wait_msg_timeout(Duration::from_millis(200))
                .unwrap()
            {
                seen.insert(String::from_utf8(m.payload).unwrap());
            }
        }
        seen.len()
    });
    let port = proxy.port().to_string();
    let mut publisher = spawn(&[
        "pub",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-i",
        "cut-pub",
        "-t",
        "cut",
        "-q",
        "1",
        "-l",
    ]);
    let mut stdin = publisher.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        for n in 0..LINES {
            writeln!(stdin, "{n}").unwrap();
            if n % 500 == 499 {
                stdin.flush().unwrap();
                thread::sleep(Duration::from_millis(100));
            }
        }
    });
    // Cut the publisher's link a few times while lines flow.
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(150));
        proxy.cut();
    }
    writer.join().unwrap();
    let published = publisher.finish();
    assert!(published.status.success(), "{published:?}");
    let reconnects = published.stderr.matches("umqtt: reconnected").count();
    assert!(
        reconnects >= 1,
        "the cuts did not hit the link: {published:?}"
    );
    let unique = counted.join().unwrap();
    assert_eq!(unique, LINES, "lines lost: {unique} of {LINES} arrived");
}

/// Issue 16: every transport (ws://, wss:// with --tls-alpn, --proxy socks5h:// and http://,
/// --unix) carries a QoS 1 message to a subscriber and, after the link is cut, the
/// subscriber comes back through the same transport and gets the next one; with and without
/// --policy (the reconnecting client).
#[test]
fn every_transport_through_a_reconnect_with_and_without_policy() {
    let certs = TestCerts::generate();
    let directory = tempfile::tempdir().unwrap();
    let socket = directory.path().join("mq.sock");
    let socket = socket.to_str().unwrap().to_owned();
    let mut broker = Mosquitto::builder()
        .config_line(format!("listener 0 {socket}"))
        .start();
    let port = broker.port().to_string();
    let ca = certs.ca().cert_path().to_str().unwrap().to_owned();
    let bridge = WsBridge::start(broker.port());
    let tls = TlsTerminator::start(
        certs.server(),
        bridge.port(),
        TlsVersions::Both,
        &["x-amzn-mqtt-ca"],
    );
    let socks = ProxyServer::start(ProxyProtocol::Socks5, None);
    let http = ProxyServer::start(ProxyProtocol::HttpConnect, Some(("u", "p")));

    let ws_url = |topic: &str| format!("ws://127.0.0.1:{}/{topic}", bridge.port());
    let wss_url = |topic: &str| format!("wss://localhost:{}/{topic}", tls.port());
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "ws",
            vec![
                "-L".into(),
                ws_url("cli/ws"),
                "--ws-header".into(),
                "Authorization: Bearer cli".into(),
            ],
        ),
        (
            "wss",
            vec![
                "-L".into(),
                wss_url("cli/wss"),
                "--cafile".into(),
                ca.clone(),
                "--tls-alpn".into(),
                "x-amzn-mqtt-ca".into(),
            ],
        ),
        (
            "socks",
            vec![
                "--proxy".into(),
                socks.url(),
                "-h".into(),
                "localhost".into(),
                "-p".into(),
                port.clone(),
                "-t".into(),
                "cli/socks".into(),
            ],
        ),
        (
            "http",
            vec![
                "--proxy".into(),
                http.url(),
                "-h".into(),
                "localhost".into(),
                "-p".into(),
                port.clone(),
                "-t".into(),
                "cli/http".into(),
            ],
        ),
        (
            "unix",
            vec![
                "--unix".into(),
                socket.clone(),
                "-t".into(),
                "cli/unix".into(),
            ],
        ),
    ];
    for (policy, robust) in [(None, false), (Some("fixed:200ms"), true)] {
        for (name, transport) in &cases {
            let id = format!("sub-{name}-{robust}");
            let mut sub_args = vec!["sub", "-i", &id, "-q", "1", "-C", "2"];
            sub_args.extend(strs(transport));
            if let Some(policy) = policy {
                sub_args.extend(["--policy", policy]);
            }
            let sub = spawn(&sub_args);
            wait_log_count(&broker, &format!("Sending SUBACK to {id}"), 1);
            let publish = |payload: &str| {
                let mut args = vec!["pub", "-q", "1", "-m", payload];
                args.extend(strs(transport));
                if let Some(policy) = policy {
                    args.extend(["--policy", policy]);
                }
                run(&args).assert_success();
            };
            publish("one");
            // The subscriber has it (its PUBACK reached the broker) before the link is cut:
            // a clean session would lose a message still on its way.
            wait_log_count(&broker, &format!("Received PUBACK from {id}"), 1);
            match *name {
                "ws" => bridge.cut_all(),
                "wss" => tls.cut_all(),
                "socks" => socks.cut_all(),
                "http" => http.cut_all(),
                _ => broker.restart(),
            }
            wait_log_count(&broker, &format!("Sending SUBACK to {id}"), 2);
            publish("two");
            let out = sub.finish();
            // (stderr holds the "connection lost" / "reconnected" notices.)
            assert!(out.status.success(), "{name}, policy {policy:?}: {out:?}");
            assert_eq!(out.stdout_text(), "one\ntwo\n", "{name}, policy {policy:?}");
        }
    }
    // They really went through: 3 connections per case and round (sub twice, pub twice
    // through the WebSocket bridge...).
    assert_eq!(
        bridge.tunnels(),
        2 * 2 * 4,
        "ws and wss both cross the bridge"
    );
    assert_eq!(tls.tunnels(), 2 * 4);
    assert_eq!(socks.tunnels(), 2 * 4);
    assert_eq!(http.tunnels(), 2 * 4);
    assert!(tls
        .records()
        .iter()
        .all(|r| r.alpn_offered == [b"x-amzn-mqtt-ca".to_vec()]));
    assert!(bridge
        .records()
        .iter()
        .all(|r| r.subprotocols == ["mqtt"] && r.path == "/mqtt"));
    assert!(http
        .records()
        .iter()
        .all(|r| r.credentials == Some(("u".into(), "p".into()))));
}

/// Issue 16: the WebSocket flags need a ws:// URL; a header must be "Name: value"; a broker
/// that refuses the upgrade, or a proxy that refuses the tunnel, is one clear line.
#[test]
fn transport_flag_errors_are_one_line() {
    let out = run(&["pub", "--ws-path", "/x", "-t", "t", "-n"]);
    let line = out.assert_one_line_error();
    assert!(line.contains("need a ws:// or wss:// URL"), "{line}");
    let out = run(&[
        "pub",
        "-L",
        "ws://127.0.0.1/t",
        "--ws-header",
        "novalue",
        "-n",
    ]);
    let line = out.assert_one_line_error();
    assert!(line.contains("Name: value"), "{line}");

    let broker = Mosquitto::start();
    let bridge = WsBridge::start(broker.port());
    bridge.answer_with(umqtt_testkit::tunnel::WsAnswer::Status(401));
    let url = format!("ws://127.0.0.1:{}/t", bridge.port());
    let out = run(&["pub", "-L", &url, "-n"]);
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(line.contains("status 401"), "{line}");

    let http = ProxyServer::start(ProxyProtocol::HttpConnect, None);
    http.refuse_with(403);
    let port = broker.port().to_string();
    let out = run(&["pub", "--proxy", &http.url(), "-p", &port, "-t", "t", "-n"]);
    let line = out.assert_one_line_error();
    assert!(line.contains("status 403"), "{line}");
}
