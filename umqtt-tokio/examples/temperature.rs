//! Seed device 1: a temperature sensor. A reading is worth sending only now: `NoRetry` drops
//! it (and says so) when the link is down; the next reading replaces it anyway.
//!
//! `cargo run -p umqtt-tokio --example temperature -- [broker-host]`

use std::time::Duration;

use umqtt_tokio::robust::{Client, Event, NoRetry, Outcome};
use umqtt_tokio::{ClientConfig, QoS};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), umqtt_tokio::Error> {
    let server = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost".into());
    let config = ClientConfig {
        client_id: "temperature-1".into(),
        server,
        ..ClientConfig::default()
    };
    let (handle, mut events) = Client::new(config, NoRetry).spawn()?;
    // The link's life, logged from its own task (outcomes also reach the receipts).
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if matches!(event, Event::Connected { .. } | Event::Disconnected { .. }) {
                println!("link: {event:?}");
            }
        }
    });
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    for reading in 0..u32::MAX {
        tick.tick().await;
        let celsius = 20.0 + f64::from(reading % 50) / 10.0;
        // `NoRetry` is the policy's default contract: no need for `publish_with`.
        let receipt = handle
            .publish(
                "home/temperature",
                format!("{celsius:.1}").as_bytes(),
                QoS::AtMostOnce,
                false,
            )
            .await?;
        match receipt.outcome().await? {
            Outcome::Delivered => println!("sent {celsius:.1} °C"),
            other => println!("reading {celsius:.1} °C not sent: {other:?}"),
        }
    }
    Ok(())
}
