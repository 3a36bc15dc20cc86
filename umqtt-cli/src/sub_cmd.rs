//! `umqtt sub`: subscribe and print messages, like `mosquitto_sub`.
//!
//! Payloads are written as raw bytes (not re-encoded), one message per line, byte for byte as
//! mosquitto_sub prints them, and stdout is flushed after each message so that pipes see them
//! at once. A closed stdout (`| head -1`)
//! ends the command quietly with status 0.
//!
//! Without `--policy`, as mosquitto_sub: the first connection must succeed; after that a lost
//! link is re-established every second (see `link`), announced by one line on stderr each way,
//! and the subscriptions are renewed unless the broker kept the session.
//!
//! Which messages are printed follows mosquitto_sub's rules, in its order: `--retained-only`
//! stops at the first live message, `-R` skips stale ones, `-T` filters topics out,
//! `--remove-retained` clears each retained message it prints; then `-C` counts.
//!
//! With `--policy` the robust client subscribes and keeps the subscription across reconnects:
//! with `-c` (persistent session, needs `-i`) the broker keeps it and queues QoS 1/2 messages
//! meanwhile; with a clean session it is renewed on every connection. The command ends with an
//! error only when the policy gives up (`none` at the first failure, `deadline:D` after an
//! outage of D) or the broker refuses in a way retrying cannot fix.

use std::io::{self, Write as _};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use umqtt::{Message, QoS};

use crate::common::{self, ConnectArgs, RobustArgs};
use crate::error::{io_message, is_quiet, CliError};
use crate::format::{Extra, Format};
use crate::link::{Link, Recovered};
use crate::output::{Printer, Stopped};
use crate::policy::PolicySpec;
use crate::property::{PropertySet, Target};
use crate::reconnect::{self, Tracker};

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

    /// Output format, as mosquitto_sub's -F: %t topic, %p payload, %x/%X payload in hex,
    /// %l length, %m packet id, %q QoS, %r retain, %I ISO 8601 time, %U Unix time, %j/%J
    /// JSON, %% a percent sign; MQTT 5 properties: %A topic alias, %C content type, %D
    /// correlation data, %E message expiry interval, %F payload format indicator, %P user
    /// properties (name:value …), %R response topic, %S subscription identifier; flags, width and precision as in %-10t %05l %.3t; @Y @m @d
    /// @H @M @S … the local time as strftime, @N nanoseconds, @@ an at sign; escapes \\ \0 \a
    /// \e \n \r \t \v. Overrides -v
    #[arg(
        short = 'F',
        long = "format",
        value_name = "FORMAT",
        help_heading = "Output"
    )]
    pub format: Option<String>,

    /// With -F %j or %J: indent the JSON (as cJSON_Print)
    #[arg(long = "pretty", help_heading = "Output")]
    pub pretty: bool,

    /// Do not print messages on topics matching this filter; repeatable
    #[arg(
        short = 'T',
        long = "filter-out",
        value_name = "FILTER",
        help_heading = "Output"
    )]
    pub filter_out: Vec<String>,

    /// Print only the retained messages, and exit (status 0) at the first live one
    #[arg(long = "retained-only", help_heading = "Output")]
    pub retained_only: bool,

    /// Clear each retained message printed: publish an empty retained message (QoS 1) on its
    /// topic. With -t '#' --retained-only this empties the broker's retained store
    #[arg(long = "remove-retained", help_heading = "Output")]
    pub remove_retained: bool,

    /// Unsubscribe from this filter after subscribing (to end a persistent session's
    /// subscription, with -c -i); repeatable
    #[arg(short = 'U', long = "unsubscribe", value_name = "FILTER")]
    pub unsubscribe: Vec<String>,

    /// Print only this percentage of the messages, chosen at random (they all count for -C,
    /// as mosquitto_sub)
    #[arg(long = "random-filter", value_name = "PERCENT", value_parser = parse_percent,
          allow_hyphen_values = true, help_heading = "Output")]
    pub random_filter: Option<f64>,

    /// Exit (status 0) once subscribed: sets up a persistent session (-c -i) for later
    #[arg(short = 'E', long = "exit-after-subscribe")]
    pub exit_after_subscribe: bool,

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

