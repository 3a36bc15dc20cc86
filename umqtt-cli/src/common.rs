//! Flags shared by every subcommand that talks to a broker, and turning them into a connected
//! client.
//!
//! The names follow mosquitto_pub / mosquitto_sub (`-h -p -i -c -k -u -P -L -V -d`, `--will-*`,
//! `--cafile --cert --key --insecure`). Because `-h` is the host, help is `--help` only.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args};
use umqtt::simple::{Client, ClientConfig};
use umqtt::transport::{ProxyConfig, TransportConfig, WebSocketConfig};
use umqtt::{QoS, TlsConfig};
use umqtt_core::packet::ProtocolVersion;
use umqtt_core::session::ConnectOptions;

use crate::error::{print_warning_line, CliError};
use crate::policy::PolicySpec;
use crate::property::{PropertySet, Target};
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

    /// Broker as a URL: mqtt(s)://[user[:password]@]host[:port]/topic (mqtts = TLS); ws:// and
    /// wss:// for MQTT over WebSocket (request path: --ws-path)
    #[arg(short = 'L', long = "url", value_name = "URL",
          conflicts_with_all = ["host", "port", "username", "password"])]
    pub url: Option<String>,

    /// Client id [default: umqtt-<random>]
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub id: Option<String>,

    /// Client id made of this prefix and the process id, as mosquitto's -I
    #[arg(
        short = 'I',
        long = "id-prefix",
        value_name = "PREFIX",
        conflicts_with = "id"
    )]
    pub id_prefix: Option<String>,

    /// Connect through this Unix domain socket instead of TCP (-h and -p are then unused)
    #[arg(long = "unix", value_name = "PATH", conflicts_with = "url")]
    pub unix: Option<PathBuf>,

    /// Reach the broker through this proxy: socks5h://[user[:password]@]host[:port] (SOCKS5,
    /// port 1080 by default; the proxy resolves the broker's name) or
    /// http://[user[:password]@]host[:port] (HTTP CONNECT, port 8080 by default)
    #[arg(long = "proxy", value_name = "URL", conflicts_with = "unix",
          value_parser = parse_proxy)]
    pub proxy: Option<ProxyConfig>,

    /// WebSocket request path for ws:// and wss:// URLs [default: /mqtt]
    #[arg(long = "ws-path", value_name = "PATH")]
    pub ws_path: Option<String>,

    /// Extra header of the WebSocket upgrade request, "Name: value" (e.g. "Authorization:
    /// Bearer …"); repeatable
    #[arg(long = "ws-header", value_name = "HEADER", value_parser = parse_ws_header)]
    pub ws_header: Vec<(String, String)>,

    /// Most QoS 1/2 messages sent and not yet acknowledged at a time [default: 20]
    #[arg(short = 'M', long = "max-inflight", value_name = "COUNT",
          allow_hyphen_values = true, value_parser = parse_max_inflight)]
    pub max_inflight: Option<u16>,

    /// Accepted for mosquitto compatibility: umqtt always disables Nagle's algorithm
    #[arg(long = "nodelay")]
    pub nodelay: bool,

    /// Session expiry interval in seconds (MQTT 5: set in CONNECT): 0 to 4294967294, or -1,
    /// 4294967295 or ∞ for a session that never expires (needs -i). Default: -1 with -c, else
    /// 0 (the session ends with the connection). Ignored with MQTT 3.1.1, where a -c session
    /// never expires
    #[arg(
        short = 'x',
        long = "session-expiry-interval",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    pub session_expiry: Option<String>,

    /// MQTT 5 property for a packet, as mosquitto's -D (repeatable; selects -V 5 unless a -V
    /// follows). COMMAND: connect, publish (pub), subscribe, unsubscribe (sub), disconnect or
    /// will. IDENTIFIER: connect: session-expiry-interval, receive-maximum,
    /// maximum-packet-size, request-problem-information, request-response-information,
    /// authentication-method, authentication-data; publish and will: content-type,
    /// correlation-data, message-expiry-interval, payload-format-indicator, response-topic;
    /// publish: topic-alias; will: will-delay-interval; subscribe: subscription-identifier;
    /// disconnect: session-expiry-interval, reason-string; any: user-property NAME VALUE.
    /// Publish properties are not kept in an --outbox file
    #[arg(short = 'D', long = "property", value_names = ["COMMAND", "IDENTIFIER", "VALUE"],
          num_args = 3..=4, help_heading = "MQTT 5")]
    pub property: Option<Vec<String>>,

    /// The -D properties, taken out of the command line before clap parses it (see
    /// `property::extract`): `property` above only documents the flag.
    #[arg(skip)]
    pub properties: PropertySet,

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

    /// MQTT protocol version: mqttv5 (or 5), mqttv311 (or 311), mqttv31 (or 31)
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

    /// Oldest TLS version to accept: tlsv1.3, or tlsv1.2 (the default; tlsv1.1 is taken as
    /// tlsv1.2, the oldest umqtt's TLS implements)
    #[arg(long = "tls-version", value_name = "VERSION", value_parser = parse_tls_version,
          help_heading = "TLS")]
    pub tls_version: Option<umqtt::TlsVersion>,

    /// Offer this ALPN protocol in the TLS handshake (e.g. x-amzn-mqtt-ca for AWS IoT on port
    /// 443)
    #[arg(long = "tls-alpn", value_name = "PROTOCOL", help_heading = "TLS")]
    pub tls_alpn: Option<String>,

    /// Trust the CA certificates in this directory (every file holding PEM certificates, as
    /// OpenSSL's c_rehash directories); enables TLS
    #[arg(long = "capath", value_name = "DIR", help_heading = "TLS")]
    pub capath: Option<PathBuf>,

    /// Print help
    #[arg(long = "help", action = ArgAction::Help, help_heading = "Connection")]
    pub help: Option<bool>,

    #[command(flatten)]
    pub unsupported: Unsupported,
}

