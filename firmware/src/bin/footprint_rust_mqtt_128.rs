//! The footprint benchmark's job with rust-mqtt, in a 128-byte bump buffer (the umqtt job's
//! packet size): see [`umqtt_firmware::peers`].
#![no_std]
#![no_main]

use panic_halt as _;

umqtt_firmware::footprint_main!(umqtt_firmware::peers::rust_mqtt_job::<128>());
