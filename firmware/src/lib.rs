//! What the three example devices share: the heap umqtt-embedded needs today, an
//! `embassy-time` driver on SysTick, and the network stack placeholder.
//!
//! On a real board, replace [`net::Stack`] with your stack's `embedded-nal-async` client,
//! e.g. embassy-net's `TcpClient` (and `DnsSocket` for host names), and feed the stack's
//! link-up event to [`umqtt_embedded::Client::nudge`]; the rest stays as it is.
#![no_std]

pub mod net;
pub mod time;

use core::mem::MaybeUninit;

use embedded_alloc::LlffHeap as Heap;
use umqtt_embedded::{EngineConfig, SessionConfig};

#[global_allocator]
static HEAP: Heap = Heap::empty();

/// Bytes of heap for the engine (queues, in-flight messages, received messages).
pub const HEAP_SIZE: usize = 16 * 1024;

/// Gives the allocator its memory. Call once, first thing in `main`.
pub fn init_heap() {
    static mut MEMORY: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
    // SAFETY: called once at start-up, before anything allocates; nothing else touches MEMORY.
    unsafe { HEAP.init(core::ptr::addr_of_mut!(MEMORY) as usize, HEAP_SIZE) }
}

/// A small device's engine settings: a short keepalive, small queues.
pub fn config(client_id: &str, keep_alive: u16) -> EngineConfig {
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
