//! One simulated device under one policy through the scenario: the library's engine and
//! policy joined to the testkit's simulated broker by the testkit's driver; this file only
//! schedules publishes, outages and nudges and counts what happened.

use std::collections::HashMap;
use std::time::Duration;

use umqtt_core::robust::{EngineConfig, Event};
use umqtt_core::session::SessionConfig;
use umqtt_core::Instant;
use umqtt_sim::device::{run, Device};
use umqtt_sim::{ServerMode, SimNet};

use super::devices::DeviceSpec;
use super::rng::Rng;
use super::rules::Rule;
use super::scenario::Outage;

/// How the broker is unreachable during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutageKind {
    /// Connections are refused at once (RST): `ServerMode::Refuse`, and established links
    /// are reset when it starts.
    Refuse,
    /// Packets vanish: `ServerMode::BlackHole`. Established links go silent (noticed by
    /// keepalive) and each attempt waits for the connect timeout.
    Blackhole,
}

/// What is fixed for every run of a report.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The outages, in order.
    pub outages: Vec<Outage>,
    /// How they make the broker unreachable.
    pub kind: OutageKind,
    /// Devices publish during `[0, publish_until)` ms.
    pub publish_until: u64,
    /// Runs end at this time (ms): pending messages may settle after `publish_until`.
    pub end: u64,
    /// One-way network latency.
    pub latency: Duration,
    /// MQTT keepalive, seconds.
    pub keep_alive: u16,
    /// Attempt (connect + CONNACK) timeout.
    pub connect_timeout: Duration,
    /// Width of the attempts-over-time bins, ms.
    pub bin: u64,
}

/// What one run counted.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Connection attempts (transport opens).
    pub attempts: u64,
    /// Attempts made while the broker was unreachable, or at the instant it returned.
    pub outage_attempts: u64,
    /// Transports that opened (TCP, then TLS, handshakes).
    pub opened: u64,
    /// Bursts of bytes written (publishes, acks, keepalive pings).
    pub writes: u64,
    /// Messages published.
    pub published: u64,
    /// Messages acknowledged.
    pub delivered: u64,
    /// Messages past their delivery deadline.
    pub expired: u64,
    /// Messages dropped.
    pub dropped: u64,
    /// Messages still waiting at the end.
    pub pending: u64,
    /// Delays (ms) from the network's return to the delivery of each message that was
    /// waiting when it returned; messages never delivered count up to the end of the run.
    pub delays: Vec<u64>,
    /// Attempts per time bin.
    pub attempts_over_time: Vec<u64>,
}

