//! The testkit's simulated network on tokio's clock (`umqtt_testkit::sim_tokio`), opened by
//! the client through a connector.

use std::net::SocketAddr;

use umqtt::TransportError;
#[allow(unused_imports)] // Not every test binary uses every helper.
pub use umqtt_testkit::sim_tokio::{Sim, SimStream};
use umqtt_tokio::connect::{connector_fn, Connector};

/// How the client opens links of the simulated network.
#[allow(dead_code)] // Not every test binary uses every helper.
pub trait SimConnector {
    /// A connector opening links of this network; a refused link is a TCP connect failure.
    fn connector(&self) -> impl Connector;
}

impl SimConnector for Sim {
    fn connector(&self) -> impl Connector {
        let sim = self.clone();
        connector_fn(move |server| {
            let sim = sim.clone();
            async move {
                sim.open(server).await.map_err(|source| {
                    umqtt::Error::Transport(TransportError::Connect {
                        addr: SocketAddr::from(([127, 0, 0, 1], 1883)),
                        source,
                    })
                })
            }
        })
    }
}
