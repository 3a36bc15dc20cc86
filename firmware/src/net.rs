//! The network stack's place. [`Stack`] stands in for embassy-net's `TcpClient` (or a
//! vendor's stack) so the firmware links without a board: its connection reads and writes
//! bytes the optimizer cannot see through (`black_box`), so every path of the client stays in
//! the binary, as with a real stack. It never delivers real bytes: flash it and it connects to
//! nothing.

use core::hint::black_box;
use core::net::SocketAddr;

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use embedded_nal_async::TcpConnect;

/// The placeholder stack.
#[derive(Debug, Default)]
pub struct Stack;

/// A placeholder connection.
#[derive(Debug)]
pub struct Connection;

impl TcpConnect for Stack {
    type Error = ErrorKind;
    type Connection<'a> = Connection;

    async fn connect(&self, remote: SocketAddr) -> Result<Connection, ErrorKind> {
        if black_box(remote.port()) != 0 {
            Ok(Connection)
        } else {
            Err(ErrorKind::ConnectionRefused)
        }
    }
}

impl ErrorType for Connection {
    type Error = ErrorKind;
}

impl Read for Connection {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let n = black_box(0usize).min(buf.len());
        for byte in buf.iter_mut().take(n) {
            *byte = black_box(0);
        }
        match black_box(0u8) {
            0 => Ok(n),
            _ => Err(ErrorKind::ConnectionReset),
        }
    }
}

impl Write for Connection {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        black_box(buf);
        match black_box(0u8) {
            0 => Ok(buf.len()),
            _ => Err(ErrorKind::ConnectionReset),
        }
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

/// Stand-in for the stack's link-up event (embassy-net: `stack.wait_link_up().await`, or
/// `wait_config_up` once DHCP bound an address).
pub async fn wait_link_up() {
    embassy_time::Timer::after_secs(black_box(600)).await;
}

/// The broker's address (a host name needs the stack's DNS: `Driver::with_dns`).
pub const BROKER: umqtt_embedded::Server<'static> = umqtt_embedded::Server::Addr(SocketAddr::new(
    core::net::IpAddr::V4(core::net::Ipv4Addr::new(192, 168, 1, 10)),
    1883,
));

/// The broker's address as a socket address (for clients that take one).
pub const BROKER_ADDR: SocketAddr = SocketAddr::new(
    core::net::IpAddr::V4(core::net::Ipv4Addr::new(192, 168, 1, 10)),
    1883,
);
