//! The footprint benchmark's baseline: the executor, the SysTick time driver and the
//! placeholder stack doing one connect, write and read, with no MQTT client. Subtract it from
//! the footprint binaries to see each client's own share.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embedded_io_async::{Read, Write};
use embedded_nal_async::TcpConnect;
use panic_halt as _;
use umqtt_firmware::net::{Stack, BROKER_ADDR};

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    umqtt_firmware::start_time();
    let stack = Stack;
    let Ok(mut connection) = stack.connect(BROKER_ADDR).await else {
        return;
    };
    let mut buffer = [0u8; 1024];
    if connection.write_all(b"hello").await.is_ok() {
        embassy_time::Timer::after_secs(1).await;
        if let Ok(n) = connection.read(&mut buffer).await {
            core::hint::black_box(&buffer[..n]);
        }
    }
}
