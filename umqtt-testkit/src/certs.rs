//! Throwaway X.509 certificates for TLS tests, generated with rcgen.
//!
//! [`TestCerts::generate`] makes a small PKI in a temporary directory:
//!
//! ```text
//! ca ──┬── server            (SAN: DNS localhost, IP 127.0.0.1)
//!      ├── server_dns_only   (SAN: DNS localhost; no IP, for hostname-mismatch tests)
//!      └── client            (CN umqtt-test-client, for require_certificate tests)
//! other_ca                   (unrelated CA, for "unknown issuer" tests)
//! ```
//!
//! All keys are ECDSA P-256 in PKCS#8 PEM. The files live until the
//! [`TestCerts`] is dropped.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// One certificate and its private key, as PEM text and as files.
#[derive(Clone, Debug)]
pub struct CertificateFiles {
    cert_pem: String,
    key_pem: String,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl CertificateFiles {
    /// The certificate as PEM text.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The PKCS#8 private key as PEM text.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The same private key in SEC1 form (`EC PRIVATE KEY`), as OpenSSL's
    /// `openssl ec` writes it, for tests of key-format support.
    ///
    /// # Panics
    ///
    /// If the PKCS#8 key is not the DER layout rcgen writes.
    pub fn key_sec1_pem(&self) -> String {
        let pkcs8 = pem_body(&self.key_pem, "PRIVATE KEY");
        let sec1 =
            sec1_from_pkcs8(&pkcs8).expect("rcgen writes PKCS#8 v1 with an ECPrivateKey inside");
        to_pem("EC PRIVATE KEY", sec1)
    }

    /// The path of the PEM certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The path of the PEM private key file.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }
}

/// A generated test PKI; see the [module documentation](self).
#[derive(Debug)]
pub struct TestCerts {
    // Held only to delete the files when the certificates are dropped.
    directory: TempDir,
    ca: CertificateFiles,
    server: CertificateFiles,
    server_dns_only: CertificateFiles,
    client: CertificateFiles,
    other_ca: CertificateFiles,
}

impl TestCerts {
    /// Generates all certificates and writes them into a new temporary
    /// directory.
    ///
    /// # Panics
    ///
    /// If key generation or writing the files fails: this is a test rig.
    pub fn generate() -> TestCerts {
        let directory = tempfile::Builder::new()
            .prefix("umqtt-certs-")
            .tempdir()
            .expect("cannot create a temporary directory for test certificates");

        let (ca_cert, ca_key) = generate_ca("umqtt test CA");
        let (other_ca_cert, other_ca_key) = generate_ca("umqtt unrelated test CA");

        let server = generate_leaf(
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca_cert,
            &ca_key,
        );
        let server_dns_only = generate_leaf(
            "localhost",
            &["localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca_cert,
            &ca_key,
        );
        let client = generate_leaf(
            "umqtt-test-client",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca_cert,
            &ca_key,
        );

        let path = directory.path();
        let ca = write_pair(path, "ca", ca_cert.pem(), ca_key.serialize_pem());
        let other_ca = write_pair(
            path,
            "other-ca",
            other_ca_cert.pem(),
            other_ca_key.serialize_pem(),
        );
        let server = write_pair(path, "server", server.0, server.1);
        let server_dns_only = write_pair(
            path,
            "server-dns-only",
            server_dns_only.0,
            server_dns_only.1,
        );
        let client = write_pair(path, "client", client.0, client.1);

        TestCerts {
            directory,
            ca,
            server,
            server_dns_only,
            client,
            other_ca,
        }
    }

    /// The directory holding all files.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// The CA that signed the server and client certificates.
    pub fn ca(&self) -> &CertificateFiles {
        &self.ca
    }

    /// Server certificate for `localhost` and `127.0.0.1`, signed by
    /// [`TestCerts::ca`].
    pub fn server(&self) -> &CertificateFiles {
        &self.server
    }

    /// Server certificate for `localhost` only (no IP address entry), signed
    /// by [`TestCerts::ca`]: connecting to `127.0.0.1` must fail verification.
    pub fn server_dns_only(&self) -> &CertificateFiles {
        &self.server_dns_only
    }

    /// Client certificate signed by [`TestCerts::ca`].
    pub fn client(&self) -> &CertificateFiles {
        &self.client
    }

    /// A CA unrelated to everything else: trusting it must reject the server.
    pub fn other_ca(&self) -> &CertificateFiles {
        &self.other_ca
    }
}

fn base_params(common_name: &str, subject_alt_names: &[&str]) -> CertificateParams {
    let names: Vec<String> = subject_alt_names
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let mut params = CertificateParams::new(names).expect("test certificate names are valid");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    // Fixed, comfortably wide validity: tests must not depend on the clock
    // being exact, and rcgen's default (until year 4096) is needlessly odd.
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2120, 1, 1);
    params
}

fn generate_ca(common_name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = base_params(common_name, &[]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("cannot generate a CA key");
    let certificate = params.self_signed(&key).expect("cannot self-sign the CA");
    (certificate, key)
}

fn generate_leaf(
    common_name: &str,
    subject_alt_names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &rcgen::Certificate,
    issuer_key: &KeyPair,
) -> (String, String) {
    let mut params = base_params(common_name, subject_alt_names);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("cannot generate a leaf key");
    let certificate = params
        .signed_by(&key, issuer, issuer_key)
        .expect("cannot sign a leaf certificate");
    (certificate.pem(), key.serialize_pem())
}

fn write_pair(directory: &Path, stem: &str, cert_pem: String, key_pem: String) -> CertificateFiles {
    let cert_path = directory.join(format!("{stem}.crt"));
    let key_path = directory.join(format!("{stem}.key"));
    fs::write(&cert_path, &cert_pem).expect("cannot write a test certificate");
    fs::write(&key_path, &key_pem).expect("cannot write a test key");
    CertificateFiles {
        cert_pem,
        key_pem,
        cert_path,
        key_path,
    }
}

/// Decodes the base64 body of a single-section PEM text.
fn pem_body(pem: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body: String = pem
        .lines()
        .skip_while(|line| line.trim() != begin)
        .skip(1)
        .take_while(|line| line.trim() != end)
        .collect();
    crate::base64::decode(&body).expect("rcgen writes valid base64")
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let encoded = crate::base64::encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// Reads one DER element: returns (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first_length, mut rest) = rest.split_first()?;
    let length = if first_length < 0x80 {
        usize::from(first_length)
    } else {
        let count = usize::from(first_length & 0x7F);
        let (bytes, after) = (rest.get(..count)?, rest.get(count..)?);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte))
    };
    Some((tag, rest.get(..length)?, rest.get(length..)?))
}

/// PKCS#8 is `SEQUENCE { version, algorithm, OCTET STRING privateKey }`;
/// for EC keys the octet string holds the SEC1 `ECPrivateKey` DER.
fn sec1_from_pkcs8(pkcs8: &[u8]) -> Option<&[u8]> {
    let (0x30, sequence, _) = der_element(pkcs8)? else {
        return None;
    };
    let (0x02, _version, rest) = der_element(sequence)? else {
        return None;
    };
    let (0x30, _algorithm, rest) = der_element(rest)? else {
        return None;
    };
    let (0x04, private_key, _) = der_element(rest)? else {
        return None;
    };
    Some(private_key)
}
