//! Byte streams to a broker: plain TCP or TLS over TCP.
//!
//! [`connect`] resolves the host, opens a TCP connection and, when given a
//! [`TlsConfig`], completes the whole TLS handshake before returning, so that
//! an unknown CA or a wrong host name is reported by `connect` itself
//! ([`TransportError::Tls`]) and not by the first read of the MQTT client.
//!
//! ```no_run
//! use std::time::Duration;
//! use umqtt::transport::{connect, TlsConfig};
//!
//! # fn main() -> Result<(), umqtt::transport::TransportError> {
//! let tls = TlsConfig::new().ca_file("/etc/mosquitto/ca.pem");
//! let transport = connect("broker.example", 8883, Some(&tls), Duration::from_secs(10))?;
//! # let _ = transport;
//! # Ok(())
//! # }
//! ```
//!
//! What this module does not do: proxies, WebSockets, ALPN, certificate
//! revocation checks, or happy-eyeballs racing of IPv6 against IPv4 (the
//! resolved addresses are tried one after another).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// A connected, blocking byte stream to a broker.
///
/// The MQTT client needs a little more than [`Read`] + [`Write`]: read
/// timeouts (keepalive deadlines), non-blocking mode (draining without
/// waiting) and an orderly close.
pub trait Stream: Read + Write + Send {
    /// Sets the timeout of blocking reads; `None` blocks forever.
    ///
    /// A read that times out fails with [`io::ErrorKind::WouldBlock`] or
    /// [`io::ErrorKind::TimedOut`], depending on the platform.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Sets how long a blocking write may make no progress; `None` blocks forever. The client
    /// sets it so that writing into a link that stopped draining (a half-open connection
    /// with a full send buffer) fails instead of hanging.
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Switches the underlying socket in or out of non-blocking mode.
    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()>;

    /// Closes the stream, best effort: for TLS a `close_notify` alert is sent
    /// first, then the TCP connection is shut down in both directions.
    ///
    /// A peer that already closed the connection is not an error.
    fn shutdown(&mut self) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, nonblocking)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        shutdown_tcp(self)
    }
}

impl Stream for StreamOwned<ClientConnection, TcpStream> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_write_timeout(timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_nonblocking(nonblocking)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        // The alert is a courtesy: a peer that is gone, or a non-blocking
        // socket that is full, must not prevent the TCP close below.
        let mut alert_result = Ok(());
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    alert_result = Err(error);
                    break;
                }
            }
        }
        let tcp_result = shutdown_tcp(&mut self.sock);
        match alert_result {
            Err(error) if !is_disconnect(&error) => Err(error),
            _ => tcp_result,
        }
    }
}

/// Shuts a TCP stream down in both directions, treating "already closed"
/// as success because the goal (no connection) is reached.
fn shutdown_tcp(stream: &mut TcpStream) -> io::Result<()> {
    match TcpStream::shutdown(stream, Shutdown::Both) {
        Err(error) if is_disconnect(&error) => Ok(()),
        other => other,
    }
}

fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotConnected
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

/// A connection to a broker returned by [`connect`]: plain TCP or TLS.
#[derive(Debug)]
pub enum Transport {
    /// An unencrypted TCP connection (MQTT's port 1883).
    Tcp(TcpStream),
    /// A TLS connection whose handshake has completed (MQTT's port 8883).
    ///
    /// Boxed because the TLS state is much larger than a socket.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Transport {
    /// The TCP socket underneath, for socket options not covered here.
    pub fn tcp_stream(&self) -> &TcpStream {
        match self {
            Transport::Tcp(stream) => stream,
            Transport::Tls(stream) => &stream.sock,
        }
    }

    /// The address of the broker this transport is connected to.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp_stream().peer_addr()
    }

    /// The local address of this end of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp_stream().local_addr()
    }

    /// Whether the connection is encrypted with TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }
}

impl Read for Transport {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(stream) => stream.read(buffer),
            Transport::Tls(stream) => stream.read(buffer),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(stream) => stream.write(buffer),
            Transport::Tls(stream) => stream.write(buffer),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(stream) => stream.flush(),
            Transport::Tls(stream) => stream.flush(),
        }
    }
}

