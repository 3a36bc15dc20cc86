//! The seed's button: a press is worth delivering for 15 s, then no longer (the light it
//! switches would come on too late). Policy `Deadline(15 s)`.
#![no_std]
#![no_main]

use core::time::Duration;

use embassy_executor::Spawner;
use embassy_futures::select::select;
use embassy_time::Timer;
use panic_halt as _;
use umqtt_embedded::{Client, Deadline, Driver, EmbassyClock, Event, QoS};
use umqtt_firmware::net::{Stack, BROKER};

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    umqtt_firmware::start_time();
    let stack = Stack;
    let config = umqtt_firmware::config("button-1", 60);
    let policy = Deadline::new(Duration::from_secs(15));
    let client: Client<_, _, umqtt_firmware::DeviceStorage> =
        Client::with_storage(config, policy, 0xb077, EmbassyClock::new());
    let servers = [BROKER];
    let mut rx = [0u8; 128];
    let driver = Driver::new(&client, &stack, &servers, &mut rx);
    let app = async {
        loop {
            // Stand-in for a GPIO edge (embassy: `button.wait_for_falling_edge().await`).
            Timer::after_secs(30).await;
            let _ = client.publish("home/button", b"pressed", QoS::AtLeastOnce, false);
            // Delivered, or expired after 15 s: either way one event says so (an LED could).
            while let Some(event) = client.try_next_event() {
                if let Event::Expired { .. } = event {
                    cortex_m::asm::nop();
                }
            }
        }
    };
    select(driver.run(), app).await;
}
