//! `umqtt`: an MQTT 3.1.1 and MQTT 5 command-line client whose `pub` and `sub` take mosquitto_pub's and
//! mosquitto_sub's flags.
//!
//! Each subcommand lives in its own module (`pub_cmd`, `sub_cmd`) with its clap `Args` struct
//! and a `run` function returning `Result<(), CliError>`; shared connection flags are in
//! `common`. A new subcommand is a new module plus one variant in [`Command`].
//!
//! Failures are one line on stderr (`Error: …`) with the exit statuses listed in `error`;
//! panics are reported the same way by a hook, never as a backtrace.
#![forbid(unsafe_code)]
// The clap arguments' doc comments are their `--help` text, written for a terminal: brackets
// such as `[user[:password]@]` and `<random>` are usage syntax, not links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod clock;
mod common;
mod demo;
mod error;
mod format;
mod json;
mod link;
mod output;
mod policy;
mod property;
mod pub_cmd;
mod reconnect;
mod signal;
mod simulate;
mod stream;
mod sub_cmd;
mod url;

use std::ffi::OsString;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{print_error_line, EXIT_USAGE};

/// Exit statuses, shown at the end of `--help`.
const EXIT_STATUS_HELP: &str = "\
Exit status: 0 success; 1 failure or bad command line (as mosquitto); 1-5 the broker refused the connection
(the CONNACK code, as mosquitto: 5 = not authorised; MQTT 5: the reason code, 128-162); 27 `sub -W` timed
out.";

/// The end of `umqtt pub --help`.
const PUB_HELP: &str = "\
Options file: as mosquitto_pub, the options in $XDG_CONFIG_HOME/mosquitto_pub (or
~/.config/mosquitto_pub) come first, one per line (\"-h broker\"), lines starting with # are
comments; the command line overrides them.

Exit status: 0 success; 1 failure or bad command line (as mosquitto); 1-5 the broker refused the
connection (the CONNACK code, as mosquitto: 5 = not authorised; MQTT 5: the reason code, 128-162).";

/// The end of `umqtt sub --help`.
const SUB_HELP: &str = "\
Options file: as mosquitto_sub, the options in $XDG_CONFIG_HOME/mosquitto_sub (or
~/.config/mosquitto_sub) come first, one per line (\"-h broker\"), lines starting with # are
comments; the command line overrides them.

Exit status: 0 success; 1 failure or bad command line (as mosquitto); 1-5 the broker refused the
connection (the CONNACK code, as mosquitto: 5 = not authorised; MQTT 5: the reason code, 128-162);
27 -W timed out.";

/// MQTT 3.1.1 and MQTT 5 command-line client.
#[derive(Parser, Debug)]
#[command(
    name = "umqtt",
    version,
    about = "MQTT 3.1.1 and MQTT 5 command-line client: `umqtt pub` and `umqtt sub` take the flags of \
             mosquitto_pub and mosquitto_sub",
    after_help = EXIT_STATUS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publish a message (flags as mosquitto_pub)
    #[command(disable_help_flag = true, args_override_self = true, after_help = PUB_HELP)]
    Pub(pub_cmd::PubArgs),
    /// Subscribe and print messages (flags as mosquitto_sub)
    #[command(disable_help_flag = true, args_override_self = true, after_help = SUB_HELP)]
    Sub(sub_cmd::SubArgs),
    /// Three devices (temperature, button, burglar alarm) through a network outage, with an
    /// embedded broker: what each reconnect policy delivers, drops and costs
    #[command(disable_help_flag = true, after_help = EXIT_STATUS_HELP)]
    Demo(demo::DemoArgs),
    /// The real engine and policies against a simulated broker on a virtual clock, through
    /// outages: attempts, energy and delivery delay per device and policy
    #[command(disable_help_flag = true, after_help = EXIT_STATUS_HELP)]
    Simulate(simulate::SimulateArgs),
}

