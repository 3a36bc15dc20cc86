//! End-to-end benchmark against a real mosquitto on loopback: the physical ceiling (a raw socket
//! writing pre-encoded packets), umqtt's simple client and rumqttc, side by side in one run.
//!
//! ```text
//! cargo bench -p umqtt --bench end_to_end -- [--messages N] [--wait-messages N] [--window W]
//!     [--batch B] [--chunk C] [--repeats R] [--only a,b,...] [--poll-idle]
//!     [--update-benchmarks-md]
//! ```
//!
//! Defaults: 200 000 messages (QoS 0 and pipelined), a tenth of that one at a time (QoS 1
//! wait-each), window 100, QoS 0 batches of 256, chunks of 1 000, 3 repeats. `--poll-idle`
//! holds `/dev/cpu_dma_latency` at 0 during the run so idle CPUs poll instead of halting: on a
//! VM, waking a halted vCPU costs tens of microseconds, which otherwise dominates every
//! one-message-at-a-time exchange.
//!
//! How one measurement works:
//! - the bench process starts mosquitto (umqtt-testkit, `max_inflight_messages` = the window,
//!   logging off) and, per run, a raw-socket subscriber at QoS 0 in a thread that counts
//!   exactly N PUBLISH packets on the run's own topic;
//! - it then runs the publishing client in a **child process** (this same binary with
//!   `--child`), so the client's CPU time (`getrusage(RUSAGE_SELF)`: every thread of the client,
//!   which matters for rumqttc's event-loop thread) and peak RSS (`VmHWM`) are the client's
//!   alone;
//! - delivered throughput is N / (time the subscriber read the N-th message − time the
//!   publisher started), both from `CLOCK_MONOTONIC`;
//! - the child's CPU window runs from its first publish until the subscriber has everything.
//!
//! Results go to stdout as markdown; `--update-benchmarks-md` also replaces the generated
//! section of `BENCHMARKS.md`. To profile a client, set `UMQTT_BENCH_CHILD_WRAPPER` (e.g.
//! `valgrind --tool=callgrind`): every child runs under it. `UMQTT_BENCH_NAGLE=1` turns
//! Nagle's algorithm back on for the umqtt simple client (the transport sets TCP_NODELAY).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use umqtt::simple::{Client, ClientConfig};
use umqtt::QoS;
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::raw;

const PAYLOAD_SIZE: usize = 64;
/// Bytes per write of the ceiling (pre-encoded packets back to back).
const CEILING_WRITE: usize = 64 * 1024;
/// How long the subscriber waits for the next byte before declaring the run failed.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ceiling,
    Umqtt,
    Robust,
    Rumqttc,
    /// umqtt-tokio's robust client.
    Async,
    /// rumqttc's `AsyncClient`.
    RumqttcAsync,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// QoS 0, as fast as the client goes.
    Qos0,
    /// QoS 1, publish then wait for its PUBACK, one at a time (latency measured).
    Qos1Wait,
    /// QoS 1 with up to `window` messages in flight.
    Qos1Pipelined,
}

