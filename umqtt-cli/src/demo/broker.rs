//! The demo's own broker: rumqttd, embedded in the process, on a free loopback port, so that
//! `umqtt demo` runs on a machine with no broker installed. Sessions are kept in memory, which
//! is all the demo's persistent sessions need.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::error::CliError;

/// How long the broker may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the embedded broker; returns its address once it accepts connections. It runs on
/// background threads until the process exits.
pub fn start() -> Result<SocketAddr, CliError> {
    let port = free_port()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut broker = Broker::new(config(addr));
    thread::Builder::new()
        .name("demo-broker".to_owned())
        .spawn(move || {
            // Returns only if every listener failed (reported below as "not listening").
            let _ = broker.start();
        })
        .map_err(|e| CliError::failed(format!("cannot start the embedded broker: {e}")))?;
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(addr);
        }
        thread::sleep(Duration::from_millis(20));
    }
    Err(CliError::failed(format!(
        "the embedded broker is not listening on {addr} after {} s",
        START_TIMEOUT.as_secs()
    )))
}

fn free_port() -> Result<u16, CliError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| CliError::failed(format!("no free loopback port for the broker: {e}")))
}

/// MQTT 3.1.1 on `addr` only: no MQTT 5, websocket, console or metrics listeners. Generous
/// in-flight and queue limits, so that a backlog released after an outage is not throttled.
fn config(addr: SocketAddr) -> Config {
    let server = ServerSettings {
        name: "umqtt-demo".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 1000,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 100,
            max_outgoing_packet_count: 1000,
            max_segment_size: 4 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    }
}
