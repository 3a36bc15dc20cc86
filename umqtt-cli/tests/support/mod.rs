//! Helpers shared by the CLI's integration tests: running the built `umqtt` binary with time
//! limits (killed on drop), and waiting for a mosquitto subscriber to be ready.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use umqtt_testkit::broker::Mosquitto;

/// Longest any `umqtt` run may take in these tests.
pub const RUN_LIMIT: Duration = Duration::from_secs(15);
/// How long to wait for the broker to log something.
pub const LOG_WAIT: Duration = Duration::from_secs(10);

/// What a finished `umqtt` run left behind.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Exit status 0 and nothing on stderr.
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(
            self.status.success() && self.stderr.is_empty(),
            "expected success, got {self:?}"
        );
    }

    /// A non-zero exit with exactly one `Error: …` line on stderr and no panic or backtrace.
    #[track_caller]
    pub fn assert_one_line_error(&self) -> &str {
        assert!(!self.status.success(), "expected failure, got {self:?}");
        assert!(self.status.code().is_some(), "killed by a signal: {self:?}");
        let stderr = self.stderr.trim_end_matches('\n');
        assert!(
            !stderr.contains('\n') && stderr.starts_with("Error: "),
            "expected one `Error:` line, got {self:?}"
        );
        for forbidden in ["panicked", "RUST_BACKTRACE", "backtrace"] {
            assert!(!stderr.contains(forbidden), "{self:?}");
        }
        stderr
    }
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}, stdout {:?}, stderr {:?}",
            self.status,
            self.stdout_text(),
            self.stderr
        )
    }
}

/// A running `umqtt`; killed when dropped so that a failing test leaves nothing behind.
pub struct Running {
    pub child: Option<Child>,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<JoinHandle<Vec<u8>>>,
    pub stderr: Option<JoinHandle<Vec<u8>>>,
}

pub fn collect(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_umqtt"));
    command
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        // The developer's own ~/.config/mosquitto_pub|sub must not change what tests run.
        .env("XDG_CONFIG_HOME", "/nonexistent/umqtt-tests");
    command
}

/// Starts `umqtt args…` with stdin, stdout and stderr piped.
pub fn spawn(args: &[&str]) -> Running {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start umqtt");
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().map(collect);
    let stderr = child.stderr.take().map(collect);
    Running {
        child: Some(child),
        stdin,
        stdout,
        stderr,
    }
}

impl Running {
    /// Writes to stdin and closes it.
    pub fn input(mut self, bytes: &[u8]) -> Self {
        let mut stdin = self.stdin.take().expect("stdin already closed");
        stdin.write_all(bytes).expect("write to umqtt's stdin");
        self
    }

    /// Waits for the exit (closing stdin first), killing the process after `limit`.
    #[track_caller]
    pub fn finish_within(mut self, limit: Duration) -> Finished {
        drop(self.stdin.take());
        let mut child = self.child.take().expect("already finished");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = self.stdout.take().unwrap().join().unwrap();
                let stderr = self.stderr.take().unwrap().join().unwrap();
                panic!(
                    "umqtt still running after {limit:?}; stdout {:?}, stderr {:?}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        Finished {
            status,
            stdout: self.stdout.take().unwrap().join().unwrap(),
            stderr: String::from_utf8_lossy(&self.stderr.take().unwrap().join().unwrap())
                .into_owned(),
        }
    }

    #[track_caller]
    pub fn finish(self) -> Finished {
        self.finish_within(RUN_LIMIT)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `umqtt args…` with empty stdin to completion.
#[track_caller]
pub fn run(args: &[&str]) -> Finished {
    spawn(args).finish()
}

/// `-h 127.0.0.1 -p <port>` for `broker`, then `args`.
pub fn at(broker: &Mosquitto, args: &[&str]) -> Vec<String> {
    let mut all = vec![
        "-h".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        broker.port().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `umqtt <sub|pub> -h 127.0.0.1 -p PORT args…`, finished.
#[track_caller]
pub fn run_at(broker: &Mosquitto, subcommand: &str, args: &[&str]) -> Finished {
    let mut all = vec![subcommand.to_owned()];
    all.extend(at(broker, args));
    run(&strs(&all))
}

/// Starts `umqtt sub -i ID args…` against `broker` and waits until it is subscribed.
#[track_caller]
pub fn subscriber(broker: &Mosquitto, id: &str, args: &[&str]) -> Running {
    let mut all = vec!["sub".to_owned(), "-i".to_owned(), id.to_owned()];
    all.extend(at(broker, args));
    let running = spawn(&strs(&all));
    wait_subscribed(broker, id);
    running
}

#[track_caller]
pub fn wait_subscribed(broker: &Mosquitto, id: &str) {
    assert!(
        broker.wait_for_log(&format!("Sending SUBACK to {id}"), LOG_WAIT),
        "{id} did not subscribe; broker log:\n{}",
        broker.log_contents()
    );
}

/// mosquitto_sub from mosquitto-clients (CI installs it).
pub fn mosquitto_sub() -> Command {
    let path = ["/usr/bin/mosquitto_sub", "/usr/local/bin/mosquitto_sub"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("mosquitto_sub not installed: apt-get install mosquitto-clients");
    let mut command = Command::new(path);
    command.env("XDG_CONFIG_HOME", "/nonexistent/umqtt-tests");
    command
}

/// mosquitto_pub from mosquitto-clients (CI installs it).
pub fn mosquitto_pub() -> Command {
    let path = ["/usr/bin/mosquitto_pub", "/usr/local/bin/mosquitto_pub"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("mosquitto_pub not installed: apt-get install mosquitto-clients");
    let mut command = Command::new(path);
    command.env("XDG_CONFIG_HOME", "/nonexistent/umqtt-tests");
    command
}