/// A variant whose name ends in `-v5` runs the same client speaking MQTT 5.
struct Variant {
    name: &'static str,
    kind: Kind,
    mode: Mode,
    how: &'static str,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "ceiling-qos0",
        kind: Kind::Ceiling,
        mode: Mode::Qos0,
        how: "raw TcpStream, pre-encoded QoS 0 PUBLISH packets, 64 KiB writes",
    },
    Variant {
        name: "ceiling-qos1-wait",
        kind: Kind::Ceiling,
        mode: Mode::Qos1Wait,
        how: "raw TcpStream, one pre-encoded QoS 1 PUBLISH, read the 4-byte PUBACK, repeat",
    },
    Variant {
        name: "ceiling-qos1-pipelined",
        kind: Kind::Ceiling,
        mode: Mode::Qos1Pipelined,
        how: "raw TcpStream, pre-encoded QoS 1 PUBLISH packets: `--window` in one write, then per read of PUBACKs one write of as many new PUBLISHes",
    },
    Variant {
        name: "umqtt-qos0",
        kind: Kind::Umqtt,
        mode: Mode::Qos0,
        how: "simple `publish(.., QoS 0)`: one write per message",
    },
    Variant {
        name: "umqtt-qos0-batched",
        kind: Kind::Umqtt,
        mode: Mode::Qos0,
        how: "simple `publish_nowait(.., QoS 0)`, `flush()` every `--batch` messages",
    },
    Variant {
        name: "umqtt-qos1-wait",
        kind: Kind::Umqtt,
        mode: Mode::Qos1Wait,
        how: "simple `publish(.., QoS 1)`: returns at PUBACK",
    },
    Variant {
        name: "umqtt-qos1-pipelined",
        kind: Kind::Umqtt,
        mode: Mode::Qos1Pipelined,
        how: "simple `publish_nowait(.., QoS 1)` × `--chunk`, then `wait_all_published`",
    },
    Variant {
        name: "robust-qos0",
        kind: Kind::Robust,
        mode: Mode::Qos0,
        how: "robust `publish(.., QoS 0)` × `--chunk`, then `flush` (FixedDelay policy, clean session, in-memory queue)",
    },
    Variant {
        name: "robust-qos1-wait",
        kind: Kind::Robust,
        mode: Mode::Qos1Wait,
        how: "robust `publish(.., QoS 1)` then `flush` (returns when delivered)",
    },
    Variant {
        name: "robust-qos1-pipelined",
        kind: Kind::Robust,
        mode: Mode::Qos1Pipelined,
        how: "robust `publish(.., QoS 1)` × `--chunk`, then `flush`",
    },
    Variant {
        name: "rumqttc-qos0",
        kind: Kind::Rumqttc,
        mode: Mode::Qos0,
        how: "sync `Client::publish(.., AtMostOnce)`, `Connection::iter()` in a thread",
    },
    Variant {
        name: "rumqttc-qos1-wait",
        kind: Kind::Rumqttc,
        mode: Mode::Qos1Wait,
        how: "sync `Client::publish(.., AtLeastOnce)`, then wait for the PubAck event",
    },
    Variant {
        name: "rumqttc-qos1-pipelined",
        kind: Kind::Rumqttc,
        mode: Mode::Qos1Pipelined,
        how: "sync `Client::publish(.., AtLeastOnce)` × N (`set_inflight(window)`), wait for N PubAcks",
    },
    Variant {
        name: "async-qos0",
        kind: Kind::Async,
        mode: Mode::Qos0,
        how: "umqtt-tokio robust `Handle::publish(.., QoS 0).await` × `--chunk`, then the chunk's last `Receipt::outcome().await` (current-thread runtime, event stream dropped)",
    },
    Variant {
        name: "async-qos1-pipelined",
        kind: Kind::Async,
        mode: Mode::Qos1Pipelined,
        how: "umqtt-tokio robust `Handle::publish(.., QoS 1).await` × `--chunk`, then the chunk's last `Receipt::outcome().await`",
    },
    Variant {
        name: "rumqttc-async-qos0",
        kind: Kind::RumqttcAsync,
        mode: Mode::Qos0,
        how: "`AsyncClient::publish(.., AtMostOnce).await`, `EventLoop::poll` in a task (current-thread runtime)",
    },
    Variant {
        name: "rumqttc-async-qos1-pipelined",
        kind: Kind::RumqttcAsync,
        mode: Mode::Qos1Pipelined,
        how: "`AsyncClient::publish(.., AtLeastOnce).await` × N (`set_inflight(window)`), wait for N PubAcks",
    },
    Variant {
        name: "umqtt-qos0-v5",
        kind: Kind::Umqtt,
        mode: Mode::Qos0,
        how: "`umqtt-qos0` speaking MQTT 5",
    },
    Variant {
        name: "umqtt-qos1-pipelined-v5",
        kind: Kind::Umqtt,
        mode: Mode::Qos1Pipelined,
        how: "`umqtt-qos1-pipelined` speaking MQTT 5",
    },
    Variant {
        name: "robust-qos1-pipelined-v5",
        kind: Kind::Robust,
        mode: Mode::Qos1Pipelined,
        how: "`robust-qos1-pipelined` speaking MQTT 5",
    },
    Variant {
        name: "async-qos0-v5",
        kind: Kind::Async,
        mode: Mode::Qos0,
        how: "`async-qos0` speaking MQTT 5",
    },
    Variant {
        name: "async-qos1-pipelined-v5",
        kind: Kind::Async,
        mode: Mode::Qos1Pipelined,
        how: "`async-qos1-pipelined` speaking MQTT 5",
    },
];

#[derive(Clone, Debug)]
struct Args {
    messages: usize,
    wait_messages: usize,
    window: u16,
    batch: usize,
    chunk: usize,
    repeats: usize,
    only: Option<Vec<String>>,
    update_md: bool,
    poll_idle: bool,
    child: Option<String>,
    port: u16,
    topic: String,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            messages: 200_000,
            wait_messages: 0,
            window: 100,
            batch: 256,
            chunk: 1000,
            repeats: 3,
            only: None,
            update_md: false,
            poll_idle: false,
            child: None,
            port: 0,
            topic: String::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value =
                |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
            match arg.as_str() {
                "--messages" => args.messages = value(&arg).parse().expect("--messages N"),
                "--wait-messages" => {
                    args.wait_messages = value(&arg).parse().expect("--wait-messages N")
                }
                "--window" => args.window = value(&arg).parse().expect("--window W"),
                "--batch" => args.batch = value(&arg).parse().expect("--batch B"),
                "--chunk" => args.chunk = value(&arg).parse().expect("--chunk C"),
                "--repeats" => args.repeats = value(&arg).parse().expect("--repeats R"),
                "--only" => args.only = Some(value(&arg).split(',').map(str::to_owned).collect()),
                "--update-benchmarks-md" => args.update_md = true,
                "--poll-idle" => args.poll_idle = true,
                "--child" => args.child = Some(value(&arg)),
                "--port" => args.port = value(&arg).parse().expect("--port P"),
                "--topic" => args.topic = value(&arg),
                // `cargo bench` passes --bench to harness = false targets.
                "--bench" => {}
                other => panic!("unknown argument {other}; see the doc comment of end_to_end.rs"),
            }
        }
        if args.wait_messages == 0 {
            args.wait_messages = (args.messages / 10).max(1);
        }
        assert!(args.window > 0 && args.batch > 0 && args.chunk > 0 && args.repeats > 0);
        args
    }

    fn count_for(&self, mode: Mode) -> usize {
        match mode {
            Mode::Qos1Wait => self.wait_messages,
            Mode::Qos0 | Mode::Qos1Pipelined => self.messages,
        }
    }
}

fn main() {
    let args = Args::parse();
    match args.child.clone() {
        Some(variant) => child_main(&args, &variant),
        None => parent_main(&args),
    }
}

// ---------------------------------------------------------------------------------------------
// Clocks and resource usage

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between the bench process and its children.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// (user, system) CPU time in microseconds of the process or of the calling thread.
fn cpu_us(who: libc::c_int) -> (u64, u64) {
    // SAFETY: an all-zero rusage is a valid value; getrusage only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(who, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    (us(usage.ru_utime), us(usage.ru_stime))
}

