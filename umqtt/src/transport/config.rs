//! What carries the MQTT bytes besides TCP and TLS (`TransportConfig`): WebSocket, a Unix
//! domain socket, and a proxy (HTTP CONNECT or SOCKS5) on the way.

use std::fmt;
use std::path::PathBuf;

/// How a client reaches its broker, beyond the host, port and TLS settings it already has.
///
/// The default is plain TCP (TLS on top when the client has a [`TlsConfig`](super::TlsConfig)).
/// The same description serves the simple client, every server of the robust client's
/// list, and the async drivers.
///
/// ```
/// use umqtt::transport::{ProxyConfig, TransportConfig, WebSocketConfig};
///
/// // wss://broker.example/mqtt (TLS comes from the client's TlsConfig), through a
/// // corporate HTTP proxy, with a bearer token on the upgrade request.
/// let transport = TransportConfig::websocket(
///     WebSocketConfig::new("/mqtt").header("Authorization", "Bearer t0ken"),
/// )
/// .proxy(ProxyConfig::http_connect("proxy.corp", 3128));
/// # let _ = transport;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportConfig {
    /// What carries the MQTT bytes.
    pub carrier: Carrier,
    /// A proxy the TCP connection goes through (not for [`Carrier::Unix`]).
    pub proxy: Option<ProxyConfig>,
}

impl TransportConfig {
    /// Plain TCP (or TLS over TCP): MQTT's ports 1883 and 8883.
    pub fn tcp() -> Self {
        Self::default()
    }

    /// MQTT over WebSocket (`ws://`, or `wss://` with a TLS configuration).
    pub fn websocket(config: WebSocketConfig) -> Self {
        TransportConfig {
            carrier: Carrier::WebSocket(config),
            proxy: None,
        }
    }

    /// A Unix domain socket (a local broker's `listener 0 /path/sock`); the host and port are
    /// not used.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        TransportConfig {
            carrier: Carrier::Unix(path.into()),
            proxy: None,
        }
    }

    /// Goes through `proxy`.
    #[must_use]
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The broker port used when none is configured: 80 / 443 for WebSocket, else 1883 /
    /// 8883.
    pub fn default_port(&self, tls: bool) -> u16 {
        match (&self.carrier, tls) {
            (Carrier::WebSocket(_), false) => 80,
            (Carrier::WebSocket(_), true) => 443,
            (_, false) => 1883,
            (_, true) => 8883,
        }
    }
}

/// What carries the MQTT bytes, see [`TransportConfig`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Carrier {
    /// A TCP connection (with TLS on top when configured).
    #[default]
    Tcp,
    /// A WebSocket connection over TCP or TLS, sub-protocol `mqtt`.
    WebSocket(WebSocketConfig),
    /// A Unix domain socket at this path.
    Unix(PathBuf),
}

/// MQTT over WebSocket: the request path and extra headers of the upgrade request.
///
/// The sub-protocol `mqtt` is always requested and the broker must answer it (MQTT 3.1.1
/// §6.0, [MQTT-6.0.0-3]); MQTT packets travel in binary frames [MQTT-6.0.0-1], a packet may
/// span frames and a frame may hold several packets [MQTT-6.0.0-2].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebSocketConfig {
    /// The request path, e.g. `/mqtt`.
    pub path: String,
    /// Extra request headers (e.g. `Authorization` for token authentication).
    pub headers: Vec<(String, String)>,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig::new("/mqtt")
    }
}

impl WebSocketConfig {
    /// Requests `path` (default `/mqtt`, what HiveMQ, EMQX, AWS IoT and mosquitto's examples
    /// use); a path without a leading `/` gets one.
    pub fn new(path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        WebSocketConfig {
            path,
            headers: Vec::new(),
        }
    }

    /// Adds a header to the upgrade request.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Which proxy protocol, see [`ProxyConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy's `CONNECT host:port` tunnel (RFC 9110 §9.3.6).
    HttpConnect,
    /// SOCKS5 (RFC 1928); the proxy resolves the broker's name (`socks5h://`).
    Socks5,
}

/// A proxy to reach the broker through. TLS, if configured, runs end to end through the
/// tunnel: the proxy sees only encrypted bytes.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The protocol.
    pub kind: ProxyKind,
    /// The proxy's host name or IP address.
    pub host: String,
    /// The proxy's port.
    pub port: u16,
    /// User name and password: SOCKS5's RFC 1929 authentication, or HTTP `Basic`
    /// `Proxy-Authorization`.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            // Never print the password.
            .field(
                "user",
                &self.credentials.as_ref().map(|(user, _)| user.as_str()),
            )
            .finish()
    }
}

