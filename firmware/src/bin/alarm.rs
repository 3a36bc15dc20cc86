//! The seed's burglar alarm: an alarm must arrive, whatever it takes, without draining the
//! battery during a long outage. Policy `BatteryAware` (frequent attempts at first, fewer as
//! the outage lasts, never giving up), nudged by the network stack's link-up event so that
//! the alarm goes out as soon as the Wi-Fi is back. It also listens for arm / disarm
//! commands.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_futures::select::{select, select3, Either3};
use embassy_time::Timer;
use panic_halt as _;
use umqtt_embedded::{BatteryAware, Client, Delivery, Driver, EmbassyClock, Event, QoS};
use umqtt_firmware::net::{wait_link_up, Stack, BROKER};

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    umqtt_firmware::start_time();
    let stack = Stack;
    let config = umqtt_firmware::config("alarm-1", 60);
    let client: Client<_, _, umqtt_firmware::DeviceStorage> =
        Client::with_storage(config, BatteryAware::new(), 0xa1a7, EmbassyClock::new());
    let _ = client.subscribe("home/alarm/arm", QoS::AtLeastOnce);
    let servers = [BROKER];
    let mut rx = [0u8; 128];
    let driver = Driver::new(&client, &stack, &servers, &mut rx);
    let app = async {
        let mut armed = true;
        loop {
            // Stand-in for the window contact's GPIO edge.
            let window_opened = Timer::after_secs(3600);
            match select3(client.next_event(), wait_link_up(), window_opened).await {
                Either3::First(Event::Message(message)) => armed = message.payload() == b"on",
                Either3::First(_) => {}
                // The link is back: try now instead of at the policy's next slot.
                Either3::Second(()) => client.nudge(),
                Either3::Third(()) if armed => {
                    let _ = client.publish_with(
                        "home/alarm",
                        b"window opened",
                        QoS::AtLeastOnce,
                        false,
                        Delivery::Guaranteed,
                    );
                }
                Either3::Third(()) => {}
            }
        }
    };
    select(driver.run(), app).await;
}