fn main() -> ExitCode {
    install_panic_hook();
    let args = with_options_file(std::env::args_os().collect());
    // `-D` takes three or four arguments depending on the property: read before clap.
    let (args, properties) = match take_properties(args) {
        Ok(taken) => taken,
        Err(error) => return error.report(),
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => return report_clap_error(&error),
    };
    let result = match cli.command {
        Command::Pub(mut args) => {
            signal::install();
            args.connection.properties = properties;
            pub_cmd::run(args)
        }
        Command::Sub(mut args) => {
            signal::install();
            args.connection.properties = properties;
            sub_cmd::run(args)
        }
        Command::Demo(args) => demo::run(args),
        Command::Simulate(args) => simulate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}

/// `pub` / `sub`: the `-D` groups taken out of the command line (see [`property::extract`]).
fn take_properties(
    args: Vec<OsString>,
) -> Result<(Vec<OsString>, property::PropertySet), error::CliError> {
    let name = args.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    let command = Cli::command();
    match command
        .find_subcommand(name)
        .filter(|_| matches!(name, "pub" | "sub"))
    {
        Some(subcommand) => {
            let extracted = property::extract(args, subcommand)?;
            Ok((extracted.args, extracted.properties))
        }
        None => Ok((args, property::PropertySet::default())),
    }
}

/// mosquitto_pub / mosquitto_sub read options from `$XDG_CONFIG_HOME/mosquitto_pub` (or
/// `~/.config/mosquitto_pub`, and `…/mosquitto_sub`) before the command line; so do
/// `umqtt pub` and `umqtt sub`, with the same files so that one setup serves both. A missing
/// or unreadable file is skipped, as mosquitto does.
fn with_options_file(args: Vec<OsString>) -> Vec<OsString> {
    let file = match args.get(1).and_then(|a| a.to_str()) {
        Some("pub") => "mosquitto_pub",
        Some("sub") => "mosquitto_sub",
        _ => return args,
    };
    let directory = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(directory) => PathBuf::from(directory),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".config"),
            None => return args,
        },
    };
    let path = directory.join(file);
    let Ok(contents) = std::fs::read(&path) else {
        return args;
    };
    error::set_options_file(path);
    let mut all = args[..2].to_vec();
    all.extend(options_file_args(&contents));
    all.extend_from_slice(&args[2..]);
    all
}

/// The arguments an options file holds: per line an option and, after the first space, its
/// value (the rest of the line, spaces included); `#` starts a comment line.
fn options_file_args(contents: &[u8]) -> Vec<OsString> {
    let mut args = Vec::new();
    for line in contents.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'#') {
            continue;
        }
        let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
        let line = &line[start..];
        if line.is_empty() {
            continue;
        }
        match line.iter().position(|&b| b == b' ') {
            Some(space) => {
                args.push(os_string(&line[..space]));
                if space + 1 < line.len() {
                    args.push(os_string(&line[space + 1..]));
                }
            }
            None => args.push(os_string(line)),
        }
    }
    args
}

fn os_string(bytes: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes).to_owned()
}

/// Help and version go out as clap renders them; usage errors become one line that names the
/// help to read, e.g. `Error: unexpected argument '--foo' found (see 'umqtt pub --help')`.
fn report_clap_error(error: &clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(EXIT_USAGE))
        }
        _ => {
            let mut line = one_line_clap_error(&error.render().to_string(), &invoked_command());
            if let Some(path) = error::options_file() {
                line.push_str(&format!(
                    "; options were read from {} first",
                    path.display()
                ));
            }
            print_error_line(&line);
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `error: <what>` (with the argument list clap puts on the following lines, if any) and the
/// subcommand's help to read, on one line.
fn one_line_clap_error(rendered: &str, command: &str) -> String {
    let mut lines = rendered
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty());
    let first = lines.next().unwrap_or("invalid command line");
    let mut what = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    if what.ends_with(':') {
        // "the following required arguments were not provided:" + one indented line each.
        let listed: Vec<&str> = rendered
            .lines()
            .skip_while(|line| line.trim() != first)
            .skip(1)
            .take_while(|line| line.starts_with(' ') && !line.trim().is_empty())
            .map(str::trim)
            .collect();
        what = format!("{what} {}", listed.join(", "));
    }
    // clap's "did you mean" hint: `tip: a similar argument exists: '--topic'`.
    for tip in rendered
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("tip: "))
    {
        what = format!("{what}; {tip}");
    }
    format!("{what} (see '{command} --help')")
}

/// `umqtt pub` when the command line names a known subcommand, else `umqtt`.
fn invoked_command() -> String {
    let subcommand = std::env::args_os()
        .skip(1)
        .find(|arg| !arg.to_string_lossy().starts_with('-'))
        .map(|arg| arg.to_string_lossy().into_owned())
        .filter(|name| Cli::command().find_subcommand(name).is_some());
    match subcommand {
        Some(name) => format!("umqtt {name}"),
        None => "umqtt".to_owned(),
    }
}

