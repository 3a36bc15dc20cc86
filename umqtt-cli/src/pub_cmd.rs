//! `umqtt pub`: publish one message, or one per stdin line, like `mosquitto_pub`.
//!
//! Without `--policy` the simple client publishes: a single message (`-m`, `-f`, `-n`, `-s`)
//! fails with its connection, while `-l`, as mosquitto_pub -l, reconnects every second and
//! sends the interrupted line again (see `link`). With
//! `--policy` the robust client does: each message gets the policy's delivery contract, `-l`
//! keeps reading lines while the client reconnects in the background, and the command exits
//! 0 only once every message is delivered (else 1, naming how many were dropped or expired).
//! `--outbox FILE` keeps guaranteed messages on disk until acknowledged, so a run that was
//! killed leaves them for the next run with the same file, which sends them first.

use std::collections::VecDeque;
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
use umqtt_core::packet::Properties;

use crate::common::{self, os_bytes, CliClient, ConnectArgs, RobustArgs, Settings};
use crate::error::{io_message, CliError};
use crate::link::{Link, Recovered};
use crate::policy::PolicySpec;
use crate::property::Target;
use crate::reconnect;

/// How often `-l` drives the connection (keepalive, PINGRESP) while stdin is quiet.
const IDLE_TICK: Duration = Duration::from_millis(200);
/// Lines read ahead of the publisher; the reader blocks beyond this.
const LINE_QUEUE: usize = 64;
/// With a policy: how long one pass drives the robust client between looks at stdin.
const ROBUST_TICK: Duration = Duration::from_millis(10);
/// With a policy: most lines published in one call (one outbox commit).
const BATCH: usize = 256;
/// `pub -l --policy`: how long to read acknowledgements before looking for new lines again.
const LINE_POLL: Duration = Duration::from_millis(2);
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
          allow_hyphen_values = true, value_parser = common::parse_qos)]
    pub qos: u8,

    /// Ask the broker to retain the message
    #[arg(short = 'r', long = "retain")]
    pub retain: bool,

    /// Publish the message (-m, -f, -s, -n) this many times, on one connection
    #[arg(long = "repeat", value_name = "COUNT", default_value_t = 1,
          allow_hyphen_values = true, value_parser = parse_repeat)]
    pub repeat: u64,

    /// With --repeat: wait this many seconds (a decimal number) between publishes
    #[arg(long = "repeat-delay", value_name = "SECONDS", value_parser = parse_delay)]
    pub repeat_delay: Option<Duration>,

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

    /// Print one line on stdout once each message is accepted, saying what accepted means:
    /// `published <message>` once sent (QoS 0) or acknowledged by the broker (QoS 1/2);
    /// with --policy, `queued <message>` once queued for delivery (the broker may be down);
    /// with --outbox, `stored <message>` once on disk
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

fn parse_repeat(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err("must be a whole number, 1 or more".to_owned()),
    }
}

/// Seconds, decimals allowed (`0.5`), as mosquitto_pub's --repeat-delay.
fn parse_delay(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| "must be a number of seconds, 0 or more (e.g. 0.5)".to_owned())
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
    umqtt_core::topic::validate_topic_name(&topic).map_err(|e| {
        CliError::usage(format!("invalid topic {}: {e}", crate::error::echo(&topic)))
    })?;
    if args.outbox.is_some() && !args.robust.policy.is_some_and(|p| p.guarantees_delivery()) {
        return Err(CliError::usage(
            "--outbox needs a policy that keeps messages until delivered: --policy guaranteed, \
             fixed:… or backoff:…",
        ));
    }
    let qos = common::qos(args.qos);
    if args.source.stdin_line && (args.repeat > 1 || args.repeat_delay.is_some()) {
        return Err(CliError::usage(
            "--repeat and --repeat-delay apply to -m, -f, -s and -n; with -l each line is a \
             message",
        ));
    }

    // Read the message before connecting, so a missing file costs no connection.
    let single = if args.source.stdin_line {
        None
    } else {
        Some(read_message(
            &args.source,
            umqtt_core::packet::max_payload_len(&topic, qos),
        )?)
    };
    let message = Publication {
        topic: &topic,
        qos,
        retain: args.retain,
        properties: settings.properties.get(Target::Publish),
        confirm: args
            .confirm
            .then_some(match (&args.outbox, &args.robust.policy) {
                (Some(_), _) => "stored",
                (None, Some(_)) => "queued",
                (None, None) => "published",
            }),
    };
    if let Some(policy) = args.robust.policy {
        if args.outbox.is_some() && settings.properties.has(Target::Publish) {
            return Err(CliError::usage(
                "-D publish properties are not kept in the --outbox file: leave out one or the \
                 other",
            ));
        }
        return publish_robust(&args, &settings, policy, &message, single);
    }

    match single {
        Some(payload) => {
            let mut client = common::connect(&settings)?;
            for round in 0..args.repeat {
                if round > 0 {
                    if let Some(delay) = args.repeat_delay {
                        sleep_unless_interrupted(delay);
                    }
                }
                if crate::signal::interrupted() {
                    break;
                }
                let acknowledged = publish_acknowledged(&mut client, &message, &payload)
                    .map_err(with_policy_hint)?;
                if !acknowledged {
                    let _ = common::disconnect(&mut client, &settings);
                    return Err(CliError::failed(
                        "interrupted before the broker acknowledged the message",
                    ));
                }
                message.confirmed(&payload);
            }
            common::disconnect(&mut client, &settings)?;
        }
        None => {
            // As mosquitto_pub -l: reconnect when the link is lost (see `link`), and resend
            // what was not acknowledged (libmosquitto keeps its queue across reconnects).
            let mut settings = settings.clone();
            settings.config.republish_on_clean_session = true;
            let mut link = Link::connect(&settings)?;
            let published = publish_lines(&mut link, &message);
            link.disconnect();
            published?;
        }
    }
    Ok(())
}