/// mosquitto flags umqtt cannot honour: accepted by the parser so that the error says why,
/// instead of "unexpected argument".
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Not supported (each says why)")]
pub struct Unsupported {
    /// Bind to this local address: not supported yet
    #[arg(short = 'A', value_name = "ADDRESS")]
    pub bind_address: Option<String>,

    /// OpenSSL cipher list: rustls offers only modern suites, not configurable
    #[arg(long = "ciphers", value_name = "CIPHERS")]
    pub ciphers: Option<String>,

    /// TLS-PSK key: rustls has no pre-shared-key cipher suites
    #[arg(long = "psk", value_name = "HEX")]
    pub psk: Option<String>,

    /// TLS-PSK identity: see --psk
    #[arg(long = "psk-identity", value_name = "IDENTITY")]
    pub psk_identity: Option<String>,

    /// OpenSSL engine: not available with rustls
    #[arg(long = "tls-engine", value_name = "ENGINE")]
    pub tls_engine: Option<String>,

    /// Key form for an OpenSSL engine: not available with rustls
    #[arg(long = "keyform", value_name = "FORM")]
    pub keyform: Option<String>,

    /// OpenSSL engine key password hash: not available with rustls
    #[arg(long = "tls-engine-kpass-sha1", value_name = "HASH")]
    pub tls_engine_kpass_sha1: Option<String>,
}

impl Unsupported {
    /// The reason the first unsupported flag given cannot work.
    fn check(&self) -> Result<(), CliError> {
        let reason = if self.bind_address.is_some() {
            "-A (bind to a local address) is not supported by umqtt yet"
        } else if self.ciphers.is_some() {
            "--ciphers takes an OpenSSL cipher list; umqtt's TLS (rustls) offers only modern \
             suites (TLS 1.3 AES-GCM and ChaCha20-Poly1305, TLS 1.2 ECDHE with AES-GCM or \
             ChaCha20-Poly1305) and cannot be given a list"
        } else if self.psk.is_some() || self.psk_identity.is_some() {
            "--psk / --psk-identity: TLS-PSK is not available, rustls (umqtt's TLS) does not \
             implement pre-shared keys; use certificates (--cafile, --cert, --key)"
        } else if self.tls_engine.is_some()
            || self.keyform.is_some()
            || self.tls_engine_kpass_sha1.is_some()
        {
            "--tls-engine / --keyform / --tls-engine-kpass-sha1: OpenSSL engines are not \
             available, umqtt uses rustls; give the private key as a PEM file with --key"
        } else {
            return Ok(());
        };
        match crate::error::options_file() {
            Some(path) => Err(CliError::failed(format!(
                "{reason} (options were read from {} first)",
                path.display()
            ))),
            None => Err(CliError::failed(reason)),
        }
    }
}

