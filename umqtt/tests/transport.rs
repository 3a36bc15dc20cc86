//! `umqtt::transport` against a real mosquitto: TCP, TLS verification,
//! client certificates, and the errors `connect` reports.

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use umqtt::transport::{connect, PemKind, Stream, TlsConfig, Transport, TransportError};
use umqtt_testkit::broker::{free_port, Mosquitto};
use umqtt_testkit::certs::TestCerts;

const TIMEOUT: Duration = Duration::from_secs(5);

/// CONNECT, protocol level 4, client id "t1", keepalive 60, clean session.
const CONNECT_T1: [u8; 16] = [
    0x10, 0x0E, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, 0x74, 0x31,
];
/// CONNACK: accepted, no session present.
const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// Sends CONNECT and returns the 4 CONNACK bytes, proving that bytes flow
/// both ways through the transport.
fn exchange_connect(transport: &mut Transport) -> io::Result<[u8; 4]> {
    transport.set_read_timeout(Some(TIMEOUT))?;
    transport.write_all(&CONNECT_T1)?;
    transport.flush()?;
    let mut connack = [0u8; 4];
    transport.read_exact(&mut connack)?;
    Ok(connack)
}

fn assert_mqtt_works(mut transport: Transport) {
    assert_eq!(exchange_connect(&mut transport).unwrap(), CONNACK_ACCEPTED);
    transport.shutdown().unwrap();
}

#[test]
fn plain_tcp_connects_and_speaks_mqtt() {
    let broker = Mosquitto::start();
    let transport = connect("127.0.0.1", broker.port(), None, TIMEOUT).unwrap();
    assert!(!transport.is_tls());
    assert_eq!(transport.peer_addr().unwrap(), broker.addr());
    assert!(
        transport.tcp_stream().unwrap().nodelay().unwrap(),
        "TCP_NODELAY is set"
    );
    assert_mqtt_works(transport);
}

#[test]
fn tls_with_the_generated_ca_connects_by_ip_and_by_name() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let tls = TlsConfig::new().ca_file(certs.ca().cert_path());

    let by_ip = connect("127.0.0.1", broker.tls_port(), Some(&tls), TIMEOUT).unwrap();
    assert!(by_ip.is_tls());
    assert_mqtt_works(by_ip);

    let by_name = connect("localhost", broker.tls_port(), Some(&tls), TIMEOUT).unwrap();
    assert_mqtt_works(by_name);
}

#[test]
fn tls_with_the_ca_in_memory_connects() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let tls = TlsConfig::new().ca_pem(certs.ca().cert_pem().as_bytes().to_vec());
    assert_mqtt_works(connect("127.0.0.1", broker.tls_port(), Some(&tls), TIMEOUT).unwrap());
}

#[test]
fn tls_with_the_wrong_ca_fails_at_connect() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let tls = TlsConfig::new().ca_file(certs.other_ca().cert_path());
    let error = connect("127.0.0.1", broker.tls_port(), Some(&tls), TIMEOUT).unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{error:?}"
    );
}

#[test]
fn default_webpki_roots_reject_a_private_ca() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let error = connect(
        "localhost",
        broker.tls_port(),
        Some(&TlsConfig::new()),
        TIMEOUT,
    )
    .unwrap_err();
    assert!(matches!(error, TransportError::Tls(_)), "{error:?}");
}

#[test]
fn tls_hostname_is_verified_for_ip_addresses() {
    let certs = TestCerts::generate();
    // This server certificate names `localhost` only, no IP address.
    let broker = Mosquitto::builder()
        .tls_with(certs.ca(), certs.server_dns_only())
        .start();
    let tls = TlsConfig::new().ca_file(certs.ca().cert_path());

    let error = connect("127.0.0.1", broker.tls_port(), Some(&tls), TIMEOUT).unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{error:?}"
    );

    assert_mqtt_works(connect("localhost", broker.tls_port(), Some(&tls), TIMEOUT).unwrap());

    // Connecting by IP but verifying the DNS name the certificate has.
    let renamed = tls.clone().server_name("localhost");
    assert_mqtt_works(connect("127.0.0.1", broker.tls_port(), Some(&renamed), TIMEOUT).unwrap());
}

