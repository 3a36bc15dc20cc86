//! What the CLI reports on failure, as one line on stderr, and which exit status goes with it.
//!
//! Exit statuses follow `mosquitto_pub` / `mosquitto_sub` where they define one:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any runtime failure: connection, TLS, I/O, a file that cannot be read… |
//! | 1 | also a bad command line (clap's usage errors and our own checks), as mosquitto exits 1 |
//! | 1–5 | the broker refused the connection: the CONNACK return code, as mosquitto does (5 = not authorised) |
//! | 128–162 | the broker refused an MQTT 5 connection: the CONNACK reason code, as mosquitto (140 = bad authentication method) |
//! | 27 | `sub -W`: no (more) messages before the timeout (mosquitto's `MOSQ_ERR_TIMEOUT`) |
//! | 101 | an internal bug (a panic), reported in one line |

use std::fmt;
use std::io::{self, Write as _};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use umqtt::transport::TransportError;
use umqtt::ConnectReturnCode;

/// Exit status for failures that have no more specific code.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for command-line mistakes: 1, as mosquitto_pub / mosquitto_sub (not clap's 2),
/// so that scripts written for them keep working.
pub const EXIT_USAGE: u8 = 1;
/// Exit status of `sub -W` when the time is up (mosquitto's `MOSQ_ERR_TIMEOUT`).
pub const EXIT_TIMEOUT: u8 = 27;

/// A failure of a subcommand.
#[derive(Debug)]
pub enum CliError {
    /// The flags make no sense together (found after clap's own checks).
    Usage(String),
    /// The broker answered CONNECT with this refusal.
    Refused(ConnectReturnCode),
    /// The broker answered an MQTT 5 CONNECT with this refusal (exit status: the reason
    /// code, as mosquitto).
    Rejected(umqtt_core::packet::ReasonCode),
    /// `sub -W` ran out of time.
    TimedOut(Duration),
    /// Anything else, already described for the user.
    Failed(String),
}

impl CliError {
    /// A runtime failure with this description.
    pub fn failed(message: impl Into<String>) -> Self {
        CliError::Failed(message.into())
    }

    /// A command-line mistake with this description.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    /// The process exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            // Like mosquitto_sub/pub: the CONNACK code is the exit status.
            CliError::Refused(code) => (*code as u8).max(EXIT_FAILURE),
            CliError::Rejected(code) => code.to_u8().max(EXIT_FAILURE),
            CliError::TimedOut(_) => EXIT_TIMEOUT,
            CliError::Failed(_) => EXIT_FAILURE,
        }
    }

    /// Prints `Error: …` as one line on stderr and returns the exit status.
    pub fn report(&self) -> ExitCode {
        print_error_line(&self.to_string());
        ExitCode::from(self.exit_code())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(message) | CliError::Failed(message) => f.write_str(message),
            CliError::Refused(code) => f.write_str(connack_string(*code)),
            CliError::Rejected(code) => {
                f.write_str(&describe(&umqtt::Error::ConnectionRejected(*code)))
            }
            CliError::TimedOut(after) => write!(f, "Timed out after {} s", after.as_secs()),
        }
    }
}

impl From<umqtt::Error> for CliError {
    fn from(error: umqtt::Error) -> Self {
        match error {
            umqtt::Error::ConnectionRefused(code) => CliError::Refused(code),
            umqtt::Error::ConnectionRejected(code) => CliError::Rejected(code),
            other => CliError::Failed(describe(&other)),
        }
    }
}

impl From<TransportError> for CliError {
    fn from(error: TransportError) -> Self {
        CliError::Failed(describe_transport(&error))
    }
}

/// Set while a library call that catches its own panics runs (see [`quiet_panics`]).
static PANICS_CAUGHT_ELSEWHERE: AtomicBool = AtomicBool::new(false);

/// Runs `f`, whose panics are caught and turned into errors by the library (redb on a
/// damaged outbox file), with the panic hook silenced so that no crash line is printed for
/// them.
pub fn quiet_panics<T>(f: impl FnOnce() -> T) -> T {
    PANICS_CAUGHT_ELSEWHERE.store(true, Ordering::SeqCst);
    let result = f();
    PANICS_CAUGHT_ELSEWHERE.store(false, Ordering::SeqCst);
    result
}

/// Whether the panic hook should stay quiet (see [`quiet_panics`]).
pub fn panics_caught_elsewhere() -> bool {
    PANICS_CAUGHT_ELSEWHERE.load(Ordering::SeqCst)
}

/// The mosquitto options file read before the command line, if any.
static OPTIONS_FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Remembers that options were read from `path`, so that a complaint about a flag the user
/// did not type can say where it came from.
pub fn set_options_file(path: std::path::PathBuf) {
    let _ = OPTIONS_FILE.set(path);
}

/// The options file read, if any.
pub fn options_file() -> Option<&'static std::path::Path> {
    OPTIONS_FILE.get().map(std::path::PathBuf::as_path)
}

