//! Reconnect time over TLS with and without session resumption, against a real mosquitto
//! (OpenSSL, TLS 1.3) and against the testkit's rustls terminator in front of it (TLS 1.3 and
//! TLS 1.2 only).
//!
//! ```text
//! cargo bench -p umqtt --bench reconnect_tls -- [--reconnects N]
//! ```
//!
//! One reconnect is what the robust client does after a lost link: TCP connect, TLS
//! handshake, CONNECT / CONNACK (`simple::Client::connect`, which the robust driver's opens
//! match), then DISCONNECT and close. The same client (so the same `TlsConfig`, whose rustls
//! configuration holds the session store) reconnects N times; the first connection, always a
//! full handshake, is not timed. Reported per reconnect: wall time (median, p90) and the
//! client thread's CPU time (`RUSAGE_THREAD`: on a battery device, CPU is energy), and how
//! many handshakes were resumed. Numbers, never assertions.

use std::time::{Duration, Instant};

use umqtt::simple::{Client, ClientConfig};
use umqtt::transport::{TlsConfig, TlsHandshake, Transport};
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::certs::TestCerts;
use umqtt_testkit::tunnel::{TlsTerminator, TlsVersions};

fn thread_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

struct Summary {
    median: Duration,
    p90: Duration,
    cpu: Duration,
    resumed: usize,
}

/// One client per setting, reconnecting in turn (off, on, off, on…) so that both see the same
/// machine load (the bench machine is shared: interleaving keeps the comparison fair).
fn measure(port: u16, ca: &std::path::Path, reconnects: usize) -> [Summary; 2] {
    let mut clients: Vec<Client<Transport>> = [false, true]
        .into_iter()
        .map(|resume| {
            let mut client = Client::with_config(ClientConfig {
                client_id: format!("bench-reconnect-{resume}"),
                server: "localhost".into(),
                port: Some(port),
                tls: Some(TlsConfig::new().ca_file(ca).session_resumption(resume)),
                ..ClientConfig::default()
            });
            client.connect(true).expect("first connection");
            client.disconnect().expect("disconnect");
            client
        })
        .collect();
    let mut times = [
        Vec::with_capacity(reconnects),
        Vec::with_capacity(reconnects),
    ];
    let mut cpu = [Duration::ZERO; 2];
    let mut resumed = [0; 2];
    for _ in 0..reconnects {
        for (i, client) in clients.iter_mut().enumerate() {
            let (started, cpu_before) = (Instant::now(), thread_cpu());
            client.connect(true).expect("reconnect");
            times[i].push(started.elapsed());
            cpu[i] += thread_cpu() - cpu_before;
            if client.get_ref().and_then(Transport::tls_handshake) == Some(TlsHandshake::Resumed) {
                resumed[i] += 1;
            }
            client.disconnect().expect("disconnect");
        }
    }
    [0, 1].map(|i| {
        let times = &mut times[i];
        times.sort();
        Summary {
            median: times[times.len() / 2],
            p90: times[times.len() * 9 / 10],
            cpu: cpu[i] / reconnects as u32,
            resumed: resumed[i],
        }
    })
}

fn main() {
    let mut reconnects = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--reconnects" {
            reconnects = args.next().and_then(|n| n.parse().ok()).expect("a count");
        }
    }
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let tls13 = TlsTerminator::start(certs.server(), broker.port(), TlsVersions::Tls13, &[]);
    let tls12 = TlsTerminator::start(certs.server(), broker.port(), TlsVersions::Tls12, &[]);
    let servers = [
        ("mosquitto (OpenSSL), TLS 1.3", broker.tls_port()),
        ("rustls terminator, TLS 1.3", tls13.port()),
        ("rustls terminator, TLS 1.2", tls12.port()),
    ];
    println!("{reconnects} reconnects each (TCP + TLS + CONNECT/CONNACK), loopback\n");
    println!("| server | resumption | median | p90 | client CPU / reconnect | resumed |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, port) in servers {
        let summaries = measure(port, certs.ca().cert_path(), reconnects);
        for (resume, s) in [false, true].into_iter().zip(summaries) {
            println!(
                "| {name} | {} | {} µs | {} µs | {} µs | {}/{reconnects} |",
                if resume { "on" } else { "off" },
                s.median.as_micros(),
                s.p90.as_micros(),
                s.cpu.as_micros(),
                s.resumed
            );
        }
    }
}