#[test]
fn tls_hostname_is_verified_for_dns_names() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let tls = TlsConfig::new()
        .ca_file(certs.ca().cert_path())
        .server_name("broker.example");
    let error = connect("127.0.0.1", broker.tls_port(), Some(&tls), TIMEOUT).unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Tls(rustls::Error::InvalidCertificate(_))
        ),
        "{error:?}"
    );
}

#[test]
fn skip_hostname_verification_still_checks_the_chain() {
    let certs = TestCerts::generate();
    // This server certificate names `localhost` only, no IP address.
    let broker = Mosquitto::builder()
        .tls_with(certs.ca(), certs.server_dns_only())
        .start();
    let any_name = TlsConfig::new()
        .ca_file(certs.ca().cert_path())
        .skip_hostname_verification(true);
    assert_mqtt_works(connect("127.0.0.1", broker.tls_port(), Some(&any_name), TIMEOUT).unwrap());

    // A CA that did not sign the certificate: still rejected.
    let wrong_ca = TlsConfig::new()
        .ca_file(certs.other_ca().cert_path())
        .skip_hostname_verification(true);
    let error = connect("127.0.0.1", broker.tls_port(), Some(&wrong_ca), TIMEOUT).unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{error:?}"
    );
}

/// A TLS server on a free port that speaks TLS 1.2 only, with the test CA's server
/// certificate; it completes (or fails) one handshake per connection and replies to nothing.
fn tls12_only_server(certs: &TestCerts) -> u16 {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(certs.server().cert_path())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(certs.server().key_path()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { continue };
            let mut connection = rustls::ServerConnection::new(config.clone()).unwrap();
            while connection.is_handshaking() {
                if connection.complete_io(&mut stream).is_err() {
                    break;
                }
            }
        }
    });
    port
}

#[test]
fn minimum_version_and_alpn() {
    let certs = TestCerts::generate();
    let port = tls12_only_server(&certs);
    let tls = TlsConfig::new().ca_file(certs.ca().cert_path());
    // The default offers TLS 1.2: the handshake completes.
    let transport = connect("127.0.0.1", port, Some(&tls), TIMEOUT).unwrap();
    assert!(transport.is_tls());
    drop(transport);
    // TLS 1.3 only: refused.
    let tls13 = tls.clone().minimum_version(umqtt::TlsVersion::Tls13);
    let error = connect("127.0.0.1", port, Some(&tls13), TIMEOUT).unwrap_err();
    assert!(
        matches!(error, TransportError::Tls(_) | TransportError::TlsIo(_)),
        "{error:?}"
    );

    assert!(tls.to_client_config().unwrap().alpn_protocols.is_empty());
    let alpn = tls.alpn_protocols(vec![b"x-amzn-mqtt-ca".to_vec()]);
    assert_eq!(
        alpn.to_client_config().unwrap().alpn_protocols,
        [b"x-amzn-mqtt-ca".to_vec()]
    );
}

#[test]
fn danger_accept_invalid_certs_accepts_unknown_ca_and_wrong_name() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder()
        .tls_with(certs.ca(), certs.server_dns_only())
        .start();
    let tls = TlsConfig::new()
        .ca_file(certs.other_ca().cert_path())
        .danger_accept_invalid_certs(true);
    assert!(tls.is_danger_accept_invalid_certs());
    assert_mqtt_works(connect("127.0.0.1", broker.tls_port(), Some(&tls), TIMEOUT).unwrap());
}

#[test]
fn client_certificate_is_accepted_when_required() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .require_certificate(true)
        .start();
    let from_files = TlsConfig::new()
        .ca_file(certs.ca().cert_path())
        .client_auth(certs.client().cert_path(), certs.client().key_path());
    assert_mqtt_works(connect("127.0.0.1", broker.tls_port(), Some(&from_files), TIMEOUT).unwrap());

    let from_memory = TlsConfig::new()
        .ca_file(certs.ca().cert_path())
        .client_auth_pem(
            certs.client().cert_pem().as_bytes().to_vec(),
            certs.client().key_pem().as_bytes().to_vec(),
        );
    assert_mqtt_works(
        connect("127.0.0.1", broker.tls_port(), Some(&from_memory), TIMEOUT).unwrap(),
    );
}

