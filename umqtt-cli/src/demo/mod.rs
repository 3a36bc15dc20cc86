//! `umqtt demo`: the seed note's three devices through a scripted network outage.
//!
//! A broker (rumqttd embedded in the process, or the one `-h`/`-p` name) sits behind a small
//! proxy of the demo's own ([`proxy`]) that plays the network. Three robust clients publish
//! through the proxy, each on its own thread ([`scenario`]): a thermometer (QoS 0, `NoRetry`,
//! a reading every second), a button (QoS 1, `Deadline(15 s)`, presses at random) and a
//! burglar alarm (QoS 1, `BatteryAware`, events at random). An observer connected straight
//! to the broker counts what arrives. At `--outage-start` the network goes down for
//! `--outage` seconds (the proxy refuses new connections and cuts the established ones);
//! when it comes back the demo nudges the alarm, as a Wi-Fi-up event would. A live status
//! line per device shows its link and counters; at the end a table reports, per device, what
//! was sent, delivered, received, dropped or expired, the connection attempts it cost, and
//! how long after the outage its backlog took to arrive ([`report`]).

mod broker;
mod proxy;
mod report;
mod scenario;

use std::net::ToSocketAddrs;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{ArgAction, Args};

use crate::error::CliError;
pub use proxy::OutageKind;
use proxy::OutageProxy;
use report::{Display, Timeline};
use scenario::{Endpoint, Kind, Observer, Scenario};

/// How long devices may take after the run to settle what is still pending.
const GRACE: Duration = Duration::from_secs(10);
/// How long the observer may take to receive what was delivered.
const OBSERVER_GRACE: Duration = Duration::from_secs(3);

/// Flags of `umqtt demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How long the devices publish, in seconds
    #[arg(long = "duration", value_name = "SECS", default_value_t = 45,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,

    /// When the network goes down, in seconds from the start
    #[arg(long = "outage-start", value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub outage_start: u64,

    /// How long the network stays down, in seconds
    #[arg(long = "outage", value_name = "SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub outage: u64,

    /// What the outage does to established connections: cut them (noticed at once), or
    /// black-hole them (noticed by keepalive, 4 s here)
    #[arg(
        long = "outage-kind",
        value_name = "KIND",
        value_enum,
        default_value = "cut"
    )]
    pub outage_kind: OutageKind,

    /// Seed of the random press and alarm times [default: from the clock]
    #[arg(long = "seed", value_name = "N")]
    pub seed: Option<u64>,

    /// Use this broker instead of the embedded one (the outage is still simulated by the
    /// demo's proxy in front of it)
    #[arg(short = 'h', long = "host", value_name = "HOST")]
    pub host: Option<String>,

    /// Port of the broker given by -h [default: 1883]
    #[arg(short = 'p', long = "port", value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Print help
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// A small deterministic generator (SplitMix64), so a seed replays the same press times.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// An independent generator for one device.
    fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// The demo's schedule, relative to its start.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// How long devices publish.
    pub duration: Duration,
    /// When the outage begins.
    pub outage_start: Duration,
    /// When it ends.
    pub outage_end: Duration,
    /// What it does to established connections.
    pub outage_kind: OutageKind,
}

