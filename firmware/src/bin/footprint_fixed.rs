//! The footprint benchmark's job (BENCHMARKS.md) with the session on fixed storage
//! ([`umqtt_firmware::SessionStorage`]): only the engine's own queue, subscriptions and
//! received messages are on the heap.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use panic_halt as _;

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    umqtt_firmware::init_heap!(256);
    if let Some(peripherals) = cortex_m::Peripherals::take() {
        umqtt_firmware::time::start(peripherals.SYST);
    }
    umqtt_firmware::footprint_job::<umqtt_firmware::SessionStorage>().await;
}
