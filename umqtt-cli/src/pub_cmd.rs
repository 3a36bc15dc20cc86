//! `umqtt pub`: publish one message, or one per stdin line, like `mosquitto_pub`.
//!
//! Without `--policy` the simple client publishes and a lost connection ends the command. With
//! `--policy` the robust client does: each message gets the policy's delivery contract, `-l`
//! keeps reading lines while the client reconnects in the background, and the command exits
//! 0 only once every message is delivered (else 1, naming how many were dropped or expired).
//! `--outbox FILE` keeps guaranteed messages on disk until acknowledged, so a run that was
//! killed leaves them for the next run with the same file, which sends them first.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::Duration;

use clap::Args;
use umqtt::robust::ReconnectPolicy as _;
use umqtt::QoS;

use crate::common::{self, os_bytes, CliClient, ConnectArgs, RobustArgs, Settings};
use crate::error::{io_message, CliError};
use crate::policy::PolicySpec;
use crate::reconnect;

/// How often `-l` drives the connection (keepalive, PINGRESP) while stdin is quiet.
const IDLE_TICK: Duration = Duration::from_millis(200);
/// Lines read ahead of the publisher; the reader blocks beyond this.
const LINE_QUEUE: usize = 64;
/// With a policy: how long one pass drives the robust client between looks at stdin.
const ROBUST_TICK: Duration = Duration::from_millis(10);
/// With a policy: most lines published in one call (one outbox commit).
const BATCH: usize = 256;
/// With a policy: stdin is not read while this many messages wait for delivery.
const MAX_PENDING: usize = 10_000;

/// Flags of `umqtt pub`.
#[derive(Args, Debug)]
pub struct PubArgs {
    /// Topic to publish on (or the path of -L)
    #[arg(short = 't', long = "topic", value_name = "TOPIC")]
    pub topic: Option<String>,

    /// Quality of service: 0, 1 or 2
    #[arg(short = 'q', long = "qos", value_name = "QOS", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,

    /// Ask the broker to retain the message
    #[arg(short = 'r', long = "retain")]
    pub retain: bool,

    #[command(flatten)]
    pub source: MessageSource,

    #[command(flatten)]
    pub connection: ConnectArgs,

    #[command(flatten)]
    pub robust: RobustArgs,

    /// Keep guaranteed messages in this file until the broker acknowledges them; a later run
    /// with the same file sends what a killed run left first (needs --policy guaranteed,
    /// fixed:… or backoff:…)
    #[arg(long = "outbox", value_name = "FILE", help_heading = "Reconnection")]
    pub outbox: Option<PathBuf>,

    /// Print `published <message>` on stdout once each message is accepted: with --outbox,
    /// once it is on disk; with a policy, once queued; else once sent (QoS 0) or
    /// acknowledged (QoS 1/2)
    #[arg(long = "confirm", help_heading = "Reconnection")]
    pub confirm: bool,
}

/// Where the message comes from: exactly one of these.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
#[command(next_help_heading = "Message (exactly one)")]
pub struct MessageSource {
    /// The message itself
    #[arg(short = 'm', long = "message", value_name = "MESSAGE")]
    pub message: Option<OsString>,

    /// Send the content of this file as one message
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Send an empty (zero-length) message
    #[arg(short = 'n', long = "null-message")]
    pub null_message: bool,

    /// Send all of stdin as one message
    #[arg(short = 's', long = "stdin-file")]
    pub stdin_file: bool,

    /// Send each line of stdin as a message (without its newline), on one connection
    #[arg(short = 'l', long = "stdin-line")]
    pub stdin_line: bool,
}