/// Runs `umqtt demo`.
pub fn run(args: DemoArgs) -> Result<(), CliError> {
    if args.outage_start + args.outage > args.duration {
        return Err(CliError::usage(format!(
            "the outage ({} s from {} s) must end within --duration {} s",
            args.outage, args.outage_start, args.duration
        )));
    }
    if args.port.is_some() && args.host.is_none() {
        return Err(CliError::usage(
            "-p needs -h: the embedded broker picks its own port",
        ));
    }
    let plan = Plan {
        duration: Duration::from_secs(args.duration),
        outage_start: Duration::from_secs(args.outage_start),
        outage_end: Duration::from_secs(args.outage_start + args.outage),
        outage_kind: args.outage_kind,
    };
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let mut rng = Rng::new(seed);
    let run_id = format!("{:08x}", rng.next_u64() as u32);

    let (broker, broker_name) = match &args.host {
        Some(host) => {
            let port = args.port.unwrap_or(1883);
            let addr = (host.as_str(), port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or_else(|| CliError::failed(format!("unable to resolve host {host:?}")))?;
            (addr, format!("broker {host}:{port}"))
        }
        None => {
            let addr = broker::start()?;
            (addr, format!("embedded broker (rumqttd) on {addr}"))
        }
    };
    let proxy = OutageProxy::start(broker)?;
    let direct = Endpoint {
        host: broker.ip().to_string(),
        port: broker.port(),
    };
    let through_proxy = Endpoint {
        host: "127.0.0.1".to_owned(),
        port: proxy.port(),
    };
    let topic_root = format!("umqtt-demo/{run_id}");

    println!(
        "umqtt demo: {broker_name}, network proxy on 127.0.0.1:{}, seed {seed}",
        proxy.port()
    );
    println!(
        "Devices publish for {} s; the network is down from {} s to {} s ({}).",
        plan.duration.as_secs(),
        plan.outage_start.as_secs(),
        plan.outage_end.as_secs(),
        match plan.outage_kind {
            OutageKind::Cut => "new connections refused, established ones cut",
            OutageKind::Blackhole => "new connections refused, established ones black-holed",
        }
    );

    let observer = Observer::start(&direct, &run_id, &topic_root)?;
    let started = Instant::now();
    let end = started + plan.duration;
    let mut scenarios = Vec::new();
    for kind in Kind::ALL {
        scenarios.push(Scenario::start(
            kind,
            &through_proxy,
            &run_id,
            &topic_root,
            end,
            GRACE,
            rng.fork(),
        )?);
    }

    let mut display = Display::new(started, plan);
    let mut timeline = Timeline::default();
    let mut outage_begun = false;
    let mut outage_ended = false;
    while scenarios.iter().any(|s| !s.is_finished()) {
        let elapsed = started.elapsed();
        if !outage_begun && elapsed >= plan.outage_start {
            proxy.begin_outage(plan.outage_kind);
            outage_begun = true;
            timeline.outage_began = Some(Instant::now());
            display.note(&format!(
                "network DOWN: the broker is unreachable for {} s",
                (plan.outage_end - plan.outage_start).as_secs()
            ));
        }
        if outage_begun && !outage_ended && elapsed >= plan.outage_end {
            proxy.end_outage();
            outage_ended = true;
            timeline.outage_ended = Some(Instant::now());
            // The application learns that Wi-Fi is back: the alarm tries at once.
            for scenario in scenarios.iter().filter(|s| s.kind == Kind::Alarm) {
                scenario.nudger.nudge();
            }
            display.note("network UP: the alarm is nudged (Wi-Fi up event)");
        }
        if elapsed >= plan.duration && !timeline.devices_stopped {
            timeline.devices_stopped = true;
            display.note("devices stop publishing; waiting for pending messages to settle");
        }
        display.tick(&scenarios, &observer);
        thread::sleep(Duration::from_millis(50));
    }
    for scenario in &mut scenarios {
        scenario.join();
    }
    // Give the observer time to receive what the broker acknowledged.
    let deadline = Instant::now() + OBSERVER_GRACE;
    while Instant::now() < deadline
        && scenarios.iter().any(|s| {
            s.kind.qos() != umqtt::QoS::AtMostOnce
                && observer.distinct(s.kind) < s.record.lock().delivered()
        })
    {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(200));
    display.finish(&scenarios, &observer);
    let received = observer.stop();
    report::print_table(&scenarios, &received, &timeline, plan, proxy.accepted());
    println!(
        "\nHours of outages and every policy side by side, on a virtual clock: umqtt simulate --outage 6h"
    );
    Ok(())
}