impl Stream for Transport {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Transport::Tcp(stream) => Stream::set_read_timeout(stream, timeout),
            Transport::Tls(stream) => Stream::set_read_timeout(stream.as_mut(), timeout),
        }
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Transport::Tcp(stream) => Stream::set_write_timeout(stream, timeout),
            Transport::Tls(stream) => Stream::set_write_timeout(stream.as_mut(), timeout),
        }
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        match self {
            Transport::Tcp(stream) => Stream::set_nonblocking(stream, nonblocking),
            Transport::Tls(stream) => Stream::set_nonblocking(stream.as_mut(), nonblocking),
        }
    }

    fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(stream) => Stream::shutdown(stream),
            Transport::Tls(stream) => Stream::shutdown(stream.as_mut()),
        }
    }
}

/// Where PEM data comes from: a file read at connect time, or bytes held in
/// memory.
#[derive(Clone)]
enum PemSource {
    File(PathBuf),
    Memory(Vec<u8>),
}

impl PemSource {
    fn path(&self) -> Option<PathBuf> {
        match self {
            PemSource::File(path) => Some(path.clone()),
            PemSource::Memory(_) => None,
        }
    }

    fn read(&self, what: PemKind) -> Result<Vec<u8>, TransportError> {
        match self {
            PemSource::File(path) => {
                std::fs::read(path).map_err(|source| TransportError::ReadFile {
                    what,
                    path: path.clone(),
                    source,
                })
            }
            PemSource::Memory(bytes) => Ok(bytes.clone()),
        }
    }
}

impl fmt::Debug for PemSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(path) => write!(formatter, "File({})", path.display()),
            // Never print the bytes: they may be a private key.
            PemSource::Memory(bytes) => write!(formatter, "Memory({} bytes)", bytes.len()),
        }
    }
}

/// Which PEM input an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemKind {
    /// The CA certificates that server certificates must chain to.
    CaCertificates,
    /// The client certificate chain presented to the broker.
    ClientCertificates,
    /// The private key of the client certificate.
    ClientKey,
}

impl fmt::Display for PemKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            PemKind::CaCertificates => "CA certificates",
            PemKind::ClientCertificates => "client certificate chain",
            PemKind::ClientKey => "client private key",
        })
    }
}

/// How to secure a connection with TLS.
///
/// The default verifies the broker's certificate against the Mozilla root
/// store (webpki-roots) and the host name given to [`connect`], and presents
/// no client certificate.
///
/// ```
/// use umqtt::transport::TlsConfig;
///
/// let tls = TlsConfig::new()
///     .ca_file("certs/ca.pem")
///     .client_auth("certs/client.pem", "certs/client.key");
/// # let _ = tls;
/// ```
///
/// Files are read when [`connect`] is called, so a renewed certificate is
/// picked up on the next reconnect.
#[derive(Clone, Debug, Default)]
#[must_use = "TlsConfig builder methods return the changed configuration"]
pub struct TlsConfig {
    ca: Option<PemSource>,
    client_auth: Option<(PemSource, PemSource)>,
    danger_accept_invalid_certs: bool,
    skip_hostname_verification: bool,
    server_name: Option<String>,
    minimum_version: Option<TlsVersion>,
    alpn_protocols: Vec<Vec<u8>>,
}

/// A TLS protocol version, for [`TlsConfig::minimum_version`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    Tls12,
    /// TLS 1.3 (RFC 8446).
    Tls13,
}