/// Asserts that the broker refuses the client certificate with `alert`.
///
/// With TLS 1.3 (what mosquitto and rustls negotiate) the client finishes
/// its handshake before the server has judged the client certificate, so
/// the refusal arrives as an alert on the first read, not from `connect`.
/// With TLS 1.2 it would come from `connect`: both are accepted, but it must
/// fail one way or the other.
fn assert_client_certificate_refused(tls: &TlsConfig, port: u16, alert: rustls::AlertDescription) {
    let expected = rustls::Error::AlertReceived(alert);
    match connect("127.0.0.1", port, Some(tls), TIMEOUT) {
        Err(TransportError::Tls(error)) => assert_eq!(error, expected),
        Err(other) => panic!("expected a TLS error, got {other:?}"),
        Ok(mut transport) => {
            let error = exchange_connect(&mut transport).expect_err("the broker must refuse");
            let tls_error = error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            assert_eq!(tls_error, Some(&expected), "{error:?}");
        }
    }
}

#[test]
fn missing_client_certificate_fails_when_required() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .require_certificate(true)
        .start();
    let tls = TlsConfig::new().ca_file(certs.ca().cert_path());
    assert_client_certificate_refused(
        &tls,
        broker.tls_port(),
        rustls::AlertDescription::CertificateRequired,
    );
}

#[test]
fn client_certificate_from_another_ca_is_refused() {
    let certs = TestCerts::generate();
    let other = TestCerts::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .require_certificate(true)
        .start();
    let tls = TlsConfig::new()
        .ca_file(certs.ca().cert_path())
        .client_auth(other.client().cert_path(), other.client().key_path());
    assert_client_certificate_refused(&tls, broker.tls_port(), rustls::AlertDescription::UnknownCA);
}

#[test]
fn closed_port_gives_connect_error() {
    let port = free_port();
    let error = connect("127.0.0.1", port, None, TIMEOUT).unwrap_err();
    match &error {
        TransportError::Connect { addr, source } => {
            assert_eq!(addr.port(), port);
            assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(std::error::Error::source(&error).is_some());
    assert!(error.to_string().contains(&port.to_string()), "{error}");
}

#[test]
fn unresolvable_host_gives_resolve_error() {
    let error = connect("no-such-host.invalid", 1883, None, TIMEOUT).unwrap_err();
    assert!(matches!(error, TransportError::Resolve { .. }), "{error:?}");
}

/// Accepts one connection, records what the client sends first (its TLS
/// ClientHello), then closes.
fn capture_client_hello(host: &str, tls: &TlsConfig) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut hello = vec![0u8; 4096];
        let length = stream.read(&mut hello).unwrap();
        hello.truncate(length);
        hello
    });
    let error = connect(host, port, Some(tls), TIMEOUT).unwrap_err();
    assert!(
        matches!(error, TransportError::TlsIo(_) | TransportError::Tls(_)),
        "{error:?}"
    );
    server.join().unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[test]
fn sni_is_sent_for_dns_names_only() {
    let tls = TlsConfig::new();
    let by_name = capture_client_hello("localhost", &tls);
    assert_eq!(by_name.first(), Some(&0x16), "a TLS handshake record");
    assert!(contains(&by_name, b"localhost"), "SNI carries the DNS name");

    let by_ip = capture_client_hello("127.0.0.1", &tls);
    assert_eq!(by_ip.first(), Some(&0x16), "a TLS handshake record");
    assert!(!contains(&by_ip, b"127.0.0.1"), "no SNI for an IP address");
    assert!(!contains(&by_ip, b"localhost"));
}

#[test]
fn broker_closing_during_handshake_is_tls_io() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || drop(listener.accept().unwrap()));
    let error = connect("127.0.0.1", port, Some(&TlsConfig::new()), TIMEOUT).unwrap_err();
    server.join().unwrap();
    assert!(matches!(error, TransportError::TlsIo(_)), "{error:?}");
}