/// Runs `umqtt pub`.
pub fn run(args: PubArgs) -> Result<(), CliError> {
    let settings = args.connection.settings()?;
    let topic = match (&args.topic, &settings.url_topic) {
        (Some(_), Some(_)) => {
            return Err(CliError::usage(
                "give the topic either with -t or in the -L URL, not both",
            ))
        }
        (Some(topic), None) | (None, Some(topic)) => topic.clone(),
        (None, None) => {
            return Err(CliError::usage(
                "no topic given: use -t TOPIC (or -L mqtt://host/TOPIC)",
            ))
        }
    };
    umqtt_core::topic::validate_topic_name(&topic)
        .map_err(|e| CliError::usage(format!("invalid topic {topic:?}: {e}")))?;
    if args.outbox.is_some() && !args.robust.policy.is_some_and(|p| p.guarantees_delivery()) {
        return Err(CliError::usage(
            "--outbox needs a policy that keeps messages until delivered: --policy guaranteed, \
             fixed:… or backoff:…",
        ));
    }
    let qos = common::qos(args.qos);

    // Read the message before connecting, so a missing or too large file costs no connection.
    let max_payload = umqtt_core::packet::max_payload_len(&topic, qos);
    let single = if args.source.stdin_line {
        None
    } else {
        Some(read_message(&args.source, max_payload)?)
    };
    let message = Publication {
        topic: &topic,
        qos,
        retain: args.retain,
        confirm: args.confirm,
    };
    if let Some(policy) = args.robust.policy {
        return publish_robust(&args, &settings, policy, &message, single);
    }

    let mut client = common::connect(&settings)?;
    match single {
        Some(payload) => {
            // The client copies the message (into its transmit buffer, or its stored copy
            // until acknowledged); ours is dropped before waiting, unless --confirm prints it,
            // so a large payload is held once while it is sent.
            let packet_id = client.publish_nowait(&topic, &payload, qos, args.retain)?;
            let confirmation = args.confirm.then_some(payload);
            if packet_id.is_some() {
                client.wait_all_published(settings.config.response_timeout)?;
            } else {
                client.flush()?;
            }
            if let Some(payload) = confirmation {
                message.confirmed(&payload);
            }
        }
        None => publish_lines(&mut client, &message)?,
    }
    client.disconnect()?;
    Ok(())
}

/// Where and how every message of this run goes.
struct Publication<'a> {
    topic: &'a str,
    qos: QoS,
    retain: bool,
    /// `--confirm`.
    confirm: bool,
}

impl Publication<'_> {
    /// `--confirm`: `published <payload>` on stdout, flushed. A closed stdout is ignored:
    /// the confirmation is for whoever still listens.
    fn confirmed(&self, payload: &[u8]) {
        if self.confirm {
            let mut stdout = io::stdout().lock();
            let _ = stdout
                .write_all(b"published ")
                .and_then(|()| stdout.write_all(payload))
                .and_then(|()| stdout.write_all(b"\n"))
                .and_then(|()| stdout.flush());
        }
    }
}

/// With `--policy`: the robust client publishes, reconnecting as the policy says, and the
/// command ends once every message (this run's and those a killed run left in the outbox) is
/// settled.
fn publish_robust(
    args: &PubArgs,
    settings: &Settings,
    policy: PolicySpec,
    message: &Publication<'_>,
    single: Option<Vec<u8>>,
) -> Result<(), CliError> {
    let policy_impl = policy.for_publishing();
    let delivery = policy_impl.default_delivery();
    let (mut client, tracker) = reconnect::client(settings, policy_impl, args.outbox.as_deref())?;
    // Left by an earlier run in the outbox; sent first.
    let restored = client.pending() as u64;
    let mut published = 0u64;
    match single {
        Some(payload) => {
            client.publish(message.topic, &payload, message.qos, message.retain)?;
            published += 1;
            message.confirmed(&payload);
        }
        None => {
            let lines = spawn_line_reader()?;
            let mut end_of_input = false;
            while !end_of_input && !crate::signal::interrupted() {
                tracker.check_fatal()?;
                let mut batch = Vec::new();
                if client.pending() < MAX_PENDING {
                    while batch.len() < BATCH {
                        match lines.try_recv() {
                            Ok(Ok(line)) => batch.push(line),
                            Ok(Err(e)) => return Err(stdin_error(&e)),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                end_of_input = true;
                                break;
                            }
                        }
                    }
                }
                if batch.is_empty() {
                    if !end_of_input {
                        client.run_for(ROBUST_TICK)?;
                    }
                    continue;
                }
                let messages: Vec<(&str, &[u8])> = batch
                    .iter()
                    .map(|line| (message.topic, line.as_slice()))
                    .collect();
                client.publish_batch(&messages, message.qos, message.retain, delivery)?;
                published += batch.len() as u64;
                for line in &batch {
                    message.confirmed(line);
                }
            }
        }
    }
    // Every message ends delivered, expired or dropped; guaranteed ones wait for the broker.
    while client.pending() > 0 && !crate::signal::interrupted() {
        tracker.check_fatal()?;
        if tracker.tally().stopped {
            // Left: guaranteed messages after a failure the policy deems permanent, or QoS 2
            // messages the broker owns (PUBREC) on a link that is gone.
            break;
        }
        client.run_for(ROBUST_TICK)?;
    }
    let undelivered = client.pending() as u64;
    let _ = client.disconnect();
    if undelivered > 0 && crate::signal::interrupted() {
        let kept = if args.outbox.is_some() {
            " (kept in the outbox)"
        } else {
            ""
        };
        return Err(CliError::failed(format!(
            "interrupted: {undelivered} message(s) not delivered{kept}"
        )));
    }
    if undelivered > 0 {
        let detail = tracker.tally().last_failure.clone().unwrap_or_default();
        return Err(CliError::failed(format!(
            "{undelivered} message(s) not delivered: the policy stopped retrying: {detail}"
        )));
    }
    tracker.outcome(published + restored, policy)
}

