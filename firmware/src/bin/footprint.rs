//! The footprint benchmark's job (BENCHMARKS.md): connect, publish one QoS 1 message, receive
//! one message of a subscription — with the robust engine (BatteryAware policy) included, the
//! session on the heap.
#![no_std]
#![no_main]

use panic_halt as _;
use umqtt_embedded::Heap;

// The heap first, before anything allocates.
umqtt_firmware::footprint_main!({
    umqtt_firmware::init_heap!(4 * 1024);
    umqtt_firmware::footprint_job::<Heap, 1024>()
});
