//! The outage scenario: when the broker is unreachable, how, and whether the device learns
//! when it is back.

use std::time::Duration;

use crate::policy::{parse_duration, DurationText};

use super::rng::Rng;

/// One outage: the broker unreachable from `start` to `end` (virtual ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// When the broker becomes unreachable.
    pub start: u64,
    /// When it is reachable again.
    pub end: u64,
    /// The device's own network went down and came back, so it sees a link-up event at `end`
    /// (a nudge, for the policy variants that use one). A broker-side or upstream outage has
    /// no such event.
    pub local: bool,
}

impl Outage {
    /// Its length in ms.
    pub fn length(&self) -> u64 {
        self.end - self.start
    }
}

/// The built-in mix: outages arrive with exponential gaps (a Poisson process) and last a
/// log-normal time — many short ones, some long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Mean time between the starts of two outages.
    pub mean_gap: Duration,
    /// Median outage length (the log-normal's e^μ).
    pub median: Duration,
    /// The log-normal's σ: 1.5 makes one outage in 20 about 12× the median.
    pub sigma: f64,
    /// Longest outage drawn (longer draws are cut to this).
    pub max: Duration,
    /// Share of outages that are the device's own network (ending with a link-up event).
    pub local_share: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            mean_gap: Duration::from_secs(12 * 3600),
            median: Duration::from_secs(5 * 60),
            sigma: 1.5,
            max: Duration::from_secs(12 * 3600),
            local_share: 0.5,
        }
    }
}

impl Mix {
    /// Draws the outages of `horizon` ms from `rng`; the last ends before `horizon`.
    pub fn draw(&self, rng: &mut Rng, horizon: u64) -> Vec<Outage> {
        let mut outages = Vec::new();
        let mut t = 0u64;
        loop {
            let gap = rng.exponential(self.mean_gap.as_millis() as f64) as u64;
            let start = t.saturating_add(gap.max(1000));
            let length = (self.median.as_millis() as f64 * (self.sigma * rng.normal()).exp())
                .clamp(1000.0, self.max.as_millis() as f64) as u64;
            let local = rng.unit() < self.local_share;
            let end = start.saturating_add(length);
            if end >= horizon {
                return outages;
            }
            outages.push(Outage { start, end, local });
            t = end;
        }
    }
}

/// A list of outages from `--outages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(pub Vec<Outage>);

/// `10m@1h,6h@5h` (LENGTH@START, in order, not overlapping).
pub fn parse_schedule(text: &str) -> Result<Schedule, String> {
    let mut outages: Vec<Outage> = Vec::new();
    for item in text.split(',') {
        let Some((length, start)) = item.split_once('@') else {
            return Err(format!(
                "outage '{item}' needs a start: LENGTH@START, e.g. '10m@1h'"
            ));
        };
        let length = positive(length)?;
        let start = parse_duration(start)?.as_millis() as u64;
        let outage = Outage {
            start,
            end: start.saturating_add(length),
            local: true,
        };
        if let Some(previous) = outages.last() {
            if outage.start < previous.end {
                return Err(format!(
                    "outage '{item}' starts before the previous one ends (at {})",
                    DurationText(Duration::from_millis(previous.end))
                ));
            }
        }
        outages.push(outage);
    }
    Ok(Schedule(outages))
}

/// A duration greater than zero, in ms.
pub fn positive(text: &str) -> Result<u64, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("duration '{text}' must be greater than zero"));
    }
    Ok(duration.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_are_checked() {
        let outages = parse_schedule("10m@1h,6h@5h").unwrap().0;
        assert_eq!(outages.len(), 2);
        assert_eq!(outages[0].start, 3_600_000);
        assert_eq!(outages[0].end, 4_200_000);
        assert_eq!(outages[1].length(), 6 * 3_600_000);
        for (text, expected) in [
            ("10m", "needs a start"),
            ("0s@1h", "greater than zero"),
            ("1h@1h,1h@90m", "starts before the previous one ends"),
            ("1x@1h", "unknown unit"),
        ] {
            let error = parse_schedule(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn the_mix_is_seeded_and_many_short_some_long() {
        let mix = Mix::default();
        let horizon = 1000 * 24 * 3_600_000;
        let a = mix.draw(&mut Rng::derive(1, 0), horizon);
        assert_eq!(a, mix.draw(&mut Rng::derive(1, 0), horizon));
        assert!(a.windows(2).all(|w| w[0].end <= w[1].start));
        let short = a.iter().filter(|o| o.length() <= 10 * 60_000).count();
        let long = a.iter().filter(|o| o.length() >= 3_600_000).count();
        assert!(
            short > a.len() / 2 && long > 0,
            "{short} {long} {}",
            a.len()
        );
    }
}