/// A `--random-filter` value: 0.1 to 100, as mosquitto_sub.
fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(percent) if (0.1..=100.0).contains(&percent) => Ok(percent),
        _ => Err("the chance must be between 0.1 and 100.0 (percent)".to_owned()),
    }
}

/// `--random-filter`: keeps each message with probability `percent` / 100 (xorshift64, seeded
/// from the OS's per-process random hash keys).
struct RandomFilter {
    /// mosquitto's resolution: out of 10 000.
    keep_below: u64,
    state: u64,
}

impl RandomFilter {
    fn new(percent: f64) -> RandomFilter {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        RandomFilter {
            keep_below: (percent * 100.0).round() as u64,
            state: hasher.finish() | 1,
        }
    }

    fn keep(&mut self) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % 10_000 < self.keep_below
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
    for topic in topics
        .iter()
        .chain(&args.filter_out)
        .chain(&args.unsubscribe)
    {
        umqtt_core::topic::validate_topic_filter(topic).map_err(|e| {
            CliError::usage(format!(
                "invalid topic filter {}: {e}",
                crate::error::echo(topic)
            ))
        })?;
    }
    let format = args
        .format
        .as_deref()
        .map(|text| Format::parse(text, args.pretty))
        .transpose()
        .map_err(CliError::usage)?;
    if args.exit_after_subscribe && args.robust.policy.is_some() {
        return Err(CliError::usage(
            "-E waits for the broker's SUBACK, which --policy does not report: use -E without \
             --policy",
        ));
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
    let handling = Handling {
        retained_only: args.retained_only,
        no_retained: args.no_retained,
        filter_out: args.filter_out.clone(),
        remove_retained: args.remove_retained,
        output: Output {
            verbose: args.verbose,
            end_of_line: !args.no_eol,
            format,
        },
    };
    let filters: Vec<(&str, QoS)> = topics.iter().map(|t| (t.as_str(), qos)).collect();
    let unsubscribe: Vec<&str> = args.unsubscribe.iter().map(String::as_str).collect();
    let limit = args.count.unwrap_or(u64::MAX);
    let response_timeout = settings.config.response_timeout;

    let mut subscriber =
        match args.robust.policy {
            Some(policy) => {
                let (mut client, tracker) =
                    reconnect::client(&settings, policy.for_subscribing(), None)?;
                for (filter, qos) in &filters {
                    client.subscribe_with_properties(
                        filter,
                        *qos,
                        settings.properties.get(Target::Subscribe),
                    )?;
                }
                for filter in &unsubscribe {
                    client.unsubscribe_with_properties(
                        filter,
                        settings.properties.get(Target::Unsubscribe),
                    )?;
                }
                Subscriber::Robust {
                    client: Box::new(client),
                    tracker,
                    policy,
                    properties: settings.properties.clone(),
                }
            }
            None => {
                // As mosquitto_sub: reconnect by default (see `link`).
                settings.watch_inbound = true;
                let link = Link::connect(&settings).map_err(|e| {
                    if past_deadline() {
                        timed_out()
                    } else {
                        e
                    }
                })?;
                let mut subscriber = Subscriber::Plain {
                    link: Box::new(link),
                };
                match subscriber.subscribe(&filters, &unsubscribe, deadline) {
                    Ok(true) => {}
                    Ok(false) => {
                        subscriber.finish(response_timeout);
                        return Ok(());
                    }
                    Err(failure) => {
                        // A broker may send messages before its SUBACK (MQTT 3.1.1 §3.8.4):
                        // acknowledged, so they are printed before the failure is reported.
                        let failure = failure.filter(|_| !past_deadline());
                        subscriber = subscriber.failed(failure);
                    }
                }
                if args.exit_after_subscribe && !matches!(subscriber, Subscriber::Failed { .. }) {
                    subscriber.finish(response_timeout);
                    return Ok(());
                }
                subscriber
            }
        };

    let mut printer = Printer::stdout()
        .map_err(|e| CliError::failed(format!("cannot start the stdout writer: {e}")))?;
    let mut random_filter = args.random_filter.map(RandomFilter::new);
    let mut printed = 0;
    while printed < limit && !crate::signal::interrupted() {
        if let Err(stopped) = printer.check() {
            subscriber.finish(response_timeout);
            return stopped_printing(stopped);
        }
        let mut wait = SIGNAL_TICK;
        // A failed subscriber hands out what it received first, then reports (or times out).
        let draining = matches!(subscriber, Subscriber::Failed { .. });
        if let Some(deadline) = deadline.filter(|_| !draining) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                subscriber.finish(response_timeout);
                return Err(timed_out());
            }
            wait = wait.min(left);
        }
        let (message, packet_id) = match subscriber.next(wait, deadline, &filters, &unsubscribe) {
            Ok(Some(received)) => received,
            Ok(None) => continue,
            Err(failure) => {
                // What was printed so far reaches stdout before the error is reported.
                let _ = printer.finish();
                subscriber.finish(response_timeout);
                return Err(failure.unwrap_or_else(timed_out));
            }
        };
        match handling.judge(&message) {
            Verdict::Skip => continue,
            Verdict::Stop => break,
            Verdict::Print => {}
        }
        if handling.remove_retained && message.retain {
            subscriber.clear_retained(&message.topic)?;
        }
        if random_filter.as_mut().is_some_and(|filter| !filter.keep()) {
            printed += 1; // counted, not printed: as mosquitto_sub
            continue;
        }
        let (bytes, errors) = handling.output.format(&message, packet_id);
        for error in errors {
            if !is_quiet() {
                let _ = writeln!(io::stderr().lock(), "Error: {error}");
            }
        }
        match printer.print(bytes) {
            Ok(()) => printed += 1,
            Err(stopped) => {
                subscriber.finish(response_timeout);
                return stopped_printing(stopped);
            }
        }
    }
    let finished = printer.finish();
    subscriber.finish(response_timeout);
    finished.or_else(stopped_printing)
}

