//! The durable outbox against `kill -9`: a child `umqtt pub -l --policy guaranteed --outbox`
//! publishes a numbered stream of QoS 1 messages while the test SIGKILLs it at random points
//! and restarts it with the same outbox and client id; a subscriber counts what arrives.
//! Every number whose publish *returned* (the child printed `stored N`, which `--confirm`
//! does only once the message is on disk) must arrive: 0 lost. Duplicates are allowed (QoS 1).
//!
//! The child talks to mosquitto through the testkit's fault proxy, and each run draws a link:
//! straight, slow (PUBACKs lag, so the kill finds messages in flight) or refused (every
//! message waits in the outbox). Without the outbox the same test loses messages.
//!
//! The kill points come from a small LCG seeded from the clock; the seed is printed, and
//! `UMQTT_KILL9_SEED=<seed>` replays a run.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;
use umqtt::simple::{Client, ClientConfig};
use umqtt::QoS;
use umqtt_testkit::broker::Mosquitto;
use umqtt_testkit::proxy::{FaultProxy, Mode};

/// Kills (each followed by a restart).
const KILLS: u32 = 24;
/// Pause between two numbers written to the child's stdin.
const FEED_PAUSE: Duration = Duration::from_millis(2);
/// Numbers fed to the final run, which is allowed to finish.
const FINAL_NUMBERS: u64 = 200;

/// Knuth's MMIX LCG; the high bits are good enough for kill delays.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// Uniform enough in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// One run of the publishing child.
struct Publisher {
    child: Child,
    confirmations: Option<JoinHandle<Vec<u64>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Publisher {
    fn start(port: u16, outbox: &str) -> Publisher {
        let port = port.to_string();
        let mut child = command(&[
            "pub",
            "-l",
            "-q",
            "1",
            "--policy",
            "guaranteed",
            "--outbox",
            outbox,
            "--confirm",
            "-i",
            "outbox-child",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "kill/n",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start umqtt");
        let stdout = child.stdout.take().unwrap();
        let confirmations = thread::spawn(move || {
            let mut confirmed = Vec::new();
            // A line cut by the kill has no newline and does not parse: not a confirmation.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(number) = line.strip_prefix("stored ").and_then(|n| n.parse().ok()) {
                    confirmed.push(number);
                }
            }
            confirmed
        });
        let stderr = child.stderr.take().map(collect);
        Publisher {
            child,
            confirmations: Some(confirmations),
            stderr,
        }
    }

    /// Writes one number; false if the child no longer reads.
    fn feed(&mut self, number: u64) -> bool {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{number}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .is_ok()
    }

    /// SIGKILL; returns what it had confirmed.
    fn kill(mut self) -> Vec<u64> {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
        self.confirmations.take().unwrap().join().unwrap()
    }

    /// Closes stdin and waits (at most `limit`) for the exit: status, confirmations, stderr.
    fn finish(mut self, limit: Duration) -> (Option<i32>, Vec<u64>, String) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        let confirmed = self.confirmations.take().unwrap().join().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (
            status,
            confirmed,
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts every number received on `kill/n`, on its own thread until `stop`.
fn subscribe(port: u16, stop: Arc<AtomicBool>) -> (Arc<Mutex<HashMap<u64, u32>>>, JoinHandle<()>) {
    let mut client = Client::with_config(ClientConfig {
        client_id: "kill9-counter".into(),
        server: "127.0.0.1".into(),
        port: Some(port),
        max_queued_messages: 100_000,
        ..ClientConfig::default()
    });
    client.connect(true).expect("subscriber connects");
    client
        .subscribe("kill/n", QoS::AtLeastOnce)
        .expect("subscriber subscribes");
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let thread_counts = Arc::clone(&counts);
    let handle = thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match client.wait_msg_timeout(Duration::from_millis(50)) {
                Ok(Some(message)) => {
                    let number: u64 = std::str::from_utf8(&message.payload)
                        .ok()
                        .and_then(|text| text.parse().ok())
                        .unwrap_or_else(|| panic!("unexpected payload {:?}", message.payload));
                    *thread_counts.lock().unwrap().entry(number).or_insert(0) += 1;
                }
                Ok(None) => {}
                Err(e) => panic!("subscriber failed: {e}"),
            }
        }
        let _ = client.disconnect();
    });
    (counts, handle)
}

