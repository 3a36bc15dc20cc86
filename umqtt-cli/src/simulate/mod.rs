//! `umqtt simulate`: the real engine and the real policies against the testkit's simulated
//! broker on a virtual clock, through an outage scenario, for one or many devices; reports
//! what each policy costs (attempts, energy) and delivers (outcomes, delay after the network
//! returns).
//!
//! Every (device instance, policy, nudge) is an independent run with its own simulated
//! network ([`run::simulate`]); runs are spread over threads and gathered in a fixed order,
//! and every random draw comes from `--seed`, so the same seed gives the same report. Time
//! jumps from timer to timer (the simulator's [`umqtt_sim::device::run`]), never by
//! a fixed tick.

mod chart;
mod devices;
mod energy;
mod report;
mod rng;
mod rules;
mod run;
mod scenario;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use clap::{ArgAction, Args};

use crate::error::CliError;
use crate::policy::{DurationText, PolicySpec};
use devices::DeviceSpec;
use energy::EnergyModel;
use report::{Report, Row};
use rng::Rng;
use rules::Rule;
pub use run::OutageKind;
use run::{Setup, Tally};
use scenario::{Mix, Outage};

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

/// Flags of `umqtt simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// One outage of this length (e.g. 6h), starting at --outage-start
    #[arg(long = "outage", value_name = "LENGTH", conflicts_with_all = ["outages", "mix"],
          value_parser = scenario::positive)]
    pub outage: Option<u64>,

    /// When the single --outage starts
    #[arg(long = "outage-start", value_name = "TIME", default_value = "1h",
          value_parser = parse_time)]
    pub outage_start: u64,

    /// A schedule of outages, LENGTH@START in order: e.g. 10m@1h,6h@5h
    #[arg(long = "outages", value_name = "LIST", conflicts_with = "mix",
          value_parser = scenario::parse_schedule)]
    pub outages: Option<scenario::Schedule>,

    /// The built-in mix of outages (the default): exponential gaps between starts
    /// (--mix-gap), log-normal lengths (--mix-median, --mix-sigma, at most --mix-max)
    #[arg(long = "mix")]
    pub mix: bool,

    /// Mix: mean time between outage starts
    #[arg(long = "mix-gap", value_name = "TIME", default_value = "12h",
          value_parser = scenario::positive)]
    pub mix_gap: u64,

    /// Mix: median outage length
    #[arg(long = "mix-median", value_name = "TIME", default_value = "5m",
          value_parser = scenario::positive)]
    pub mix_median: u64,

    /// Mix: sigma of the log-normal outage length
    #[arg(long = "mix-sigma", value_name = "X", default_value_t = 1.5,
          value_parser = parse_sigma)]
    pub mix_sigma: f64,

    /// Mix: longest outage
    #[arg(long = "mix-max", value_name = "TIME", default_value = "12h",
          value_parser = scenario::positive)]
    pub mix_max: u64,

    /// Mix: share of outages that are the device's own network (they end with a link-up
    /// event, the nudge); the others are the broker's or upstream (no event)
    #[arg(long = "local-share", value_name = "X", default_value_t = 0.5,
          value_parser = parse_share)]
    pub local_share: f64,

    /// How the broker is unreachable: refuse (connections refused at once, established ones
    /// reset) or blackhole (packets vanish: attempts wait for the connect timeout)
    #[arg(
        long = "outage-kind",
        value_name = "KIND",
        value_enum,
        default_value = "refuse"
    )]
    pub outage_kind: OutageKind,

    /// Simulated days per device [default: 1 with --outage/--outages, 7 with the mix]
    #[arg(long = "days", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub days: Option<u32>,

    /// Instances of each device (each with its own publish times)
    #[arg(long = "devices", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub devices: u32,

    /// A device: temperature, button, alarm, or NAME:rate=1/min,qos=1,delivery=within:15s
    /// (repeatable; replaces the seed's three)
    #[arg(long = "device", value_name = "SPEC", value_parser = DeviceSpec::parse)]
    pub device: Vec<DeviceSpec>,

    /// Also compare this policy (none, fixed:2s, backoff:1s..60s, deadline:15s, guaranteed;
    /// repeatable)
    #[arg(long = "policy", value_name = "SPEC", value_parser = PolicySpec::parse)]
    pub policy: Vec<PolicySpec>,

    /// Compare only the --policy specs, not the shipped policies and client rules
    #[arg(long = "only-custom", requires = "policy")]
    pub only_custom: bool,

    /// Energy model, millijoules per action: wake=10,tcp=20,tls=200,packet=5
    #[arg(long = "energy", value_name = "MODEL", value_parser = EnergyModel::parse)]
    pub energy: Option<EnergyModel>,

    /// One-way network latency
    #[arg(long = "latency", value_name = "TIME", default_value = "0ms",
          value_parser = parse_time)]
    pub latency: u64,

    /// MQTT keepalive, seconds
    #[arg(long = "keepalive", value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub keepalive: u16,

    /// After the last day, how long devices stop publishing while pending messages settle
    #[arg(long = "settle", value_name = "TIME", default_value = "6h",
          value_parser = parse_time)]
    pub settle: u64,

    /// The device whose energy and p99 delay decide the Pareto frontier [default: alarm,
    /// else the first device]
    #[arg(long = "pareto-device", value_name = "NAME")]
    pub pareto_device: Option<String>,

    /// Seed of every random draw (outages, publish times, jitter)
    #[arg(long = "seed", value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Threads [default: the available cores]
    #[arg(long = "jobs", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,

    /// Print the report as JSON instead of a table
    #[arg(long = "json")]
    pub json: bool,

    /// Write the SVG chart to this file
    #[arg(long = "svg", value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,

    /// Print help
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