/// Peak resident set size of this process in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) of another process in microseconds, from `/proc/<pid>/stat`
/// (clock-tick resolution).
fn process_cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime + stime) * 1_000_000 / ticks)
}

// ---------------------------------------------------------------------------------------------
// Child: one publishing client

/// What a child measured; printed as one `result` line.
#[derive(Debug, Default, Clone)]
struct ChildResult {
    start_ns: u64,
    published_ns: u64,
    process_cpu_us: u64,
    /// The system (kernel) part of `process_cpu_us`.
    process_sys_us: u64,
    thread_cpu_us: u64,
    peak_rss_kib: u64,
    latency_p50_ns: u64,
    latency_p99_ns: u64,
}

impl ChildResult {
    fn to_line(&self) -> String {
        format!(
            "result {} {} {} {} {} {} {} {}",
            self.start_ns,
            self.published_ns,
            self.process_cpu_us,
            self.process_sys_us,
            self.thread_cpu_us,
            self.peak_rss_kib,
            self.latency_p50_ns,
            self.latency_p99_ns
        )
    }

    fn from_line(line: &str) -> Option<ChildResult> {
        let mut it = line
            .strip_prefix("result ")?
            .split(' ')
            .map(str::parse::<u64>);
        let mut next = || it.next()?.ok();
        Some(ChildResult {
            start_ns: next()?,
            published_ns: next()?,
            process_cpu_us: next()?,
            process_sys_us: next()?,
            thread_cpu_us: next()?,
            peak_rss_kib: next()?,
            latency_p50_ns: next()?,
            latency_p99_ns: next()?,
        })
    }
}

/// Per-message latencies, preallocated so that recording does not allocate.
struct Latencies(Vec<u64>);

impl Latencies {
    fn new(capacity: usize) -> Self {
        Latencies(Vec::with_capacity(capacity))
    }

    fn percentiles(mut self) -> (u64, u64) {
        if self.0.is_empty() {
            return (0, 0);
        }
        self.0.sort_unstable();
        let at = |q: f64| self.0[((self.0.len() - 1) as f64 * q).round() as usize];
        (at(0.50), at(0.99))
    }
}

/// The protocol a variant speaks: MQTT 5 when its name ends in `-v5`.
fn protocol_of(name: &str) -> umqtt::ProtocolVersion {
    if name.ends_with("-v5") {
        umqtt::ProtocolVersion::V5
    } else {
        umqtt::ProtocolVersion::V311
    }
}

fn child_main(args: &Args, name: &str) {
    let variant = VARIANTS
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("unknown variant {name}"));
    let n = args.count_for(variant.mode);
    let payload = [0x5Au8; PAYLOAD_SIZE];
    let mut latencies = Latencies::new(if variant.mode == Mode::Qos1Wait { n } else { 0 });
    // Each runner connects, then calls `start` right before its first publish.
    let mut started: Option<(u64, (u64, u64), u64)> = None;
    let mut start = || {
        let process = cpu_us(libc::RUSAGE_SELF);
        let (thread_user, thread_sys) = cpu_us(libc::RUSAGE_THREAD);
        started = Some((monotonic_ns(), process, thread_user + thread_sys));
    };
    match (variant.kind, variant.mode) {
        (Kind::Ceiling, Mode::Qos0) => ceiling_qos0(args, n, &payload, &mut start),
        (Kind::Ceiling, Mode::Qos1Wait) => {
            ceiling_qos1_wait(args, n, &payload, &mut start, &mut latencies)
        }
        (Kind::Ceiling, Mode::Qos1Pipelined) => {
            ceiling_qos1_pipelined(args, n, &payload, &mut start)
        }
        (Kind::Umqtt, mode) => {
            umqtt_publisher(args, name, mode, n, &payload, &mut start, &mut latencies)
        }
        (Kind::Rumqttc, mode) => {
            rumqttc_publisher(args, mode, n, &payload, &mut start, &mut latencies)
        }
        (Kind::Robust, mode) => {
            robust_publisher(args, name, mode, n, &payload, &mut start, &mut latencies)
        }
        (Kind::Async, mode) => async_publisher(args, name, mode, n, &payload, &mut start),
        (Kind::RumqttcAsync, mode) => rumqttc_async_publisher(args, mode, n, &payload, &mut start),
    }
    let published_ns = monotonic_ns();
    // The CPU window ends when the parent's subscriber has every message.
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
    let (user, sys) = cpu_us(libc::RUSAGE_SELF);
    let (thread_user, thread_sys) = cpu_us(libc::RUSAGE_THREAD);
    let (start_ns, process_start, thread_start) = started.expect("the runner called start");
    let (p50, p99) = latencies.percentiles();
    let result = ChildResult {
        start_ns,
        published_ns,
        process_cpu_us: user + sys - process_start.0 - process_start.1,
        process_sys_us: sys - process_start.1,
        thread_cpu_us: thread_user + thread_sys - thread_start,
        peak_rss_kib: peak_rss_kib(),
        latency_p50_ns: p50,
        latency_p99_ns: p99,
    };
    println!("{}", result.to_line());
    std::io::stdout().flush().expect("stdout");
    // rumqttc's event loop thread would keep the process alive.
    std::process::exit(0);
}

fn raw_connect(args: &Args, client_id: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", args.port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .write_all(&raw::connect(client_id, 60, true))
        .expect("CONNECT");
    let (first, body) = raw::read_packet(&mut stream).expect("CONNACK");
    assert_eq!((first, body.as_slice()), (0x20, &[0u8, 0][..]), "CONNACK");
    stream
}

