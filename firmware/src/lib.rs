//! What the three example devices share: their storage and settings, an `embassy-time`
//! driver on SysTick, and the network stack placeholder. They run without an allocator; only
//! the heap build of the footprint job (`--features heap`) has one.
//!
//! On a real board, replace [`net::Stack`] with your stack's `embedded-nal-async` client,
//! e.g. embassy-net's `TcpClient` (and `DnsSocket` for host names), and feed the stack's
//! link-up event to [`umqtt_embedded::Client::nudge`]; the rest stays as it is.
#![no_std]

pub mod net;
pub mod peers;
pub mod time;

use embassy_futures::select::select;
use umqtt_embedded::{
    BatteryAware, Client, Driver, EmbassyClock, EngineConfig, Event, Fixed, QoS, SessionConfig,
    Storage, Strings,
};

/// The client's storage on a device without room to spare: 6 list entries, 128-byte buffers
/// (the largest packet sent or received), 128-byte arenas (what the engine holds: queued
/// messages, subscriptions; the stored packets; what waiting events hold) and message lists
/// of one entry. The engine then holds one message at a time and one received message
/// ([`Engine::with_storage`](umqtt_embedded::Engine::with_storage) lowers its limits to what
/// the lists hold; with 6 entries it would hold one message anyway). Nothing is allocated:
/// the firmware has no allocator.
pub type SessionStorage = Fixed<6, 128, 128, 1>;

/// The seed devices' storage: 10 list entries — the engine holds 4 messages (waiting, or with
/// the session: message lists of 4, what 10 entries allow anyway) and 2 received messages —
/// 128-byte packets, and arenas of 384 bytes (the queued messages' topics and payloads and
/// the subscriptions; the stored packets; what waiting events hold). The configuration's
/// strings are `&'static`: the devices have no allocator.
pub type DeviceStorage = Fixed<10, 128, 384, 4>;

/// The allocator of the heap build (`--features heap`): only the `footprint` binary, whose
/// client is on the heap, has one. Give it memory with [`init_heap!`] first thing in `main`.
#[cfg(feature = "heap")]
#[global_allocator]
pub static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

/// Gives [`HEAP`] `$size` bytes of static memory. Call once, first thing in `main`, before
/// anything allocates. The footprint job on the heap peaks at 1.8 KiB (counted on a 64-bit
/// host by umqtt-embedded's `tests/heap.rs`; less with 32-bit pointers).
#[cfg(feature = "heap")]
#[macro_export]
macro_rules! init_heap {
    ($size:expr) => {{
        static mut MEMORY: [core::mem::MaybeUninit<u8>; $size] =
            [core::mem::MaybeUninit::uninit(); $size];
        // SAFETY: called once at start-up, before anything allocates; nothing else touches
        // MEMORY.
        unsafe { $crate::HEAP.init(core::ptr::addr_of_mut!(MEMORY) as usize, $size) }
    }};
}

/// Starts the SysTick time driver ([`time`]): first thing in `main`.
pub fn start_time() {
    if let Some(peripherals) = cortex_m::Peripherals::take() {
        time::start(peripherals.SYST);
    }
}

/// The entry point of a `footprint*` binary, which differ only in their job: starts the time
/// driver, then runs `$job` (a future) to its end.
#[macro_export]
macro_rules! footprint_main {
    ($job:expr) => {
        #[embassy_executor::main]
        async fn main(_spawner: embassy_executor::Spawner) {
            $crate::start_time();
            $job.await;
        }
    };
}

/// A small device's engine settings: a short keepalive, small queues.
pub fn config<T: Strings>(client_id: &'static str, keep_alive: u16) -> EngineConfig<T> {
    let session = SessionConfig {
        client_id: client_id.into(),
        keep_alive,
        max_in_flight: 4,
        max_outgoing: 32,
        max_packet_size: 1024,
        ..SessionConfig::default()
    };
    let mut config = EngineConfig::new(session);
    config.max_queued = 16;
    config.max_queued_bytes = 1024;
    config.max_received = 4;
    config.max_received_bytes = 1024;
    config.max_events = 16;
    config
}

/// The footprint benchmark's job (BENCHMARKS.md), with the client on storage `S` and a read
/// buffer of `RX` bytes (on fixed storage the driver reads at most the session's buffer size
/// at a time, so `RX` = `B` is enough): connect, subscribe, publish one QoS 1 message, receive
/// one message of the subscription — with the robust engine (BatteryAware policy) included.
/// Call it after [`time::start`] (and, on the heap, `init_heap!`).
pub async fn footprint_job<S: Storage, const RX: usize>() {
    let stack = net::Stack;
    let config = config::<S::Strings>("footprint", 60);
    let client: Client<_, _, S> =
        Client::with_storage(config, BatteryAware::new(), 1, EmbassyClock::new());
    let servers = [net::BROKER];
    let mut rx = [0u8; RX];
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
