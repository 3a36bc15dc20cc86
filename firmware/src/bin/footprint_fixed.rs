//! The footprint benchmark's job (BENCHMARKS.md) on fixed storage
//! ([`umqtt_firmware::SessionStorage`]), with no allocator: the session and the robust engine
//! keep everything in their fixed storage, the configuration's strings are `&'static` (the
//! host test `umqtt-embedded/tests/heap.rs` counts the job's allocations: none).
#![no_std]
#![no_main]

use panic_halt as _;

umqtt_firmware::footprint_main!(umqtt_firmware::footprint_job::<
    umqtt_firmware::SessionStorage,
    128,
>());
