//! Flags shared by every subcommand that talks to a broker, and turning them into a connected
//! client.
//!
//! The names follow mosquitto_pub / mosquitto_sub (`-h -p -i -c -k -u -P -L -V -d`, `--will-*`,
//! `--cafile --cert --key --insecure`). Because `-h` is the host, help is `--help` only.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args};
use umqtt::simple::{Client, ClientConfig};
use umqtt::{QoS, TlsConfig};
use umqtt_core::packet::ProtocolVersion;

use crate::error::{print_warning_line, CliError};
use crate::policy::PolicySpec;
use crate::stream::CliStream;
use crate::url::BrokerUrl;

/// The client every subcommand drives.
pub type CliClient = Client<CliStream>;

/// Connection flags.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// Broker host name or IP address [default: localhost]
    #[arg(short = 'h', long = "host", value_name = "HOST")]
    pub host: Option<String>,

    /// Broker port [default: 1883, or 8883 with TLS]
    #[arg(short = 'p', long = "port", value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Broker as a URL: mqtt(s)://[user[:password]@]host[:port]/topic (mqtts = TLS)
    #[arg(short = 'L', long = "url", value_name = "URL",
          conflicts_with_all = ["host", "port", "username", "password"])]
    pub url: Option<String>,

    /// Client id [default: umqtt-<random>]
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub id: Option<String>,

    /// Keep the session when disconnecting (clean session off); needs -i
    #[arg(short = 'c', long = "disable-clean-session")]
    pub disable_clean_session: bool,

    /// Keepalive interval in seconds (0 disables it)
    #[arg(
        short = 'k',
        long = "keepalive",
        value_name = "SECONDS",
        default_value_t = 60
    )]
    pub keepalive: u16,

    /// User name
    #[arg(short = 'u', long = "username", value_name = "USER")]
    pub username: Option<String>,

    /// Password (needs -u)
    #[arg(
        short = 'P',
        long = "pw",
        visible_alias = "password",
        value_name = "PASSWORD"
    )]
    pub password: Option<OsString>,

    /// MQTT protocol version: mqttv311 (or 311), mqttv31 (or 31)
    #[arg(short = 'V', long = "protocol-version", value_name = "VERSION",
          default_value = "mqttv311", value_parser = parse_protocol_version)]
    pub protocol: ProtocolVersion,

    /// Print every packet sent and received on stderr
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,

    /// Print nothing on stderr: no errors, warnings or "connection lost" / "reconnected"
    /// lines (the exit status still tells), as mosquitto's --quiet
    #[arg(long = "quiet")]
    pub quiet: bool,

    /// Topic of the last will, published by the broker if this client vanishes
    #[arg(long = "will-topic", value_name = "TOPIC", help_heading = "Last will")]
    pub will_topic: Option<String>,

    /// Payload of the last will [default: empty]
    #[arg(
        long = "will-payload",
        value_name = "PAYLOAD",
        requires = "will_topic",
        help_heading = "Last will"
    )]
    pub will_payload: Option<OsString>,

    /// QoS of the last will [default: 0]
    #[arg(long = "will-qos", value_name = "QOS", requires = "will_topic",
          allow_hyphen_values = true, value_parser = parse_qos, help_heading = "Last will")]
    pub will_qos: Option<u8>,

    /// Retain the last will
    #[arg(
        long = "will-retain",
        requires = "will_topic",
        help_heading = "Last will"
    )]
    pub will_retain: bool,

    /// Trust only the CA certificates in this PEM file (enables TLS)
    #[arg(long = "cafile", value_name = "FILE", help_heading = "TLS")]
    pub cafile: Option<PathBuf>,

    /// Client certificate chain, PEM (enables TLS; needs --key)
    #[arg(
        long = "cert",
        value_name = "FILE",
        requires = "key",
        help_heading = "TLS"
    )]
    pub cert: Option<PathBuf>,

    /// Private key of --cert, PEM (needs --cert)
    #[arg(
        long = "key",
        value_name = "FILE",
        requires = "cert",
        help_heading = "TLS"
    )]
    pub key: Option<PathBuf>,

    /// Use TLS, trusting the operating system's CA bundle (the file named by $SSL_CERT_FILE,
    /// else the first of /etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt,
    /// /etc/ssl/ca-bundle.pem, /etc/ssl/cert.pem), plus --cafile if given
    #[arg(long = "tls-use-os-certs", help_heading = "TLS")]
    pub tls_use_os_certs: bool,

    /// Do not check that the broker's certificate names the host connected to (as
    /// mosquitto's --insecure). The certificate must still be signed by a trusted CA
    #[arg(long = "insecure", help_heading = "TLS")]
    pub insecure: bool,

    /// DANGEROUS: use TLS but accept ANY server certificate for any name (no CA check
    /// either): anyone on the network path can impersonate the broker
    #[arg(long = "tls-insecure-accept-any-cert", help_heading = "TLS")]
    pub accept_any_cert: bool,

    /// Print help
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// Flags for the robust client.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Reconnection")]
pub struct RobustArgs {
    /// Use the reconnecting client with this policy: none (no retry), fixed:2s, backoff:1s..60s,
    /// deadline:15s (messages expire), guaranteed (retry until delivered, battery-aware).
    /// Without it, as mosquitto_sub / mosquitto_pub -l: the first connection must succeed, then
    /// a lost connection is retried every second, forever (a refusal such as "not authorised"
    /// ends the command); `umqtt: connection lost …` / `umqtt: reconnected` go to stderr
    #[arg(long = "policy", value_name = "POLICY", value_parser = PolicySpec::parse)]
    pub policy: Option<PolicySpec>,
}