/// The connection a subscriber receives on: the simple client that reconnects as mosquitto
/// (no `--policy`), or the robust client with a policy.
enum Subscriber {
    Plain {
        link: Box<Link>,
    },
    Robust {
        client: Box<umqtt::robust::Client>,
        tracker: Tracker,
        policy: PolicySpec,
        /// `-D disconnect …`.
        properties: PropertySet,
    },
    /// Subscribing failed: the messages received before the failure are still handed out,
    /// then the failure (`None` inside: the `-W` deadline) is reported.
    Failed {
        link: Box<Link>,
        failure: Option<Failure>,
    },
}

/// A failure (`Some`) or the `-W` deadline passing (`None`).
type Failure = Option<CliError>;

impl Subscriber {
    /// A plain subscriber whose subscription failed with `failure`.
    fn failed(self, failure: Failure) -> Subscriber {
        match self {
            Subscriber::Plain { link } | Subscriber::Failed { link, .. } => Subscriber::Failed {
                link,
                failure: Some(failure),
            },
            robust => robust,
        }
    }

    /// Subscribes (then unsubscribes `-U`), reconnecting if the link is lost meanwhile;
    /// `false` if interrupted.
    fn subscribe(
        &mut self,
        filters: &[(&str, QoS)],
        unsubscribe: &[&str],
        deadline: Option<Instant>,
    ) -> Result<bool, Failure> {
        let Subscriber::Plain { link } = self else {
            return Ok(true);
        };
        // -D subscribe / unsubscribe (MQTT 5).
        let properties = link.settings().properties.clone();
        loop {
            let result = link
                .client()
                .subscribe_many_with(filters, properties.get(Target::Subscribe))
                .and_then(|_| {
                    if unsubscribe.is_empty() {
                        Ok(())
                    } else {
                        link.client()
                            .unsubscribe_many_with(unsubscribe, properties.get(Target::Unsubscribe))
                    }
                });
            let Err(error) = result else {
                return Ok(true);
            };
            match link.recover(error, deadline).map_err(Some)? {
                Recovered::Connected { .. } => continue,
                Recovered::Interrupted => return Ok(false),
                Recovered::DeadlinePassed => return Err(None),
            }
        }
    }

