//! A real mosquitto broker per test, on free loopback ports.
//!
//! ```no_run
//! use umqtt_testkit::broker::Mosquitto;
//!
//! let broker = Mosquitto::builder().persistence(true).start();
//! let port = broker.port();
//! # let _ = port;
//! ```
//!
//! Each broker lives in its own temporary directory holding `mosquitto.conf`,
//! `mosquitto.log` (`log_type all`), `mosquitto.stderr`, the TLS files, the
//! password file and the `persistence/` directory. Dropping the handle kills
//! the process and deletes the directory.
//!
//! Mosquitto quirks this module takes care of:
//! - Started as root, mosquitto 2 switches to the `mosquitto` user *after*
//!   opening its listeners but *before* opening the log file and writing
//!   persistence, and then silently cannot write into a root-owned temporary
//!   directory (only "Error: Permission denied." on stderr, and no
//!   `mosquitto.db`). The configuration therefore says `user root`, which
//!   mosquitto honours by not switching; when not run as root the option is
//!   ignored.
//! - Mosquitto 2 listens on nothing without an explicit `listener`, and
//!   refuses anonymous clients unless `allow_anonymous true` is set.
//! - The in-memory database is written on SIGTERM (see [`Mosquitto::stop`])
//!   and every `autosave_interval`, not on SIGKILL ([`Mosquitto::kill`]).

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::certs::{CertificateFiles, TestCerts};

/// How long a starting broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping broker may take to save and exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Mosquitto::restart`] keeps retrying while the old port is not
/// yet free.
const RESTART_BIND_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports [`MosquittoBuilder::start`] tries when another
/// process grabs a free port between our probe and mosquitto's bind.
const START_ATTEMPTS: usize = 5;

/// The TLS files a broker's TLS listener uses, copied into its directory.
#[derive(Clone, Debug)]
struct TlsFiles {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// Options for a [`Mosquitto`] broker; see [`Mosquitto::builder`].
#[derive(Clone, Debug)]
pub struct MosquittoBuilder {
    persistence: bool,
    autosave_interval: Option<u32>,
    autosave_on_changes: bool,
    users: Vec<(String, String)>,
    force_builtin_password_hash: bool,
    tls: Option<TlsFiles>,
    require_certificate: bool,
    max_inflight_messages: Option<u32>,
    max_queued_messages: u64,
    extra_lines: Vec<String>,
}

impl Default for MosquittoBuilder {
    fn default() -> Self {
        MosquittoBuilder {
            persistence: false,
            autosave_interval: None,
            autosave_on_changes: false,
            users: Vec::new(),
            force_builtin_password_hash: false,
            tls: None,
            require_certificate: false,
            max_inflight_messages: None,
            // Mosquitto's default (1000) would drop offline messages in
            // tests that count losses; make the broker effectively lossless.
            max_queued_messages: 1_000_000,
            extra_lines: Vec::new(),
        }
    }
}

impl MosquittoBuilder {
    /// Keeps sessions, subscriptions, queued and retained messages in
    /// `persistence/mosquitto.db` across [`Mosquitto::stop`] and
    /// [`Mosquitto::restart`]. Off by default.
    pub fn persistence(mut self, enabled: bool) -> Self {
        self.persistence = enabled;
        self
    }

    /// Saves the database every `seconds` (or, with
    /// [`MosquittoBuilder::autosave_on_changes`], every `seconds` changes),
    /// so that a [`Mosquitto::kill`] loses little. Mosquitto's default is
    /// 1800 s.
    pub fn autosave_interval(mut self, seconds: u32) -> Self {
        self.autosave_interval = Some(seconds);
        self
    }

    /// Makes `autosave_interval` count changes instead of seconds.
    pub fn autosave_on_changes(mut self, enabled: bool) -> Self {
        self.autosave_on_changes = enabled;
        self
    }

    /// Adds a user to the password file; any user switches to
    /// `allow_anonymous false`.
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }

    /// Writes the password file with this crate's own hashing instead of
    /// `mosquitto_passwd`, the fallback used when that tool is missing.
    /// Exists so the fallback itself can be tested.
    pub fn force_builtin_password_hash(mut self, enabled: bool) -> Self {
        self.force_builtin_password_hash = enabled;
        self
    }

    /// Adds a TLS listener on a second port, with the server certificate of
    /// `certs` (valid for `localhost` and `127.0.0.1`) and trusting
    /// `certs.ca()` for client certificates.
    pub fn tls(self, certs: &TestCerts) -> Self {
        self.tls_with(certs.ca(), certs.server())
    }

