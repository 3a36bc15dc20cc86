//! The footprint benchmark's job with minimq, in 128-byte buffers (the umqtt job's packet
//! size): see [`umqtt_firmware::peers`].
#![no_std]
#![no_main]

use panic_halt as _;

umqtt_firmware::footprint_main!(umqtt_firmware::peers::minimq_job::<128, 128>());