fn parse_protocol_version(text: &str) -> Result<ProtocolVersion, String> {
    match text {
        "mqttv311" | "311" => Ok(ProtocolVersion::V311),
        "mqttv31" | "31" => Ok(ProtocolVersion::V31),
        "mqttv5" | "5" => Err("MQTT 5 is not supported yet".to_owned()),
        _ => Err("expected mqttv311 (311) or mqttv31 (31)".to_owned()),
    }
}

/// A `-q` / `--will-qos` value: 0, 1 or 2. Negative numbers reach this parser (the flags
/// set `allow_hyphen_values`), so `-q -1` says what is wrong instead of "unexpected argument".
pub fn parse_qos(text: &str) -> Result<u8, String> {
    match text.trim() {
        "0" => Ok(0),
        "1" => Ok(1),
        "2" => Ok(2),
        // clap puts the value in front: "invalid value '-1' for '--qos <QOS>': …".
        _ => Err("must be 0, 1 or 2".to_owned()),
    }
}

/// A QoS from a value clap has already range-checked.
pub fn qos(value: u8) -> QoS {
    QoS::from_u8(value).unwrap_or(QoS::AtMostOnce)
}

/// Everything needed to connect, resolved from the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The simple client's settings.
    pub config: ClientConfig,
    /// Start a clean session.
    pub clean_session: bool,
    /// Last will: topic, payload, QoS, retain.
    pub will: Option<(String, Vec<u8>, QoS, bool)>,
    /// Log packets on stderr.
    pub debug: bool,
    /// The topic part of `-L`, if any.
    pub url_topic: Option<String>,
    /// `--quiet`.
    pub quiet: bool,
    /// Watch incoming messages: open QoS 2 handshakes and packet ids (a subscriber, see
    /// [`CliStream::watch_inbound`]).
    pub watch_inbound: bool,
}

impl ConnectArgs {
    /// Checks the flag combinations clap cannot express and resolves defaults.
    pub fn settings(&self) -> Result<Settings, CliError> {
        if self.quiet {
            crate::error::set_quiet();
        }
        let url = self
            .url
            .as_deref()
            .map(BrokerUrl::parse)
            .transpose()
            .map_err(CliError::Usage)?;

        if self.disable_clean_session && self.id.as_deref().unwrap_or_default().is_empty() {
            return Err(CliError::usage(
                "You must provide a client id if you are using the -c option.",
            ));
        }
        let client_id = match &self.id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => generated_client_id(),
        };

        let username = self
            .username
            .clone()
            .or_else(|| url.as_ref().and_then(|u| u.username.clone()));
        let mut password = self.password.as_ref().map(os_bytes).or_else(|| {
            url.as_ref()
                .and_then(|u| u.password.clone())
                .map(String::into_bytes)
        });
        if password.is_some() && username.is_none() {
            // As mosquitto: MQTT 3.1.1 forbids a password without a user name [MQTT-3.1.2-22].
            print_warning_line("Not using password since username not set.");
            password = None;
        }

        let url_tls = url.as_ref().is_some_and(|u| u.tls);
        let wants_tls = url_tls
            || self.cafile.is_some()
            || self.cert.is_some()
            || self.tls_use_os_certs
            || self.insecure
            || self.accept_any_cert;
        let tls = wants_tls.then(|| self.tls_config()).transpose()?;

        let will = match &self.will_topic {
            Some(topic) => {
                umqtt_core::topic::validate_topic_name(topic).map_err(|e| {
                    CliError::usage(format!(
                        "invalid will topic {}: {e}",
                        crate::error::echo(topic)
                    ))
                })?;
                Some((
                    topic.clone(),
                    self.will_payload.as_ref().map(os_bytes).unwrap_or_default(),
                    qos(self.will_qos.unwrap_or(0)),
                    self.will_retain,
                ))
            }
            None => None,
        };

        let (host, port) = match &url {
            Some(url) => (url.host.clone(), url.port),
            None => (
                self.host.clone().unwrap_or_else(|| "localhost".to_owned()),
                self.port,
            ),
        };