#[test]
fn no_confirmed_message_is_lost_across_kill_9() {
    let started = Instant::now();
    let seed = std::env::var("UMQTT_KILL9_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("kill -9 test seed {seed} (replay: UMQTT_KILL9_SEED={seed})");
    let mut rng = Lcg(seed);

    let broker = Mosquitto::start();
    let directory = tempfile::tempdir().unwrap();
    let outbox = directory.path().join("outbox.redb");
    let outbox = outbox.to_str().unwrap().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let (counts, subscriber) = subscribe(broker.port(), Arc::clone(&stop));

    let proxy = FaultProxy::start(broker.addr());

    let mut next = 1u64;
    let mut confirmed = BTreeSet::new();
    let mut kills = 0;
    let mut links = [0u32; 3];
    for _ in 0..KILLS {
        let link = rng.between(0, 2) as usize;
        links[link] += 1;
        match link {
            0 => {
                proxy.set_mode(Mode::Forward);
                proxy.set_delay(Duration::ZERO);
            }
            1 => {
                proxy.set_mode(Mode::Forward);
                proxy.set_delay(Duration::from_millis(40));
            }
            _ => proxy.set_mode(Mode::Refuse),
        }
        let mut publisher = Publisher::start(proxy.port(), &outbox);
        let delay = Duration::from_millis(rng.between(50, 400));
        let run_started = Instant::now();
        while run_started.elapsed() < delay {
            if !publisher.feed(next) {
                break;
            }
            next += 1;
            thread::sleep(FEED_PAUSE);
        }
        confirmed.extend(publisher.kill());
        kills += 1;
    }

    // The last run may finish: everything it and the killed runs left is delivered.
    proxy.set_mode(Mode::Forward);
    proxy.set_delay(Duration::ZERO);
    let mut publisher = Publisher::start(proxy.port(), &outbox);
    for _ in 0..FINAL_NUMBERS {
        assert!(publisher.feed(next), "the final run stopped reading");
        next += 1;
    }
    let (status, last, stderr) = publisher.finish(Duration::from_secs(30));
    assert_eq!(
        status,
        Some(0),
        "the final run did not exit 0; stderr {stderr:?}"
    );
    confirmed.extend(last);
    let sent = next - 1;

    // Wait for the subscriber to see every confirmed number (the broker forwards them
    // asynchronously), then stop it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let missing = |counts: &HashMap<u64, u32>| -> Vec<u64> {
        confirmed
            .iter()
            .copied()
            .filter(|n| !counts.contains_key(n))
            .collect()
    };
    while Instant::now() < deadline && !missing(&counts.lock().unwrap()).is_empty() {
        thread::sleep(Duration::from_millis(50));
    }
    // Late duplicates still in flight.
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    subscriber.join().expect("subscriber thread");

    let counts = counts.lock().unwrap();
    let lost = missing(&counts);
    let received = counts.len();
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    println!(
        "kill -9 test: sent {sent}, confirmed {}, received {received} distinct, duplicates \
         {duplicates}, lost {}, kills {kills} (links straight/slow/refused: {}/{}/{}), {:.1} s",
        confirmed.len(),
        lost.len(),
        links[0],
        links[1],
        links[2],
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= 20);
    assert!(
        confirmed.len() as u64 >= FINAL_NUMBERS,
        "too few confirmations to mean anything"
    );
    assert!(
        lost.is_empty(),
        "{} confirmed numbers lost (seed {seed}): {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    // Nothing arrives that was never sent.
    assert!(counts.keys().all(|n| (1..=sent).contains(n)));
}