/// `--quiet`: nothing on stderr (see [`set_quiet`]).
static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`, as mosquitto's: errors, warnings and link notices are not printed; the exit
/// status still tells.
pub fn set_quiet() {
    QUIET.store(true, Ordering::SeqCst);
}

/// Whether `--quiet` was given.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::SeqCst)
}

/// Writes `Error: {message}` on one line to stderr. Write failures are ignored: there is no
/// better place left to report them, and `eprintln!` would panic.
pub fn print_error_line(message: &str) {
    if !is_quiet() {
        let _ = writeln!(io::stderr().lock(), "Error: {}", one_line(message));
    }
}

/// Writes `Warning: {message}` on one line to stderr.
pub fn print_warning_line(message: &str) {
    if !is_quiet() {
        let _ = writeln!(io::stderr().lock(), "Warning: {}", one_line(message));
    }
}

/// mosquitto's wording for each CONNACK return code (`mosquitto_connack_string`), so that
/// scripts and people used to mosquitto recognise them.
pub fn connack_string(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Accepted => "Connection Accepted.",
        ConnectReturnCode::UnacceptableProtocolVersion => {
            "Connection Refused: unacceptable protocol version."
        }
        ConnectReturnCode::IdentifierRejected => "Connection Refused: identifier rejected.",
        ConnectReturnCode::ServerUnavailable => "Connection Refused: broker unavailable.",
        ConnectReturnCode::BadUserNameOrPassword => {
            "Connection Refused: bad user name or password."
        }
        ConnectReturnCode::NotAuthorized => "Connection Refused: not authorised.",
    }
}

/// A user-facing description of a client error.
pub fn describe(error: &umqtt::Error) -> String {
    match error {
        umqtt::Error::Transport(e) => describe_transport(e),
        umqtt::Error::Io(e) => format!("connection lost: {}", io_message(e)),
        umqtt::Error::ConnectionClosed => "the broker closed the connection".to_owned(),
        umqtt::Error::ConnectionRefused(code) => connack_string(*code).to_owned(),
        umqtt::Error::ConnectTimeout => "no CONNACK from the broker in time".to_owned(),
        umqtt::Error::KeepAliveTimeout => {
            "the broker stopped answering (no PINGRESP in time)".to_owned()
        }
        umqtt::Error::Timeout => "timed out waiting for the broker's acknowledgement".to_owned(),
        umqtt::Error::PacketTooLarge { size, max } => format!(
            "incoming packet of {size} bytes exceeds the configured maximum of {max} \
             (raise --max-packet-size)"
        ),
        umqtt::Error::SubscribeRefused {
            filter,
            reason_code,
        } => match reason_code {
            // 3.1.1's only refusal (0x80): the message stays what it was.
            umqtt_core::packet::ReasonCode::UnspecifiedError => {
                format!("the broker refused the subscription to {filter:?}")
            }
            code => format!("the broker refused the subscription to {filter:?} ({code})"),
        },
        umqtt::Error::Connect(inner) => describe(inner),
        other => other.to_string(),
    }
}

fn describe_transport(error: &TransportError) -> String {
    match error {
        TransportError::Connect { addr, source } => {
            format!("unable to connect to {addr}: {}", io_message(source))
        }
        TransportError::Resolve { host, source } => {
            format!("unable to resolve host {host:?}: {}", io_message(source))
        }
        TransportError::Timeout { addr } => format!("timed out connecting to {addr}"),
        TransportError::Unix { path, source } => format!(
            "unable to connect to {}: {}",
            path.display(),
            io_message(source)
        ),
        TransportError::TlsIo(source) => {
            format!(
                "connection failed during the TLS handshake: {}",
                io_message(source)
            )
        }
        other => other.to_string(),
    }
}

/// An I/O error's text without Rust's ` (os error N)` suffix: "Connection refused".
pub fn io_message(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

/// At most this many characters of a user's input are echoed in an error.
const ECHO_LIMIT: usize = 64;

/// User input for an error message, `{:?}`-quoted and cut to a readable length: a 70 000-byte
/// topic must not be printed back in full. `"aaaa…" (70000 bytes)`.
pub fn echo(text: &str) -> String {
    if text.chars().count() <= ECHO_LIMIT {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(ECHO_LIMIT).collect();
    format!("{:?}… ({} bytes)", head, text.len())
}

/// Joins lines so that every report stays on one line.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_suffix_is_dropped() {
        let error = io::Error::from_raw_os_error(111);
        assert!(!io_message(&error).contains("os error"), "{error}");
        let custom = io::Error::other("plain (text)");
        assert_eq!(io_message(&custom), "plain (text)");
    }

    #[test]
    fn long_input_is_cut_when_echoed() {
        assert_eq!(echo("a/b"), "\"a/b\"");
        let long = "x".repeat(70_000);
        let echoed = echo(&long);
        assert!(echoed.len() < 100, "{echoed}");
        assert!(echoed.ends_with("… (70000 bytes)"), "{echoed}");
    }

    #[test]
    fn reports_are_one_line() {
        assert_eq!(one_line("a\nb\r\n  c  \n"), "a b c");
    }

    #[test]
    fn refusal_exit_code_is_the_connack_code() {
        let error = CliError::Refused(ConnectReturnCode::NotAuthorized);
        assert_eq!(error.exit_code(), 5);
        assert_eq!(error.to_string(), "Connection Refused: not authorised.");
        assert_eq!(CliError::TimedOut(Duration::from_secs(1)).exit_code(), 27);
        assert_eq!(CliError::usage("x").exit_code(), 1);
        assert_eq!(CliError::failed("x").exit_code(), 1);
    }
}
