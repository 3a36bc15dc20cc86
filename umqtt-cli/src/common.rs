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

    /// Largest incoming packet accepted, in bytes (a local memory limit; MQTT allows up to
    /// 268435460) [default: 4194304]
    #[arg(long = "max-packet-size", value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(2..=MAX_PACKET_SIZE))]
    pub max_packet_size: Option<u32>,

    /// Print every packet sent and received on stderr
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,

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
          value_parser = clap::value_parser!(u8).range(0..=2), help_heading = "Last will")]
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

    /// Use TLS, trusting the built-in Mozilla root certificates
    #[arg(long = "tls-use-os-certs", help_heading = "TLS")]
    pub tls_use_os_certs: bool,

    /// DANGEROUS: use TLS but accept any server certificate for any name
    #[arg(long = "insecure", help_heading = "TLS")]
    pub insecure: bool,

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
    /// Without it, a lost connection ends the command
    #[arg(long = "policy", value_name = "POLICY", value_parser = PolicySpec::parse)]
    pub policy: Option<PolicySpec>,
}

/// The largest packet MQTT can express: remaining length 268 435 455 `[MQTT-2.2.3]` plus a
/// five-byte fixed header.
const MAX_PACKET_SIZE: i64 = umqtt_core::packet::MAX_REMAINING_LENGTH as i64 + 5;

fn parse_protocol_version(text: &str) -> Result<ProtocolVersion, String> {
    match text {
        "mqttv311" | "311" => Ok(ProtocolVersion::V311),
        "mqttv31" | "31" => Ok(ProtocolVersion::V31),
        "mqttv5" | "5" => Err("MQTT 5 is not supported yet".to_owned()),
        _ => Err("expected mqttv311 (311) or mqttv31 (31)".to_owned()),
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
}

impl ConnectArgs {
    /// Checks the flag combinations clap cannot express and resolves defaults.
    pub fn settings(&self) -> Result<Settings, CliError> {
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
            || self.insecure;
        let tls = wants_tls.then(|| self.tls_config());

        let will = match &self.will_topic {
            Some(topic) => {
                umqtt_core::topic::validate_topic_name(topic)
                    .map_err(|e| CliError::usage(format!("invalid will topic {topic:?}: {e}")))?;
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
                max_packet_size: self
                    .max_packet_size
                    .map_or(ClientConfig::default().max_packet_size, |bytes| {
                        bytes as usize
                    }),
                ..ClientConfig::default()
            },
            clean_session: !self.disable_clean_session,
            will,
            debug: self.debug,
            url_topic: url.and_then(|u| u.topic),
        })
    }

    fn tls_config(&self) -> TlsConfig {
        let mut tls = TlsConfig::new();
        if let Some(cafile) = &self.cafile {
            tls = tls.ca_file(cafile);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls.client_auth(cert, key);
        }
        if self.insecure {
            print_warning_line(
                "--insecure: the broker's certificate is NOT verified. Anyone on the network path \
                 can impersonate the broker and read or change every message, password included. \
                 Use it only for testing.",
            );
            tls = tls.danger_accept_invalid_certs(true);
        }
        tls
    }
}

/// Connects (TCP, TLS, CONNECT/CONNACK) with these settings.
pub fn connect(settings: &Settings) -> Result<CliClient, CliError> {
    let config = settings.config.clone();
    let transport = umqtt::transport::connect(
        &config.server,
        config.effective_port(),
        config.tls.as_ref(),
        config.connect_timeout,
    )?;
    let stream = CliStream::new(transport, settings.debug.then(|| config.client_id.clone()));
    let mut client = Client::with_config(config);
    if let Some((topic, payload, qos, retain)) = &settings.will {
        client.set_last_will(topic, payload, *retain, *qos);
    }
    client.connect_with_stream(stream, settings.clean_session)?;
    Ok(client)
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
    fn generated_ids_fit_mqtt_31_and_differ() {
        let a = generated_client_id();
        let b = generated_client_id();
        assert_eq!(a.len(), 22);
        assert!(a.starts_with("umqtt-"));
        assert_ne!(a, b);
    }
}
