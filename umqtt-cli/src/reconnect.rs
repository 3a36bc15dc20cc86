//! The reconnecting client behind `--policy`: built from the same flags as the simple client,
//! and a [`Tracker`] that turns its events into what the command reports (messages delivered,
//! expired or dropped, the last connection failure, a refusal that retrying cannot fix).
//!
//! `-d` cannot log packets here (the robust client owns its transport); it logs the client's
//! events instead: connections, failed attempts, scheduled retries, settled messages.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use umqtt::outbox::DurableOutbox;
use umqtt::robust::{Client, DropReason, Event, FailureKind, LinkError, LinkFailure, RobustConfig};
use umqtt::ConnectReturnCode;

use crate::common::Settings;
use crate::error::{print_warning_line, quiet_panics, CliError};
use crate::policy::{CliPolicy, DurationText, PolicySpec};
use crate::property::{PropertySet, Target};

/// What the events said so far.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages acknowledged (QoS 1/2) or written (QoS 0).
    pub delivered: u64,
    /// Messages whose deadline passed.
    pub expired: u64,
    /// Dropped messages by reason.
    pub dropped: BTreeMap<&'static str, u64>,
    /// The last failed attempt or lost connection, for error messages.
    pub last_failure: Option<String>,
    /// A failure that retrying cannot fix: a permanent CONNACK refusal or an unusable local
    /// configuration.
    pub fatal: Option<Fatal>,
    /// The policy stopped retrying and nothing connected or re-armed an attempt since.
    pub stopped: bool,
    /// Topic filters the broker refused (SUBACK 0x80).
    pub refused: Vec<String>,
}

/// Why the command must stop retrying.
#[derive(Debug, Clone)]
pub enum Fatal {
    /// The broker refused with this code (bad credentials, not authorised…).
    Refused(ConnectReturnCode),
    /// An MQTT 5 broker refused with this reason code: the exit status is the code, as the
    /// plain client's and mosquitto's.
    Rejected(umqtt_core::packet::ReasonCode),
    /// The local configuration is unusable (CA file, key…).
    Configuration(String),
}

impl Tally {
    /// Messages that were not delivered.
    pub fn failed(&self) -> u64 {
        self.expired + self.dropped.values().sum::<u64>()
    }
}

/// Shared view of a client's events; the client's event handler writes, the command reads.
#[derive(Debug, Clone, Default)]
pub struct Tracker(Arc<Mutex<Tally>>);

impl Tracker {
    /// New work was handed to the client: the engine re-arms an attempt after a stop (a
    /// policy such as `BatteryAware` rests while nothing waits), so it is no longer stopped.
    pub fn rearmed(&self) {
        self.tally().stopped = false;
    }

    /// The tally so far.
    pub fn tally(&self) -> MutexGuard<'_, Tally> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An error if retrying cannot help.
    pub fn check_fatal(&self) -> Result<(), CliError> {
        match self.tally().fatal.clone() {
            None => Ok(()),
            Some(Fatal::Refused(code)) => Err(CliError::Refused(code)),
            Some(Fatal::Rejected(code)) => Err(CliError::Rejected(code)),
            Some(Fatal::Configuration(detail)) => Err(CliError::failed(detail)),
        }
    }

    fn record(&self, event: &Event) {
        let mut tally = self.tally();
        match event {
            Event::Connected { .. } => tally.stopped = false,
            Event::AttemptFailed { kind, error, .. } | Event::Disconnected { kind, error } => {
                let detail = describe_link(error);
                if tally.fatal.is_none() {
                    tally.fatal = match kind {
                        FailureKind::Refused(code) if kind.is_permanent() => Some(match error {
                            LinkError::Closed(umqtt::CloseReason::Rejected(reason)) => {
                                Fatal::Rejected(*reason)
                            }
                            _ => Fatal::Refused(*code),
                        }),
                        FailureKind::Configuration => Some(Fatal::Configuration(detail.clone())),
                        _ => None,
                    };
                }
                tally.last_failure = Some(detail);
            }
            Event::GaveUp { .. } => tally.stopped = true,
            // New work re-armed the retries after a stop (e.g. `BatteryAware` rests while
            // idle and retries once a message waits).
            Event::RetryScheduled { .. } => tally.stopped = false,
            Event::SubscriptionRefused { filter } => tally.refused.push(filter.clone()),
            Event::Delivered { .. } => tally.delivered += 1,
            Event::Expired { .. } => tally.expired += 1,
            Event::Dropped { reason, .. } => {
                *tally.dropped.entry(reason_text(*reason)).or_default() += 1
            }
            _ => {}
        }
    }