impl TlsConfig {
    /// A configuration that trusts the Mozilla root store and sends no
    /// client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts only the CA certificates in this PEM file instead of the
    /// Mozilla root store.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(PemSource::File(path.into()));
        self
    }

    /// Trusts only the CA certificates in these PEM bytes instead of the
    /// Mozilla root store.
    pub fn ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca = Some(PemSource::Memory(pem));
        self
    }

    /// Presents a client certificate: `cert_path` holds the PEM chain (leaf
    /// first), `key_path` its private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub fn client_auth(
        mut self,
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Self {
        self.client_auth = Some((
            PemSource::File(cert_path.into()),
            PemSource::File(key_path.into()),
        ));
        self
    }

    /// Like [`TlsConfig::client_auth`], from PEM bytes in memory.
    pub fn client_auth_pem(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        self.client_auth = Some((PemSource::Memory(cert_pem), PemSource::Memory(key_pem)));
        self
    }

    /// **Dangerous**: when `true`, accepts ANY server certificate for ANY
    /// name, so anyone on the network path can impersonate the broker and
    /// read or alter every message, credentials included.
    ///
    /// The traffic is still encrypted, and the server must still prove it
    /// holds the key of the certificate it sent, but nothing ties that
    /// certificate to the broker you meant. The CA setting is ignored.
    /// Only for tests and for brokers with throwaway self-signed
    /// certificates on a trusted network.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.danger_accept_invalid_certs = accept;
        self
    }

    /// When `true`, the broker's certificate must still chain to a trusted CA
    /// and be valid (dates, usage, signatures), but need not name the host:
    /// what mosquitto's `--insecure` and OpenSSL's "no host-name check" mean.
    ///
    /// Weaker than full verification (any certificate from a trusted CA is
    /// accepted for any broker), far stronger than
    /// [`TlsConfig::danger_accept_invalid_certs`]. For brokers reached by an
    /// address their certificate does not list; prefer
    /// [`TlsConfig::server_name`] when the right name is known.
    pub fn skip_hostname_verification(mut self, skip: bool) -> Self {
        self.skip_hostname_verification = skip;
        self
    }

    /// Refuses protocol versions older than `version`. By default TLS 1.2 and
    /// 1.3 are offered (rustls implements nothing older); `TlsVersion::Tls13`
    /// offers TLS 1.3 only.
    pub fn minimum_version(mut self, version: TlsVersion) -> Self {
        self.minimum_version = Some(version);
        self
    }

    /// Offers these ALPN protocol names in the handshake (RFC 7301), e.g.
    /// `x-amzn-mqtt-ca` for AWS IoT on port 443. By default none is sent, as
    /// MQTT on port 8883 uses none.
    pub fn alpn_protocols(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn_protocols = protocols;
        self
    }

    /// Verifies the certificate against this name (and sends it as SNI when
    /// it is a DNS name) instead of the host passed to [`connect`].
    ///
    /// Useful when connecting by IP address to a broker whose certificate
    /// only names its DNS host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Whether certificate verification is switched off, see
    /// [`TlsConfig::danger_accept_invalid_certs`].
    pub fn is_danger_accept_invalid_certs(&self) -> bool {
        self.danger_accept_invalid_certs
    }

    /// Builds the rustls client configuration, reading any files now.
    ///
    /// # Errors
    ///
    /// A file that cannot be read ([`TransportError::ReadFile`]), malformed
    /// or empty PEM, a missing or unusable key, or a CA certificate rustls
    /// cannot use as a trust anchor.
    pub fn to_client_config(&self) -> Result<ClientConfig, TransportError> {
        // An explicit provider, so that a process which also links another
        // rustls crypto backend does not make rustls refuse to pick one.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone());
        let builder = match self.minimum_version {
            Some(TlsVersion::Tls13) => builder.with_protocol_versions(&[&rustls::version::TLS13]),
            Some(TlsVersion::Tls12) | None => builder.with_safe_default_protocol_versions(),
        }
        .map_err(TransportError::Config)?;

        let builder = if self.danger_accept_invalid_certs {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert {
                    algorithms: provider.signature_verification_algorithms,
                }))
        } else if self.skip_hostname_verification {
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(self.root_store()?),
                provider.clone(),
            )
            .build()
            .map_err(|error| TransportError::Config(rustls::Error::General(error.to_string())))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyNameServerCert { webpki }))
        } else {
            builder.with_root_certificates(self.root_store()?)
        };

        let mut config = match &self.client_auth {
            None => builder.with_no_client_auth(),
            Some((cert_source, key_source)) => {
                let chain = read_certificates(cert_source, PemKind::ClientCertificates)?;
                let key = read_private_key(key_source)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(TransportError::Config)?
            }
        };
        // MQTT over TLS uses no ALPN protocol on port 8883, unless asked for.
        config.alpn_protocols = self.alpn_protocols.clone();
        Ok(config)
    }

    fn root_store(&self) -> Result<RootCertStore, TransportError> {
        let Some(source) = &self.ca else {
            return Ok(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            });
        };
        let mut store = RootCertStore::empty();
        for certificate in read_certificates(source, PemKind::CaCertificates)? {
            store.add(certificate).map_err(|source_error| {
                TransportError::InvalidCaCertificate {
                    path: source.path(),
                    source: source_error,
                }
            })?;
        }
        Ok(store)
    }
}