    /// Adds a TLS listener with the given server certificate, trusting `ca`
    /// for client certificates.
    pub fn tls_with(mut self, ca: &CertificateFiles, server: &CertificateFiles) -> Self {
        self.tls = Some(TlsFiles {
            ca_pem: ca.cert_pem().to_owned(),
            cert_pem: server.cert_pem().to_owned(),
            key_pem: server.key_pem().to_owned(),
        });
        self
    }

    /// On the TLS listener, rejects clients without a certificate signed by
    /// the CA.
    pub fn require_certificate(mut self, required: bool) -> Self {
        self.require_certificate = required;
        self
    }

    /// Limits QoS 1 and 2 messages in flight per client (mosquitto's
    /// default is 20).
    pub fn max_inflight_messages(mut self, count: u32) -> Self {
        self.max_inflight_messages = Some(count);
        self
    }

    /// Limits messages queued per offline client; 0 means no limit in
    /// mosquitto. Defaults to 1 000 000 here, so that nothing is dropped.
    pub fn max_queued_messages(mut self, count: u64) -> Self {
        self.max_queued_messages = count;
        self
    }

    /// Appends a raw line to `mosquitto.conf`, for options not covered here.
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.extra_lines.push(line.into());
        self
    }

    /// Starts the broker and waits until its listeners accept connections.
    ///
    /// # Panics
    ///
    /// If mosquitto is not installed (integration tests do not skip), or
    /// if it does not start within 10 s; the message includes its log.
    pub fn start(self) -> Mosquitto {
        let executable = find_mosquitto();
        let directory = tempfile::Builder::new()
            .prefix("umqtt-mosquitto-")
            .tempdir()
            .expect("cannot create a temporary directory for mosquitto");
        let root = directory.path().to_path_buf();

        let tls_paths = self.tls.as_ref().map(|files| write_tls_files(&root, files));
        let password_file = if self.users.is_empty() {
            None
        } else {
            let path = root.join("passwords");
            write_password_file(&path, &self.users, self.force_builtin_password_hash);
            Some(path)
        };
        let persistence_directory = if self.persistence {
            let path = root.join("persistence");
            fs::create_dir_all(&path).expect("cannot create the persistence directory");
            Some(path)
        } else {
            None
        };

        let mut broker = Mosquitto {
            executable,
            config_path: root.join("mosquitto.conf"),
            log_path: root.join("mosquitto.log"),
            stderr_path: root.join("mosquitto.stderr"),
            persistence_directory,
            port: 0,
            tls_port: None,
            child: None,
            directory,
        };

        for attempt in 1..=START_ATTEMPTS {
            broker.port = free_port();
            broker.tls_port = tls_paths.as_ref().map(|_| free_port());
            let config = self.render_config(&broker, tls_paths.as_ref(), password_file.as_deref());
            fs::write(&broker.config_path, config).expect("cannot write mosquitto.conf");
            match broker.spawn_and_wait() {
                Ok(()) => return broker,
                Err(StartFailure::AddressInUse) if attempt < START_ATTEMPTS => continue,
                Err(failure) => broker.fail_start(failure),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    fn render_config(
        &self,
        broker: &Mosquitto,
        tls_paths: Option<&TlsPaths>,
        password_file: Option<&Path>,
    ) -> String {
        let mut config = String::new();
        let mut line = |text: String| {
            config.push_str(&text);
            config.push('\n');
        };
        line("# Generated by umqtt-testkit.".to_owned());
        // See the module documentation: without this, a broker started as
        // root cannot write its log or persistence in our directory.
        line("user root".to_owned());
        line(format!("log_dest file {}", broker.log_path.display()));
        line("log_type all".to_owned());
        line("connection_messages true".to_owned());
        line(format!("max_queued_messages {}", self.max_queued_messages));
        if let Some(count) = self.max_inflight_messages {
            line(format!("max_inflight_messages {count}"));
        }
        match &broker.persistence_directory {
            Some(path) => {
                line("persistence true".to_owned());
                // Mosquitto appends the file name to this string as is, so
                // the trailing slash matters.
                line(format!("persistence_location {}/", path.display()));
                line("persistence_file mosquitto.db".to_owned());
            }
            None => line("persistence false".to_owned()),
        }
        if let Some(seconds) = self.autosave_interval {
            line(format!("autosave_interval {seconds}"));
        }
        if self.autosave_on_changes {
            line("autosave_on_changes true".to_owned());
        }
        match password_file {
            Some(path) => {
                line("allow_anonymous false".to_owned());
                line(format!("password_file {}", path.display()));
            }
            None => line("allow_anonymous true".to_owned()),
        }

        line(format!("listener {} 127.0.0.1", broker.port));
        line("set_tcp_nodelay true".to_owned());
        if let (Some(tls_port), Some(paths)) = (broker.tls_port, tls_paths) {
            line(format!("listener {tls_port} 127.0.0.1"));
            line("set_tcp_nodelay true".to_owned());
            line(format!("cafile {}", paths.ca.display()));
            line(format!("certfile {}", paths.cert.display()));
            line(format!("keyfile {}", paths.key.display()));
            line(format!("require_certificate {}", self.require_certificate));
        }
        for extra in &self.extra_lines {
            line(extra.clone());
        }
        config
    }
}

/// A running (or stopped) mosquitto; see the [module documentation](self).
#[derive(Debug)]
pub struct Mosquitto {
    executable: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    stderr_path: PathBuf,
    persistence_directory: Option<PathBuf>,
    port: u16,
    tls_port: Option<u16>,
    child: Option<Child>,
    // Last, so the process is gone (see Drop) before its files are deleted.
    directory: TempDir,
}

impl Mosquitto {
    /// Options for a broker; finish with [`MosquittoBuilder::start`].
    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder::default()
    }

    /// Starts a broker with default options: plain TCP, anonymous access,
    /// no persistence.
    pub fn start() -> Mosquitto {
        MosquittoBuilder::default().start()
    }

    /// The address the listeners are bound to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The plain TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port.
    ///
    /// # Panics
    ///
    /// If the broker was built without [`MosquittoBuilder::tls`].
    pub fn tls_port(&self) -> u16 {
        self.tls_port
            .expect("this broker has no TLS listener: build it with .tls(&certs)")
    }

    /// The plain TCP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The broker's temporary directory.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// Where the database is saved, if persistence is on; the file exists
    /// only after a save.
    pub fn persistence_file(&self) -> Option<PathBuf> {
        self.persistence_directory
            .as_ref()
            .map(|directory| directory.join("mosquitto.db"))
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The whole broker log so far, across restarts.
    ///
    /// With `log_type all` it has lines such as
    /// `1700000000: Received PINGREQ from client-id`,
    /// `1700000000: Sending PINGRESP to client-id` and
    /// `1700000000: New client connected from 127.0.0.1:40000 as client-id (p2, c1, k60).`
    /// The lines are flushed as they are written.
    pub fn log_contents(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// What mosquitto wrote to stdout and stderr (startup errors, and
    /// failures it does not log, such as persistence write errors).
    pub fn stderr_contents(&self) -> String {
        fs::read(&self.stderr_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the log contains `needle`; returns whether it did within
    /// `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_contents().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops gracefully with SIGTERM, letting mosquitto save its database,
    /// and waits for it to exit (SIGKILL after 10 s). Does nothing if it is
    /// not running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            // SIGTERM through libc, not a `kill` process: spawning one can fail on a loaded
            // machine, and falling back to SIGKILL would turn a graceful stop into a crash
            // (what the broker had not saved would be lost, and a test counting messages
            // through a restart would blame the client).
            let pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
            // SAFETY: kill(2) with a pid of our own child and a valid signal number.
            let signalled = pid > 0 && unsafe { libc::kill(pid, libc::SIGTERM) } == 0;
            if signalled && wait_with_timeout(&mut child, STOP_TIMEOUT).is_some() {
                return;
            }
            eprintln!(
                "umqtt-testkit: mosquitto (pid {}) did not exit within {STOP_TIMEOUT:?} of \
                 SIGTERM (signalled: {signalled}); killing it: what it had not saved is lost",
                child.id()
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills with SIGKILL, as a crash would: nothing is saved beyond the
    /// last autosave. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again with the same ports, configuration and
    /// persistence directory, stopping it first (SIGTERM) if it still runs.
    ///
    /// # Panics
    ///
    /// If it does not come back within 10 s.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + RESTART_BIND_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                // Mosquitto sets SO_REUSEADDR, so TIME_WAIT should not block
                // it, but a client of the old process may linger briefly.
                Err(StartFailure::AddressInUse) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(failure) => self.fail_start(failure),
            }
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartFailure> {
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("cannot open mosquitto.stderr");
        let stdout = stderr.try_clone().expect("cannot duplicate a file handle");
        let stderr_length_before = self.stderr_contents().len();
        let log_length_before = self.log_contents().len();
        let child = Command::new(&self.executable)
            .arg("-c")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", self.executable.display()));
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let new_output = format!(
                        "{}{}",
                        self.log_contents().get(log_length_before..).unwrap_or(""),
                        self.stderr_contents()
                            .get(stderr_length_before..)
                            .unwrap_or("")
                    );
                    if new_output.contains("Address already in use") {
                        return Err(StartFailure::AddressInUse);
                    }
                    return Err(StartFailure::Exited(status));
                }
            }
            let ports = std::iter::once(self.port).chain(self.tls_port);
            if ports.into_iter().all(accepts_connections) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(StartFailure::Timeout);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn fail_start(&mut self, failure: StartFailure) -> ! {
        self.kill();
        let mut message = String::new();
        let _ = write!(
            message,
            "mosquitto ({}) did not start on 127.0.0.1:{}: {}",
            self.executable.display(),
            self.port,
            match failure {
                StartFailure::AddressInUse => "port still in use".to_owned(),
                StartFailure::Exited(status) => format!("it exited with {status}"),
                StartFailure::Timeout =>
                    format!("not accepting connections after {START_TIMEOUT:?}"),
            }
        );
        let config = fs::read_to_string(&self.config_path).unwrap_or_default();
        let _ = write!(
            message,
            "\n--- mosquitto.conf ---\n{config}--- mosquitto.log ---\n{}--- stdout/stderr ---\n{}",
            self.log_contents(),
            self.stderr_contents()
        );
        panic!("{message}");
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug)]
enum StartFailure {
    AddressInUse,
    Exited(ExitStatus),
    Timeout,
}

struct TlsPaths {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write_tls_files(root: &Path, files: &TlsFiles) -> TlsPaths {
    let paths = TlsPaths {
        ca: root.join("tls-ca.crt"),
        cert: root.join("tls-server.crt"),
        key: root.join("tls-server.key"),
    };
    fs::write(&paths.ca, &files.ca_pem).expect("cannot write the broker's CA file");
    fs::write(&paths.cert, &files.cert_pem).expect("cannot write the broker's certificate");
    fs::write(&paths.key, &files.key_pem).expect("cannot write the broker's key");
    paths
}

/// The mosquitto executable: `$UMQTT_MOSQUITTO`, `/usr/sbin/mosquitto`, or
/// `mosquitto` on `PATH`.
///
/// # Panics
///
/// If there is none: integration tests must fail loudly, never skip.
pub fn find_mosquitto() -> PathBuf {
    if let Some(path) = std::env::var_os("UMQTT_MOSQUITTO") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return path;
        }
        panic!(
            "UMQTT_MOSQUITTO is set to {}, which is not a file",
            path.display()
        );
    }
    find_executable(
        "mosquitto",
        &["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"],
    )
    .unwrap_or_else(|| {
        panic!(
            "mosquitto not found: install it (apt-get install -y mosquitto); \
             integration tests do not skip"
        )
    })
}

fn find_executable(name: &str, well_known: &[&str]) -> Option<PathBuf> {
    let well_known = well_known.iter().map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|directory| directory.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    well_known.chain(on_path).find(|path| path.is_file())
}

/// A port that was free a moment ago: bind port 0 and let the kernel pick.
///
/// Another process may take it before mosquitto binds it; the builder
/// retries with a new port when that happens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
}

fn accepts_connections(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// Writes a mosquitto password file, with `mosquitto_passwd` when it is
/// installed, otherwise with [`hash_password`].
fn write_password_file(path: &Path, users: &[(String, String)], force_builtin: bool) {
    let tool = if force_builtin {
        None
    } else {
        find_executable("mosquitto_passwd", &["/usr/bin/mosquitto_passwd"])
    };
    let Some(tool) = tool else {
        let contents: String = users
            .iter()
            .map(|(name, password)| format!("{name}:{}\n", hash_password(password)))
            .collect();
        fs::write(path, contents).expect("cannot write the password file");
        return;
    };
    for (index, (name, password)) in users.iter().enumerate() {
        let mut command = Command::new(&tool);
        // -c creates (truncates) the file, so only for the first user.
        if index == 0 {
            command.arg("-c");
        }
        let output = command
            .arg("-b")
            .arg(path)
            .arg(name)
            .arg(password)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", tool.display()));
        assert!(
            output.status.success(),
            "{} failed for user {name}: {}",
            tool.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Hashes a password in mosquitto's salted SHA-512 format (`$6$`), which
/// mosquitto 2 still accepts: `$6$` + base64(salt) + `$` +
/// base64(SHA-512(password ‖ salt)).
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .expect("the system random generator failed");
    let mut input = password.as_bytes().to_vec();
    input.extend_from_slice(&salt);
    let digest = ring::digest::digest(&ring::digest::SHA512, &input);
    format!(
        "$6${}${}",
        crate::base64::encode(&salt),
        crate::base64::encode(digest.as_ref())
    )
}
