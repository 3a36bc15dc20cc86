//! What the demo shows: a live status line per device while it runs (redrawn in place on a
//! terminal, printed every few seconds otherwise) and the final table.
//!
//! Every number comes from the records the devices' events filled in and from the observer's
//! counts; nothing is assumed from the plan.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use super::scenario::{Kind, Link, Observer, Outcome, Received, Record, Scenario, BUTTON_DEADLINE};
use super::Plan;

/// Redraw interval on a terminal.
const TTY_REFRESH: Duration = Duration::from_millis(200);
/// Status interval when stdout is not a terminal.
const PLAIN_REFRESH: Duration = Duration::from_secs(5);

/// When the scripted events really happened.
#[derive(Debug, Default)]
pub struct Timeline {
    /// The proxy went down.
    pub outage_began: Option<Instant>,
    /// The proxy came back.
    pub outage_ended: Option<Instant>,
    /// The devices' publishing time was over.
    pub devices_stopped: bool,
}

/// The live status.
pub struct Display {
    started: Instant,
    plan: Plan,
    tty: bool,
    /// Lines of the status block on screen (terminal only).
    drawn: usize,
    last: Option<Instant>,
}

impl Display {
    /// A display for a demo started at `started`.
    pub fn new(started: Instant, plan: Plan) -> Display {
        Display {
            started,
            plan,
            tty: io::stdout().is_terminal(),
            drawn: 0,
            last: None,
        }
    }

    fn stamp(&self) -> String {
        format!("[{:5.1}s]", self.started.elapsed().as_secs_f64())
    }

    /// A timeline event, printed above the status block.
    pub fn note(&mut self, text: &str) {
        let mut out = io::stdout().lock();
        self.clear(&mut out);
        let _ = writeln!(out, "{} {text}", self.stamp());
        let _ = out.flush();
        self.last = None;
    }

