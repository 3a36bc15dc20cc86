//! `--policy` and `--outbox`: the built `umqtt` binary with the robust client, talking to a
//! real mosquitto through the testkit's fault proxy (refused port, cut connections).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::proxy::{FaultProxy, Mode};

/// `-h 127.0.0.1 -p <proxy port>`, then `args`.
fn via(proxy: &FaultProxy, args: &[&str]) -> Vec<String> {
    let mut all = vec![
        "-h".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        proxy.port().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

/// `umqtt <subcommand> -h 127.0.0.1 -p <proxy port> args…`, started.
fn spawn_via(proxy: &FaultProxy, subcommand: &str, args: &[&str]) -> Running {
    let mut all = vec![subcommand.to_owned()];
    all.extend(via(proxy, args));
    spawn(&strs(&all))
}

/// A refusing proxy in front of a fresh broker.
fn broker_behind_refusing_proxy() -> (Mosquitto, FaultProxy) {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    proxy.set_mode(Mode::Refuse);
    (broker, proxy)
}

/// A child whose stdout is read line by line (for `--confirm`), killed when dropped.
struct LineChild {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
}

impl LineChild {
    fn start(args: &[String]) -> LineChild {
        let mut child = command(&strs(args))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start umqtt");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().map(collect);
        LineChild {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    #[track_caller]
    fn expect_line(&self, expected: &str) {
        match self.lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => assert_eq!(line, expected),
            Err(e) => panic!("no line {expected:?} from umqtt: {e}"),
        }
    }

    fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin and waits for the exit; returns the status and stderr.
    #[track_caller]
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "umqtt did not exit");
            thread::sleep(Duration::from_millis(10));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status, String::from_utf8_lossy(&stderr).into_owned())
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn guaranteed_publish_waits_until_the_broker_is_reachable() {
    let (broker, proxy) = broker_behind_refusing_proxy();
    let sub = subscriber(&broker, "g-sub", &["-t", "g", "-q", "1", "-C", "1", "-v"]);
    let started = Instant::now();
    let mut publisher = spawn_via(
        &proxy,
        "pub",
        &[
            "-i",
            "g-pub",
            "-t",
            "g",
            "-q",
            "1",
            "-m",
            "hello",
            "--policy",
            "guaranteed",
        ],
    );
    thread::sleep(Duration::from_millis(1500));
    let child = publisher.child.as_mut().unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "gave up while the port was closed"
    );
    proxy.set_mode(Mode::Forward);
    let out = publisher.finish();
    out.assert_success();
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "g hello\n");
}

#[test]
fn deadline_expires_and_says_so() {
    let (_broker, proxy) = broker_behind_refusing_proxy();
    let started = Instant::now();
    let out = spawn_via(
        &proxy,
        "pub",
        &[
            "-t",
            "d",
            "-q",
            "1",
            "-m",
            "late",
            "--policy",
            "deadline:1s",
        ],
    )
    .finish_within(Duration::from_secs(10));
    let elapsed = started.elapsed();
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        line.starts_with(
            "Error: 1 of 1 message not delivered: 1 expired (not delivered within 1s)"
        ),
        "{line}"
    );
    assert!(line.contains("Connection refused"), "{line}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[test]
fn no_retry_fails_at_once() {
    let (_broker, proxy) = broker_behind_refusing_proxy();
    let started = Instant::now();
    let out = spawn_via(&proxy, "pub", &["-t", "n", "-m", "x", "--policy", "none"])
        .finish_within(Duration::from_secs(10));
    let elapsed = started.elapsed();
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        line.starts_with("Error: 1 of 1 message not delivered: 1 dropped (not connected)"),
        "{line}"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");

    // `sub --policy none` ends at the first failure too.
    let out = spawn_via(&proxy, "sub", &["-t", "n", "--policy", "none"])
        .finish_within(Duration::from_secs(10));
    let line = out.assert_one_line_error();
    assert!(line.contains("Connection refused"), "{line}");
}

#[test]
fn lines_keep_being_read_while_reconnecting() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let sub = subscriber(&broker, "l-sub", &["-t", "l", "-q", "1", "-C", "3"]);
    let mut args = vec!["pub".to_owned()];
    args.extend(via(
        &proxy,
        &[
            "-i",
            "l-pub",
            "-t",
            "l",
            "-q",
            "1",
            "-l",
            "--policy",
            "fixed:200ms",
            "--confirm",
        ],
    ));
    let mut publisher = LineChild::start(&args);
    publisher.write("a\n");
    publisher.expect_line("queued a");
    // Acknowledged before the cut (else it is sent again: a duplicate, as QoS 1 allows).
    assert!(broker.wait_for_log("Sending PUBACK to l-pub", LOG_WAIT));
    thread::sleep(Duration::from_millis(200));
    proxy.set_mode(Mode::Refuse);
    proxy.reset();
    publisher.write("b\n");
    publisher.expect_line("queued b");
    thread::sleep(Duration::from_millis(500));
    proxy.set_mode(Mode::Forward);
    publisher.write("c\n");
    publisher.expect_line("queued c");
    let (status, stderr) = publisher.finish();
    assert!(status.success(), "{status:?} {stderr}");
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "a\nb\nc\n");
}

