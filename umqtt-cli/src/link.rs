//! The default without `--policy`: reconnect as mosquitto_pub -l / mosquitto_sub do.
//!
//! libmosquitto's `loop_forever` (which both mosquitto clients run) reconnects a lost link
//! every second, forever, once the first connection has succeeded; a first connection that
//! fails ends the command. [`Link`] does the same on the simple client, so that `-d` keeps its
//! packet log: the first [`Link::connect`] must succeed, and [`Link::recover`] brings a lost
//! link back, asking the library's [`FixedDelay`] policy (1 s) when to try again and stopping
//! only for a failure it calls permanent (bad credentials, not authorised, a local
//! configuration error) — with a hint that `--policy` chooses other behaviours. As
//! `loop_forever`, a protocol violation by the broker or an incoming message larger than
//! `--max-packet-size` ends the command instead of reconnecting.
//!
//! The user sees one line on stderr when the link is lost and one when it is back (silenced by
//! `--quiet`).

use std::io::{self, Write as _};
use std::thread;
use std::time::{Duration, Instant};

use umqtt::robust::{Decision, Failure, FixedDelay, ReconnectPolicy};

use crate::common::{self, CliClient, ConnectError, Settings};
use crate::error::{describe, CliError};

/// libmosquitto's default reconnect delay (`reconnect_delay` 1 s, no exponential backoff).
pub const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How often a wait between attempts looks for Ctrl-C / SIGTERM.
const SIGNAL_TICK: Duration = Duration::from_millis(50);

/// A simple client that comes back after a lost link.
pub struct Link {
    settings: Settings,
    client: CliClient,
    policy: FixedDelay,
}

/// How [`Link::recover`] ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// Connected again; whether the broker resumed the session.
    Connected {
        /// The broker kept the session (and so the subscriptions and in-flight messages).
        session_present: bool,
    },
    /// Ctrl-C / SIGTERM arrived while reconnecting.
    Interrupted,
    /// The caller's deadline passed while reconnecting.
    DeadlinePassed,
}

impl Link {
    /// Connects once; a failure is returned as is (as mosquitto: no retry before the first
    /// connection).
    pub fn connect(settings: &Settings) -> Result<Link, CliError> {
        let (client, _) = common::try_connect(settings)?;
        Ok(Link {
            settings: settings.clone(),
            client,
            policy: FixedDelay {
                delay: RECONNECT_DELAY,
            },
        })
    }

    /// The settings it connects with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The connected client.
    pub fn client(&mut self) -> &mut CliClient {
        &mut self.client
    }

    /// After `error` from the client: if it means the link is gone, says so on stderr and
    /// reconnects (every [`RECONNECT_DELAY`]) until it is back, a signal arrives or
    /// `deadline` passes. Any other error, or a reconnection failure that retrying cannot fix,
    /// is returned.
    pub fn recover(
        &mut self,
        error: umqtt::Error,
        deadline: Option<Instant>,
    ) -> Result<Recovered, CliError> {
        // As libmosquitto's loop_forever, which returns on MOSQ_ERR_PROTOCOL and
        // MOSQ_ERR_PAYLOAD_SIZE instead of reconnecting: a broker that breaks the protocol, or
        // a message larger than the configured maximum (which a persistent session would
        // redeliver at every connection), ends the command.
        let fatal = matches!(
            error,
            umqtt::Error::Decode(_)
                | umqtt::Error::Protocol(_)
                | umqtt::Error::PacketTooLarge { .. }
        );
        if fatal || !error.is_connection_lost() {
            return Err(error.into());
        }
        self.say(&format!(
            "connection lost ({}); reconnecting",
            describe(&error)
        ));
        let outage_started = Instant::now();
        let mut consecutive = 0u32;
        loop {
            if crate::signal::interrupted() {
                return Ok(Recovered::Interrupted);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Recovered::DeadlinePassed);
            }
            // The same client: its session (unacknowledged messages, packet ids) carries on.
            match common::reconnect(&mut self.client, &self.settings) {
                Ok(session_present) => {
                    self.say("reconnected");
                    return Ok(Recovered::Connected { session_present });
                }
                Err(failure) => {
                    consecutive += 1;
                    let decision = self.policy.on_failure(&Failure::new(
                        failure.kind(),
                        consecutive,
                        outage_started.elapsed(),
                    ));
                    let Decision::RetryAfter(delay) = decision else {
                        // As mosquitto: a refusal ends the command with the CONNACK code.
                        return Err(match failure {
                            ConnectError::Client(umqtt::Error::ConnectionRefused(code)) => {
                                CliError::Refused(code)
                            }
                            ConnectError::Client(umqtt::Error::ConnectionRejected(code)) => {
                                CliError::Rejected(code)
                            }
                            other => CliError::failed(format!(
                                "{other} (while reconnecting after a lost connection; \
                                 retrying cannot fix this; --policy chooses how to reconnect)"
                            )),
                        });
                    };
                    if self.settings.debug {
                        self.say(&format!(
                            "reconnect attempt {consecutive} failed: {failure}"
                        ));
                    }
                    sleep_unless_interrupted(delay, deadline);
                }
            }
        }
    }

    /// Sends DISCONNECT if connected; errors are ignored (the command is ending).
    pub fn disconnect(&mut self) {
        if self.client.is_connected() {
            let _ = common::disconnect(&mut self.client, &self.settings);
        }
    }

    fn say(&self, text: &str) {
        notice(text);
    }
}

/// `umqtt: <text>` on stderr unless `--quiet`: the link notices, with or without `--policy`.
pub fn notice(text: &str) {
    if !crate::error::is_quiet() {
        let _ = writeln!(io::stderr().lock(), "umqtt: {text}");
    }
}

/// Sleeps `delay` (cut at `deadline`), waking early for Ctrl-C / SIGTERM.
fn sleep_unless_interrupted(delay: Duration, deadline: Option<Instant>) {
    let mut end = Instant::now() + delay;
    if let Some(deadline) = deadline {
        end = end.min(deadline);
    }
    while !crate::signal::interrupted() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        thread::sleep(left.min(SIGNAL_TICK));
    }
}