/// Runs `device` under `rule` (nudged at the end of local outages if `nudge`).
pub fn simulate(setup: &Setup, device: &DeviceSpec, rule: Rule, nudge: bool, seed: u64) -> Tally {
    let mut net = SimNet::new(seed);
    net.set_latency(setup.latency);
    net.broker_mut(0).set_history(false);
    let config = EngineConfig::new(SessionConfig {
        client_id: device.name.clone(),
        keep_alive: setup.keep_alive,
        connect_timeout: setup.connect_timeout,
        ..SessionConfig::default()
    });
    let mut dev = Device::new(config, rule.build(), seed);
    // Publish times depend only on the seed, never on the policy: every policy sees the same
    // presses and alarms.
    let mut publish_rng = Rng::derive(seed, 1);
    let mut next_publish = device.first(&mut publish_rng);
    let mut tally = Tally {
        attempts_over_time: vec![0; (setup.end / setup.bin + 1) as usize],
        ..Tally::default()
    };
    // Looked up by id, never iterated into the output in hash order (delays are sorted).
    let mut published_at: HashMap<u64, u64> = HashMap::new();
    // Outage edges: (time, index, is_end).
    let mut edges: Vec<(u64, usize, bool)> = Vec::new();
    for (i, o) in setup.outages.iter().enumerate() {
        edges.push((o.start, i, false));
        edges.push((o.end, i, true));
    }
    let mut edge = 0;
    let mut now = 0u64;
    let mut attempts_seen = 0;
    loop {
        let mut next = setup.end;
        if next_publish < setup.publish_until {
            next = next.min(next_publish);
        }
        if let Some(&(t, _, _)) = edges.get(edge) {
            next = next.min(t);
        }
        run(&mut net, &mut [&mut dev], now, next);
        now = next;
        let at = Instant::from_millis(now);
        while let Some(&(t, i, is_end)) = edges.get(edge) {
            if t > now {
                break;
            }
            edge += 1;
            if !is_end {
                match setup.kind {
                    OutageKind::Refuse => {
                        net.set_mode(at, 0, ServerMode::Refuse);
                        net.reset(at, 0);
                    }
                    OutageKind::Blackhole => net.set_mode(at, 0, ServerMode::BlackHole),
                }
            } else {
                net.set_mode(at, 0, ServerMode::Up);
                if nudge && setup.outages[i].local {
                    dev.service(&mut net, at);
                    dev.engine.nudge(at);
                }
            }
            dev.service(&mut net, at);
        }
        while next_publish <= now && next_publish < setup.publish_until {
            let id = dev.engine.publish_with(
                at,
                &device.name,
                b"reading",
                device.qos,
                false,
                device.delivery,
            );
            tally.published += 1;
            match id {
                Ok(id) => {
                    published_at.insert(id.0, now);
                }
                Err(_) => tally.dropped += 1,
            }
            // The next `run` services the device at this same instant first.
            next_publish = device.next_after(next_publish, &mut publish_rng);
        }
        for (t, event) in dev.events.drain(..) {
            match event {
                Event::Delivered { id } => {
                    tally.delivered += 1;
                    if let Some(p) = published_at.remove(&id.0) {
                        if let Some(delay) = delay_after_return(&setup.outages, p, t) {
                            tally.delays.push(delay);
                        }
                    }
                }
                Event::Expired { id } => {
                    tally.expired += 1;
                    published_at.remove(&id.0);
                }
                Event::Dropped { id, .. } => {
                    tally.dropped += 1;
                    published_at.remove(&id.0);
                }
                _ => {}
            }
        }
        for &t in &dev.opens[attempts_seen..] {
            tally.attempts += 1;
            if in_outage(&setup.outages, t) {
                tally.outage_attempts += 1;
            }
            tally.attempts_over_time[(t / setup.bin) as usize] += 1;
        }
        attempts_seen = dev.opens.len();
        if dev.opens.len() > 4096 {
            dev.opens.clear();
            attempts_seen = 0;
        }
        if now >= setup.end {
            break;
        }
    }
    tally.pending = published_at.len() as u64;
    for &p in published_at.values() {
        if let Some(delay) = delay_after_return(&setup.outages, p, setup.end) {
            tally.delays.push(delay);
        }
    }
    tally.opened = dev.opened;
    tally.writes = dev.writes;
    tally
}

/// Whether an attempt at `t` was made while the broker was unreachable (start excluded: the
/// link breaks then; end included: the attempt that finds the network back is part of the
/// outage's cost).
fn in_outage(outages: &[Outage], t: u64) -> bool {
    let i = outages.partition_point(|o| o.end < t);
    outages.get(i).is_some_and(|o| o.start < t && t <= o.end)
}

/// For a message published at `published` and settled at `settled`: the time from the last
/// network return it waited through to `settled`, if it waited through one.
fn delay_after_return(outages: &[Outage], published: u64, settled: u64) -> Option<u64> {
    let i = outages.partition_point(|o| o.end <= settled);
    let o = outages[..i].last()?;
    (published < o.end).then(|| settled - o.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_and_outage_windows() {
        let outages = [
            Outage {
                start: 100,
                end: 200,
                local: true,
            },
            Outage {
                start: 500,
                end: 900,
                local: false,
            },
        ];
        assert!(!in_outage(&outages, 100));
        assert!(in_outage(&outages, 150));
        assert!(in_outage(&outages, 200));
        assert!(!in_outage(&outages, 300));
        assert!(in_outage(&outages, 900));
        assert_eq!(delay_after_return(&outages, 150, 260), Some(60));
        assert_eq!(delay_after_return(&outages, 250, 260), None);
        assert_eq!(delay_after_return(&outages, 150, 950), Some(50));
        assert_eq!(delay_after_return(&outages, 50, 60), None);
    }
}
