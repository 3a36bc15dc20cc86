//! A swarm of async clients in one process against one mosquitto, through a broker restart
//! and a link fault: umqtt-tokio's robust client beside rumqttc's `AsyncClient`, the same
//! job each, one after the other in one run.
//!
//! ```text
//! cargo bench -p umqtt --bench swarm -- [--clients N] [--seconds S] [--only umqtt-tokio,rumqttc]
//! ```
//!
//! - The parent raises its open-file limit (mosquitto inherits it), starts mosquitto with
//!   persistence, a fault proxy in front of it, and a counting subscriber (umqtt-tokio robust
//!   client, persistent session, QoS 1 on `swarm/<variant>/#`) connected straight to the
//!   broker.
//! - Each variant runs in a **child process** (the same binary, `--child`), so its peak RSS
//!   (`VmHWM`) and CPU time are the swarm's alone: N clients, each on its own persistent
//!   session through the proxy, each publishing one QoS 1 message a second (`<client>:<seq>`)
//!   for S seconds, on a multi-threaded tokio runtime (tokio's default).
//! - At S/3 the broker restarts (SIGTERM, persistence saved, same port); at 2S/3 the proxy
//!   resets every connection (RST). Then the child waits (up to 60 s) until every message it
//!   published is acknowledged, and reports.
//! - Lost = published by the child − distinct messages the subscriber received. Duplicates
//!   (QoS 1 allows them) are reported too.
//!
//! How each client reconnects: umqtt-tokio by its `ExponentialBackoff` policy (200 ms → 5 s,
//! jittered); rumqttc has no reconnect policy, so its event-loop task does what its examples
//! do: poll again after an error, here after a 1 s pause.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use umqtt::{ClientConfig, QoS};
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::proxy::FaultProxy;

const VARIANTS: [&str; 2] = ["umqtt-tokio", "rumqttc"];

struct Args {
    clients: usize,
    seconds: u64,
    only: Vec<String>,
    child: Option<String>,
    port: u16,
    restart: bool,
    reset: bool,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            clients: 1000,
            seconds: 60,
            only: VARIANTS.iter().map(|v| (*v).to_owned()).collect(),
            child: None,
            port: 0,
            restart: true,
            reset: true,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
            match arg.as_str() {
                "--clients" => args.clients = value().parse().expect("--clients N"),
                "--seconds" => args.seconds = value().parse().expect("--seconds S"),
                "--only" => args.only = value().split(',').map(str::to_owned).collect(),
                "--child" => args.child = Some(value()),
                "--port" => args.port = value().parse().expect("--port P"),
                "--no-restart" => args.restart = false,
                "--no-reset" => args.reset = false,
                // cargo bench passes --bench.
                _ => {}
            }
        }
        args
    }
}

fn main() {
    let args = Args::parse();
    match &args.child {
        Some(variant) => child_main(&args, variant),
        None => parent_main(&args),
    }
}

// ----- measurements ---------------------------------------------------------------------------

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn cpu_ms() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ms = |tv: libc::timeval| tv.tv_sec as u64 * 1000 + tv.tv_usec as u64 / 1000;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

