//! `umqtt sub`: subscribe and print messages, like `mosquitto_sub`.
//!
//! Payloads are written as raw bytes (not re-encoded), one message per line, and stdout is
//! flushed after each message so that pipes see them at once. A closed stdout (`| head -1`)
//! ends the command quietly with status 0.
//!
//! Without `--policy`, as mosquitto_sub: the first connection must succeed; after that a lost
//! link is re-established every second (see `link`), announced by one line on stderr each way,
//! and the subscriptions are renewed unless the broker kept the session.
//!
//! With `--policy` the robust client subscribes and keeps the subscription across reconnects:
//! with `-c` (persistent session, needs `-i`) the broker keeps it and queues QoS 1/2 messages
//! meanwhile; with a clean session it is renewed on every connection. The command ends with an
//! error only when the policy gives up (`none` at the first failure, `deadline:D` after an
//! outage of D) or the broker refuses in a way retrying cannot fix.

use std::io;
use std::time::{Duration, Instant};

use clap::Args;
use umqtt::Message;

use crate::common::{self, ConnectArgs, RobustArgs};
use crate::error::{io_message, CliError};
use crate::link::{Link, Recovered};
use crate::output::{Printer, Stopped};
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
          allow_hyphen_values = true, value_parser = common::parse_qos)]
    pub qos: u8,

    /// Exit (status 0) after this many messages
    #[arg(short = 'C', long = "count", value_name = "COUNT",
          allow_hyphen_values = true, value_parser = parse_count)]
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

/// A `-C` value: a whole number of messages, 1 or more.
fn parse_count(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err("must be a whole number, 1 or more (1..)".to_owned()),
    }
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
        umqtt_core::topic::validate_topic_filter(topic).map_err(|e| {
            CliError::usage(format!(
                "invalid topic filter {}: {e}",
                crate::error::echo(topic)
            ))
        })?;
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
    let mut printer = Printer::stdout()
        .map_err(|e| CliError::failed(format!("cannot start the stdout writer: {e}")))?;
    if let Some(policy) = args.robust.policy {
        let (mut client, tracker) = reconnect::client(&settings, policy.for_subscribing(), None)?;
        for (filter, qos) in &filters {
            client.subscribe(filter, *qos)?;
        }
        let mut printed = 0;
        while printed < limit {
            if crate::signal::interrupted() {
                break;
            }
            if let Err(stopped) = printer.check() {
                let _ = client.disconnect();
                return stopped_printing(stopped);
            }
            tracker.check_fatal()?;
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
            match printer.print(output.format(&message)) {
                Ok(()) => printed += 1,
                Err(stopped) => {
                    let _ = client.disconnect();
                    return stopped_printing(stopped);
                }
            }
        }
        let finished = printer.finish();
        let _ = client.disconnect();
        return finished.or_else(stopped_printing);
    }

    // Without --policy: reconnect as mosquitto_sub does (see `link`).
    settings.watch_qos2 = qos == umqtt::QoS::ExactlyOnce;
    let mut link = Link::connect(&settings, settings.quiet).map_err(|e| {
        if past_deadline() {
            timed_out()
        } else {
            e
        }
    })?;
    match subscribe_all(&mut link, &filters, deadline, &timed_out) {
        Ok(true) => {}
        Ok(false) => {
            link.disconnect();
            return Ok(());
        }
        Err(e) => return Err(if past_deadline() { timed_out() } else { e }),
    }

    let mut printed = 0;
    while printed < limit && !crate::signal::interrupted() {
        if let Err(stopped) = printer.check() {
            link.disconnect();
            return stopped_printing(stopped);
        }
        // In slices, so Ctrl-C / SIGTERM is noticed.
        let mut wait = SIGNAL_TICK;
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                link.disconnect();
                return Err(timed_out());
            }
            wait = wait.min(left);
        }
        let message = match link.client().wait_msg_timeout(wait) {
            Ok(Some(message)) => message,
            Ok(None) => continue,
            Err(error) => {
                match link.recover(error, deadline)? {
                    Recovered::Connected { session_present } => {
                        // A resumed session keeps the subscriptions [MQTT-3.1.2-4].
                        if !session_present
                            && !subscribe_all(&mut link, &filters, deadline, &timed_out)?
                        {
                            break;
                        }
                    }
                    Recovered::Interrupted => break,
                    Recovered::DeadlinePassed => return Err(timed_out()),
                }
                continue;
            }
        };
        // A broker sets retain only on messages it held before the subscription, never on
        // live ones [MQTT-3.3.1-9], so retain = stale.
        if args.no_retained && message.retain {
            continue;
        }
        match printer.print(output.format(&message)) {
            Ok(()) => printed += 1,
            Err(stopped) => {
                link.disconnect();
                return stopped_printing(stopped);
            }
        }
    }
    finish_qos2_handshakes(&mut link, settings.config.response_timeout);
    let finished = printer.finish();
    link.disconnect();
    finished.or_else(stopped_printing)
}

/// Subscribes to every filter, reconnecting if the link is lost meanwhile; `false` if
/// interrupted.
fn subscribe_all(
    link: &mut Link,
    filters: &[(&str, umqtt::QoS)],
    deadline: Option<Instant>,
    timed_out: &dyn Fn() -> CliError,
) -> Result<bool, CliError> {
    loop {
        let error = match link.client().subscribe_many(filters) {
            Ok(_) => return Ok(true),
            Err(error) => error,
        };
        match link.recover(error, deadline)? {
            Recovered::Connected { .. } => continue,
            Recovered::Interrupted => return Ok(false),
            Recovered::DeadlinePassed => return Err(timed_out()),
        }
    }
}

/// Before DISCONNECT: lets every QoS 2 message already received finish its PUBREL / PUBCOMP
/// exchange, so the broker counts it as delivered [MQTT-4.3.3-2]. Messages arriving meanwhile
/// are not printed (the count is reached), as with mosquitto_sub.
fn finish_qos2_handshakes(link: &mut Link, limit: Duration) {
    let deadline = Instant::now() + limit;
    let open = |link: &mut Link| {
        link.client()
            .get_ref()
            .map_or(0, |stream| stream.open_qos2_handshakes())
    };
    while open(link) > 0 && Instant::now() < deadline && !crate::signal::interrupted() {
        if link.client().wait_msg_timeout(SIGNAL_TICK).is_err() {
            return;
        }
    }
}

/// Printing stopped: a closed stdout (`| head -1`) and a signal end the command successfully.
fn stopped_printing(stopped: Stopped) -> Result<(), CliError> {
    match stopped {
        Stopped::Interrupted => Ok(()),
        Stopped::Failed(error) => output_error(&error),
    }
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
    /// The bytes printed for one message. As mosquitto_sub: `-v` prints `topic payload`, and
    /// `topic (null)` for an empty payload. Unlike mosquitto_sub, an empty payload without
    /// `-v` still prints its (empty) line, so that line-counting readers see every message.
    fn format(&self, message: &Message) -> Vec<u8> {
        let mut out = Vec::with_capacity(message.topic.len() + message.payload.len() + 8);
        if self.verbose {
            out.extend_from_slice(message.topic.as_bytes());
            out.push(b' ');
            if message.payload.is_empty() {
                out.extend_from_slice(b"(null)");
            }
        }
        out.extend_from_slice(&message.payload);
        if self.end_of_line {
            out.push(b'\n');
        }
        out
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
        }
    }

    fn printed(verbose: bool, end_of_line: bool, message: &Message) -> Vec<u8> {
        Output {
            verbose,
            end_of_line,
        }
        .format(message)
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