fn stdin_error(error: &io::Error) -> CliError {
    CliError::failed(format!("unable to read stdin: {}", io_message(error)))
}

/// Starts the thread that reads stdin lines (see [`read_lines`]).
fn spawn_line_reader() -> Result<Receiver<io::Result<Vec<u8>>>, CliError> {
    let (sender, lines) = mpsc::sync_channel::<io::Result<Vec<u8>>>(LINE_QUEUE);
    thread::Builder::new()
        .name("stdin-lines".to_owned())
        .spawn(move || read_lines(io::stdin().lock(), &sender))
        .map_err(|e| CliError::failed(format!("cannot start the stdin reader: {e}")))?;
    Ok(lines)
}

/// The message of `-m`, `-f`, `-s` or `-n`. A file or stdin larger than `max_payload` (what one
/// PUBLISH can carry on this topic at this QoS `[MQTT-2.2.3]`) is refused before it is read
/// into memory: from the file's size, or after reading one byte more than the maximum.
fn read_message(source: &MessageSource, max_payload: usize) -> Result<Vec<u8>, CliError> {
    let too_large = |what: &str, size: Option<u64>| {
        let size = size.map(|n| format!(" ({n} bytes)")).unwrap_or_default();
        CliError::failed(format!(
            "{what}{size} is larger than the largest MQTT payload for this topic and QoS \
             ({max_payload} bytes)"
        ))
    };
    if let Some(message) = &source.message {
        Ok(os_bytes(message))
    } else if let Some(path) = &source.file {
        let unreadable = |e: io::Error| {
            CliError::failed(format!(
                "unable to read file {}: {}",
                path.display(),
                io_message(&e)
            ))
        };
        let file = fs::File::open(path).map_err(unreadable)?;
        let size = file.metadata().map_err(unreadable)?.len();
        if size > max_payload as u64 {
            return Err(too_large(&format!("file {}", path.display()), Some(size)));
        }
        // The file may grow between the size check and the read.
        read_at_most(file, max_payload)
            .map_err(unreadable)?
            .ok_or_else(|| too_large(&format!("file {}", path.display()), None))
    } else if source.stdin_file {
        read_at_most(io::stdin().lock(), max_payload)
            .map_err(|e| CliError::failed(format!("unable to read stdin: {}", io_message(&e))))?
            .ok_or_else(|| too_large("stdin", None))
    } else {
        // -n; clap guarantees exactly one source.
        Ok(Vec::new())
    }
}

/// All of `input` if it holds at most `max` bytes; `None` (after reading `max + 1`) if more.
fn read_at_most(input: impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut payload = Vec::new();
    input.take(max as u64 + 1).read_to_end(&mut payload)?;
    Ok((payload.len() <= max).then_some(payload))
}

/// `-l`: one message per line of stdin until end of input. Stdin is read on its own thread so
/// the connection keeps being driven (keepalive) while no line comes.
fn publish_lines(client: &mut CliClient, message: &Publication<'_>) -> Result<(), CliError> {
    let lines = spawn_line_reader()?;
    while !crate::signal::interrupted() {
        match lines.recv_timeout(IDLE_TICK) {
            Ok(Ok(line)) => {
                client.publish(message.topic, &line, message.qos, message.retain)?;
                message.confirmed(&line);
            }
            Ok(Err(e)) => return Err(stdin_error(&e)),
            Err(RecvTimeoutError::Timeout) => {
                // Sends a due PINGREQ and reads what arrived; nothing is subscribed, so no
                // message is expected.
                client.check_msg()?;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
    Ok(())
}

/// Sends each line without its `\n` (a `\r` stays, as with mosquitto_pub); a last line
/// without a newline is sent too. Stops at end of input or when the receiver is gone.
fn read_lines(mut input: impl BufRead, sender: &mpsc::SyncSender<io::Result<Vec<u8>>>) {
    loop {
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if sender.send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = sender.send(Err(e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_newline_and_keep_the_last_partial_line() {
        let (sender, receiver) = mpsc::sync_channel(16);
        read_lines(&b"one\n\ntwo\r\nthree"[..], &sender);
        drop(sender);
        let lines: Vec<Vec<u8>> = receiver.iter().map(Result::unwrap).collect();
        assert_eq!(
            lines,
            [
                b"one".to_vec(),
                b"".to_vec(),
                b"two\r".to_vec(),
                b"three".to_vec()
            ]
        );
    }
}
