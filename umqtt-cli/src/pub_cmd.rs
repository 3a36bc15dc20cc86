//! `umqtt pub`: publish one message, or one per stdin line, like `mosquitto_pub`.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, Read};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use clap::Args;
use umqtt::QoS;

use crate::common::{self, os_bytes, CliClient, ConnectArgs, RobustArgs};
use crate::error::{io_message, CliError};

/// How often `-l` drives the connection (keepalive, PINGRESP) while stdin is quiet.
const IDLE_TICK: Duration = Duration::from_millis(200);
/// Lines read ahead of the publisher; the reader blocks beyond this.
const LINE_QUEUE: usize = 64;

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
    args.robust.require_simple_client()?;
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
    let qos = common::qos(args.qos);

    // Read the message before connecting, so a missing file costs no connection.
    let single = if args.source.stdin_line {
        None
    } else {
        Some(read_message(&args.source)?)
    };

    let mut client = common::connect(&settings)?;
    match single {
        Some(payload) => {
            client.publish(&topic, &payload, qos, args.retain)?;
        }
        None => publish_lines(&mut client, &topic, qos, args.retain)?,
    }
    client.disconnect()?;
    Ok(())
}

fn read_message(source: &MessageSource) -> Result<Vec<u8>, CliError> {
    if let Some(message) = &source.message {
        Ok(os_bytes(message))
    } else if let Some(path) = &source.file {
        fs::read(path).map_err(|e| {
            CliError::failed(format!(
                "unable to read file {}: {}",
                path.display(),
                io_message(&e)
            ))
        })
    } else if source.stdin_file {
        let mut payload = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut payload)
            .map_err(|e| CliError::failed(format!("unable to read stdin: {}", io_message(&e))))?;
        Ok(payload)
    } else {
        // -n; clap guarantees exactly one source.
        Ok(Vec::new())
    }
}

/// `-l`: one message per line of stdin until end of input. Stdin is read on its own thread so
/// the connection keeps being driven (keepalive) while no line comes.
fn publish_lines(
    client: &mut CliClient,
    topic: &str,
    qos: QoS,
    retain: bool,
) -> Result<(), CliError> {
    let (sender, lines) = mpsc::sync_channel::<io::Result<Vec<u8>>>(LINE_QUEUE);
    thread::Builder::new()
        .name("stdin-lines".to_owned())
        .spawn(move || read_lines(io::stdin().lock(), &sender))
        .map_err(|e| CliError::failed(format!("cannot start the stdin reader: {e}")))?;
    loop {
        match lines.recv_timeout(IDLE_TICK) {
            Ok(Ok(line)) => {
                client.publish(topic, &line, qos, retain)?;
            }
            Ok(Err(e)) => {
                return Err(CliError::failed(format!(
                    "unable to read stdin: {}",
                    io_message(&e)
                )))
            }
            Err(RecvTimeoutError::Timeout) => {
                // Sends a due PINGREQ and reads what arrived; nothing is subscribed, so no
                // message is expected.
                client.check_msg()?;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
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
