//! `umqtt sub`: subscribe and print messages, like `mosquitto_sub`.
//!
//! Payloads are written as raw bytes (not re-encoded), one message per line, and stdout is
//! flushed after each message so that pipes see them at once. A closed stdout (`| head -1`)
//! ends the command quietly with status 0.
//!
//! With `--policy` the robust client subscribes and keeps the subscription across reconnects:
//! with `-c` (persistent session, needs `-i`) the broker keeps it and queues QoS 1/2 messages
//! meanwhile; with a clean session it is renewed on every connection. The command ends with an
//! error only when the policy gives up (`none` at the first failure, `deadline:D` after an
//! outage of D) or the broker refuses in a way retrying cannot fix.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use clap::Args;
use umqtt::Message;

use crate::common::{self, ConnectArgs, RobustArgs};
use crate::error::{io_message, CliError};
use crate::reconnect;

/// With a policy: longest single wait for a message, between checks of the policy's state.
const ROBUST_TICK: Duration = Duration::from_millis(100);
/// How often a blocking wait looks for Ctrl-C / SIGTERM.
const SIGNAL_TICK: Duration = Duration::from_millis(200);

/// Flags of `umqtt sub`.
#[derive(Args, Debug)]
pub struct SubArgs {
    /// Topic filter to subscribe to; repeat for several (the path of -L counts as one)
    #[arg(short = 't', long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,

    /// Maximum quality of service to receive: 0, 1 or 2
    #[arg(short = 'q', long = "qos", value_name = "QOS", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,

    /// Exit (status 0) after this many messages
    #[arg(short = 'C', long = "count", value_name = "COUNT",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Exit with status 27 if the command is still running after this many seconds
    #[arg(short = 'W', long = "timeout", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub timeout: Option<u64>,

    /// Print the topic before the payload: "topic payload"
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Do not print a newline after each payload
    #[arg(short = 'N', long = "no-eol")]
    pub no_eol: bool,

    /// Do not print stale messages: those the broker had retained before subscribing
    #[arg(short = 'R', long = "no-retained")]
    pub no_retained: bool,

    #[command(flatten)]
    pub connection: ConnectArgs,

    #[command(flatten)]
    pub robust: RobustArgs,
}

/// Runs `umqtt sub`.
pub fn run(args: SubArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let mut settings = args.connection.settings()?;
    let mut topics = args.topics.clone();
    topics.extend(settings.url_topic.clone());
    if topics.is_empty() {
        return Err(CliError::usage(
            "no topic given: use -t TOPIC (repeatable) or -L mqtt://host/TOPIC",
        ));
    }
    for topic in &topics {
        umqtt_core::topic::validate_topic_filter(topic)
            .map_err(|e| CliError::usage(format!("invalid topic filter {topic:?}: {e}")))?;
    }
    let qos = common::qos(args.qos);
    let time_limit = args.timeout.map(Duration::from_secs);
    let deadline = time_limit.map(|limit| started + limit);
    let timed_out = || CliError::TimedOut(time_limit.unwrap_or_default());
    let past_deadline = || deadline.is_some_and(|d| Instant::now() >= d);

    // With -W the whole command, connecting and subscribing included, ends in time (as
    // mosquitto_sub's alarm): no single wait may outlast it.
    if let Some(limit) = time_limit {
        let config = &mut settings.config;
        config.connect_timeout = config.connect_timeout.min(limit);
        config.response_timeout = config.response_timeout.min(limit);
    }
    let output = Output {
        verbose: args.verbose,
        end_of_line: !args.no_eol,
    };
    let filters: Vec<(&str, umqtt::QoS)> = topics.iter().map(|t| (t.as_str(), qos)).collect();
    let limit = args.count.unwrap_or(u64::MAX);
    if let Some(policy) = args.robust.policy {
        let (mut client, tracker) = reconnect::client(&settings, policy.for_subscribing(), None)?;
        for (filter, qos) in &filters {
            client.subscribe(filter, *qos)?;
        }
        let mut stdout = io::stdout().lock();
        let mut printed = 0;
        while printed < limit {
            if crate::signal::interrupted() {
                break;
            }
            tracker.check_fatal()?;
            if tracker.tally().refused.len() >= filters.len() {
                // As mosquitto_sub: nothing left to listen to.
                let _ = client.disconnect();
                return Err(CliError::failed("all subscription requests were denied"));
            }
            if tracker.tally().stopped {
                let detail = tracker.tally().last_failure.clone().unwrap_or_default();
                return Err(CliError::failed(format!(
                    "{detail} (--policy {policy} stopped reconnecting)"
                )));
            }
            let mut wait = ROBUST_TICK;
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = client.disconnect();
                    return Err(timed_out());
                }
                wait = wait.min(left);
            }
            let Some(message) = client.wait_msg(wait)? else {
                continue;
            };
            if args.no_retained && message.retain {
                continue;
            }
            match output.print(&mut stdout, &message) {
                Ok(()) => printed += 1,
                Err(e) => {
                    let _ = client.disconnect();
                    return output_error(&e);
                }
            }
        }
        let _ = client.disconnect();
        return Ok(());
    }

    let mut client =
        common::connect(&settings).map_err(|e| if past_deadline() { timed_out() } else { e })?;
    let mut stdout = io::stdout().lock();
    let mut printed = 0;
    if let Err(e) = client.subscribe_many(&filters) {
        // A broker may send messages before its SUBACK (MQTT 3.1.1 §3.8.4); the client has
        // acknowledged them, so they are printed before the failure is reported.
        while printed < limit {
            let Some(message) = client.take_queued_msg() else {
                break;
            };
            if args.no_retained && message.retain {
                continue;
            }
            if let Err(e) = output.print(&mut stdout, &message) {
                return output_error(&e);
            }
            printed += 1;
        }
        if printed >= limit {
            let _ = client.disconnect();
            return Ok(());
        }
        return Err(if past_deadline() {
            timed_out()
        } else {
            e.into()
        });
    }

    while printed < limit && !crate::signal::interrupted() {
        let message = match deadline {
            // In slices, so Ctrl-C / SIGTERM is noticed.
            None => match client.wait_msg_timeout(SIGNAL_TICK)? {
                Some(message) => message,
                None => continue,
            },
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match (!left.is_zero()).then(|| client.wait_msg_timeout(left)) {
                    Some(Ok(Some(message))) => message,
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(None)) | None => {
                        let _ = client.disconnect();
                        return Err(timed_out());
                    }
                }
            }
        };
        // A broker sets retain only on messages it held before the subscription, never on
        // live ones [MQTT-3.3.1-9], so retain = stale.
        if args.no_retained && message.retain {
            continue;
        }
        match output.print(&mut stdout, &message) {
            Ok(()) => printed += 1,
            Err(e) => {
                let _ = client.disconnect();
                return output_error(&e);
            }
        }
    }
    client.disconnect()?;
    Ok(())
}