    /// `Ok` when all `total` messages were delivered, else one line saying how many were not
    /// and why.
    pub fn outcome(&self, total: u64, policy: PolicySpec) -> Result<(), CliError> {
        let tally = self.tally();
        let failed = tally.failed();
        if failed == 0 {
            return Ok(());
        }
        let mut why = Vec::new();
        if tally.expired > 0 {
            let within = match policy {
                PolicySpec::Deadline(limit) => format!(" within {}", DurationText(limit)),
                _ => String::new(),
            };
            why.push(format!("{} expired (not delivered{within})", tally.expired));
        }
        for (reason, count) in &tally.dropped {
            why.push(format!("{count} dropped ({reason})"));
        }
        let plural = if total == 1 { "" } else { "s" };
        let mut line = format!(
            "{failed} of {total} message{plural} not delivered: {}",
            why.join(", ")
        );
        if let Some(detail) = &tally.last_failure {
            line.push_str(&format!("; last error: {detail}"));
        }
        Err(CliError::Failed(line))
    }
}

fn reason_text(reason: DropReason) -> &'static str {
    match reason {
        DropReason::NotConnected => "not connected",
        DropReason::LinkLost => "connection lost before the acknowledgement",
        DropReason::PolicyStopped => "the policy stopped retrying",
        DropReason::QueueOverflow => "queue full",
        _ => "dropped",
    }
}

/// One line for a failed attempt or a lost link, from the typed error.
fn describe_link(error: &LinkError<LinkFailure>) -> String {
    match error {
        LinkError::Transport(failure) => crate::error::describe(failure.error()),
        LinkError::Closed(reason) => crate::error::describe(&umqtt::Error::from(*reason)),
        LinkError::Usage(error) => crate::error::describe(&umqtt::Error::Usage(*error)),
        other => other.to_string(),
    }
}

/// The library's error text without Rust's ` (os error N)` suffixes.
fn clean_detail(detail: &str) -> String {
    let mut text = detail.to_owned();
    while let Some(start) = text.find(" (os error ") {
        match text[start..].find(')') {
            Some(end) => text.replace_range(start..start + end + 1, ""),
            None => break,
        }
    }
    text
}

/// DISCONNECT with the `-D disconnect …` properties.
pub fn disconnect(client: &mut Client, properties: &PropertySet) -> Result<(), umqtt::Error> {
    client.disconnect_with(umqtt_core::packet::Disconnect::new(
        umqtt_core::packet::ReasonCode::Success,
        properties.get(Target::Disconnect),
    ))
}

/// Builds the robust client for these flags: the same connection settings as the simple
/// client, a clean session unless `-c`, and the durable outbox at `outbox` if given (messages
/// a previous run left there are loaded and go out first).
pub fn client(
    settings: &Settings,
    policy: CliPolicy,
    outbox: Option<&Path>,
) -> Result<(Client, Tracker), CliError> {
    let robust = RobustConfig {
        clean_session: settings.clean_session,
        ..RobustConfig::default()
    };
    let config = settings.config.clone();
    let mut client = match outbox {
        None => Client::with_robust_config(config, policy, robust),
        Some(path) => {
            // redb may trip an assertion on a damaged file; the outbox turns that into an
            // error, and the panic hook must not print it as a crash meanwhile.
            quiet_panics(|| {
                let store = DurableOutbox::open(path).map_err(umqtt::Error::from)?;
                Client::with_outbox(config, policy, robust, store)
            })
            .map_err(|e| CliError::failed(clean_detail(&crate::error::describe(&e))))?
        }
    };
    if let Some((topic, payload, qos, retain)) = &settings.will {
        client.set_last_will_with(
            topic,
            payload,
            *retain,
            *qos,
            settings.properties.get(Target::Will),
        )?;
    }
    let tracker = Tracker::default();
    let debug = settings.debug.then(|| settings.config.client_id.clone());
    let handler_tracker = tracker.clone();
    let persistent = !settings.clean_session;
    let mut link_was_up = false;
    client.set_event_handler(move |event| {
        handler_tracker.record(event);
        if let Event::Connected { .. } = event {
            // As mosquitto: a signal before the first CONNACK ends the process at once (255);
            // after it, the command's loop ends it with DISCONNECT and its report.
            crate::signal::connected();
        }
        if let Some(client_id) = &debug {
            log_event(client_id, event);
        } else {
            // As without --policy: one line when the link goes, one when it is back.
            match event {
                Event::Disconnected { error, .. } => {
                    link_was_up = true;
                    crate::link::notice(&format!(
                        "connection lost ({}); the policy decides when to reconnect",
                        describe_link(error)
                    ));
                }
                Event::Connected { .. } if link_was_up => crate::link::notice("reconnected"),
                _ => {}
            }
        }
        if let Event::SubscriptionRefused { filter } = event {
            print_warning_line(&format!(
                "the broker refused the subscription to {filter:?}"
            ));
        }
        if let (Event::SessionLost { .. }, true) = (event, persistent) {
            print_warning_line(
                "the broker had lost the session: subscriptions were renewed, but messages \
                 queued for this client meanwhile are gone",
            );
        }
    });
    Ok((client, tracker))
}