/// A `--tls-version` value, as mosquitto names them. mosquitto takes it as the oldest version
/// allowed; rustls has nothing older than TLS 1.2.
fn parse_tls_version(text: &str) -> Result<umqtt::TlsVersion, String> {
    match text {
        "tlsv1.3" => Ok(umqtt::TlsVersion::Tls13),
        "tlsv1.2" | "tlsv1.1" => Ok(umqtt::TlsVersion::Tls12),
        _ => Err("expected tlsv1.3, tlsv1.2 or tlsv1.1".to_owned()),
    }
}

/// A `-M` value: 1 to 65535.
fn parse_max_inflight(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err("must be greater than 0 (1..65535)".to_owned()),
    }
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

/// The largest packet MQTT can express: remaining length 268 435 455 `[MQTT-2.2.3]` plus a
/// five-byte fixed header.
const MAX_PACKET_SIZE: i64 = umqtt_core::packet::MAX_REMAINING_LENGTH as i64 + 5;

fn parse_protocol_version(text: &str) -> Result<ProtocolVersion, String> {
    match text {
        "mqttv311" | "311" => Ok(ProtocolVersion::V311),
        "mqttv31" | "31" => Ok(ProtocolVersion::V31),
        "mqttv5" | "5" => Ok(ProtocolVersion::V5),
        _ => Err("expected mqttv5 (5), mqttv311 (311) or mqttv31 (31)".to_owned()),
    }
}

/// A `-x` value as mosquitto reads it (`strtol` with base 0: decimal, `0x` hex or `0` octal,
/// with an optional sign): 0 to 4294967295, with -1 and `∞` meaning 4294967295 (never
/// expires). The errors are mosquitto's.
fn parse_session_expiry(text: &str) -> Result<u32, String> {
    if text == "∞" {
        return Ok(u32::MAX);
    }
    let not_a_number = || "session-expiry-interval not a number.".to_owned();
    let trimmed = text.trim_start();
    let (negative, rest) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let (radix, digits) = if let Some(hex) = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))
        .filter(|hex| !hex.is_empty())
    {
        (16, hex)
    } else if rest.len() > 1 && rest.starts_with('0') {
        (8, &rest[1..])
    } else {
        (10, rest)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(not_a_number());
    }
    let magnitude = i128::from_str_radix(digits, radix).unwrap_or(i128::MAX);
    match if negative { -magnitude } else { magnitude } {
        -1 => Ok(u32::MAX),
        value => {
            u32::try_from(value).map_err(|_| "session-expiry-interval out of range.".to_owned())
        }
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
    /// Watch incoming messages: open QoS 2 handshakes and packet ids (a subscriber, see
    /// [`CliStream::watch_inbound`]).
    pub watch_inbound: bool,
    /// The `-D` properties (CONNECT's are already in `config.v5`).
    pub properties: PropertySet,
}

fn parse_proxy(url: &str) -> Result<ProxyConfig, String> {
    ProxyConfig::parse(url).map_err(|e| format!("{e} (got {})", crate::error::echo(url)))
}

fn parse_ws_header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!(
            "expected \"Name: value\", got {}",
            crate::error::echo(text)
        )),
    }
}