fn parse_time(text: &str) -> Result<u64, String> {
    crate::policy::parse_duration(text).map(|d| d.as_millis() as u64)
}

fn parse_sigma(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && (0.0..=5.0).contains(x))
        .ok_or_else(|| format!("sigma '{text}' must be a number from 0 to 5"))
}

fn parse_share(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|x| (0.0..=1.0).contains(x))
        .ok_or_else(|| format!("share '{text}' must be a number from 0 to 1"))
}

/// Runs `umqtt simulate`.
pub fn run(args: SimulateArgs) -> Result<(), CliError> {
    let report = build(&args)?;
    let svg = match &args.svg {
        Some(path) => {
            let svg = chart::svg(&report).map_err(CliError::failed)?;
            Some((path, svg))
        }
        None => None,
    };
    if args.json {
        print!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    if let Some((path, svg)) = svg {
        std::fs::write(path, svg)
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Simulates everything the flags ask for and gathers the report.
pub fn build(args: &SimulateArgs) -> Result<Report, CliError> {
    let single = args.outage.is_some() || args.outages.is_some();
    let days = args.days.unwrap_or(if single { 1 } else { 7 });
    let horizon = u64::from(days) * DAY;
    let mut header: Vec<(String, String)> = Vec::new();
    let outages = if let Some(length) = args.outage {
        vec![Outage {
            start: args.outage_start,
            end: args.outage_start.saturating_add(length),
            local: true,
        }]
    } else if let Some(list) = &args.outages {
        list.0.clone()
    } else {
        let mix = Mix {
            mean_gap: Duration::from_millis(args.mix_gap),
            median: Duration::from_millis(args.mix_median),
            sigma: args.mix_sigma,
            max: Duration::from_millis(args.mix_max),
            local_share: args.local_share,
        };
        header.push((
            "outage mix".into(),
            format!(
                "starts with exponential gaps, mean {}; lengths log-normal, median {}, sigma {}, at most {}; {:.0}% local (nudged)",
                DurationText(mix.mean_gap),
                DurationText(mix.median),
                mix.sigma,
                DurationText(mix.max),
                mix.local_share * 100.0
            ),
        ));
        mix.draw(&mut Rng::derive(args.seed, 0), horizon)
    };
    if let Some(last) = outages.last() {
        if last.end > horizon {
            return Err(CliError::usage(format!(
                "the outages end at {}, after the {days} simulated day(s): raise --days",
                DurationText(Duration::from_millis(last.end))
            )));
        }
    }
    let outage_ms: u64 = outages.iter().map(Outage::length).sum();
    let devices = if args.device.is_empty() {
        DeviceSpec::seed_devices()
    } else {
        args.device.clone()
    };
    for (i, d) in devices.iter().enumerate() {
        if devices[..i].iter().any(|e| e.name == d.name) {
            return Err(CliError::usage(format!(
                "device '{}' is given twice",
                d.name
            )));
        }
    }
    let focus = match &args.pareto_device {
        Some(name) => {
            if !devices.iter().any(|d| &d.name == name) {
                return Err(CliError::usage(format!(
                    "--pareto-device '{name}' is not one of the simulated devices ({})",
                    devices
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            name.clone()
        }
        None => devices
            .iter()
            .find(|d| d.name == "alarm")
            .unwrap_or(&devices[0])
            .name
            .clone(),
    };
    let mut rules = if args.only_custom {
        Vec::new()
    } else {
        Rule::builtin()
    };
    rules.extend(args.policy.iter().map(|&spec| Rule::Custom(spec)));
    let energy = args.energy.unwrap_or_default();
    let end = horizon + args.settle;
    let bin = if end <= 2 * DAY {
        HOUR / 6
    } else {
        HOUR * (end / DAY / 60).max(1)
    };
    let setup = Setup {
        outages: outages.clone(),
        kind: args.outage_kind,
        publish_until: horizon,
        end,
        latency: Duration::from_millis(args.latency),
        keep_alive: args.keepalive,
        connect_timeout: Duration::from_secs(10),
        bin,
    };

    header.push((
        "scenario".into(),
        format!(
            "{} outage(s), {} in all, longest {}, broker unreachable by {}; {days} day(s) × {} instance(s) of each device, then {} to settle; seed {}",
            outages.len(),
            hours(outage_ms),
            hours(outages.iter().map(Outage::length).max().unwrap_or(0)),
            match args.outage_kind {
                OutageKind::Refuse => "refusing connections (links reset)",
                OutageKind::Blackhole => "black-holing packets",
            },
            args.devices,
            DurationText(Duration::from_millis(args.settle)),
            args.seed
        ),
    ));
    for d in &devices {
        header.push((format!("device {}", d.name), d.to_string()));
    }
    header.push((
        "network".into(),
        format!(
            "one-way latency {} ms, keepalive {} s, attempt timeout 10 s; nudge = engine.nudge() when a local outage ends",
            args.latency, args.keepalive
        ),
    ));
    header.push(("energy model".into(), energy.to_string()));

    // Every run, in report order: device, policy, nudge, instance.
    let mut jobs: Vec<(usize, Rule, bool, u32)> = Vec::new();
    for (d, _) in devices.iter().enumerate() {
        for &rule in &rules {
            for nudge in [false, true] {
                for instance in 0..args.devices {
                    jobs.push((d, rule, nudge, instance));
                }
            }
        }
    }
    let threads = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(jobs.len())
        .max(1);
    let results: Vec<Mutex<Option<Tally>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(d, rule, nudge, instance)) = jobs.get(i) else {
                    return;
                };
                // Publish times depend on the device and instance only, so every policy sees
                // the same presses.
                let seed = args.seed ^ ((d as u64) << 40) ^ (u64::from(instance) << 8) ^ 0x5EED;
                let tally = run::simulate(&setup, &devices[d], rule, nudge, seed);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(tally);
            });
        }
    });
    let mut results = results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()));
    let mut rows = Vec::new();
    for d in &devices {
        for &rule in &rules {
            for nudge in [false, true] {
                let tallies: Vec<Tally> = (0..args.devices)
                    .map(|_| results.next().flatten().expect("every run finished"))
                    .collect();
                rows.push(Row::new(&d.name, rule.to_string(), nudge, tallies, &energy));
            }
        }
    }
    Ok(Report {
        header,
        outage_hours: outage_ms as f64 / HOUR as f64,
        days: f64::from(days),
        instances: args.devices,
        focus,
        bin_hours: bin as f64 / HOUR as f64,
        rows,
    })
}

fn hours(ms: u64) -> String {
    format!("{:.2} h", ms as f64 / HOUR as f64)
}
