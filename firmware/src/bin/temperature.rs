//! The seed's temperature sensor: a reading a minute, never retried (a stale reading is
//! worthless; the next one is a minute away). Policy `NoRetry`.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_futures::select::select;
use embassy_time::Timer;
use panic_halt as _;
use umqtt_embedded::{Client, Driver, EmbassyClock, NoRetry, QoS};
use umqtt_firmware::net::{Stack, BROKER};

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    umqtt_firmware::start_time();
    let stack = Stack;
    let config = umqtt_firmware::config("temperature-1", 120);
    let client: Client<_, _, umqtt_firmware::DeviceStorage> =
        Client::with_storage(config, NoRetry, 0x7e39, EmbassyClock::new());
    let servers = [BROKER];
    let mut rx = [0u8; 128];
    let driver = Driver::new(&client, &stack, &servers, &mut rx);
    let app = async {
        let mut reading: u16 = 215;
        loop {
            let mut text = [0u8; 8];
            let len = format_tenths(reading, &mut text);
            // The policy's default delivery (no retry): dropped, and reported, if the link is
            // down now or fails before the PUBACK.
            let _ = client.publish("home/temperature", &text[..len], QoS::AtLeastOnce, false);
            Timer::after_secs(60).await;
            while client.try_next_event().is_some() {}
            reading = reading.wrapping_add(1) % 400;
        }
    };
    select(driver.run(), app).await;
}

/// `215` as `21.5`.
fn format_tenths(value: u16, out: &mut [u8; 8]) -> usize {
    let mut digits = [0u8; 5];
    let mut n = value;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        n /= 10;
        count += 1;
        if n == 0 || count == digits.len() {
            break;
        }
    }
    let mut len = 0;
    for i in (0..count.max(2)).rev() {
        if i == 0 {
            out[len] = b'.';
            len += 1;
        }
        out[len] = digits[i];
        len += 1;
    }
    len
}