    /// Redraws (terminal) or prints (otherwise) the status when it is due.
    pub fn tick(&mut self, scenarios: &[Scenario], observer: &Observer) {
        let every = if self.tty { TTY_REFRESH } else { PLAIN_REFRESH };
        if self.last.is_some_and(|last| last.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        self.draw(scenarios, observer);
    }

    /// The last status, left on screen.
    pub fn finish(&mut self, scenarios: &[Scenario], observer: &Observer) {
        self.draw(scenarios, observer);
        self.drawn = 0;
    }

    fn clear(&mut self, out: &mut impl Write) {
        if self.tty && self.drawn > 0 {
            // Up to the first line of the block, then erase to the end of the screen.
            let _ = write!(out, "\x1b[{}F\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self, scenarios: &[Scenario], observer: &Observer) {
        let elapsed = self.started.elapsed();
        let network = if elapsed >= self.plan.outage_start && elapsed < self.plan.outage_end {
            format!(
                "network DOWN (back at {} s)",
                self.plan.outage_end.as_secs()
            )
        } else {
            "network up".to_owned()
        };
        let mut lines = vec![format!(
            "{} of {} s, {network}",
            self.stamp(),
            self.plan.duration.as_secs()
        )];
        for scenario in scenarios {
            let record = scenario.record.lock();
            lines.push(status_line(
                scenario.kind,
                &record,
                observer.distinct(scenario.kind),
            ));
        }
        let mut out = io::stdout().lock();
        self.clear(&mut out);
        for line in &lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        if self.tty {
            self.drawn = lines.len();
        }
    }
}

fn status_line(kind: Kind, record: &Record, received: u64) -> String {
    let link = match record.link {
        Link::Starting => "connecting".to_owned(),
        Link::Up => "link up".to_owned(),
        Link::Retrying(at) => format!(
            "link down, retry in {:.1}s",
            at.saturating_duration_since(Instant::now()).as_secs_f64()
        ),
        Link::Idle => "link down, until next msg".to_owned(),
    };
    let pending = record.sent()
        - (record.delivered() + record.dropped() + record.expired()).min(record.sent());
    format!(
        "  {:<11} {:<26} sent {:>3}  delivered {:>3}  received {:>3}  dropped {:>3}  expired {:>3}  pending {:>3}",
        kind.name(),
        link,
        record.sent(),
        record.delivered(),
        received,
        record.dropped(),
        record.expired(),
        pending
    )
}

/// One row of the final table.
struct Row {
    kind: Kind,
    sent: u64,
    delivered: u64,
    received: u64,
    duplicates: u64,
    dropped: u64,
    expired: u64,
    pending: u64,
    attempts: u64,
    /// Messages still waiting when the outage ended.
    kept: u64,
    /// From the end of the outage to the next connection.
    reconnect: Option<Duration>,
    /// From the end of the outage until the last kept message was delivered.
    recovery: Option<Duration>,
}

fn row(
    kind: Kind,
    record: &Record,
    received: Option<&HashMap<u64, u32>>,
    timeline: &Timeline,
) -> Row {
    let settled = record.delivered() + record.dropped() + record.expired();
    let (mut kept, mut recovery, mut reconnect) = (0, None, None);
    if let Some(back) = timeline.outage_ended {
        let backlog = record.published.iter().filter(|(id, (_, at))| {
            *at < back
                && record
                    .outcomes
                    .get(id)
                    .is_none_or(|(_, settled)| *settled > back)
        });
        for (id, _) in backlog {
            kept += 1;
            if let Some((Outcome::Delivered, at)) = record.outcomes.get(id) {
                let after = at.saturating_duration_since(back);
                recovery = Some(recovery.map_or(after, |r: Duration| r.max(after)));
            }
        }
        reconnect = record
            .connected_at
            .iter()
            .find(|at| **at >= back)
            .map(|at| at.saturating_duration_since(back));
    }
    Row {
        kind,
        sent: record.sent(),
        delivered: record.delivered(),
        received: received.map_or(0, |seqs| seqs.len() as u64),
        duplicates: received.map_or(0, |seqs| seqs.values().map(|n| u64::from(n - 1)).sum()),
        dropped: record.dropped(),
        expired: record.expired(),
        pending: record.sent().saturating_sub(settled),
        attempts: record.stats.map_or(record.failed_attempts, |s| s.attempts),
        kept,
        reconnect,
        recovery,
    }
}

fn seconds(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "-".to_owned(), |d| format!("{:.3}s", d.as_secs_f64()))
}

/// Prints the results table, the reasons for what was not delivered, and what the numbers
/// say about each device.
pub fn print_table(
    scenarios: &[Scenario],
    received: &Received,
    timeline: &Timeline,
    plan: Plan,
    proxy_connections: u64,
) {
    let rows: Vec<(Row, Vec<(String, u64)>)> = scenarios
        .iter()
        .map(|scenario| {
            let record = scenario.record.lock();
            let reasons = record
                .dropped_by_reason()
                .into_iter()
                .map(|(reason, n)| (reason.to_owned(), n))
                .collect();
            (
                row(
                    scenario.kind,
                    &record,
                    received.get(scenario.kind.name()),
                    timeline,
                ),
                reasons,
            )
        })
        .collect();
    let mut out = io::stdout().lock();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Results: devices published for {} s; network down from {} s to {} s",
        plan.duration.as_secs(),
        plan.outage_start.as_secs(),
        plan.outage_end.as_secs()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<12} {:>3}  {:<14} {:>5} {:>10} {:>9} {:>5} {:>8} {:>8} {:>8} {:>9} {:>5} {:>10} {:>9}",
        "scenario",
        "qos",
        "policy",
        "sent",
        "delivered",
        "received",
        "dups",
        "dropped",
        "expired",
        "pending",
        "attempts",
        "kept",
        "reconnect",
        "recovery"
    );
    for (row, _) in &rows {
        let _ = writeln!(
            out,
            "{:<12} {:>3}  {:<14} {:>5} {:>10} {:>9} {:>5} {:>8} {:>8} {:>8} {:>9} {:>5} {:>10} {:>9}",
            row.kind.name(),
            row.kind.qos() as u8,
            row.kind.policy_name(),
            row.sent,
            row.delivered,
            row.received,
            row.duplicates,
            row.dropped,
            row.expired,
            row.pending,
            row.attempts,
            row.kept,
            seconds(row.reconnect),
            seconds(row.recovery)
        );
    }
    let _ = writeln!(out);
    for legend in [
        "delivered: acknowledged by the broker (QoS 1) or written to the socket (QoS 0)",
        "received:  distinct messages the observer got; dups: extra copies (QoS 1 resends)",
        "attempts:  connection attempts, the battery cost",
        "kept:      messages still waiting when the network came back; reconnect: time from",
        "           then to the next connection; recovery: until the last kept one was delivered",
    ] {
        let _ = writeln!(out, "{legend}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Not delivered:");
    for (row, reasons) in &rows {
        let mut why = Vec::new();
        if row.dropped > 0 {
            let detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            why.push(format!("{} dropped ({})", row.dropped, detail.join(", ")));
        }
        if row.expired > 0 {
            why.push(format!(
                "{} expired (older than {} s before they could be delivered)",
                row.expired,
                BUTTON_DEADLINE.as_secs()
            ));
        }
        if row.pending > 0 {
            why.push(format!("{} still pending at the end", row.pending));
        }
        if why.is_empty() {
            why.push("none".to_owned());
        }
        let _ = writeln!(out, "  {:<12} {}", row.kind.name(), why.join("; "));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "What it shows:");
    for (row, _) in &rows {
        let _ = writeln!(out, "  {:<12} {}", row.kind.name(), story(row));
    }
    let _ = writeln!(
        out,
        "  (the network proxy accepted {proxy_connections} connections in all)"
    );
    let _ = out.flush();
}

/// What happened to the messages kept through the outage.
fn kept(row: &Row, waiting: &str) -> String {
    match (row.kept, row.recovery) {
        (0, _) => String::new(),
        (kept, Some(recovery)) => format!(
            "; {kept} still {waiting} when the network came back, all delivered {} later",
            seconds(Some(recovery))
        ),
        (kept, None) => format!("; {kept} still {waiting} when the network came back"),
    }
}

/// One sentence per device, from its numbers.
fn story(row: &Row) -> String {
    match row.kind {
        Kind::Temperature => format!(
            "{} of {} readings lost while the network was down, none retried (the next \
             reading replaces them); {} connection attempts.",
            row.dropped, row.sent, row.attempts
        ),
        Kind::Button => format!(
            "{} of {} presses expired (not delivered within {} s){}; {} connection attempts.",
            row.expired,
            row.sent,
            BUTTON_DEADLINE.as_secs(),
            kept(row, "pending"),
            row.attempts
        ),
        Kind::Alarm => format!(
            "{} of {} events delivered{}; {} connection attempts.",
            row.delivered,
            row.sent,
            kept(row, "waiting"),
            row.attempts
        ),
    }
}
