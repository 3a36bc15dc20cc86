//! The footprint benchmark's job (BENCHMARKS.md) on fixed storage
//! ([`umqtt_firmware::SessionStorage`]): the session and the robust engine allocate nothing
//! once built. Only the configuration's strings (the client id) are on the heap, copied when
//! the client is built: a 256-byte heap (the host test `umqtt-embedded/tests/heap.rs` measures
//! the whole job's heap peak: 18 bytes).
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
    umqtt_firmware::footprint_job::<umqtt_firmware::SessionStorage, 128>().await;
}