/// `-d` with a policy: one line per event, in the spirit of mosquitto's log.
fn log_event(client_id: &str, event: &Event) {
    let line = match event {
        Event::Connected {
            session_present,
            server,
        } => format!(
            "Client {client_id} connected to {server} (session present: {})",
            u8::from(*session_present)
        ),
        Event::Disconnected { error, .. } => {
            format!(
                "Client {client_id} lost the connection: {}",
                describe_link(error)
            )
        }
        Event::AttemptFailed {
            consecutive, error, ..
        } => format!(
            "Client {client_id} connection attempt failed ({consecutive} in a row): {}",
            describe_link(error)
        ),
        Event::RetryScheduled { delay } => {
            format!("Client {client_id} retrying in {}", seconds(*delay))
        }
        Event::GaveUp { .. } => format!("Client {client_id} stopped retrying (policy)"),
        Event::Delivered { id } => format!("Client {client_id} message {} delivered", id.0),
        Event::Expired { id } => format!("Client {client_id} message {} expired", id.0),
        Event::Dropped { id, reason } => format!(
            "Client {client_id} message {} dropped: {}",
            id.0,
            reason_text(*reason)
        ),
        Event::SessionLost { count } => {
            format!("Client {client_id} the broker had lost the session ({count} so far)")
        }
        other => format!("Client {client_id} {other:?}"),
    };
    let _ = writeln!(io::stderr().lock(), "{line}");
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use umqtt::robust::MessageId;
    use umqtt::CloseReason;

    fn closed(reason: CloseReason) -> LinkError<LinkFailure> {
        LinkError::Closed(reason)
    }

    #[test]
    fn os_error_suffixes_are_removed() {
        assert_eq!(
            clean_detail("cannot connect to 127.0.0.1:1: Connection refused (os error 111)"),
            "cannot connect to 127.0.0.1:1: Connection refused"
        );
        assert_eq!(clean_detail("plain"), "plain");
    }

    #[test]
    fn outcome_names_what_was_lost_and_why() {
        let tracker = Tracker::default();
        tracker.record(&Event::Delivered { id: MessageId(1) });
        assert!(tracker.outcome(1, PolicySpec::Guaranteed).is_ok());
        tracker.record(&Event::AttemptFailed {
            kind: FailureKind::TcpConnect,
            consecutive: 1,
            server: 0,
            error: closed(CloseReason::KeepAliveTimeout),
        });
        tracker.record(&Event::Expired { id: MessageId(2) });
        tracker.record(&Event::Dropped {
            id: MessageId(3),
            reason: DropReason::NotConnected,
        });
        let error = tracker
            .outcome(3, PolicySpec::Deadline(Duration::from_secs(1)))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "2 of 3 messages not delivered: 1 expired (not delivered within 1s), 1 dropped \
             (not connected); last error: the broker stopped answering (no PINGRESP in time)"
        );
    }

    #[test]
    fn permanent_refusals_are_fatal() {
        let tracker = Tracker::default();
        tracker.record(&Event::AttemptFailed {
            kind: FailureKind::Refused(ConnectReturnCode::ServerUnavailable),
            consecutive: 1,
            server: 0,
            error: closed(CloseReason::Refused(ConnectReturnCode::ServerUnavailable)),
        });
        assert!(tracker.check_fatal().is_ok());
        tracker.record(&Event::AttemptFailed {
            kind: FailureKind::Refused(ConnectReturnCode::NotAuthorized),
            consecutive: 2,
            server: 0,
            error: closed(CloseReason::Refused(ConnectReturnCode::NotAuthorized)),
        });
        assert_eq!(tracker.check_fatal().unwrap_err().exit_code(), 5);
    }

    #[test]
    fn an_mqtt5_refusal_exits_with_its_reason_code() {
        let tracker = Tracker::default();
        let reason = umqtt_core::packet::ReasonCode::BadAuthenticationMethod;
        tracker.record(&Event::AttemptFailed {
            kind: umqtt_core::robust::close_kind(CloseReason::Rejected(reason)),
            consecutive: 1,
            server: 0,
            error: closed(CloseReason::Rejected(reason)),
        });
        assert_eq!(tracker.check_fatal().unwrap_err().exit_code(), 0x8C);
    }
}
