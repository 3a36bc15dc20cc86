//! The testkit's simulated network on tokio's clock (`umqtt_testkit::sim_tokio`), opened
//! through [`SimStack`], an `embedded-nal-async` stack (server N is port `SIM_PORT + N`);
//! each link is made an `embedded-io-async` stream by `embedded-io-adapters`.

use std::io;
use std::net::SocketAddr;

pub use umqtt_testkit::sim_tokio::{Sim, SimStream};

/// Server N of the simulated network is `127.0.0.1:(SIM_PORT + N)`.
pub const SIM_PORT: u16 = 10_000;

/// The address of simulated server `server`.
#[allow(dead_code)] // Not every test binary uses every helper.
pub fn sim_server(server: u16) -> umqtt_embedded::Server<'static> {
    umqtt_embedded::Server::Addr(SocketAddr::from(([127, 0, 0, 1], SIM_PORT + server)))
}

/// The simulated network as an `embedded-nal-async` stack.
pub struct SimStack(pub Sim);

impl umqtt_embedded::TcpConnect for SimStack {
    type Error = io::Error;
    type Connection<'a> = embedded_io_adapters::tokio_1::FromTokio<SimStream>;

    async fn connect<'a>(&'a self, remote: SocketAddr) -> io::Result<Self::Connection<'a>> {
        let server = usize::from(remote.port().saturating_sub(SIM_PORT));
        let stream = self.0.open(server).await?;
        Ok(embedded_io_adapters::tokio_1::FromTokio::new(stream))
    }
}
