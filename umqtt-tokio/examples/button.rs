//! Seed device 2: a doorbell button. A press is worth retrying for a while, not forever:
//! `Deadline::new(15 s)` retries, then expires the press (reported) and stops trying.
//!
//! `cargo run -p umqtt-tokio --example button -- [broker-host]`; Enter presses the button.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use umqtt_tokio::robust::{Client, Deadline, Event, Outcome};
use umqtt_tokio::{ClientConfig, QoS};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost".into());
    let config = ClientConfig {
        client_id: "button-1".into(),
        server,
        ..ClientConfig::default()
    };
    let (handle, mut events) =
        Client::new(config, Deadline::new(Duration::from_secs(15))).spawn()?;
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Event::RetryScheduled { delay } => println!("retrying in {delay:?}"),
                Event::GaveUp { .. } => println!("gave up until the next press"),
                _ => {}
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    println!("press Enter to ring");
    while lines.next_line().await?.is_some() {
        // The policy's default contract is `Delivery::Within(15 s)`.
        let receipt = handle
            .publish("home/door/bell", b"ring", QoS::AtLeastOnce, false)
            .await?;
        // Each press waits for its own outcome without blocking the next press.
        tokio::spawn(async move {
            match receipt.outcome().await {
                Ok(Outcome::Delivered) => println!("ding dong"),
                Ok(Outcome::Expired) => {
                    println!("press expired: the broker was unreachable for 15 s")
                }
                other => println!("press not sent: {other:?}"),
            }
        });
    }
    Ok(())
}