fn read_certificates(
    source: &PemSource,
    what: PemKind,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let bytes = source.read(what)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|error| TransportError::InvalidPem {
            what,
            path: source.path(),
            source: error,
        })?;
    if certificates.is_empty() {
        return Err(TransportError::NoCertificates {
            what,
            path: source.path(),
        });
    }
    Ok(certificates)
}

fn read_private_key(source: &PemSource) -> Result<PrivateKeyDer<'static>, TransportError> {
    let bytes = source.read(PemKind::ClientKey)?;
    // Accepts "PRIVATE KEY" (PKCS#8), "RSA PRIVATE KEY" (PKCS#1) and
    // "EC PRIVATE KEY" (SEC1): the first one found wins.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
        pem::Error::NoItemsFound => TransportError::InvalidKey {
            path: source.path(),
        },
        other => TransportError::InvalidPem {
            what: PemKind::ClientKey,
            path: source.path(),
            source: other,
        },
    })
}

/// The verifier behind [`TlsConfig::skip_hostname_verification`]: webpki's
/// full verification, except that a certificate valid for another name is
/// accepted. Every other failure (unknown issuer, expired, bad signature)
/// still rejects it.
#[derive(Debug)]
struct AnyNameServerCert {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyNameServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // webpki checks the name last, after the chain, dates and usage.
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki
            .verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki
            .verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The verifier behind [`TlsConfig::danger_accept_invalid_certs`]: trusts
/// any certificate, but still checks the handshake signatures so that the
/// session keys are bound to the certificate's key.
#[derive(Debug)]
struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why [`connect`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportError {
    /// The host name could not be resolved.
    Resolve {
        /// The host as given to [`connect`].
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The host name resolved to no address at all.
    NoAddress {
        /// The host as given to [`connect`].
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
        }
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TransportError::Resolve { source, .. }
            | TransportError::Connect { source, .. }
            | TransportError::ReadFile { source, .. }
            | TransportError::TlsIo(source) => Some(source),
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

/// Shortest socket write timeout: shorter slices would only add wake-ups.
const MIN_WRITE_SLICE: Duration = Duration::from_millis(100);

/// How long a write may make no progress before the link counts as lost: the response
/// timeout, and with a keepalive at most the keepalive's clock (1.5 × keepalive, as for a
/// silent link) — the session's timers cannot fire while a write blocks.
pub(crate) fn write_stall(
    response_timeout: Duration,
    session: &umqtt_core::session::SessionConfig,
) -> Duration {
    let mut stall = response_timeout;
    if let Some(link) = session.link_timeout() {
        stall = stall.min(link);
    }
    stall.max(MIN_WRITE_SLICE)
}

/// Sets the socket's write timeout to a slice of `stall`. The socket's own timeout bounds one
/// write call (Linux returns a partial write only when it expires), so [`write_within`]
/// measures progress between calls and gives up within stall + slice of the last progress.
pub(crate) fn set_write_slice<S: Stream + ?Sized>(
    stream: &mut S,
    stall: Duration,
) -> io::Result<()> {
    stream.set_write_timeout(Some((stall / 8).max(MIN_WRITE_SLICE)))
}

/// Writes all of `bytes` and flushes, failing with the last `WouldBlock` / `TimedOut` once no
/// call has made progress for `stall`. The stream's write timeout must be set (to a fraction of
/// `stall`): each blocked call then returns in time to check. Retrying after a timeout is safe
/// for TCP and for rustls, whose `write` reports a timeout only before taking any byte.
pub(crate) fn write_within<S: Stream + ?Sized>(
    stream: &mut S,
    bytes: &[u8],
    stall: Duration,
) -> io::Result<()> {
    let mut rest = bytes;
    // The clock is read only once a call times out: a write that goes through costs none.
    // The first timeout comes one write slice after the last progress, so this still gives
    // up within stall + slice of it.
    let mut stalled_since: Option<std::time::Instant> = None;
    let mut flushed = false;
    while !flushed {
        let result = if rest.is_empty() {
            stream.flush().map(|()| {
                flushed = true;
            })
        } else {
            match stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    rest = &rest[n..];
                    stalled_since = None;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let since = *stalled_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= stall {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens a connection to `host:port`, over TLS when `tls` is given.
///
/// `host` is a DNS name or an IP literal (IPv6 with or without brackets).
/// Its addresses are tried in the resolver's order until one accepts;
/// `connect_timeout` bounds each TCP attempt and, separately, the TLS
/// handshake; it must not be zero (the operating system rejects that, as a
/// [`TransportError::Connect`] with `InvalidInput`). Name resolution uses the
/// system resolver and is not bounded.
///
/// `TCP_NODELAY` is set: MQTT packets are small and a ping or an
/// acknowledgement must not wait for Nagle's algorithm; the client batches by
/// writing whole buffers.
///
/// With TLS, the certificate is verified against `tls.server_name` if set,
/// else against `host`. SNI is sent only for DNS names: for an IP address
/// rustls sends none (as RFC 6066 requires) and checks the certificate's IP
/// address entries instead. The handshake is complete when this returns.
///
/// # Errors
///
/// Local problems (unreadable certificate files, a bad server name) are
/// reported before any network traffic; then resolution, TCP and TLS
/// failures, each as its own [`TransportError`] variant.
pub fn connect(
    host: &str,
    port: u16,
    tls: Option<&TlsConfig>,
    connect_timeout: Duration,
) -> Result<Transport, TransportError> {
    let host = strip_ipv6_brackets(host);
    // Build the TLS configuration first: a missing file is a local mistake
    // that should not cost a network round trip to discover.
    let tls_setup = match tls {
        Some(tls) => {
            let server_name = parse_server_name(tls.server_name.as_deref().unwrap_or(host))?;
            Some((Arc::new(tls.to_client_config()?), server_name))
        }
        None => None,
    };

    let (tcp, addr) = connect_tcp(host, port, connect_timeout)?;
    finish_connect(tcp, addr, tls_setup, connect_timeout)
}

/// Like [`connect`], over a TCP connection the caller already opened, e.g.
/// through a SOCKS proxy: with `tls`, the handshake (verifying the
/// certificate against `tls.server_name` or `host`) completes within
/// `handshake_timeout`; without, the stream is used as is.
///
/// # Errors
///
/// As [`connect`], minus resolution and TCP failures.
pub fn connect_over(
    tcp: TcpStream,
    host: &str,
    tls: Option<&TlsConfig>,
    handshake_timeout: Duration,
) -> Result<Transport, TransportError> {
    let host = strip_ipv6_brackets(host);
    let tls_setup = match tls {
        Some(tls) => {
            let server_name = parse_server_name(tls.server_name.as_deref().unwrap_or(host))?;
            Some((Arc::new(tls.to_client_config()?), server_name))
        }
        None => None,
    };
    let addr = tcp.peer_addr().map_err(TransportError::TlsIo)?;
    finish_connect(tcp, addr, tls_setup, handshake_timeout)
}

fn finish_connect(
    tcp: TcpStream,
    addr: SocketAddr,
    tls_setup: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
) -> Result<Transport, TransportError> {
    // Best effort: without it the connection still works, only slower.
    let _ = tcp.set_nodelay(true);
    match tls_setup {
        None => Ok(Transport::Tcp(tcp)),
        Some((config, server_name)) => {
            let connection =
                ClientConnection::new(config, server_name).map_err(TransportError::Tls)?;
            let mut stream = StreamOwned::new(connection, tcp);
            complete_handshake(&mut stream, addr, timeout)?;
            Ok(Transport::Tls(Box::new(stream)))
        }
    }
}

fn strip_ipv6_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host)
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>, TransportError> {
    let name = strip_ipv6_brackets(name);
    // An IP literal must become `ServerName::IpAddress`: it is then checked
    // against the certificate's IP address entries and sent as no SNI.
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(name.to_owned()).map_err(|_| TransportError::InvalidServerName {
        name: name.to_owned(),
    })
}

fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), TransportError> {
    let addresses = resolve(host, port, timeout).map_err(|source| TransportError::Resolve {
        host: host.to_owned(),
        source,
    })?;
    let mut last_error = None;
    for addr in addresses {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok((stream, addr)),
            Err(source) if source.kind() == io::ErrorKind::TimedOut => {
                last_error = Some(TransportError::Timeout { addr });
            }
            Err(source) => last_error = Some(TransportError::Connect { addr, source }),
        }
    }
    Err(last_error.unwrap_or_else(|| TransportError::NoAddress {
        host: host.to_owned(),
    }))
}

/// Resolves `host` within `timeout`. The system resolver has no timeout of its own (a
/// broken DNS server can stall it for tens of seconds), so a name is looked up on a helper
/// thread and abandoned when the time is up; IP literals need no lookup.
fn resolve(host: &str, port: u16, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("umqtt-dns".into())
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect);
            let _ = sender.send(result);
        })?;
    receiver.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "name lookup did not finish within the connect timeout",
        ))
    })
}