/// Publishes and waits for the acknowledgement (QoS 1/2) as `Client::publish` does, but in
/// slices, so that Ctrl-C / SIGTERM is answered at once (then `false`: the caller sends
/// DISCONNECT). Without an acknowledgement within the response timeout: `Error::Timeout`.
fn publish_acknowledged(
    client: &mut CliClient,
    message: &Publication<'_>,
    payload: &[u8],
) -> Result<bool, umqtt::Error> {
    client.publish_nowait_with(
        message.topic,
        payload,
        message.qos,
        message.retain,
        message.properties(),
    )?;
    let deadline = std::time::Instant::now() + client.config().response_timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match client.wait_all_published(left.min(IDLE_TICK)) {
            Ok(()) => return Ok(true),
            Err(umqtt::Error::Timeout) if !left.is_zero() => {
                if crate::signal::interrupted() {
                    return Ok(false);
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// Sleeps `delay`, waking early for Ctrl-C / SIGTERM.
fn sleep_unless_interrupted(delay: Duration) {
    let end = std::time::Instant::now() + delay;
    while !crate::signal::interrupted() {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        thread::sleep(left.min(IDLE_TICK));
    }
}

/// A single message lost with its link: name the flag that would have retried.
fn with_policy_hint(error: umqtt::Error) -> CliError {
    if error.is_connection_lost() {
        CliError::failed(format!(
            "{} (not retried: --policy fixed:1s or guaranteed keeps the message until \
             delivered)",
            crate::error::describe(&error)
        ))
    } else {
        error.into()
    }
}

/// Where and how every message of this run goes.
struct Publication<'a> {
    topic: &'a str,
    qos: QoS,
    retain: bool,
    /// `-D publish …` (MQTT 5).
    properties: Properties<'a>,
    /// `--confirm`: the word of the confirmation line (`published`, `queued`, `stored`).
    confirm: Option<&'static str>,
}

impl Publication<'_> {
    /// The PUBLISH properties.
    fn properties(&self) -> Properties<'_> {
        self.properties
    }

    /// `--confirm`: `<word> <payload>` on stdout, flushed. A closed stdout is ignored: the
    /// confirmation is for whoever still listens.
    fn confirmed(&self, payload: &[u8]) {
        if let Some(word) = self.confirm {
            let mut stdout = io::stdout().lock();
            let _ = stdout
                .write_all(word.as_bytes())
                .and_then(|()| stdout.write_all(b" "))
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
            for round in 0..args.repeat {
                if round > 0 {
                    if let Some(delay) = args.repeat_delay {
                        let end = std::time::Instant::now() + delay;
                        while std::time::Instant::now() < end && !crate::signal::interrupted() {
                            client.run_for(ROBUST_TICK)?;
                        }
                    }
                }
                if crate::signal::interrupted() {
                    break;
                }
                if message.properties.is_empty() {
                    client.publish(message.topic, &payload, message.qos, message.retain)?;
                } else {
                    client.publish_with_properties(
                        message.topic,
                        &payload,
                        message.qos,
                        message.retain,
                        delivery,
                        message.properties(),
                    )?;
                }
                tracker.rearmed();
                published += 1;
                message.confirmed(&payload);
            }
        }
        None => {
            let lines = spawn_line_reader()?;
            let mut end_of_input = false;
            while !end_of_input && !crate::signal::interrupted() {
                tracker.check_fatal()?;
                if client.pending() >= MAX_PENDING {
                    // Backpressure: wait for acknowledgements (returns as soon as there is room).
                    client.wait_pending_at_most(MAX_PENDING / 2, IDLE_TICK)?;
                    continue;
                }
                let mut batch = Vec::new();
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
                if batch.is_empty() && !end_of_input {
                    if client.pending() > 0 {
                        // Read acknowledgements briefly, then look for lines again.
                        client.wait_pending_at_most(0, LINE_POLL)?;
                        continue;
                    }
                    // Nothing in flight: wait for the next line (keepalive between lines).
                    match lines.recv_timeout(IDLE_TICK) {
                        Ok(Ok(line)) => batch.push(line),
                        Ok(Err(e)) => return Err(stdin_error(&e)),
                        Err(RecvTimeoutError::Timeout) => {
                            client.run_for(Duration::ZERO)?;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                let messages: Vec<(&str, &[u8])> = batch
                    .iter()
                    .map(|line| (message.topic, line.as_slice()))
                    .collect();
                if message.properties.is_empty() {
                    client.publish_batch(&messages, message.qos, message.retain, delivery)?;
                } else {
                    for (topic, line) in &messages {
                        client.publish_with_properties(
                            topic,
                            line,
                            message.qos,
                            message.retain,
                            delivery,
                            message.properties(),
                        )?;
                    }
                }
                tracker.rearmed();
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
    let _ = reconnect::disconnect(&mut client, &settings.properties);
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
/// the connection keeps being driven (keepalive) while no line comes. QoS 1/2 lines are
/// pipelined up to the in-flight window (`-M`), as mosquitto_pub does; `--confirm` prints each
/// line once acknowledged (in order: acknowledgements come in publish order
/// `[MQTT-4.6.0-2]`). A lost link is re-established on the same session, which resends what
/// the broker had not acknowledged (at least once: a line the broker had taken may arrive
/// twice).
fn publish_lines(link: &mut Link, message: &Publication<'_>) -> Result<(), CliError> {
    let lines = spawn_line_reader()?;
    let window = usize::from(link.client().config().max_in_flight.max(1));
    // Lines published and not yet acknowledged (QoS 1/2), oldest first, for --confirm.
    let mut unconfirmed: VecDeque<Vec<u8>> = VecDeque::new();
    let mut end_of_input = false;
    while !crate::signal::interrupted() {
        // Confirm what the broker acknowledged since the last look.
        let pending = link.client().pending_publishes();
        while unconfirmed.len() > pending {
            if let Some(line) = unconfirmed.pop_front() {
                message.confirmed(&line);
            }
        }
        if end_of_input && pending == 0 {
            return Ok(());
        }
        let wait = if end_of_input || pending >= window {
            // The window is full (or the input ended): wait for acknowledgements.
            Some(window.saturating_sub(1).min(pending.saturating_sub(1)))
        } else {
            None
        };
        if let Some(at_most) = wait {
            let at_most = if end_of_input { 0 } else { at_most };
            match link.client().wait_published_at_most(at_most, IDLE_TICK) {
                Ok(()) | Err(umqtt::Error::Timeout) => {}
                Err(error) => {
                    if let Recovered::Interrupted | Recovered::DeadlinePassed =
                        link.recover(error, None)?
                    {
                        return Ok(());
                    }
                }
            }
            continue;
        }
        let next = if pending > 0 {
            // Acknowledgements are due: read them briefly, then look for lines again.
            match lines.try_recv() {
                Ok(line) => Some(line),
                Err(TryRecvError::Empty) => {
                    if let Err(error) = link.client().wait_published_at_most(0, LINE_POLL) {
                        if !matches!(error, umqtt::Error::Timeout) {
                            if let Recovered::Interrupted | Recovered::DeadlinePassed =
                                link.recover(error, None)?
                            {
                                return Ok(());
                            }
                        }
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => None,
            }
        } else {
            match lines.recv_timeout(IDLE_TICK) {
                Ok(line) => Some(line),
                Err(RecvTimeoutError::Timeout) => {
                    // Sends a due PINGREQ and reads what arrived; nothing is subscribed, so
                    // no message is expected.
                    if let Err(error) = link.client().check_msg() {
                        if let Recovered::Interrupted | Recovered::DeadlinePassed =
                            link.recover(error, None)?
                        {
                            return Ok(());
                        }
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => None,
            }
        };
        let line = match next {
            Some(Ok(line)) => line,
            Some(Err(e)) => return Err(stdin_error(&e)),
            None => {
                end_of_input = true;
                continue;
            }
        };
        loop {
            let client = link.client();
            let published = client
                .publish_nowait_with(
                    message.topic,
                    &line,
                    message.qos,
                    message.retain,
                    message.properties(),
                )
                .and_then(|packet_id| {
                    if packet_id.is_none() {
                        // QoS 0: written now, and that is all it gets.
                        client.flush()?;
                    }
                    Ok(packet_id)
                });
            match published {
                Ok(Some(_)) => {
                    unconfirmed.push_back(line);
                    break;
                }
                Ok(None) => {
                    message.confirmed(&line);
                    break;
                }
                Err(error) => match link.recover(error, None)? {
                    // The session resends what it held; this line goes out now.
                    Recovered::Connected { .. } => continue,
                    Recovered::Interrupted | Recovered::DeadlinePassed => return Ok(()),
                },
            }
        }
    }
    if !unconfirmed.is_empty() {
        return Err(CliError::failed(format!(
            "interrupted before the broker acknowledged the last {} line(s)",
            unconfirmed.len()
        )));
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
