//! The footprint benchmark's job with minimq, in 1 KiB receive and transmit buffers: see
//! [`umqtt_firmware::peers`].
#![no_std]
#![no_main]

use panic_halt as _;

umqtt_firmware::footprint_main!(umqtt_firmware::peers::minimq_job::<1024, 1024>());