impl ProxyConfig {
    /// An HTTP CONNECT proxy.
    pub fn http_connect(host: impl Into<String>, port: u16) -> Self {
        ProxyConfig {
            kind: ProxyKind::HttpConnect,
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// A SOCKS5 proxy.
    pub fn socks5(host: impl Into<String>, port: u16) -> Self {
        ProxyConfig {
            kind: ProxyKind::Socks5,
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// Authenticates with this user name and password.
    #[must_use]
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Parses a proxy URL as mosquitto's `--proxy` and curl spell them:
    /// `socks5h://[user[:password]@]host[:port]` (port 1080 by default; `socks5://` is taken
    /// the same way: the proxy resolves the name) or `http://[user[:password]@]host[:port]`
    /// (port 8080 by default).
    ///
    /// # Errors
    ///
    /// Another scheme, no host, a bad port, or credentials longer than SOCKS5's 255 bytes.
    pub fn parse(url: &str) -> Result<Self, ProxyUrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(ProxyUrlError::Scheme)?;
        let (kind, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "socks5h" | "socks5" => (ProxyKind::Socks5, 1080),
            "http" => (ProxyKind::HttpConnect, 8080),
            _ => return Err(ProxyUrlError::Scheme),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((user_info, address)) => {
                let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
                if kind == ProxyKind::Socks5 && (user.len() > 255 || password.len() > 255) {
                    return Err(ProxyUrlError::CredentialsTooLong);
                }
                (Some((user.to_owned(), password.to_owned())), address)
            }
            None => (None, rest),
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or(ProxyUrlError::Port)?;
                (host, port)
            }
            _ => (address, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(ProxyUrlError::NoHost);
        }
        Ok(ProxyConfig {
            kind,
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

/// Why [`ProxyConfig::parse`] refused a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyUrlError {
    /// Not `socks5h://`, `socks5://` or `http://`.
    Scheme,
    /// The URL names no host.
    NoHost,
    /// The port is not a number from 1 to 65535.
    Port,
    /// SOCKS5 limits the user name and the password to 255 bytes each.
    CredentialsTooLong,
}

impl fmt::Display for ProxyUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyUrlError::Scheme => {
                "unsupported proxy URL: expected socks5h://[user[:password]@]host[:port] or \
                 http://[user[:password]@]host[:port]"
            }
            ProxyUrlError::NoHost => "the proxy URL names no host",
            ProxyUrlError::Port => "invalid proxy port",
            ProxyUrlError::CredentialsTooLong => {
                "proxy user name and password are limited to 255 bytes"
            }
        })
    }
}

impl std::error::Error for ProxyUrlError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        assert_eq!(
            ProxyConfig::parse("socks5h://proxy:9050").unwrap(),
            ProxyConfig::socks5("proxy", 9050)
        );
        assert_eq!(
            ProxyConfig::parse("socks5h://me:secret@proxy").unwrap(),
            ProxyConfig::socks5("proxy", 1080).credentials("me", "secret")
        );
        assert_eq!(
            ProxyConfig::parse("http://u:p@[::1]:3128/").unwrap(),
            ProxyConfig::http_connect("::1", 3128).credentials("u", "p")
        );
        assert_eq!(
            ProxyConfig::parse("socks5h://[::1]:1081").unwrap().host,
            "::1"
        );
        for (bad, why) in [
            ("ftp://proxy", ProxyUrlError::Scheme),
            ("proxy:1080", ProxyUrlError::Scheme),
            ("socks5h://", ProxyUrlError::NoHost),
            ("socks5h://h:0", ProxyUrlError::Port),
            ("socks5h://h:x", ProxyUrlError::Port),
            ("socks4://h", ProxyUrlError::Scheme),
        ] {
            assert_eq!(ProxyConfig::parse(bad), Err(why), "{bad}");
        }
        let debug = format!("{:?}", ProxyConfig::socks5("h", 1).credentials("u", "pw"));
        assert!(!debug.contains("pw"), "{debug}");
    }

    #[test]
    fn websocket_paths_and_default_ports() {
        assert_eq!(WebSocketConfig::new("mqtt").path, "/mqtt");
        let ws = TransportConfig::websocket(WebSocketConfig::default());
        assert_eq!((ws.default_port(false), ws.default_port(true)), (80, 443));
        let tcp = TransportConfig::tcp();
        assert_eq!(
            (tcp.default_port(false), tcp.default_port(true)),
            (1883, 8883)
        );
    }
}