    /// The next message and its packet id, waiting up to `wait`; reconnects (and subscribes
    /// again) as needed. `Ok(None)`: nothing yet, or interrupted.
    fn next(
        &mut self,
        wait: Duration,
        deadline: Option<Instant>,
        filters: &[(&str, QoS)],
        unsubscribe: &[&str],
    ) -> Result<Option<(Message, u16)>, Failure> {
        match self {
            Subscriber::Plain { link } => match link.client().wait_msg_timeout(wait) {
                Ok(Some(message)) => {
                    let packet_id = link
                        .client()
                        .get_mut()
                        .and_then(|stream| stream.next_packet_id())
                        .unwrap_or(0);
                    Ok(Some((message, packet_id)))
                }
                Ok(None) => Ok(None),
                Err(error) => {
                    match link.recover(error, deadline).map_err(Some)? {
                        // A resumed session keeps the subscriptions [MQTT-3.1.2-4].
                        Recovered::Connected {
                            session_present: false,
                        } => {
                            self.subscribe(filters, unsubscribe, deadline)?;
                        }
                        Recovered::Connected { .. } | Recovered::Interrupted => {}
                        Recovered::DeadlinePassed => return Err(None),
                    }
                    Ok(None)
                }
            },
            Subscriber::Failed { link, failure } => {
                if let Some(message) = link.client().take_queued_msg() {
                    let packet_id = message.packet_id.map_or(0, |id| id.get());
                    return Ok(Some((message, packet_id)));
                }
                Err(failure.take().flatten())
            }
            Subscriber::Robust {
                client,
                tracker,
                policy,
                ..
            } => {
                tracker.check_fatal().map_err(Some)?;
                if !filters.is_empty() && tracker.tally().refused.len() >= filters.len() {
                    // As mosquitto_sub: nothing left to listen to.
                    return Err(Some(CliError::failed(
                        "all subscription requests were denied",
                    )));
                }
                if tracker.tally().stopped {
                    let detail = tracker.tally().last_failure.clone().unwrap_or_default();
                    return Err(Some(CliError::failed(format!(
                        "{detail} (--policy {policy} stopped reconnecting)"
                    ))));
                }
                let message = client
                    .wait_msg(wait.min(ROBUST_TICK))
                    .map_err(|e| Some(e.into()))?;
                Ok(message.map(|message| {
                    let packet_id = message.packet_id.map_or(0, |id| id.get());
                    (message, packet_id)
                }))
            }
        }
    }

    /// `--remove-retained`: an empty retained message on `topic` (QoS 1, as mosquitto).
    fn clear_retained(&mut self, topic: &str) -> Result<(), CliError> {
        match self {
            Subscriber::Plain { link } => loop {
                let Err(error) = link.client().publish(topic, b"", QoS::AtLeastOnce, true) else {
                    return Ok(());
                };
                match link.recover(error, None)? {
                    Recovered::Connected { .. } => continue,
                    Recovered::Interrupted | Recovered::DeadlinePassed => return Ok(()),
                }
            },
            Subscriber::Robust { client, .. } => {
                client.publish(topic, b"", QoS::AtLeastOnce, true)?;
                Ok(())
            }
            Subscriber::Failed { .. } => Ok(()),
        }
    }