impl ConnectArgs {
    /// Checks the flag combinations clap cannot express and resolves defaults.
    pub fn settings(&self) -> Result<Settings, CliError> {
        if self.quiet {
            crate::error::set_quiet();
        }
        self.unsupported.check()?;
        if self.property.is_some() {
            // Only a form `property::extract` does not read reaches clap (`--property=…`,
            // `-vD …`): mosquitto knows neither.
            return Err(CliError::usage(
                "give -D / --property as its own argument: -D COMMAND IDENTIFIER VALUE",
            ));
        }
        let v5 = self.protocol.is_v5();
        // As mosquitto: -x is checked whatever the version, and used only by MQTT 5.
        let session_expiry = self
            .session_expiry
            .as_deref()
            .map(parse_session_expiry)
            .transpose()
            .map_err(CliError::usage)?;
        if !v5 && !self.properties.is_empty() {
            return Err(CliError::usage(
                "-D sets MQTT 5 properties, but a -V after it chose MQTT 3.1.x: drop that -V \
                 or give -V mqttv5",
            ));
        }
        if !v5 && session_expiry.is_some() {
            print_warning_line(
                "-x ignored: the session expiry interval is an MQTT 5 property (add -V 5); with \
                 MQTT 3.1.1 a -c session never expires",
            );
        }
        let url = self
            .url
            .as_deref()
            .map(BrokerUrl::parse)
            .transpose()
            .map_err(CliError::Usage)?;

        // As mosquitto: with MQTT 5, -c without -x means a session that never expires.
        let session_expiry = match session_expiry {
            None if v5 && self.disable_clean_session => Some(u32::MAX),
            other => other,
        };
        // As mosquitto: -I does not count as a client id for -c (MQTT 5: for a session that
        // never expires).
        let no_id = self.id.as_deref().unwrap_or_default().is_empty();
        if v5 && no_id && session_expiry == Some(u32::MAX) {
            return Err(CliError::usage(
                "You must provide a client id if you are using an infinite session expiry \
                 interval.",
            ));
        }
        if !v5 && self.disable_clean_session && no_id {
            return Err(CliError::usage(
                "You must provide a client id if you are using the -c option.",
            ));
        }
        // As mosquitto, the -x / -c expiry joins the -D connect properties (a -D
        // session-expiry-interval as well is a duplicate), and each packet's list is checked.
        let expiry_property = session_expiry
            .filter(|&seconds| v5 && seconds > 0)
            .map(umqtt_core::packet::Property::SessionExpiryInterval);
        self.properties.check(expiry_property.as_slice())?;
        let (v5_options, max_packet_size) = self.connect_options(session_expiry);
        let client_id = match (&self.id, &self.id_prefix) {
            (Some(id), _) if !id.is_empty() => id.clone(),
            (_, Some(prefix)) => format!("{prefix}{}", std::process::id()),
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
        let websocket = url.as_ref().is_some_and(|u| u.websocket);
        if !websocket && (self.ws_path.is_some() || !self.ws_header.is_empty()) {
            return Err(CliError::usage(
                "--ws-path and --ws-header need a ws:// or wss:// URL (-L)",
            ));
        }
        let mut transport = match (&self.unix, websocket) {
            (Some(path), _) => TransportConfig::unix(path),
            (None, true) => {
                let mut ws = WebSocketConfig::new(self.ws_path.as_deref().unwrap_or("/mqtt"));
                for (name, value) in &self.ws_header {
                    ws = ws.header(name, value);
                }
                TransportConfig::websocket(ws)
            }
            (None, false) => TransportConfig::tcp(),
        };
        if let Some(proxy) = &self.proxy {
            transport = transport.proxy(proxy.clone());
        }
        let wants_tls = url_tls
            || self.cafile.is_some()
            || self.cert.is_some()
            || self.tls_use_os_certs
            || self.insecure
            || self.accept_any_cert
            || self.capath.is_some();
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
                transport,
                username,
                password,
                keep_alive: self.keepalive,
                protocol: self.protocol,
                max_packet_size: max_packet_size
                    .or(self.max_packet_size)
                    .map_or(ClientConfig::default().max_packet_size, |bytes| {
                        bytes as usize
                    }),
                v5: v5_options,
                max_in_flight: self
                    .max_inflight
                    .unwrap_or(ClientConfig::default().max_in_flight),
                ..ClientConfig::default()
            },
            clean_session: !self.disable_clean_session,
            will,
            debug: self.debug,
            url_topic: url.and_then(|u| u.topic),
            watch_inbound: false,
            properties: self.properties.clone(),
        })
    }

    /// The MQTT 5 CONNECT options from `-x` / `-c` (`session_expiry`) and `-D connect …`,
    /// and the `-D connect maximum-packet-size` (the client's own limit, which the session
    /// announces).
    fn connect_options(&self, session_expiry: Option<u32>) -> (ConnectOptions, Option<u32>) {
        use umqtt_core::packet::Property;
        let given = self.properties.get(Target::Connect);
        let mut options = ConnectOptions::default();
        options.session_expiry_interval = given.session_expiry_interval().or(session_expiry);
        options.receive_maximum = given.receive_maximum();
        options.authentication_method = given.authentication_method().map(str::to_owned);
        options.user_properties = given
            .user_properties()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for property in given.iter() {
            match property {
                Property::RequestProblemInformation(b) => {
                    options.request_problem_information = Some(b)
                }
                Property::RequestResponseInformation(b) => {
                    options.request_response_information = Some(b)
                }
                Property::AuthenticationData(data) => {
                    options.authentication_data = Some(data.to_vec())
                }
                // The session resolves the broker's aliases (at most
                // MAX_INCOMING_TOPIC_ALIASES of them), so messages print with their topic.
                Property::TopicAliasMaximum(n) => options.topic_alias_maximum = Some(n),
                _ => {}
            }
        }
        (options, given.maximum_packet_size())
    }

    fn tls_config(&self) -> Result<TlsConfig, CliError> {
        let mut tls = TlsConfig::new();
        match (&self.cafile, self.tls_use_os_certs, &self.capath) {
            (Some(cafile), false, None) => tls = tls.ca_file(cafile),
            (None, true, None) => tls = tls.ca_file(os_ca_bundle()?),
            // Neither: the Mozilla roots built into umqtt.
            (None, false, None) => {}
            // Several, as mosquitto: all of them.
            (cafile, os, capath) => {
                let mut pem = Vec::new();
                if os {
                    pem.extend(read_pem(&os_ca_bundle()?)?);
                    pem.push(b'\n');
                }
                if let Some(cafile) = cafile {
                    pem.extend(read_pem(cafile)?);
                    pem.push(b'\n');
                }
                if let Some(capath) = capath {
                    pem.extend(read_ca_directory(capath)?);
                }
                tls = tls.ca_pem(pem);
            }
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls.client_auth(cert, key);
        }
        if self.insecure {
            tls = tls.skip_hostname_verification(true);
        }
        if let Some(version) = self.tls_version {
            tls = tls.minimum_version(version);
        }
        if let Some(protocol) = &self.tls_alpn {
            tls = tls.alpn([protocol]);
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

/// `--capath`: every regular file in `directory` holding a PEM certificate, concatenated
/// (OpenSSL reads such directories by hashed names; reading every file finds the same ones).
fn read_ca_directory(directory: &std::path::Path) -> Result<Vec<u8>, CliError> {
    let unreadable = |e: std::io::Error| {
        CliError::failed(format!(
            "unable to read --capath {}: {}",
            directory.display(),
            crate::error::io_message(&e)
        ))
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(directory)
        .map_err(unreadable)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut pem = Vec::new();
    for path in entries {
        let Ok(bytes) = std::fs::read(&path) else {
            continue; // a subdirectory or an unreadable file: OpenSSL skips it too
        };
        if bytes
            .windows(27)
            .any(|window| window == b"-----BEGIN CERTIFICATE-----")
        {
            pem.extend(bytes);
            pem.push(b'\n');
        }
    }
    if pem.is_empty() {
        return Err(CliError::failed(format!(
            "--capath {}: no PEM certificate found in this directory",
            directory.display()
        )));
    }
    Ok(pem)
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

/// Why a connection could not be made (transport, TLS, proxy, WebSocket, Unix socket or
/// CONNACK): the library's error, kept for a reconnect policy to classify.
#[derive(Debug)]
pub enum ConnectError {
    /// From the client or transport.
    Client(umqtt::Error),
}

impl ConnectError {
    /// What a reconnect policy sees.
    pub fn kind(&self) -> umqtt::robust::FailureKind {
        match self {
            ConnectError::Client(error) => umqtt::robust::classify(error),
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Client(error) => f.write_str(&crate::error::describe(error)),
        }
    }
}

impl From<umqtt::Error> for ConnectError {
    fn from(error: umqtt::Error) -> Self {
        ConnectError::Client(error)
    }
}

impl From<ConnectError> for CliError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Client(error) => error.into(),
        }
    }
}

/// Like [`connect`], keeping the library's error (for a reconnect policy to classify) and
/// returning whether the broker resumed the session.
pub fn try_connect(settings: &Settings) -> Result<(CliClient, bool), ConnectError> {
    let stream = open_stream(settings)?;
    let mut client = Client::with_config(settings.config.clone());
    if let Some((topic, payload, qos, retain)) = &settings.will {
        client
            .set_last_will_with(
                topic,
                payload,
                *retain,
                *qos,
                settings.properties.get(Target::Will),
            )
            .map_err(ConnectError::Client)?;
    }
    let session_present = client
        .connect_with_stream(stream, settings.clean_session)
        .map_err(ConnectError::Client)?;
    crate::signal::connected();
    Ok((client, session_present))
}

/// Sends DISCONNECT with the `-D disconnect …` properties (MQTT 5), normal reason.
pub fn disconnect(client: &mut CliClient, settings: &Settings) -> Result<(), umqtt::Error> {
    client.disconnect_with(umqtt_core::packet::Disconnect::new(
        umqtt_core::packet::ReasonCode::Success,
        settings.properties.get(Target::Disconnect),
    ))
}

/// Connects `client` again after a lost link, keeping its session: unacknowledged messages
/// are resent (same ids, DUP) if the broker resumed the session, or published again as new
/// ones (with `ClientConfig::republish_on_clean_session`) if not.
pub fn reconnect(client: &mut CliClient, settings: &Settings) -> Result<bool, ConnectError> {
    let stream = open_stream(settings)?;
    client
        .connect_with_stream(stream, settings.clean_session)
        .map_err(ConnectError::Client)
}

/// Opens the transport the flags name (TCP, TLS, WebSocket, Unix socket, through a proxy:
/// all the library's `transport::open`), wrapped for the `-d` packet log.
fn open_stream(settings: &Settings) -> Result<CliStream, ConnectError> {
    let config = &settings.config;
    let debug = settings.debug.then(|| config.client_id.clone());
    let transport = umqtt::transport::open(
        &config.server,
        config.effective_port(),
        config.tls.as_ref(),
        &config.transport,
        config.connect_timeout,
    )
    .map_err(umqtt::Error::Transport)?;
    let mut stream = CliStream::new(transport, debug).protocol(config.protocol);
    if settings.watch_inbound {
        stream = stream.watch_inbound();
    }
    Ok(stream)
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
        assert_eq!(parse_protocol_version("mqttv5"), Ok(ProtocolVersion::V5));
        assert_eq!(parse_protocol_version("5"), Ok(ProtocolVersion::V5));
        assert!(parse_protocol_version("4").is_err());
    }

    #[test]
    fn session_expiry_as_mosquitto_reads_it() {
        for (text, seconds) in [
            ("0", 0),
            ("60", 60),
            ("-1", u32::MAX),
            ("∞", u32::MAX),
            ("4294967295", u32::MAX),
            ("0x10", 16),
            ("010", 8),
            (" +5", 5),
        ] {
            assert_eq!(parse_session_expiry(text), Ok(seconds), "{text}");
        }
        for text in ["", "abc", "12s", "0x", "08", "1.5", "- 1"] {
            assert_eq!(
                parse_session_expiry(text),
                Err("session-expiry-interval not a number.".to_owned()),
                "{text}"
            );
        }
        for text in ["4294967296", "-2", "99999999999999999999999999"] {
            assert_eq!(
                parse_session_expiry(text),
                Err("session-expiry-interval out of range.".to_owned()),
                "{text}"
            );
        }
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