fn ceiling_qos0(args: &Args, n: usize, payload: &[u8], start: &mut dyn FnMut()) {
    let mut stream = raw_connect(args, "ceiling-qos0");
    let packet = raw::publish(&args.topic, payload, false);
    let per_write = (CEILING_WRITE / packet.len()).max(1);
    let block = packet.repeat(per_write);
    start();
    let mut remaining = n;
    while remaining > 0 {
        let count = remaining.min(per_write);
        stream
            .write_all(&block[..count * packet.len()])
            .expect("write");
        remaining -= count;
    }
}

fn ceiling_qos1_wait(
    args: &Args,
    n: usize,
    payload: &[u8],
    start: &mut dyn FnMut(),
    latencies: &mut Latencies,
) {
    let mut stream = raw_connect(args, "ceiling-qos1");
    let mut packet = raw::publish_qos(&args.topic, payload, 1, 1, false);
    let id_at = packet.len() - payload.len() - 2;
    let mut ack = [0u8; 4];
    start();
    for i in 0..n {
        let id = (i % usize::from(u16::MAX)) as u16 + 1;
        packet[id_at..id_at + 2].copy_from_slice(&id.to_be_bytes());
        let sent = monotonic_ns();
        stream.write_all(&packet).expect("write");
        stream.read_exact(&mut ack).expect("PUBACK");
        latencies.0.push(monotonic_ns() - sent);
        debug_assert_eq!(ack, [0x40, 2, (id >> 8) as u8, id as u8]);
    }
}

fn ceiling_qos1_pipelined(args: &Args, n: usize, payload: &[u8], start: &mut dyn FnMut()) {
    let mut stream = raw_connect(args, "ceiling-qos1-pipelined");
    let template = raw::publish_qos(&args.topic, payload, 1, 1, false);
    let id_at = template.len() - payload.len() - 2;
    let window = usize::from(args.window);
    let mut out = Vec::with_capacity(window * template.len());
    let mut acks = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    let mut acked = 0usize;
    let mut partial = 0usize;
    let push = |out: &mut Vec<u8>, sent: &mut usize| {
        let id = (*sent % usize::from(u16::MAX)) as u16 + 1;
        let at = out.len();
        out.extend_from_slice(&template);
        out[at + id_at..at + id_at + 2].copy_from_slice(&id.to_be_bytes());
        *sent += 1;
    };
    start();
    while sent < n.min(window) {
        push(&mut out, &mut sent);
    }
    stream.write_all(&out).expect("write");
    while acked < n {
        let read = stream.read(&mut acks).expect("read PUBACKs");
        assert!(read > 0, "broker closed");
        // PUBACKs are 4 bytes; a read may end inside one.
        let complete = (partial + read) / 4;
        partial = (partial + read) % 4;
        acked += complete;
        out.clear();
        for _ in 0..complete {
            if sent < n {
                push(&mut out, &mut sent);
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).expect("write");
        }
    }
}

fn umqtt_publisher(
    args: &Args,
    name: &str,
    mode: Mode,
    n: usize,
    payload: &[u8],
    start: &mut dyn FnMut(),
    latencies: &mut Latencies,
) {
    let mut client: Client = Client::with_config(ClientConfig {
        client_id: name.to_owned(),
        protocol: protocol_of(name),
        server: "127.0.0.1".to_owned(),
        port: Some(args.port),
        max_in_flight: args.window,
        response_timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    });
    client.connect(true).expect("umqtt connect");
    if std::env::var_os("UMQTT_BENCH_NAGLE").is_some() {
        // Experiment: Nagle's algorithm on instead of the transport's TCP_NODELAY.
        let stream = client
            .get_ref()
            .expect("connected")
            .tcp_stream()
            .expect("tcp");
        stream.set_nodelay(false).expect("nodelay");
    }
    let topic = args.topic.as_str();
    start();
    match mode {
        Mode::Qos0 if name.ends_with("batched") => {
            for i in 0..n {
                client
                    .publish_nowait(topic, payload, QoS::AtMostOnce, false)
                    .expect("publish_nowait");
                if (i + 1) % args.batch == 0 {
                    client.flush().expect("flush");
                }
            }
            client.flush().expect("flush");
        }
        Mode::Qos0 => {
            for _ in 0..n {
                client
                    .publish(topic, payload, QoS::AtMostOnce, false)
                    .expect("publish");
            }
        }
        Mode::Qos1Wait => {
            for _ in 0..n {
                let sent = monotonic_ns();
                client
                    .publish(topic, payload, QoS::AtLeastOnce, false)
                    .expect("publish");
                latencies.0.push(monotonic_ns() - sent);
            }
        }
        Mode::Qos1Pipelined => {
            for i in 0..n {
                client
                    .publish_nowait(topic, payload, QoS::AtLeastOnce, false)
                    .expect("publish_nowait");
                if (i + 1) % args.chunk == 0 {
                    client
                        .wait_all_published(Duration::from_secs(30))
                        .expect("wait_all_published");
                }
            }
            client
                .wait_all_published(Duration::from_secs(30))
                .expect("wait_all_published");
        }
    }
}

