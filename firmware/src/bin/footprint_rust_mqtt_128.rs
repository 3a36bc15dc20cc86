//! The footprint benchmark's job with rust-mqtt, in a 128-byte bump buffer (the umqtt job's packet size): see [`umqtt_firmware::peers`].
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use panic_halt as _;

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    if let Some(peripherals) = cortex_m::Peripherals::take() {
        umqtt_firmware::time::start(peripherals.SYST);
    }
    umqtt_firmware::peers::rust_mqtt_job::<128>().await;
}