fn raise_open_files() -> u64 {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ----- parent ----------------------------------------------------------------------------------

/// What the subscriber saw, per variant: distinct `(client, seq)` and the total count.
#[derive(Default)]
struct Seen {
    distinct: HashSet<(u32, u32)>,
    total: u64,
    /// Duplicates by sequence number (which second of the run they were published in).
    duplicated_seq: std::collections::BTreeMap<u32, u64>,
}

fn parent_main(args: &Args) {
    let files = raise_open_files();
    assert!(
        files as usize > args.clients * 2 + 100,
        "open-file limit {files} too low for {} clients (and the proxy's sockets)",
        args.clients
    );
    let mut broker = Mosquitto::builder()
        .persistence(true)
        .config_line("log_type none")
        .config_line("max_connections -1")
        .start();
    let proxy = FaultProxy::start(broker.addr());
    let rt = runtime();
    let seen: Arc<Mutex<std::collections::HashMap<String, Seen>>> = Arc::default();
    let received = Arc::new(AtomicU64::new(0));
    let subscribed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (sub_handle, _sub_task) = {
        use umqtt_tokio::robust::{Client, ExponentialBackoff, RobustConfig};
        let config = ClientConfig {
            client_id: "swarm-counter".to_owned(),
            server: "127.0.0.1".to_owned(),
            port: Some(broker.port()),
            keep_alive: 10,
            ..ClientConfig::default()
        };
        let _guard = rt.enter();
        let (handle, mut events) = Client::new(
            config,
            ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(1)),
        )
        .robust_config(RobustConfig {
            clean_session: false,
            max_received: 100_000,
            ..RobustConfig::default()
        })
        .spawn()
        .expect("runtime");
        handle
            .subscribe("swarm/#", QoS::AtLeastOnce)
            .expect("subscribe");
        let seen = seen.clone();
        let received = received.clone();
        let subscribed = subscribed.clone();
        let task = rt.spawn(async move {
            let on_event = |event: &umqtt_tokio::robust::Event| {
                if matches!(event, umqtt_tokio::robust::Event::Subscribed { .. }) {
                    subscribed.store(true, Ordering::SeqCst);
                }
            };
            while let Some(message) = events.next_message(on_event).await {
                let mut levels = message.topic.split('/');
                let variant = levels.nth(1).unwrap_or("").to_owned();
                let text = String::from_utf8_lossy(&message.payload);
                if let Some((client, seq)) = text.split_once(':') {
                    if let (Ok(client), Ok(seq)) = (client.parse(), seq.parse()) {
                        let mut seen = seen.lock().unwrap();
                        let entry = seen.entry(variant).or_default();
                        if !entry.distinct.insert((client, seq)) {
                            *entry.duplicated_seq.entry(seq).or_default() += 1;
                        }
                        entry.total += 1;
                    }
                }
                received.fetch_add(1, Ordering::Relaxed);
            }
        });
        (handle, task)
    };
    // Counting starts only once the broker acknowledged the subscription.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !subscribed.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "subscriber never subscribed");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut rows = Vec::new();
    for variant in VARIANTS
        .iter()
        .filter(|v| args.only.iter().any(|o| o == *v))
    {
        rows.push(run_variant(args, variant, &mut broker, &proxy, &seen));
    }
    drop(sub_handle);
    println!();
    println!(
        "{} clients, each one QoS 1 message a second for {} s through a broker restart (at {} s) and a connection reset of every link (at {} s); one mosquitto, open-file limit {files}.",
        args.clients,
        args.seconds,
        args.seconds / 3,
        2 * args.seconds / 3
    );
    println!();
    println!("| variant | published | acknowledged | received distinct | lost | duplicates | peak RSS MiB | RSS per client KiB | CPU s |");
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for row in rows {
        println!("{row}");
    }
}

