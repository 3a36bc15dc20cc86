//! Why opening a transport failed (`TransportError`).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use rustls_pki_types::pem;

use super::proxy::ProxyError;
use super::tls::*;
use super::websocket::WebSocketError;

/// Why [`connect`](super::connect) or [`open`](super::open) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportError {
    /// The host name could not be resolved.
    Resolve {
        /// The host as given to [`connect`](super::connect).
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The host name resolved to no address at all.
    NoAddress {
        /// The host as given to [`connect`](super::connect).
        host: String,
    },
    /// The TCP connection was refused or failed; when the host has several
    /// addresses, this is the error of the last one tried.
    Connect {
        /// The address that was tried last.
        addr: SocketAddr,
        /// The operating system's error, e.g. `ConnectionRefused`.
        source: io::Error,
    },
    /// The TCP connection or the TLS handshake did not complete within the
    /// connect timeout.
    Timeout {
        /// The address that did not answer in time.
        addr: SocketAddr,
    },
    /// The TLS handshake failed: the certificate is not trusted or not valid
    /// for the name, no common cipher suite, an alert from the broker...
    Tls(rustls::Error),
    /// The connection broke during the TLS handshake, for example because
    /// the broker closed it.
    TlsIo(io::Error),
    /// A certificate or key file could not be read.
    ReadFile {
        /// Which input the file holds.
        what: PemKind,
        /// The file that could not be read.
        path: PathBuf,
        /// The file system's error.
        source: io::Error,
    },
    /// The PEM text is malformed.
    InvalidPem {
        /// Which input is malformed.
        what: PemKind,
        /// The file, or `None` for PEM given in memory.
        path: Option<PathBuf>,
        /// What is wrong with it.
        source: pem::Error,
    },
    /// The PEM input contains no `CERTIFICATE` section.
    NoCertificates {
        /// Which input is empty.
        what: PemKind,
        /// The file, or `None` for PEM given in memory.
        path: Option<PathBuf>,
    },
    /// The key input contains no private key in a supported format (PKCS#8,
    /// PKCS#1 RSA or SEC1 EC).
    InvalidKey {
        /// The file, or `None` for PEM given in memory.
        path: Option<PathBuf>,
    },
    /// A CA certificate could not be used as a trust anchor.
    InvalidCaCertificate {
        /// The file, or `None` for PEM given in memory.
        path: Option<PathBuf>,
        /// Why rustls rejected it.
        source: rustls::Error,
    },
    /// The name to verify the certificate against is neither a DNS name nor
    /// an IP address.
    InvalidServerName {
        /// The offending name.
        name: String,
    },
    /// rustls rejected the configuration, e.g. a client key that does not
    /// match its certificate or uses an unsupported algorithm.
    Config(rustls::Error),
    /// The proxy could not be reached or did not open the tunnel to the broker.
    Proxy {
        /// The proxy, as `host:port`.
        proxy: String,
        /// What went wrong.
        source: ProxyError,
    },
    /// The WebSocket upgrade failed (refused, wrong sub-protocol, garbage answer, timeout).
    WebSocket(WebSocketError),
    /// The Unix domain socket could not be connected.
    Unix {
        /// The socket's path.
        path: PathBuf,
        /// The operating system's error, e.g. `NotFound` or `ConnectionRefused`.
        source: io::Error,
    },
}

fn describe_origin(path: Option<&PathBuf>) -> String {
    match path {
        Some(path) => path.display().to_string(),
        None => "in-memory PEM".to_owned(),
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Resolve { host, source } => {
                write!(formatter, "cannot resolve host {host:?}: {source}")
            }
            TransportError::NoAddress { host } => {
                write!(formatter, "host {host:?} resolved to no address")
            }
            TransportError::Connect { addr, source } => {
                write!(formatter, "cannot connect to {addr}: {source}")
            }
            TransportError::Timeout { addr } => {
                write!(formatter, "timed out connecting to {addr}")
            }
            TransportError::Tls(error) => write!(formatter, "TLS handshake failed: {error}"),
            TransportError::TlsIo(error) => {
                write!(
                    formatter,
                    "connection failed during the TLS handshake: {error}"
                )
            }
            TransportError::ReadFile { what, path, source } => {
                write!(
                    formatter,
                    "cannot read {what} from {}: {source}",
                    path.display()
                )
            }
            TransportError::InvalidPem { what, path, source } => {
                write!(
                    formatter,
                    "malformed PEM in {what} ({}): {source}",
                    describe_origin(path.as_ref())
                )
            }
            TransportError::NoCertificates { what, path } => {
                write!(
                    formatter,
                    "no certificate found in {what} ({})",
                    describe_origin(path.as_ref())
                )
            }
            TransportError::InvalidKey { path } => write!(
                formatter,
                "no PKCS#8, PKCS#1 or SEC1 private key found in {}",
                describe_origin(path.as_ref())
            ),
            TransportError::InvalidCaCertificate { path, source } => write!(
                formatter,
                "unusable CA certificate in {}: {source}",
                describe_origin(path.as_ref())
            ),
            TransportError::InvalidServerName { name } => {
                write!(
                    formatter,
                    "{name:?} is neither a DNS name nor an IP address"
                )
            }
            TransportError::Config(error) => {
                write!(formatter, "invalid TLS configuration: {error}")
            }
            TransportError::Proxy { proxy, source } => {
                write!(formatter, "through the proxy {proxy}: {source}")
            }
            TransportError::WebSocket(error) => error.fmt(formatter),
            TransportError::Unix { path, source } => {
                write!(formatter, "cannot connect to {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TransportError::Resolve { source, .. }
            | TransportError::Connect { source, .. }
            | TransportError::ReadFile { source, .. }
            | TransportError::Unix { source, .. }
            | TransportError::TlsIo(source) => Some(source),
            TransportError::Proxy { source, .. } => Some(source),
            TransportError::WebSocket(source) => Some(source),
            TransportError::InvalidPem { source, .. } => Some(source),
            TransportError::Tls(source)
            | TransportError::Config(source)
            | TransportError::InvalidCaCertificate { source, .. } => Some(source),
            TransportError::NoAddress { .. }
            | TransportError::Timeout { .. }
            | TransportError::NoCertificates { .. }
            | TransportError::InvalidKey { .. }
            | TransportError::InvalidServerName { .. } => None,
        }
    }
}
