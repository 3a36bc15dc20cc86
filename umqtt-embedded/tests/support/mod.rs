//! What the host tests of the embedded driver share: tokio's clock as a [`Clock`], tokio TCP
//! as an `embedded-nal-async` stack (through `embedded-io-adapters`), and the simulated
//! network as one.

#[allow(dead_code)] // Not every test binary uses the simulated network.
pub mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use embedded_io_adapters::tokio_1::FromTokio;
use umqtt_core::Instant;
use umqtt_embedded::{Clock, TcpConnect};

/// tokio's clock (paused in the simulated tests) as milliseconds since `epoch`.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    pub epoch: tokio::time::Instant,
}

impl TokioClock {
    #[allow(dead_code)] // Not every test binary uses every helper.
    pub fn new() -> Self {
        TokioClock {
            epoch: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        let millis = self.epoch.elapsed().as_millis();
        Instant::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    async fn sleep_until(&self, at: Instant) {
        tokio::time::sleep_until(self.epoch + Duration::from_millis(at.as_millis())).await;
    }
}

/// tokio's TCP as the stack: what `embassy-net`'s `TcpClient` is on a device.
#[derive(Debug, Default)]
#[allow(dead_code)] // Not every test binary uses every helper.
pub struct TokioTcp;

impl TcpConnect for TokioTcp {
    type Error = std::io::Error;
    type Connection<'a> = FromTokio<tokio::net::TcpStream>;

    async fn connect<'a>(
        &'a self,
        remote: SocketAddr,
    ) -> Result<Self::Connection<'a>, Self::Error> {
        let stream = tokio::net::TcpStream::connect(remote).await?;
        stream.set_nodelay(true)?;
        Ok(FromTokio::new(stream))
    }
}