#[test]
fn silent_server_makes_the_handshake_time_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The kernel completes the TCP handshake from the backlog; nobody ever
    // answers the ClientHello.
    let started = std::time::Instant::now();
    let error = connect(
        "127.0.0.1",
        port,
        Some(&TlsConfig::new()),
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(matches!(error, TransportError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(listener);
}

#[test]
fn bad_tls_inputs_are_typed_errors() {
    let certs = TestCerts::generate();
    let missing = certs.directory().join("missing.pem");
    let config_error = |tls: TlsConfig| tls.to_client_config().unwrap_err();

    let error = config_error(TlsConfig::new().ca_file(&missing));
    assert!(
        matches!(&error, TransportError::ReadFile { what: PemKind::CaCertificates, path, .. } if *path == missing),
        "{error:?}"
    );
    assert!(error.to_string().contains("missing.pem"), "{error}");

    let error = config_error(TlsConfig::new().ca_pem(b"not a certificate".to_vec()));
    assert!(
        matches!(
            error,
            TransportError::NoCertificates {
                what: PemKind::CaCertificates,
                path: None
            }
        ),
        "{error:?}"
    );

    // A key file given as the CA: PEM, but no CERTIFICATE section.
    let error = config_error(TlsConfig::new().ca_file(certs.ca().key_path()));
    assert!(
        matches!(error, TransportError::NoCertificates { .. }),
        "{error:?}"
    );

    let error = config_error(
        TlsConfig::new()
            .ca_pem(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec()),
    );
    assert!(
        matches!(error, TransportError::InvalidPem { .. }),
        "{error:?}"
    );

    let error = config_error(
        TlsConfig::new()
            .ca_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec()),
    );
    assert!(
        matches!(error, TransportError::InvalidCaCertificate { .. }),
        "{error:?}"
    );

    // The certificate given as the key: no private key inside.
    let error = config_error(
        TlsConfig::new().client_auth(certs.client().cert_path(), certs.client().cert_path()),
    );
    assert!(
        matches!(&error, TransportError::InvalidKey { path: Some(path) } if path == certs.client().cert_path()),
        "{error:?}"
    );

    // A key that does not belong to the certificate.
    let error = config_error(
        TlsConfig::new().client_auth(certs.client().cert_path(), certs.server().key_path()),
    );
    assert!(matches!(error, TransportError::Config(_)), "{error:?}");

    let error = config_error(TlsConfig::new().client_auth(&missing, certs.client().key_path()));
    assert!(
        matches!(
            error,
            TransportError::ReadFile {
                what: PemKind::ClientCertificates,
                ..
            }
        ),
        "{error:?}"
    );

    // Bad names are reported before any network traffic.
    let tls = TlsConfig::new().server_name("not a valid name!");
    let error = connect("127.0.0.1", free_port(), Some(&tls), TIMEOUT).unwrap_err();
    assert!(
        matches!(error, TransportError::InvalidServerName { .. }),
        "{error:?}"
    );
}

#[test]
fn sec1_client_key_works_end_to_end() {
    let certs = TestCerts::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .require_certificate(true)
        .start();
    let sec1 = certs.client().key_sec1_pem();
    assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let tls = TlsConfig::new()
        .ca_file(certs.ca().cert_path())
        .client_auth_pem(
            certs.client().cert_pem().as_bytes().to_vec(),
            sec1.into_bytes(),
        );
    assert_mqtt_works(connect("127.0.0.1", broker.tls_port(), Some(&tls), TIMEOUT).unwrap());
}

#[test]
fn pkcs1_label_is_recognised_as_a_private_key() {
    // rcgen with ring cannot generate RSA keys, so relabel the EC key: the
    // section must be found as a key (not InvalidKey), and rustls then
    // refuses its content as RSA.
    let certs = TestCerts::generate();
    let relabelled = certs
        .client()
        .key_pem()
        .replace("PRIVATE KEY", "RSA PRIVATE KEY");
    let error = TlsConfig::new()
        .client_auth_pem(
            certs.client().cert_pem().as_bytes().to_vec(),
            relabelled.into_bytes(),
        )
        .to_client_config()
        .unwrap_err();
    assert!(matches!(error, TransportError::Config(_)), "{error:?}");
}

#[test]
fn shutdown_is_best_effort_after_the_broker_is_gone() {
    let certs = TestCerts::generate();
    let mut broker = Mosquitto::builder().tls(&certs).start();
    let tls = TlsConfig::new().ca_file(certs.ca().cert_path());
    let mut tls_transport = connect("127.0.0.1", broker.tls_port(), Some(&tls), TIMEOUT).unwrap();
    let mut tcp_transport = connect("127.0.0.1", broker.port(), None, TIMEOUT).unwrap();
    broker.kill();
    thread::sleep(Duration::from_millis(50));
    // Whatever the socket state, closing does not panic; a clean or
    // "already closed" result is expected.
    let _ = tls_transport.shutdown();
    let _ = tcp_transport.shutdown();
    tcp_transport.set_nonblocking(true).unwrap();
}