/// A bug must not greet the user with a backtrace: one line, then exit status 101.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if error::panics_caught_elsewhere() {
            return;
        }
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown cause");
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = what.replace('\n', " ");
        let _ = writeln!(
            io::stderr().lock(),
            "Error: internal error{location}: {what} (a bug in umqtt; please report it)"
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use umqtt_core::packet::ProtocolVersion;

    #[test]
    fn command_definition_is_valid() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("umqtt").chain(args.iter().copied()))
    }

    #[test]
    fn dash_h_is_the_host() {
        let cli = parse(&["pub", "-h", "broker", "-t", "t", "-m", "x"]).unwrap();
        let Command::Pub(args) = cli.command else {
            panic!("not pub")
        };
        assert_eq!(args.connection.host.as_deref(), Some("broker"));
        let help = parse(&["sub", "--help"]).unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
    }

    #[test]
    fn exactly_one_message_source() {
        let error = parse(&["pub", "-t", "t", "-m", "a", "-f", "file"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
        let error = parse(&["pub", "-t", "t", "-n", "-l"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
        let error = parse(&["pub", "-t", "t"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
        for source in [&["-m", "x"][..], &["-f", "x"], &["-n"], &["-s"], &["-l"]] {
            let mut args = vec!["pub", "-t", "t"];
            args.extend_from_slice(source);
            parse(&args).unwrap();
        }
    }

    #[test]
    fn flag_values_are_checked() {
        let error = parse(&["pub", "-t", "t", "-n", "-q", "3"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        parse(&["sub", "-t", "t", "-V", "mqttv5"]).unwrap();
        let error = parse(&["sub", "-t", "t", "--policy", "fixed:0s"]).unwrap_err();
        assert!(error.to_string().contains("greater than zero"));
        let error = parse(&["sub", "-t", "t", "--will-payload", "x"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
        let error = parse(&["sub", "-L", "mqtt://h/t", "-p", "1"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn property_groups_are_read_before_clap_and_select_mqtt5() {
        let args: Vec<OsString> = [
            "umqtt",
            "pub",
            "-t",
            "t",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-m",
            "x",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let (args, properties) = take_properties(args).unwrap();
        let Command::Pub(parsed) = Cli::try_parse_from(args).unwrap().command else {
            panic!("not pub")
        };
        assert_eq!(parsed.connection.protocol, ProtocolVersion::V5);
        assert_eq!(
            properties
                .get(property::Target::Publish)
                .user_properties()
                .collect::<Vec<_>>(),
            [("k", "v")]
        );
        // Other subcommands are left alone; a bad group is one error line.
        let args: Vec<OsString> = ["umqtt", "demo", "-D"].iter().map(OsString::from).collect();
        assert_eq!(take_properties(args.clone()).unwrap().0, args);
        let args: Vec<OsString> = ["umqtt", "sub", "-t", "t", "-D", "connect"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(take_properties(args).is_err());
    }

    #[test]
    fn options_files_are_read_as_mosquitto_does() {
        let args = options_file_args(
            b"# comment\n-h broker.example\r\n\n  -v\n--cafile /a path/ca.pem\n-d \n",
        );
        assert_eq!(
            args,
            [
                "-h",
                "broker.example",
                "-v",
                "--cafile",
                "/a path/ca.pem",
                "-d"
            ]
        );
        // The command line wins over the file.
        let cli = parse(&["sub", "-p", "1", "-t", "t", "-p", "2"]).unwrap();
        let Command::Sub(sub) = cli.command else {
            panic!("not sub")
        };
        assert_eq!(sub.connection.port, Some(2));
        // Repeatable flags still add up.
        let cli = parse(&["sub", "-t", "a", "-t", "b", "-v", "-v"]).unwrap();
        let Command::Sub(sub) = cli.command else {
            panic!("not sub")
        };
        assert_eq!(sub.topics, ["a", "b"]);
    }

    #[test]
    fn clap_errors_become_one_line() {
        let error = parse(&["pub", "--bogus"]).unwrap_err();
        let line = one_line_clap_error(&error.render().to_string(), "umqtt pub");
        assert!(
            line.starts_with("unexpected argument '--bogus' found"),
            "{line}"
        );
        assert!(line.ends_with("(see 'umqtt pub --help')"), "{line}");
        assert!(!line.contains('\n'));
        let error = parse(&["pub", "-t", "t"]).unwrap_err();
        let line = one_line_clap_error(&error.render().to_string(), "umqtt pub");
        assert!(line.contains("not provided"), "{line}");
        assert!(!line.contains('\n'));
        let error = parse(&["pub", "--topi", "t"]).unwrap_err();
        let line = one_line_clap_error(&error.render().to_string(), "umqtt pub");
        assert!(
            line.contains("a similar argument exists: '--topic'"),
            "{line}"
        );
    }
}