    /// Ends the connection: lets QoS 2 handshakes and `--remove-retained` publishes finish
    /// (bounded by `limit`), then DISCONNECT.
    fn finish(&mut self, limit: Duration) {
        match self {
            Subscriber::Plain { link } => {
                finish_qos2_handshakes(link, limit);
                link.disconnect();
            }
            Subscriber::Failed { link, .. } => link.disconnect(),
            Subscriber::Robust {
                client, properties, ..
            } => {
                if !crate::signal::interrupted() {
                    let _ = client.flush(limit);
                }
                let _ = reconnect::disconnect(client, properties);
            }
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

/// What happens to a received message: mosquitto_sub's rules, in its order.
struct Handling {
    retained_only: bool,
    no_retained: bool,
    filter_out: Vec<String>,
    remove_retained: bool,
    output: Output,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Print it (and count it).
    Print,
    /// Not printed, not counted.
    Skip,
    /// `--retained-only` and a live message: the command ends (status 0).
    Stop,
}

impl Handling {
    fn judge(&self, message: &Message) -> Verdict {
        if self.retained_only && !message.retain {
            return Verdict::Stop;
        }
        // A broker sets retain only on messages it held before the subscription, never on
        // live ones [MQTT-3.3.1-9], so retain = stale.
        if self.no_retained && message.retain {
            return Verdict::Skip;
        }
        if self
            .filter_out
            .iter()
            .any(|filter| umqtt_core::topic::matches(filter, &message.topic))
        {
            return Verdict::Skip;
        }
        Verdict::Print
    }
}

/// How messages are printed.
struct Output {
    verbose: bool,
    end_of_line: bool,
    format: Option<Format>,
}

impl Output {
    /// The bytes printed for one message, and error lines for stderr (`-F %J` with a payload
    /// that is not JSON). As mosquitto_sub, byte for byte: `-F` wins over `-v`; `-v` prints
    /// `topic payload`, and `topic (null)` for an empty payload (nothing at all with `-N`);
    /// without `-v` an empty payload prints nothing (it still counts for `-C`).
    fn format(&self, message: &Message, packet_id: u16) -> (Vec<u8>, Vec<String>) {
        let mut out = Vec::with_capacity(message.topic.len() + message.payload.len() + 8);
        let mut errors = Vec::new();
        if let Some(format) = &self.format {
            let extra = Extra {
                packet_id,
                now: SystemTime::now(),
            };
            errors = format.render(message, extra, &mut out);
        } else if message.payload.is_empty() {
            if self.verbose && self.end_of_line {
                out.extend_from_slice(message.topic.as_bytes());
                out.extend_from_slice(b" (null)");
            } else {
                return (out, errors);
            }
        } else {
            if self.verbose {
                out.extend_from_slice(message.topic.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(&message.payload);
        }
        if self.end_of_line {
            out.push(b'\n');
        }
        (out, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, payload: &[u8]) -> Message {
        Message {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos: QoS::AtMostOnce,
            retain: false,
            dup: false,
            packet_id: None,
            properties: Vec::new(),
        }
    }

    fn printed(verbose: bool, end_of_line: bool, message: &Message) -> Vec<u8> {
        Output {
            verbose,
            end_of_line,
            format: None,
        }
        .format(message, 0)
        .0
    }

    #[test]
    fn formats() {
        let hello = message("a/b", b"hello");
        assert_eq!(printed(false, true, &hello), b"hello\n");
        assert_eq!(printed(true, true, &hello), b"a/b hello\n");
        assert_eq!(printed(false, false, &hello), b"hello");
        assert_eq!(printed(true, false, &hello), b"a/b hello");
        let empty = message("a/b", b"");
        assert_eq!(printed(false, true, &empty), b"");
        assert_eq!(printed(true, true, &empty), b"a/b (null)\n");
        assert_eq!(printed(true, false, &empty), b"");
        let binary = message("t", &[0xff, 0x00, 0xfe]);
        assert_eq!(printed(false, true, &binary), [0xff, 0x00, 0xfe, b'\n']);
    }

    #[test]
    fn random_filter_keeps_about_the_share_asked() {
        let mut all = RandomFilter::new(100.0);
        assert!((0..1000).all(|_| all.keep()));
        let mut none = RandomFilter::new(0.0);
        assert!((0..1000).all(|_| !none.keep()));
        let mut half = RandomFilter::new(50.0);
        let kept = (0..10_000).filter(|_| half.keep()).count();
        assert!((4_000..6_000).contains(&kept), "{kept}");
        for bad in ["101", "-1", "0", "0.05", "x"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_percent("0.1"), Ok(0.1));
    }

    #[test]
    fn handling_follows_mosquittos_order() {
        let handling = |retained_only, no_retained, filter_out: &[&str]| Handling {
            retained_only,
            no_retained,
            filter_out: filter_out.iter().map(|f| f.to_string()).collect(),
            remove_retained: false,
            output: Output {
                verbose: false,
                end_of_line: true,
                format: None,
            },
        };
        let mut stale = message("a/b", b"x");
        stale.retain = true;
        let live = message("a/b", b"x");
        assert_eq!(handling(false, false, &[]).judge(&live), Verdict::Print);
        assert_eq!(handling(false, true, &[]).judge(&stale), Verdict::Skip);
        assert_eq!(handling(false, true, &[]).judge(&live), Verdict::Print);
        assert_eq!(handling(true, false, &[]).judge(&live), Verdict::Stop);
        assert_eq!(handling(true, false, &[]).judge(&stale), Verdict::Print);
        assert_eq!(handling(false, false, &["a/+"]).judge(&live), Verdict::Skip);
        assert_eq!(
            handling(false, false, &["b/#"]).judge(&live),
            Verdict::Print
        );
    }
}