/// A failed write to stdout: the reader is gone (`| head -1`), which ends the command
/// successfully, or a real error.
fn output_error(error: &io::Error) -> Result<(), CliError> {
    if error.kind() == io::ErrorKind::BrokenPipe {
        return Ok(());
    }
    Err(CliError::failed(format!(
        "unable to write to stdout: {}",
        io_message(error)
    )))
}

/// How messages are printed.
struct Output {
    verbose: bool,
    end_of_line: bool,
}

impl Output {
    /// Writes one message and flushes. As mosquitto_sub: `-v` prints `topic payload`, and
    /// `topic (null)` for an empty payload. Unlike mosquitto_sub, an empty payload without
    /// `-v` still prints its (empty) line, so that line-counting readers see every message.
    fn print(&self, out: &mut impl Write, message: &Message) -> io::Result<()> {
        if self.verbose {
            out.write_all(message.topic.as_bytes())?;
            out.write_all(b" ")?;
            if message.payload.is_empty() {
                out.write_all(b"(null)")?;
            }
        }
        out.write_all(&message.payload)?;
        if self.end_of_line {
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umqtt::QoS;

    fn message(topic: &str, payload: &[u8]) -> Message {
        Message {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos: QoS::AtMostOnce,
            retain: false,
            dup: false,
            packet_id: None,
        }
    }

    fn printed(verbose: bool, end_of_line: bool, message: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        Output {
            verbose,
            end_of_line,
        }
        .print(&mut out, message)
        .unwrap();
        out
    }

    #[test]
    fn formats() {
        let hello = message("a/b", b"hello");
        assert_eq!(printed(false, true, &hello), b"hello\n");
        assert_eq!(printed(true, true, &hello), b"a/b hello\n");
        assert_eq!(printed(false, false, &hello), b"hello");
        assert_eq!(printed(true, false, &hello), b"a/b hello");
        let empty = message("a/b", b"");
        assert_eq!(printed(false, true, &empty), b"\n");
        assert_eq!(printed(true, true, &empty), b"a/b (null)\n");
        let binary = message("t", &[0xff, 0x00, 0xfe]);
        assert_eq!(printed(false, true, &binary), [0xff, 0x00, 0xfe, b'\n']);
    }
}
