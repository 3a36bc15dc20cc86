//! `umqtt pub -l` side by side with `mosquitto_pub -l`: the same file of lines on stdin, the
//! same broker (a mosquitto this bench starts), the same counting subscriber; rounds
//! interleaved. Prints a Markdown table: delivered messages per second (until the subscriber
//! counted the last line), the publisher's CPU time per message (user + system, from
//! `wait4`), and both as ratios to mosquitto_pub in the same round.
//!
//! ```text
//! cargo bench -p umqtt-cli --bench cli -- [--lines N] [--rounds R] [--payload BYTES]
//! ```
//! Needs `mosquitto` and `mosquitto_pub` (Debian: mosquitto, mosquitto-clients).

use std::fs::File;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use umqtt::simple::{Client, ClientConfig};
use umqtt::QoS;
use umqtt_testkit::broker::Mosquitto;

struct Args {
    lines: usize,
    rounds: usize,
    payload: usize,
}

fn args() -> Args {
    let mut args = Args {
        lines: 20_000,
        rounds: 3,
        payload: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--lines" => args.lines = value(),
            "--rounds" => args.rounds = value(),
            "--payload" => args.payload = value(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// One publisher command: a name and its argument list (before the connection flags).
struct Tool {
    name: &'static str,
    program: String,
    args: Vec<String>,
}

fn tools(qos: u8) -> Vec<Tool> {
    let umqtt = env!("CARGO_BIN_EXE_umqtt").to_owned();
    let q = qos.to_string();
    let base = |program: &str, name: &'static str, extra: &[&str]| {
        let mut args: Vec<String> = Vec::new();
        if program != "mosquitto_pub" {
            args.push("pub".into());
        }
        args.extend(["-q".into(), q.clone(), "-l".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Tool {
            name,
            program: program.to_owned(),
            args,
        }
    };
    vec![
        base("mosquitto_pub", "mosquitto_pub -l", &[]),
        base(&umqtt, "umqtt pub -l", &[]),
        base(
            &umqtt,
            "umqtt pub -l --policy guaranteed",
            &["--policy", "guaranteed"],
        ),
        base(
            &umqtt,
            "umqtt pub -l --policy guaranteed -c",
            &["--policy", "guaranteed", "-c", "-i", "bench-persistent"],
        ),
    ]
}

/// Counts `expected` messages on `topic`; returns when the last arrived.
fn subscriber(port: u16, topic: &str, expected: usize) -> thread::JoinHandle<Instant> {
    let mut client: Client = Client::with_config(ClientConfig {
        client_id: format!("count-{topic}"),
        server: "127.0.0.1".into(),
        port: Some(port),
        max_queued_messages: 100_000,
        ..ClientConfig::default()
    });
    client.connect(true).expect("subscriber connect");
    client.subscribe(topic, QoS::AtMostOnce).expect("subscribe");
    thread::spawn(move || {
        let mut message = umqtt::Message::default();
        for n in 0..expected {
            match client.wait_msg_timeout_into(&mut message, Duration::from_secs(30)) {
                Ok(true) => {}
                other => panic!("subscriber: {other:?} after {n} of {expected}"),
            }
        }
        Instant::now()
    })
}

/// Runs `tool` with `file` on stdin; returns (seconds until the last message arrived, CPU
/// seconds of the publisher).
fn run(tool: &Tool, port: u16, topic: &str, file: &std::path::Path, lines: usize) -> (f64, f64) {
    let counted = subscriber(port, topic, lines);
    let started = Instant::now();
    let mut child = Command::new(&tool.program)
        .args(&tool.args)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .stdin(File::open(file).expect("lines file"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", tool.program));
    let last = counted.join().expect("subscriber");
    let (status, cpu) = wait_with_cpu(child.id());
    let _ = child.try_wait();
    assert!(status == 0, "{} exited with {status}", tool.name);
    (last.duration_since(started).as_secs_f64(), cpu)
}

/// `wait4` for `pid`: its exit status and user + system CPU seconds.
fn wait_with_cpu(pid: u32) -> (i32, f64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 only writes into it and `status`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet reaped; the pointers are valid for the call.
    let reaped = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid as i32, "wait4");
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args = args();
    let broker = Mosquitto::builder().max_queued_messages(1_000_000).start();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lines.txt");
    {
        let mut out = File::create(&file).expect("create lines");
        for n in 0..args.lines {
            let line = format!("{n:0width$}", width = args.payload);
            writeln!(out, "{line}").expect("write lines");
        }
    }
    println!(
        "{} lines of {} bytes on stdin, {} interleaved rounds, median; mosquitto {}",
        args.lines,
        args.payload,
        args.rounds,
        std::process::Command::new(umqtt_testkit::broker::find_mosquitto())
            .arg("-h")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_owned))
            .unwrap_or_default()
    );
    println!();
    println!(
        "| QoS | publisher | delivered msg/s | × mosquitto_pub | CPU µs/msg | × mosquitto_pub |"
    );
    println!("|--:|---|--:|--:|--:|--:|");
    for qos in [0u8, 1, 2] {
        let tools = tools(qos);
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
        let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
        for round in 0..args.rounds {
            for (i, tool) in tools.iter().enumerate() {
                let topic = format!("bench/cli/{qos}/{round}/{i}");
                let (seconds, cpu) = run(tool, broker.port(), &topic, &file, args.lines);
                rates[i].push(args.lines as f64 / seconds);
                cpus[i].push(cpu * 1e6 / args.lines as f64);
            }
        }
        let rate: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
        let cpu: Vec<f64> = cpus.iter_mut().map(|c| median(c)).collect();
        for (i, tool) in tools.iter().enumerate() {
            println!(
                "| {qos} | `{}` | {:.0} | {:.2}× | {:.1} | {:.2}× |",
                tool.name,
                rate[i],
                rate[i] / rate[0],
                cpu[i],
                cpu[i] / cpu[0]
            );
        }
    }
    println!();
    println!(
        "command: cargo bench -p umqtt-cli --bench cli -- --lines {} --rounds {} --payload {}",
        args.lines, args.rounds, args.payload
    );
}