#[test]
fn outbox_round_trip_sends_what_a_killed_run_left_first() {
    let (broker, proxy) = broker_behind_refusing_proxy();
    let directory = tempfile::tempdir().unwrap();
    let outbox = directory.path().join("outbox.redb");
    let outbox = outbox.to_str().unwrap();
    let sub = subscriber(&broker, "o-sub", &["-t", "o", "-q", "1", "-C", "2"]);
    let publish = |message: &str| {
        let mut args = vec!["pub".to_owned()];
        args.extend(via(
            &proxy,
            &[
                "-i",
                "o-pub",
                "-t",
                "o",
                "-q",
                "1",
                "-m",
                message,
                "--policy",
                "guaranteed",
                "--outbox",
                outbox,
                "--confirm",
            ],
        ));
        LineChild::start(&args)
    };
    // The broker is unreachable: the message is on disk when confirmed; then the run dies.
    let first = publish("first");
    first.expect_line("stored first");
    drop(first); // SIGKILL
    proxy.set_mode(Mode::Forward);
    let second = publish("second");
    second.expect_line("stored second");
    let (status, stderr) = second.finish();
    assert!(status.success(), "{status:?} {stderr}");
    let out = sub.finish();
    out.assert_success();
    assert_eq!(out.stdout_text(), "first\nsecond\n");
}

#[test]
fn corrupt_outbox_is_one_line_not_a_panic() {
    let broker = Mosquitto::start();
    let directory = tempfile::tempdir().unwrap();
    let outbox = directory.path().join("garbage.redb");
    let garbage: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&outbox, garbage).unwrap();
    let out = run_at(
        &broker,
        "pub",
        &[
            "-t",
            "c",
            "-q",
            "1",
            "-m",
            "x",
            "--policy",
            "guaranteed",
            "--outbox",
            outbox.to_str().unwrap(),
        ],
    );
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(line.contains("outbox"), "{line}");
    assert!(!line.contains("internal error"), "{line}");
}

/// Exit 0, and on stderr only the two link notices: lost (with the policy's say), then back.
#[track_caller]
fn assert_link_notices(out: &Finished) {
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(
        lines[0].starts_with("umqtt: connection lost (")
            && lines[0].ends_with("); the policy decides when to reconnect"),
        "{out:?}"
    );
    assert_eq!(lines[1], "umqtt: reconnected", "{out:?}");
}

#[test]
fn subscription_survives_a_cut_with_a_clean_session() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let sub = spawn_via(
        &proxy,
        "sub",
        &[
            "-i",
            "k-sub",
            "-t",
            "k",
            "-q",
            "1",
            "-C",
            "2",
            "-v",
            "--policy",
            "fixed:200ms",
        ],
    );
    wait_subscribed(&broker, "k-sub");
    run_at(&broker, "pub", &["-t", "k", "-q", "1", "-m", "one"]).assert_success();
    proxy.reset();
    // Subscribed again on the new connection.
    let deadline = Instant::now() + LOG_WAIT;
    while broker
        .log_contents()
        .matches("Sending SUBACK to k-sub")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no second SUBACK: {}",
            broker.log_contents()
        );
        thread::sleep(Duration::from_millis(20));
    }
    run_at(&broker, "pub", &["-t", "k", "-q", "1", "-m", "two"]).assert_success();
    let out = sub.finish();
    assert_link_notices(&out);
    assert_eq!(out.stdout_text(), "k one\nk two\n");
}

#[test]
fn persistent_subscription_gets_what_was_published_while_away() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let sub = spawn_via(
        &proxy,
        "sub",
        &[
            "-c",
            "-i",
            "away-sub",
            "-t",
            "w",
            "-q",
            "1",
            "-C",
            "2",
            "--policy",
            "fixed:200ms",
        ],
    );
    wait_subscribed(&broker, "away-sub");
    run_at(&broker, "pub", &["-t", "w", "-q", "1", "-m", "before"]).assert_success();
    proxy.set_mode(Mode::Refuse);
    proxy.reset();
    run_at(&broker, "pub", &["-t", "w", "-q", "1", "-m", "while away"]).assert_success();
    thread::sleep(Duration::from_millis(500));
    proxy.set_mode(Mode::Forward);
    let out = sub.finish();
    assert_link_notices(&out);
    assert_eq!(out.stdout_text(), "before\nwhile away\n");
    // Resumed, not subscribed again.
    assert_eq!(
        broker
            .log_contents()
            .matches("Sending SUBACK to away-sub")
            .count(),
        1,
        "{}",
        broker.log_contents()
    );
}

#[test]
fn refusals_retrying_cannot_fix_end_the_command() {
    let broker = Mosquitto::builder().user("alice", "secret").start();
    for (subcommand, args) in [
        (
            "pub",
            &["-t", "r", "-q", "1", "-m", "x", "--policy", "guaranteed"][..],
        ),
        ("sub", &["-t", "r", "--policy", "fixed:100ms"][..]),
    ] {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-u", "alice", "-P", "wrong"]);
        let started = Instant::now();
        let out = run_at(&broker, subcommand, &all);
        let line = out.assert_one_line_error();
        assert!(line.contains("not authorised"), "{line}");
        // As without a policy: the CONNACK code is the exit status.
        assert_eq!(out.status.code(), Some(5), "{subcommand}: {out:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
