//! TLS settings (`TlsConfig`): trust anchors, client certificates, versions, ALPN, and the
//! certificate verifiers behind `--insecure` and its louder sibling.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::error::*;

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
/// store (webpki-roots) and the host name given to [`connect`](super::connect), and presents
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
/// Files are read when [`connect`](super::connect) is first called, and again when they
/// changed, so a renewed certificate is picked up on the next reconnect. Clones share one
/// TLS session store, so reconnects resume the session (see
/// [`TlsConfig::session_resumption`]); changing a setting makes a configuration of its own.
#[derive(Clone, Debug, Default)]
#[must_use = "TlsConfig builder methods return the changed configuration"]
pub struct TlsConfig {
    ca: Option<PemSource>,
    client_auth: Option<(PemSource, PemSource)>,
    danger_accept_invalid_certs: bool,
    skip_hostname_verification: bool,
    pub(super) server_name: Option<String>,
    minimum_version: Option<TlsVersion>,
    alpn_protocols: Vec<Vec<u8>>,
    no_resumption: bool,
    /// The rustls configuration built from these settings, shared by clones: its session
    /// store is what lets a reconnect resume the TLS session.
    shared: SharedConfig,
}

/// The cached rustls configuration and the modification times of the files it was built
/// from (a renewed certificate file makes a new one).
#[derive(Clone, Default)]
struct SharedConfig(Arc<Mutex<Option<CachedConfig>>>);

/// A built configuration and the file modification times it was built from.
type CachedConfig = (Arc<ClientConfig>, Vec<Option<SystemTime>>);

impl fmt::Debug for SharedConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SharedConfig")
    }
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
        self.shared = SharedConfig::default();
        self.ca = Some(PemSource::File(path.into()));
        self
    }

    /// Trusts only the CA certificates in these PEM bytes instead of the
    /// Mozilla root store.
    pub fn ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.shared = SharedConfig::default();
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
        self.shared = SharedConfig::default();
        self.client_auth = Some((
            PemSource::File(cert_path.into()),
            PemSource::File(key_path.into()),
        ));
        self
    }

    /// Like [`TlsConfig::client_auth`], from PEM bytes in memory.
    pub fn client_auth_pem(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        self.shared = SharedConfig::default();
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
        self.shared = SharedConfig::default();
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
        self.shared = SharedConfig::default();
        self.skip_hostname_verification = skip;
        self
    }

    /// Refuses protocol versions older than `version`. By default TLS 1.2 and
    /// 1.3 are offered (rustls implements nothing older); `TlsVersion::Tls13`
    /// offers TLS 1.3 only.
    pub fn minimum_version(mut self, version: TlsVersion) -> Self {
        self.shared = SharedConfig::default();
        self.minimum_version = Some(version);
        self
    }

    /// Offers these ALPN protocol names in the handshake (RFC 7301), e.g.
    /// `x-amzn-mqtt-ca` for AWS IoT on port 443 (as mosquitto's `--tls-alpn`). By default
    /// none is sent, as MQTT on port 8883 uses none.
    ///
    /// ```
    /// let tls = umqtt::transport::TlsConfig::new().alpn(["x-amzn-mqtt-ca"]);
    /// # let _ = tls;
    /// ```
    pub fn alpn<I, P>(self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn_protocols(protocols.into_iter().map(|p| p.as_ref().to_vec()).collect())
    }

    /// Resumes TLS sessions across reconnects (default `true`): the first connection makes a
    /// full handshake, later ones present the session ticket (TLS 1.3) or session id / ticket
    /// (TLS 1.2) the broker gave, and skip the certificate exchange and its verification —
    /// fewer bytes and less computation, which on a battery device is energy saved. Sessions
    /// are kept in memory by every clone of this configuration (256 at most), per server
    /// name. `false` makes every handshake a full one.
    pub fn session_resumption(mut self, resume: bool) -> Self {
        self.shared = SharedConfig::default();
        self.no_resumption = !resume;
        self
    }

    /// Like [`TlsConfig::alpn`], from a list of byte strings.
    pub fn alpn_protocols(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.shared = SharedConfig::default();
        self.alpn_protocols = protocols;
        self
    }

    /// Verifies the certificate against this name (and sends it as SNI when
    /// it is a DNS name) instead of the host passed to [`connect`](super::connect).
    ///
    /// Useful when connecting by IP address to a broker whose certificate
    /// only names its DNS host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.shared = SharedConfig::default();
        self.server_name = Some(name.into());
        self
    }

    /// Whether certificate verification is switched off, see
    /// [`TlsConfig::danger_accept_invalid_certs`].
    pub fn is_danger_accept_invalid_certs(&self) -> bool {
        self.danger_accept_invalid_certs
    }

    /// The rustls client configuration, built on first use and then shared by this
    /// configuration and its clones, so that connections reuse its TLS session store
    /// (resumption). It is built anew when a certificate or key file changed since (a renewed
    /// certificate is picked up on the next reconnect, with a full handshake).
    ///
    /// # Errors
    ///
    /// As [`TlsConfig::to_client_config`].
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TransportError> {
        let stamps = self.file_stamps();
        let mut cached = self.shared.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((config, built_from)) = &*cached {
            if *built_from == stamps {
                return Ok(config.clone());
            }
        }
        let config = Arc::new(self.to_client_config()?);
        *cached = Some((config.clone(), stamps));
        Ok(config)
    }

    /// The modification times of the files the configuration reads (`None` for one that
    /// cannot be read: the build will report it).
    fn file_stamps(&self) -> Vec<Option<SystemTime>> {
        let mut files = Vec::new();
        if let Some(source) = &self.ca {
            files.extend(source.path());
        }
        if let Some((cert, key)) = &self.client_auth {
            files.extend(cert.path());
            files.extend(key.path());
        }
        files
            .iter()
            .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Builds a new rustls client configuration, reading any files now (with a session
    /// store of its own: prefer [`TlsConfig::client_config`], which resumes sessions).
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
        if self.no_resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_rustls_config_until_a_setting_or_a_file_changes() {
        let certs = umqtt_testkit::certs::TestCerts::generate();
        let directory = tempfile::tempdir().unwrap();
        let ca = directory.path().join("ca.pem");
        std::fs::copy(certs.ca().cert_path(), &ca).unwrap();
        let tls = TlsConfig::new().ca_file(&ca);
        let first = tls.client_config().unwrap();
        // Clones share the configuration, and with it the TLS session store.
        assert!(Arc::ptr_eq(&first, &tls.clone().client_config().unwrap()));
        // A changed setting is a configuration of its own.
        let other = tls.clone().alpn(["mqtt"]).client_config().unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(other.alpn_protocols, [b"mqtt".to_vec()]);
        // A renewed file is read again (a full handshake follows).
        let file = std::fs::File::options().write(true).open(&ca).unwrap();
        file.set_modified(SystemTime::now() + std::time::Duration::from_secs(60))
            .unwrap();
        let renewed = tls.client_config().unwrap();
        assert!(!Arc::ptr_eq(&first, &renewed));
        assert!(Arc::ptr_eq(&renewed, &tls.client_config().unwrap()));
    }
}
