//! The footprint benchmark's job (BENCHMARKS.md): connect, publish one QoS 1 message, receive
//! one message of a subscription — with the robust engine (BatteryAware policy) included, the
//! session on the heap.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use panic_halt as _;
use umqtt_embedded::Heap;

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    umqtt_firmware::init_heap!(4 * 1024);
    if let Some(peripherals) = cortex_m::Peripherals::take() {
        umqtt_firmware::time::start(peripherals.SYST);
    }
    umqtt_firmware::footprint_job::<Heap, 1024>().await;
}
