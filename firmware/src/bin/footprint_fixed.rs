//! The footprint benchmark's job (BENCHMARKS.md): connect, publish one QoS 1 message, receive
//! one message of a subscription — with the robust engine (BatteryAware policy) included, and
//! the session on fixed storage ([`umqtt_firmware::SessionStorage`]): only the engine's own
//! queue, subscriptions and received messages are on the heap.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_futures::select::select;
use panic_halt as _;
use umqtt_embedded::{BatteryAware, Client, Driver, EmbassyClock, Event, QoS};
use umqtt_firmware::net::{Stack, BROKER};

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    umqtt_firmware::init_heap!(3 * 1024);
    if let Some(peripherals) = cortex_m::Peripherals::take() {
        umqtt_firmware::time::start(peripherals.SYST);
    }
    let stack = Stack;
    let config = umqtt_firmware::config("footprint", 60);
    let client: Client<_, _, umqtt_firmware::SessionStorage> =
        Client::with_storage(config, BatteryAware::new(), 1, EmbassyClock::new());
    let servers = [BROKER];
    let mut rx = [0u8; 1024];
    let driver = Driver::new(&client, &stack, &servers, &mut rx);
    let app = async {
        let _ = client.subscribe("fw/in", QoS::AtLeastOnce);
        let _ = client.publish("fw/out", b"hello", QoS::AtLeastOnce, false);
        loop {
            if let Event::Message(message) = client.next_event().await {
                core::hint::black_box(message);
                break;
            }
        }
    };
    select(driver.run(), app).await;
}
