//! The footprint benchmark's job with minimq, in 128-byte buffers (the umqtt job's packet size): see [`umqtt_firmware::peers`].
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use panic_halt as _;

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    if let Some(peripherals) = cortex_m::Peripherals::take() {
        umqtt_firmware::time::start(peripherals.SYST);
    }
    umqtt_firmware::peers::minimq_job::<128, 128>().await;
}
