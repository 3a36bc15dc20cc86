//! The report: per device × policy, attempts, energy, outcomes and delivery delays, as a
//! table, as JSON, and which policies sit on the energy / p99-delay Pareto frontier.

use std::fmt::Write as _;

use super::energy::EnergyModel;
use super::run::Tally;

/// One row: a device under a policy (nudged or not), summed over the simulated instances.
#[derive(Debug, Clone)]
pub struct Row {
    /// Device name.
    pub device: String,
    /// Policy name.
    pub policy: String,
    /// Whether the device was nudged at the end of local outages.
    pub nudge: bool,
    /// The counts.
    pub tally: Tally,
    /// Energy, joules.
    pub energy_j: f64,
    /// Delay percentiles (ms): p50, p99, max; `None` without samples.
    pub delay: Option<[u64; 3]>,
}

impl Row {
    /// Sums `tallies` (already in instance order) into a row.
    pub fn new(
        device: &str,
        policy: String,
        nudge: bool,
        tallies: Vec<Tally>,
        energy: &EnergyModel,
    ) -> Row {
        let mut total = Tally::default();
        for t in tallies {
            total.attempts += t.attempts;
            total.outage_attempts += t.outage_attempts;
            total.opened += t.opened;
            total.writes += t.writes;
            total.published += t.published;
            total.delivered += t.delivered;
            total.expired += t.expired;
            total.dropped += t.dropped;
            total.pending += t.pending;
            total.delays.extend(t.delays);
            if total.attempts_over_time.len() < t.attempts_over_time.len() {
                total
                    .attempts_over_time
                    .resize(t.attempts_over_time.len(), 0);
            }
            for (sum, n) in total
                .attempts_over_time
                .iter_mut()
                .zip(&t.attempts_over_time)
            {
                *sum += n;
            }
        }
        total.delays.sort_unstable();
        let delay = percentiles(&total.delays);
        let energy_j = energy.millijoules(total.attempts, total.opened, total.writes) / 1000.0;
        Row {
            device: device.to_string(),
            policy,
            nudge,
            tally: total,
            energy_j,
            delay,
        }
    }

    /// The policy's label, with `+nudge` when nudged.
    pub fn label(&self) -> String {
        if self.nudge {
            format!("{} +nudge", self.policy)
        } else {
            self.policy.clone()
        }
    }

    /// p99 delay in ms (0 without samples).
    pub fn p99(&self) -> u64 {
        self.delay.map_or(0, |d| d[1])
    }
}

/// Nearest-rank p50, p99 and max of sorted samples.
pub fn percentiles(sorted: &[u64]) -> Option<[u64; 3]> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = |q: f64| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some([rank(0.5), rank(0.99), sorted[n - 1]])
}

/// For each row, whether no other row has both less or equal energy and less or equal p99
/// delay, one of them strictly less.
pub fn pareto(rows: &[&Row]) -> Vec<bool> {
    rows.iter()
        .map(|a| {
            !rows.iter().any(|b| {
                b.energy_j <= a.energy_j
                    && b.p99() <= a.p99()
                    && (b.energy_j < a.energy_j || b.p99() < a.p99())
            })
        })
        .collect()
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Lines describing the scenario, the devices and the model.
    pub header: Vec<(String, String)>,
    /// Hours of outage per device instance.
    pub outage_hours: f64,
    /// Simulated days per device instance.
    pub days: f64,
    /// Device instances per device kind.
    pub instances: u32,
    /// The device whose rows the Pareto frontier and the chart's scatter use.
    pub focus: String,
    /// Width of an attempts-over-time bin, hours.
    pub bin_hours: f64,
    /// The rows, device by device, policies in order.
    pub rows: Vec<Row>,
}