        Ok(Settings {
            config: ClientConfig {
                client_id,
                server: host,
                port,
                tls,
                username,
                password,
                keep_alive: self.keepalive,
                protocol: self.protocol,
                ..ClientConfig::default()
            },
            clean_session: !self.disable_clean_session,
            will,
            debug: self.debug,
            url_topic: url.and_then(|u| u.topic),
            quiet: self.quiet,
            watch_inbound: false,
        })
    }

    fn tls_config(&self) -> Result<TlsConfig, CliError> {
        let mut tls = TlsConfig::new();
        match (&self.cafile, self.tls_use_os_certs) {
            (Some(cafile), false) => tls = tls.ca_file(cafile),
            (None, true) => tls = tls.ca_file(os_ca_bundle()?),
            (Some(cafile), true) => {
                // Both, as mosquitto: the OS store and the given file.
                let mut pem = read_pem(&os_ca_bundle()?)?;
                pem.push(b'\n');
                pem.extend(read_pem(cafile)?);
                tls = tls.ca_pem(pem);
            }
            // Neither: the Mozilla roots built into umqtt.
            (None, false) => {}
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls.client_auth(cert, key);
        }
        if self.insecure {
            tls = tls.skip_hostname_verification(true);
        }
        if self.accept_any_cert {
            print_warning_line(
                "--tls-insecure-accept-any-cert: the broker's certificate is NOT verified. Anyone \
                 on the network path can impersonate the broker and read or change every \
                 message, password included. Use it only for testing.",
            );
            tls = tls.danger_accept_invalid_certs(true);
        }
        Ok(tls)
    }
}

/// Where operating systems keep their CA bundle (PEM), most common first.
const OS_CA_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];

/// The OS CA bundle: `$SSL_CERT_FILE` (as OpenSSL, which mosquitto uses), else the first of
/// [`OS_CA_BUNDLES`] that exists.
fn os_ca_bundle() -> Result<PathBuf, CliError> {
    if let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    OS_CA_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .ok_or_else(|| {
            CliError::failed(format!(
                "--tls-use-os-certs: no CA bundle found (looked for $SSL_CERT_FILE, {}); give \
                 the CA with --cafile",
                OS_CA_BUNDLES.join(", ")
            ))
        })
}

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| {
        CliError::failed(format!(
            "unable to read CA file {}: {}",
            path.display(),
            crate::error::io_message(&e)
        ))
    })
}

/// Connects (TCP, TLS, CONNECT/CONNACK) with these settings.
pub fn connect(settings: &Settings) -> Result<CliClient, CliError> {
    Ok(try_connect(settings)?.0)
}

/// Like [`connect`], keeping the library's error (for a reconnect policy to classify) and
/// returning whether the broker resumed the session.
pub fn try_connect(settings: &Settings) -> Result<(CliClient, bool), umqtt::Error> {
    let config = settings.config.clone();
    let transport = umqtt::transport::connect(
        &config.server,
        config.effective_port(),
        config.tls.as_ref(),
        config.connect_timeout,
    )
    .map_err(umqtt::Error::Transport)?;
    let mut stream = CliStream::new(transport, settings.debug.then(|| config.client_id.clone()));
    if settings.watch_inbound {
        stream = stream.watch_inbound();
    }
    let mut client = Client::with_config(config);
    if let Some((topic, payload, qos, retain)) = &settings.will {
        client.set_last_will(topic, payload, *retain, *qos);
    }
    let session_present = client.connect_with_stream(stream, settings.clean_session)?;
    Ok((client, session_present))
}

/// A client id unlikely to collide: `umqtt-` and 16 hex digits (22 characters, within MQTT
/// 3.1's limit of 23).
fn generated_client_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::time::{SystemTime, UNIX_EPOCH};

    // RandomState is seeded from the OS's random source once per process.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("umqtt-{:016x}", hasher.finish())
}

/// The bytes of a command-line argument, which need not be UTF-8.
pub fn os_bytes(text: &OsString) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        text.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        text.to_string_lossy().into_owned().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_versions() {
        assert_eq!(
            parse_protocol_version("mqttv311"),
            Ok(ProtocolVersion::V311)
        );
        assert_eq!(parse_protocol_version("311"), Ok(ProtocolVersion::V311));
        assert_eq!(parse_protocol_version("mqttv31"), Ok(ProtocolVersion::V31));
        assert_eq!(parse_protocol_version("31"), Ok(ProtocolVersion::V31));
        let error = parse_protocol_version("mqttv5").unwrap_err();
        assert_eq!(error, "MQTT 5 is not supported yet");
        assert!(parse_protocol_version("5").is_err());
        assert!(parse_protocol_version("4").is_err());
    }

    #[test]
    fn qos_values() {
        assert_eq!(parse_qos("0"), Ok(0));
        assert_eq!(parse_qos("2"), Ok(2));
        for bad in ["-1", "3", "", "one"] {
            let error = parse_qos(bad).unwrap_err();
            assert!(error.contains("must be 0, 1 or 2"), "{bad}: {error}");
        }
    }

    #[test]
    fn generated_ids_fit_mqtt_31_and_differ() {
        let a = generated_client_id();
        let b = generated_client_id();
        assert_eq!(a.len(), 22);
        assert!(a.starts_with("umqtt-"));
        assert_ne!(a, b);
    }
}