fn robust_publisher(
    args: &Args,
    name: &str,
    mode: Mode,
    n: usize,
    payload: &[u8],
    start: &mut dyn FnMut(),
    latencies: &mut Latencies,
) {
    use umqtt::robust::{Client, FixedDelay, RobustConfig};

    let config = ClientConfig {
        client_id: "umqtt-robust-bench".to_owned(),
        protocol: protocol_of(name),
        server: "127.0.0.1".to_owned(),
        port: Some(args.port),
        max_in_flight: args.window,
        response_timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    };
    let robust = RobustConfig {
        clean_session: true,
        ..RobustConfig::default()
    };
    let mut client = Client::with_robust_config(config, FixedDelay::default(), robust);
    // Events (Delivered per message) are consumed as they come, not queued.
    client.set_event_handler(|_| {});
    client.connect().expect("robust connect");
    let topic = args.topic.as_str();
    let flush = |client: &mut Client| {
        assert!(
            client.flush(Duration::from_secs(30)).expect("flush"),
            "robust: messages still pending"
        );
    };
    let qos = match mode {
        Mode::Qos0 => QoS::AtMostOnce,
        Mode::Qos1Wait | Mode::Qos1Pipelined => QoS::AtLeastOnce,
    };
    start();
    match mode {
        Mode::Qos1Wait => {
            for _ in 0..n {
                let sent = monotonic_ns();
                client.publish(topic, payload, qos, false).expect("publish");
                flush(&mut client);
                latencies.0.push(monotonic_ns() - sent);
            }
        }
        Mode::Qos0 | Mode::Qos1Pipelined => {
            for i in 0..n {
                client.publish(topic, payload, qos, false).expect("publish");
                if (i + 1) % args.chunk == 0 {
                    flush(&mut client);
                }
            }
            flush(&mut client);
        }
    }
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn async_publisher(
    args: &Args,
    name: &str,
    mode: Mode,
    n: usize,
    payload: &[u8],
    start: &mut dyn FnMut(),
) {
    use umqtt_tokio::robust::{Client, FixedDelay, RobustConfig};

    let config = ClientConfig {
        client_id: "umqtt-async-bench".to_owned(),
        protocol: protocol_of(name),
        server: "127.0.0.1".to_owned(),
        port: Some(args.port),
        max_in_flight: args.window,
        response_timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    };
    let robust = RobustConfig {
        clean_session: true,
        ..RobustConfig::default()
    };
    let qos = match mode {
        Mode::Qos0 => QoS::AtMostOnce,
        Mode::Qos1Wait | Mode::Qos1Pipelined => QoS::AtLeastOnce,
    };
    let topic = args.topic.as_str();
    current_thread_runtime().block_on(async {
        let (handle, events) = Client::new(config, FixedDelay::default())
            .robust_config(robust)
            .spawn()
            .expect("runtime");
        // Outcomes go to the receipts; nothing else is wanted.
        drop(events);
        while !handle.is_connected() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        start();
        for i in 0..n {
            let receipt = handle
                .publish(topic, payload, qos, false)
                .await
                .expect("publish");
            // Outcomes come in publish order: the chunk's last settles the chunk.
            if (i + 1) % args.chunk == 0 || i + 1 == n {
                let outcome = receipt.outcome().await.expect("outcome");
                assert_eq!(outcome, umqtt_tokio::robust::Outcome::Delivered);
            }
        }
    });
}

fn rumqttc_async_publisher(
    args: &Args,
    mode: Mode,
    n: usize,
    payload: &[u8],
    start: &mut dyn FnMut(),
) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet};

    let mut options = MqttOptions::new("rumqttc-async-bench", "127.0.0.1", args.port);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_inflight(args.window);
    let qos = match mode {
        Mode::Qos0 => rumqttc::QoS::AtMostOnce,
        Mode::Qos1Wait | Mode::Qos1Pipelined => rumqttc::QoS::AtLeastOnce,
    };
    let topic = args.topic.clone();
    current_thread_runtime().block_on(async {
        let (client, mut eventloop) = AsyncClient::new(options, args.chunk);
        let acked = Arc::new(AtomicUsize::new(0));
        let connected = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(tokio::sync::Notify::new());
        {
            let (acked, connected, wake) = (acked.clone(), connected.clone(), wake.clone());
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            connected.store(1, Ordering::Release);
                            wake.notify_one();
                        }
                        Ok(Event::Incoming(Packet::PubAck(_)))
                        | Ok(Event::Outgoing(Outgoing::Publish(0))) => {
                            acked.fetch_add(1, Ordering::Release);
                            wake.notify_one();
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("rumqttc connection error: {e}");
                            std::process::exit(2);
                        }
                    }
                }
            });
        }
        while connected.load(Ordering::Acquire) == 0 {
            wake.notified().await;
        }
        start();
        for _ in 0..n {
            client
                .publish(topic.as_str(), qos, false, payload.to_vec())
                .await
                .expect("publish");
        }
        while acked.load(Ordering::Acquire) < n {
            wake.notified().await;
        }
    });
}