/// Drives the TLS handshake to completion within `timeout`, so that TLS
/// failures surface here and not on the client's first read.
fn complete_handshake(
    stream: &mut StreamOwned<ClientConnection, TcpStream>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), TransportError> {
    let deadline = Instant::now() + timeout;
    while stream.conn.is_handshaking() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(TransportError::Timeout { addr });
        }
        // The socket timeouts make each blocking read or write wait at most
        // until the deadline.
        stream
            .sock
            .set_read_timeout(Some(remaining))
            .and_then(|()| stream.sock.set_write_timeout(Some(remaining)))
            .map_err(TransportError::TlsIo)?;
        match stream.conn.complete_io(&mut stream.sock) {
            Ok((0, 0)) if stream.conn.is_handshaking() => {
                // No progress and no error would loop forever; rustls
                // reports EOF as an error, so this is only a safeguard.
                return Err(TransportError::TlsIo(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(_) => {}
            Err(error) => return Err(handshake_error(error, addr)),
        }
    }
    // The last flight (client Finished) is written by complete_io before it
    // reports the handshake done; flush anything still queued anyway.
    while stream.conn.wants_write() {
        match stream.conn.write_tls(&mut stream.sock) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => return Err(handshake_error(error, addr)),
        }
    }
    stream
        .sock
        .set_read_timeout(None)
        .and_then(|()| stream.sock.set_write_timeout(None))
        .map_err(TransportError::TlsIo)
}

fn handshake_error(error: io::Error, addr: SocketAddr) -> TransportError {
    // complete_io wraps TLS protocol failures (bad certificate, alerts) in
    // an InvalidData io::Error; unwrap them so callers can match on them.
    if let Some(tls_error) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return TransportError::Tls(tls_error.clone());
    }
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TransportError::Timeout { addr },
        _ => TransportError::TlsIo(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_need_no_lookup_and_names_resolve_within_the_timeout() {
        let addrs = resolve("127.0.0.1", 1883, Duration::from_millis(1)).unwrap();
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], 1883))]);
        let addrs = resolve("::1", 8883, Duration::from_millis(1)).unwrap();
        assert_eq!(addrs[0].port(), 8883);
        let addrs = resolve("localhost", 1883, Duration::from_secs(5)).unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