fn run_variant(
    args: &Args,
    variant: &str,
    broker: &mut Mosquitto,
    proxy: &FaultProxy,
    seen: &Arc<Mutex<std::collections::HashMap<String, Seen>>>,
) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([
            "--child",
            variant,
            "--port",
            &proxy.port().to_string(),
            "--clients",
            &args.clients.to_string(),
            "--seconds",
            &args.seconds.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_line = || lines.next().and_then(Result::ok).unwrap_or_default();
    let started = next_line();
    assert_eq!(started, "publishing", "child did not start");
    let start = Instant::now();
    eprintln!("[{variant}] {} clients publishing", args.clients);
    let restart_at = Duration::from_secs(args.seconds / 3);
    let reset_at = Duration::from_secs(2 * args.seconds / 3);
    std::thread::sleep(restart_at.saturating_sub(start.elapsed()));
    if args.restart {
        eprintln!("[{variant}] restarting the broker");
        broker.restart();
    }
    std::thread::sleep(reset_at.saturating_sub(start.elapsed()));
    if args.reset {
        eprintln!(
            "[{variant}] resetting {} connections",
            proxy.active_connections()
        );
        proxy.reset();
    }
    let report = next_line();
    let _ = child.wait();
    // report: published acked rss_kib baseline_kib cpu_ms
    let fields: Vec<u64> = report
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let [published, acked, rss_kib, baseline_kib, cpu] = fields[..] else {
        panic!("bad report from child: {report:?}");
    };
    // Wait for the subscriber to have everything that was published (or give up).
    let key = variant.to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let distinct = seen
            .lock()
            .unwrap()
            .get(&key)
            .map_or(0, |s| s.distinct.len() as u64);
        if distinct >= published || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = seen.lock().unwrap();
    if let Some(s) = seen.get(&key) {
        eprintln!("[{variant}] duplicates by second: {:?}", s.duplicated_seq);
    }
    let (distinct, total) = seen
        .get(&key)
        .map_or((0, 0), |s| (s.distinct.len() as u64, s.total));
    format!(
        "| {variant} | {published} | {acked} | {distinct} | {} | {} | {:.1} | {:.1} | {:.1} |",
        published.saturating_sub(distinct),
        total - distinct,
        rss_kib as f64 / 1024.0,
        rss_kib.saturating_sub(baseline_kib) as f64 / args.clients as f64,
        cpu as f64 / 1000.0
    )
}

// ----- children --------------------------------------------------------------------------------

fn child_main(args: &Args, variant: &str) {
    raise_open_files();
    let rt = runtime();
    let baseline = status_kib("VmRSS:");
    let (published, acked) = match variant {
        "umqtt-tokio" => rt.block_on(umqtt_swarm(args)),
        "rumqttc" => rt.block_on(rumqttc_swarm(args)),
        other => panic!("unknown variant {other}"),
    };
    println!(
        "{published} {acked} {} {baseline} {}",
        status_kib("VmHWM:"),
        cpu_ms()
    );
    // rumqttc's tasks would keep the runtime busy on drop.
    std::process::exit(0);
}

/// One message a second from each client, phases spread over the second.
fn phase(i: usize, clients: usize) -> Duration {
    Duration::from_micros((i as u64 * 1_000_000) / clients as u64)
}

async fn umqtt_swarm(args: &Args) -> (u64, u64) {
    use umqtt_tokio::robust::{Client, Delivery, ExponentialBackoff, RobustConfig};

    let published = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let config = ClientConfig {
            client_id: format!("swarm-umqtt-{i}"),
            server: "127.0.0.1".to_owned(),
            port: Some(args.port),
            keep_alive: 30,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        };
        let (handle, events) = Client::new(
            config,
            ExponentialBackoff::new(Duration::from_millis(200), Duration::from_secs(5)),
        )
        .robust_config(RobustConfig {
            clean_session: false,
            seed: Some(i as u64 + 1),
            ..RobustConfig::default()
        })
        .spawn()
        .expect("runtime");
        // Outcomes reach the receipts; no event is wanted.
        drop(events);
        handles.push(handle);
    }
    // Everyone connected before the clock starts (the parent times the faults from here).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handles.iter().all(|h| h.is_connected()) {
        assert!(Instant::now() < deadline, "swarm never fully connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("publishing");
    let start = tokio::time::Instant::now();
    if std::env::var_os("SWARM_TIMELINE").is_some() {
        // Diagnostics: connections, losses and pending per second.
        let watched: Vec<_> = handles.to_vec();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for second in 0.. {
                tick.tick().await;
                let (mut connects, mut disconnects, mut pending) = (0, 0, 0);
                for h in &watched {
                    let stats = h.stats();
                    connects += stats.connects;
                    disconnects += stats.disconnects;
                    pending += h.pending();
                }
                eprintln!(
                    "t={second}s connects={connects} disconnects={disconnects} pending={pending}"
                );
            }
        });
    }
    for (i, handle) in handles.iter().enumerate() {
        let handle = handle.clone();
        let published = published.clone();
        let seconds = args.seconds;
        let first = start + phase(i, args.clients);
        tasks.push(tokio::spawn(async move {
            for seq in 0..seconds {
                tokio::time::sleep_until(first + Duration::from_secs(seq)).await;
                let payload = format!("{i}:{seq}");
                handle
                    .publish_with(
                        &format!("swarm/umqtt-tokio/{i}"),
                        payload.as_bytes(),
                        QoS::AtLeastOnce,
                        false,
                        Delivery::Guaranteed,
                    )
                    .await
                    .expect("publish");
                published.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("publisher task");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while handles.iter().any(|h| h.pending() > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acked = handles.iter().map(|h| h.stats().delivered).sum();
    let sum = |f: fn(&umqtt_tokio::robust::Stats) -> u64| -> u64 {
        handles.iter().map(|h| f(&h.stats())).sum()
    };
    eprintln!(
        "[umqtt-tokio] attempts {}, connections {}, sessions lost {}",
        sum(|s| s.attempts),
        sum(|s| s.connects),
        sum(|s| u64::from(s.sessions_lost)),
    );
    (published.load(Ordering::Relaxed), acked)
}

async fn rumqttc_swarm(args: &Args) -> (u64, u64) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

    let published = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for i in 0..args.clients {
        let mut options = MqttOptions::new(format!("swarm-rumqttc-{i}"), "127.0.0.1", args.port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(false);
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        let acked = acked.clone();
        let connected = connected.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) if first => {
                        first = false;
                        connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    // rumqttc reconnects when polled again; pause as its examples do.
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
        });
        clients.push(client);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::Relaxed) < args.clients as u64 {
        assert!(Instant::now() < deadline, "swarm never fully connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("publishing");
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let client = client.clone();
        let published = published.clone();
        let seconds = args.seconds;
        let first = start + phase(i, args.clients);
        tasks.push(tokio::spawn(async move {
            for seq in 0..seconds {
                tokio::time::sleep_until(first + Duration::from_secs(seq)).await;
                let payload = format!("{i}:{seq}");
                if client
                    .publish(
                        format!("swarm/rumqttc/{i}"),
                        rumqttc::QoS::AtLeastOnce,
                        false,
                        payload.into_bytes(),
                    )
                    .await
                    .is_ok()
                {
                    published.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("publisher task");
    }
    let target = published.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (target, acked.load(Ordering::Relaxed))
}