fn rumqttc_publisher(
    args: &Args,
    mode: Mode,
    n: usize,
    payload: &[u8],
    start: &mut dyn FnMut(),
    latencies: &mut Latencies,
) {
    use rumqttc::{Event, MqttOptions, Outgoing, Packet};

    let mut options = MqttOptions::new("rumqttc-bench", "127.0.0.1", args.port);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_inflight(args.window);
    let (client, mut connection) = rumqttc::Client::new(options, args.chunk);
    // The event loop runs in its own thread, as rumqttc's sync API requires. It counts PubAcks
    // (and, at QoS 0, publishes handed to the socket) and wakes the publishing thread.
    let acked = Arc::new(AtomicUsize::new(0));
    let connected = Arc::new(AtomicUsize::new(0));
    let publisher = thread::current();
    {
        let acked = Arc::clone(&acked);
        let connected = Arc::clone(&connected);
        thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected.store(1, Ordering::Release);
                        publisher.unpark();
                    }
                    Ok(Event::Incoming(Packet::PubAck(_)))
                    | Ok(Event::Outgoing(Outgoing::Publish(0))) => {
                        acked.fetch_add(1, Ordering::Release);
                        publisher.unpark();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("rumqttc connection error: {e}");
                        std::process::exit(2);
                    }
                }
            }
        });
    }
    while connected.load(Ordering::Acquire) == 0 {
        thread::park();
    }
    let topic = args.topic.as_str();
    let wait_for = |count: usize| {
        while acked.load(Ordering::Acquire) < count {
            thread::park();
        }
    };
    start();
    match mode {
        Mode::Qos0 => {
            for _ in 0..n {
                client
                    .publish(topic, rumqttc::QoS::AtMostOnce, false, payload)
                    .expect("publish");
            }
            wait_for(n);
        }
        Mode::Qos1Wait => {
            for i in 0..n {
                let sent = monotonic_ns();
                client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                    .expect("publish");
                wait_for(i + 1);
                latencies.0.push(monotonic_ns() - sent);
            }
        }
        Mode::Qos1Pipelined => {
            for _ in 0..n {
                client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                    .expect("publish");
            }
            wait_for(n);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: broker, subscriber, children, report

/// A raw QoS 0 subscriber that counts PUBLISH packets on its topic and notes when the N-th one
/// was complete.
fn start_subscriber(
    port: u16,
    topic: &str,
    expected: usize,
) -> thread::JoinHandle<Result<u64, String>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("subscriber connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .write_all(&raw::connect(&format!("sub-{topic}"), 0, true))
        .expect("CONNECT");
    let (first, _) = raw::read_packet(&mut stream).expect("CONNACK");
    assert_eq!(first, 0x20);
    stream
        .write_all(&raw::subscribe(1, topic, 0))
        .expect("SUBSCRIBE");
    let (first, body) = raw::read_packet(&mut stream).expect("SUBACK");
    assert_eq!((first, body.as_slice()), (0x90, &[0u8, 1, 0][..]), "SUBACK");
    stream
        .set_read_timeout(Some(STALL_TIMEOUT))
        .expect("timeout");
    thread::spawn(move || {
        let mut buffer = vec![0u8; 256 * 1024];
        let mut count = 0usize;
        // Streaming parse of fixed headers; bodies are skipped.
        let mut header: Option<u8> = None;
        let mut length = 0usize;
        let mut shift = 0u32;
        let mut skip = 0usize;
        loop {
            let read = match stream.read(&mut buffer) {
                Ok(0) => return Err(format!("broker closed after {count} messages")),
                Ok(read) => read,
                Err(e) => return Err(format!("{e} after {count} of {expected} messages")),
            };
            let mut bytes = &buffer[..read];
            while !bytes.is_empty() {
                if skip > 0 {
                    let take = skip.min(bytes.len());
                    skip -= take;
                    bytes = &bytes[take..];
                    if skip == 0 && count == expected {
                        return Ok(monotonic_ns());
                    }
                    continue;
                }
                let byte = bytes[0];
                bytes = &bytes[1..];
                match header {
                    None => {
                        header = Some(byte);
                        length = 0;
                        shift = 0;
                    }
                    Some(first) => {
                        length |= usize::from(byte & 0x7F) << shift;
                        shift += 7;
                        if byte & 0x80 == 0 {
                            header = None;
                            if first >> 4 == 3 {
                                count += 1;
                            }
                            skip = length;
                            if skip == 0 && count == expected {
                                return Ok(monotonic_ns());
                            }
                        }
                    }
                }
            }
        }
    })
}

/// One measured run of one variant.
#[derive(Debug, Clone)]
struct Run {
    messages: usize,
    delivered_per_s: f64,
    cpu_ns_per_msg: f64,
    /// Share of the client's CPU time spent in the kernel.
    sys_share: f64,
    thread_cpu_ns_per_msg: f64,
    peak_rss_kib: u64,
    latency_p50_ns: u64,
    latency_p99_ns: u64,
    broker_cpu_ns_per_msg: f64,
}

fn run_variant(args: &Args, broker: &Mosquitto, variant: &Variant, repeat: usize) -> Run {
    let n = args.count_for(variant.mode);
    let topic = format!("bench/{}/{repeat}", variant.name);
    let subscriber = start_subscriber(broker.port(), &topic, n);
    let broker_cpu_before = broker.pid().and_then(process_cpu_us);
    let exe = std::env::current_exe().expect("current_exe");
    // Profiling: UMQTT_BENCH_CHILD_WRAPPER="valgrind --tool=callgrind" runs each child under it.
    let wrapper = std::env::var("UMQTT_BENCH_CHILD_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(&exe);
            command
        }
        None => Command::new(&exe),
    };
    let mut child = command
        .args(["--child", variant.name])
        .args(["--port", &broker.port().to_string()])
        .args(["--topic", &topic])
        .args(["--messages", &args.messages.to_string()])
        .args(["--wait-messages", &args.wait_messages.to_string()])
        .args(["--window", &args.window.to_string()])
        .args(["--batch", &args.batch.to_string()])
        .args(["--chunk", &args.chunk.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let delivered_ns = match subscriber.join().expect("subscriber thread") {
        Ok(t) => t,
        Err(e) => {
            let _ = child.kill();
            panic!("{}: subscriber failed: {e}", variant.name);
        }
    };
    let broker_cpu_after = broker.pid().and_then(process_cpu_us);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"done\n").expect("signal child");
    drop(stdin);
    let mut result = None;
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line.expect("child stdout");
        if let Some(r) = ChildResult::from_line(&line) {
            result = Some(r);
        }
    }
    let status = child.wait().expect("child");
    assert!(status.success(), "{}: child failed: {status}", variant.name);
    let r = result.unwrap_or_else(|| panic!("{}: no result from child", variant.name));
    let elapsed_ns = delivered_ns.saturating_sub(r.start_ns).max(1);
    let per_msg = |us: u64| us as f64 * 1000.0 / n as f64;
    Run {
        messages: n,
        delivered_per_s: n as f64 * 1e9 / elapsed_ns as f64,
        cpu_ns_per_msg: per_msg(r.process_cpu_us),
        sys_share: r.process_sys_us as f64 / r.process_cpu_us.max(1) as f64,
        thread_cpu_ns_per_msg: per_msg(r.thread_cpu_us),
        peak_rss_kib: r.peak_rss_kib,
        latency_p50_ns: r.latency_p50_ns,
        latency_p99_ns: r.latency_p99_ns,
        broker_cpu_ns_per_msg: match (broker_cpu_before, broker_cpu_after) {
            (Some(a), Some(b)) => per_msg(b.saturating_sub(a)),
            _ => f64::NAN,
        },
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// The medians of each figure over the repeats, plus the spread of the throughput.
#[derive(Debug, Clone)]
struct Summary {
    runs: Vec<Run>,
}

impl Summary {
    fn get(&self, f: impl Fn(&Run) -> f64) -> f64 {
        median(self.runs.iter().map(f).collect())
    }
    fn rate(&self) -> f64 {
        self.get(|r| r.delivered_per_s)
    }
    fn spread(&self) -> f64 {
        let rates: Vec<f64> = self.runs.iter().map(|r| r.delivered_per_s).collect();
        let max = rates.iter().cloned().fold(f64::MIN, f64::max);
        let min = rates.iter().cloned().fold(f64::MAX, f64::min);
        (max - min) / self.rate()
    }
    fn cpu(&self) -> f64 {
        self.get(|r| r.cpu_ns_per_msg)
    }
    fn sys_share(&self) -> f64 {
        self.get(|r| r.sys_share)
    }
    fn thread_cpu(&self) -> f64 {
        self.get(|r| r.thread_cpu_ns_per_msg)
    }
    fn rss_mib(&self) -> f64 {
        self.get(|r| r.peak_rss_kib as f64 / 1024.0)
    }
    fn p50(&self) -> f64 {
        self.get(|r| r.latency_p50_ns as f64)
    }
    fn p99(&self) -> f64 {
        self.get(|r| r.latency_p99_ns as f64)
    }
    fn broker_cpu(&self) -> f64 {
        self.get(|r| r.broker_cpu_ns_per_msg)
    }
}

/// Asks the kernel to keep idle CPUs polling instead of halting, for as long as the returned
/// file is open (PM QoS `cpu_dma_latency` = 0 µs; needs root).
fn hold_poll_idle() -> std::fs::File {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/cpu_dma_latency")
        .expect("--poll-idle needs write access to /dev/cpu_dma_latency (root)");
    file.write_all(&0i32.to_ne_bytes())
        .expect("write /dev/cpu_dma_latency");
    file
}

fn parent_main(args: &Args) {
    let _poll_idle = args.poll_idle.then(hold_poll_idle);
    let machine = machine_description();
    eprintln!("{machine}");
    let broker = Mosquitto::builder()
        .max_inflight_messages(u32::from(args.window))
        // The testkit logs everything (`log_type all`): one log line per PUBLISH would make the
        // broker's file writes the bottleneck. `none` resets the set of log types.
        .config_line("log_type none")
        .start();
    let selected: Vec<&Variant> = VARIANTS
        .iter()
        .filter(|v| {
            args.only
                .as_ref()
                .is_none_or(|only| only.iter().any(|o| o == v.name))
        })
        .collect();
    let mut results: Vec<(&Variant, Summary)> = selected
        .iter()
        .map(|v| (*v, Summary { runs: Vec::new() }))
        .collect();
    // Interleave the repeats so that slow drifts of the machine hit every variant alike.
    for repeat in 0..args.repeats {
        for (variant, summary) in results.iter_mut() {
            let run = run_variant(args, &broker, variant, repeat);
            eprintln!(
                "{:<24} run {}: {:>10.0} msg/s, client {:>7.0} ns/msg ({:>3.0}% sys), rss {:>6} KiB, p50 {:>7} ns, p99 {:>7} ns, broker {:>6.0} ns/msg",
                variant.name,
                repeat + 1,
                run.delivered_per_s,
                run.cpu_ns_per_msg,
                run.sys_share * 100.0,
                run.peak_rss_kib,
                run.latency_p50_ns,
                run.latency_p99_ns,
                run.broker_cpu_ns_per_msg
            );
            summary.runs.push(run);
        }
    }
    let report = render(args, &machine, &results);
    println!("{report}");
    if args.update_md {
        update_benchmarks_md(
            if args.poll_idle {
                "poll-idle"
            } else {
                "default"
            },
            &report,
        );
    }
}

fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024 / 1024);
    let command_line = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let mosquitto = command_line(
        umqtt_testkit::broker::find_mosquitto()
            .to_str()
            .unwrap_or("mosquitto"),
        "-h",
    );
    let rustc = command_line("rustc", "-V");
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".to_owned())
    };
    let idle = format!(
        "cpuidle driver {} (guest_halt_poll_ns {})",
        read("/sys/devices/system/cpu/cpuidle/current_driver"),
        read("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
    );
    format!(
        "{cpus} × {model}, {memory} GiB RAM, Linux {}, {idle}, {mosquitto}, {rustc}; load average at start: {}",
        kernel.trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

fn ratio(value: f64, reference: Option<f64>) -> String {
    match reference {
        Some(r) if r > 0.0 && value.is_finite() => format!("{:.2}×", value / r),
        _ => "–".to_owned(),
    }
}

fn render(args: &Args, machine: &str, results: &[(&Variant, Summary)]) -> String {
    let same_mode = |kind: Kind, mode: Mode| {
        results
            .iter()
            .find(|(v, s)| v.kind == kind && v.mode == mode && !s.runs.is_empty())
            .map(|(_, s)| s)
    };
    // Async rows compare with rumqttc's AsyncClient, the others with its sync client.
    let peer = |kind: Kind, mode: Mode| match kind {
        Kind::Async | Kind::RumqttcAsync => same_mode(Kind::RumqttcAsync, mode),
        _ => same_mode(Kind::Rumqttc, mode),
    };
    let mut out = String::new();
    let command = format!(
        "cargo bench -p umqtt --bench end_to_end -- --messages {} --wait-messages {} --window {} --batch {} --chunk {} --repeats {}{}",
        args.messages,
        args.wait_messages,
        args.window,
        args.batch,
        args.chunk,
        args.repeats,
        if args.poll_idle { " --poll-idle" } else { "" }
    );
    let _ = writeln!(out, "Command: `{command}`\n");
    let _ = writeln!(out, "Machine: {machine}\n");
    let _ = writeln!(
        out,
        "{} B payload on one topic; QoS 0 subscriber (raw socket) counts every message; \
         in-flight window {} for umqtt and rumqttc and `max_inflight_messages {}` in mosquitto; \
         median of {} interleaved runs (spread = (max − min) / median of the throughput). \
         “× ceiling” compares with the raw-socket ceiling of the same mode, “× rumqttc” with \
         rumqttc in the same mode (its `AsyncClient` for the async rows). CPU is user + system time of the whole client process \
         (all its threads) per message, “sys” the kernel's share of it; “thread” is the publishing \
         thread alone. Broker CPU comes from `/proc/<pid>/stat` (10 ms ticks); “broker busy” is the share of one \
         core mosquitto used during the run (mosquitto is single-threaded: near 100% it is the \
         bottleneck).\n",
        PAYLOAD_SIZE, args.window, args.window, args.repeats
    );
    let _ = writeln!(
        out,
        "| variant | msgs | delivered msg/s | spread | × ceiling | × rumqttc | client CPU ns/msg | × ceiling | × rumqttc | sys | thread ns/msg | peak RSS MiB | × ceiling | × rumqttc | broker CPU ns/msg | broker busy |"
    );
    let _ = writeln!(
        out,
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for (variant, summary) in results {
        if summary.runs.is_empty() {
            let _ = writeln!(
                out,
                "| {} | – | {} | | | | | | | | | | | | | |",
                variant.name, variant.how
            );
            continue;
        }
        let rumqttc = peer(variant.kind, variant.mode);
        let ceiling = same_mode(Kind::Ceiling, variant.mode);
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.1}% | {} | {} | {:.0} | {} | {} | {:.0}% | {:.0} | {:.1} | {} | {} | {:.0} | {:.0}% |",
            variant.name,
            summary.runs[0].messages,
            summary.rate(),
            summary.spread() * 100.0,
            ratio(summary.rate(), ceiling.map(Summary::rate)),
            ratio(summary.rate(), rumqttc.map(Summary::rate)),
            summary.cpu(),
            ratio(summary.cpu(), ceiling.map(Summary::cpu)),
            ratio(summary.cpu(), rumqttc.map(Summary::cpu)),
            summary.sys_share() * 100.0,
            summary.thread_cpu(),
            summary.rss_mib(),
            ratio(summary.rss_mib(), ceiling.map(Summary::rss_mib)),
            ratio(summary.rss_mib(), rumqttc.map(Summary::rss_mib)),
            summary.broker_cpu(),
            summary.get(|r| r.broker_cpu_ns_per_msg * r.delivered_per_s / 1e7),
        );
    }
    let _ = writeln!(
        out,
        "\nQoS 1 round trip, publish to PUBACK, one message at a time:\n"
    );
    let _ = writeln!(
        out,
        "| variant | msgs | p50 µs | × ceiling | × rumqttc | p99 µs | × ceiling | × rumqttc |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
    for (variant, summary) in results {
        if variant.mode != Mode::Qos1Wait || summary.runs.is_empty() {
            continue;
        }
        let rumqttc = peer(variant.kind, variant.mode);
        let ceiling_latency = same_mode(Kind::Ceiling, variant.mode);
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} | {} | {:.1} | {} | {} |",
            variant.name,
            summary.runs[0].messages,
            summary.p50() / 1000.0,
            ratio(summary.p50(), ceiling_latency.map(Summary::p50)),
            ratio(summary.p50(), rumqttc.map(Summary::p50)),
            summary.p99() / 1000.0,
            ratio(summary.p99(), ceiling_latency.map(Summary::p99)),
            ratio(summary.p99(), rumqttc.map(Summary::p99)),
        );
    }
    let _ = writeln!(out, "\nVariants:\n");
    for variant in VARIANTS {
        let _ = writeln!(out, "- `{}`: {}", variant.name, variant.how);
    }
    out
}

/// Replaces the section between `<!-- end_to_end:{label}:begin -->` and
/// `<!-- end_to_end:{label}:end -->` (appended if missing).
fn update_benchmarks_md(label: &str, report: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../BENCHMARKS.md");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let begin_marker =
        format!("<!-- end_to_end:{label}:begin (generated by umqtt/benches/end_to_end.rs) -->");
    let end_marker = format!("<!-- end_to_end:{label}:end -->");
    let section = format!("{begin_marker}\n{report}{end_marker}");
    let updated = match (text.find(&begin_marker), text.find(&end_marker)) {
        (Some(begin), Some(end)) if begin < end => {
            format!(
                "{}{section}{}",
                &text[..begin],
                &text[end + end_marker.len()..]
            )
        }
        _ => format!("{text}\n{section}\n"),
    };
    std::fs::write(path, updated).expect("write BENCHMARKS.md");
    eprintln!("updated {path}");
}