impl Report {
    /// The focus device's rows and whether each is on the Pareto frontier.
    pub fn frontier(&self) -> Vec<(&Row, bool)> {
        let rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.device == self.focus)
            .collect();
        let on = pareto(&rows);
        rows.into_iter().zip(on).collect()
    }

    fn on_frontier(&self, row: &Row) -> bool {
        row.device == self.focus
            && self
                .frontier()
                .iter()
                .any(|(r, on)| *on && r.label() == row.label())
    }

    fn per_outage_hour(&self, row: &Row) -> f64 {
        let hours = self.outage_hours * self.instances as f64;
        if hours > 0.0 {
            row.tally.outage_attempts as f64 / hours
        } else {
            0.0
        }
    }

    /// The table printed on stdout.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.header {
            let _ = writeln!(out, "{key}: {value}");
        }
        let _ = writeln!(out);
        let columns = [
            "device",
            "policy",
            "attempts",
            "in outages",
            "/outage h",
            "energy J",
            "J/day",
            "published",
            "delivered",
            "expired",
            "dropped",
            "pending",
            "p50 s",
            "p99 s",
            "max s",
            "pareto",
        ];
        let mut lines: Vec<Vec<String>> = vec![columns.iter().map(|c| c.to_string()).collect()];
        let frontier: Vec<String> = self
            .frontier()
            .iter()
            .filter(|(_, on)| *on)
            .map(|(r, _)| r.label())
            .collect();
        for row in &self.rows {
            let t = &row.tally;
            let secs = |ms: u64| format!("{:.1}", ms as f64 / 1000.0);
            let (p50, p99, max) = match row.delay {
                Some([a, b, c]) => (secs(a), secs(b), secs(c)),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let device_days = self.days * self.instances as f64;
            lines.push(vec![
                row.device.clone(),
                row.label(),
                t.attempts.to_string(),
                t.outage_attempts.to_string(),
                format!("{:.1}", self.per_outage_hour(row)),
                format!("{:.1}", row.energy_j),
                format!("{:.2}", row.energy_j / device_days),
                t.published.to_string(),
                t.delivered.to_string(),
                t.expired.to_string(),
                t.dropped.to_string(),
                t.pending.to_string(),
                p50,
                p99,
                max,
                if row.device == self.focus && frontier.contains(&row.label()) {
                    "*".into()
                } else {
                    String::new()
                },
            ]);
        }
        let widths: Vec<usize> = (0..columns.len())
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (n, line) in lines.iter().enumerate() {
            if n > 1 && line[0] != lines[n - 1][0] {
                let _ = writeln!(out);
            }
            let mut text = String::new();
            for (c, cell) in line.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                if c < 2 {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad));
                } else {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                }
                text.push_str("  ");
            }
            let _ = writeln!(out, "{}", text.trim_end());
        }
        let _ = writeln!(
            out,
            "\nattempts \"in outages\": attempts while the broker was unreachable, the one that found it back included; \
             delays: from the network's return to the delivery of each message waiting then (never delivered: counted to the end); \
             pareto (*): not beaten on both energy and p99 delay by another policy, for the {} device",
            self.focus
        );
        out
    }

    /// The report as JSON (keys in a fixed order, numbers with fixed decimals).
    pub fn json(&self) -> String {
        let mut out = String::from("{\n  \"scenario\": {");
        for (n, (key, value)) in self.header.iter().enumerate() {
            let _ = write!(
                out,
                "{}\n    {}: {}",
                if n > 0 { "," } else { "" },
                quote(key),
                quote(value)
            );
        }
        let _ = write!(
            out,
            "\n  }},\n  \"days\": {:.3},\n  \"instances\": {},\n  \"outage_hours\": {:.3},\n  \"pareto_device\": {},\n  \"bin_hours\": {:.3},\n  \"rows\": [",
            self.days,
            self.instances,
            self.outage_hours,
            quote(&self.focus),
            self.bin_hours
        );
        for (n, row) in self.rows.iter().enumerate() {
            let t = &row.tally;
            let delay = |i: usize| match row.delay {
                Some(d) => format!("{:.3}", d[i] as f64 / 1000.0),
                None => "null".into(),
            };
            let bins: Vec<String> = t.attempts_over_time.iter().map(u64::to_string).collect();
            let _ = write!(
                out,
                "{}\n    {{\"device\": {}, \"policy\": {}, \"nudge\": {}, \"attempts\": {}, \"outage_attempts\": {}, \
                 \"attempts_per_outage_hour\": {:.3}, \"transports_opened\": {}, \"writes\": {}, \"energy_j\": {:.3}, \
                 \"published\": {}, \"delivered\": {}, \"expired\": {}, \"dropped\": {}, \"pending\": {}, \
                 \"delay_samples\": {}, \"delay_p50_s\": {}, \"delay_p99_s\": {}, \"delay_max_s\": {}, \
                 \"pareto\": {}, \"attempts_over_time\": [{}]}}",
                if n > 0 { "," } else { "" },
                quote(&row.device),
                quote(&row.policy),
                row.nudge,
                t.attempts,
                t.outage_attempts,
                self.per_outage_hour(row),
                t.opened,
                t.writes,
                row.energy_j,
                t.published,
                t.delivered,
                t.expired,
                t.dropped,
                t.pending,
                t.delays.len(),
                delay(0),
                delay(1),
                delay(2),
                self.on_frontier(row),
                bins.join(", ")
            );
        }
        out.push_str("\n  ]\n}\n");
        out
    }
}

/// A JSON string literal.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(policy: &str, energy_j: f64, p99: u64) -> Row {
        Row {
            device: "alarm".into(),
            policy: policy.into(),
            nudge: false,
            tally: Tally::default(),
            energy_j,
            delay: Some([0, p99, p99]),
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentiles(&samples), Some([50, 99, 100]));
        assert_eq!(percentiles(&[7]), Some([7, 7, 7]));
        assert_eq!(percentiles(&[]), None);
    }

    #[test]
    fn pareto_keeps_the_unbeaten() {
        let rows = [
            row("a", 1.0, 100),
            row("b", 2.0, 50),
            row("c", 2.0, 100),
            row("d", 0.5, 100),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        assert_eq!(pareto(&refs), vec![false, true, false, true]);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
