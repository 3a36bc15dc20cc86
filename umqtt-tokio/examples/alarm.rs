//! Seed device 3: a battery-powered burglar alarm. Every alarm must arrive, however long the
//! outage (`Delivery::Guaranteed`), without draining the battery on attempts: `BatteryAware`
//! backs off further the longer the outage lasts, and a nudge (the Wi-Fi came back) tries at
//! once.
//!
//! `cargo run -p umqtt-tokio --example alarm -- [broker-host]`; type `alarm` to trigger, `wifi`
//! to report that the network is back.

use tokio::io::{AsyncBufReadExt, BufReader};
use umqtt_tokio::robust::{BatteryAware, Client, Delivery, Event, Outcome};
use umqtt_tokio::{ClientConfig, QoS};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost".into());
    let config = ClientConfig {
        client_id: "alarm-1".into(),
        server,
        ..ClientConfig::default()
    };
    let (handle, mut events) = Client::new(config, BatteryAware::new())
        .last_will("home/alarm/status", b"offline", true, QoS::AtLeastOnce)
        .spawn()?;
    // Commands for the alarm arrive on a kept subscription (renewed if the broker forgets it).
    handle.subscribe("home/alarm/arm", QoS::AtLeastOnce)?;
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Event::Message(message) => {
                    println!("command: {}", String::from_utf8_lossy(&message.payload));
                }
                Event::RetryScheduled { delay } => println!("next attempt in {delay:?}"),
                other => println!("{other:?}"),
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        match line.trim() {
            "alarm" => {
                let receipt = handle
                    .publish_with(
                        "home/alarm",
                        b"window broken",
                        QoS::ExactlyOnce,
                        false,
                        Delivery::Guaranteed,
                    )
                    .await?;
                tokio::spawn(async move {
                    if let Ok(Outcome::Delivered) = receipt.outcome().await {
                        println!("alarm delivered");
                    }
                });
            }
            // The device's network manager says the link is back: try now, not at the next
            // (possibly distant) scheduled attempt.
            "wifi" => handle.nudge(),
            other => println!("unknown command {other:?} (alarm, wifi)"),
        }
    }
    handle.disconnect().await;
    Ok(())
}
