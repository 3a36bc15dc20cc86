//! How much heap the footprint job (connect, subscribe, publish one QoS 1 message, receive
//! one message) takes with a small device's settings: the number BENCHMARKS.md reports beside
//! the firmware's static RAM. On fixed storage the job allocates nothing at all, from
//! building the client on (its configuration's strings are `&'static`): the firmware needs
//! no allocator. Driven on a virtual clock against a scripted broker that allocates nothing itself, so every byte
//! counted is the client's (engine, session, driver). Counts, never times.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use embassy_futures::select::select;
use umqtt_core::packet::{
    decode, Ack, ConnAck, ConnectReturnCode, Decoded, Packet, Properties, Publish, SubAck,
};
use umqtt_core::{Instant, PacketId};
use umqtt_embedded::{
    BatteryAware, Client, Clock, Driver, EngineConfig, Event, Fixed, Heap, QoS, Received, Server,
    SessionConfig, Storage, Strings, TcpConnect,
};

struct Peak;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Allocations and reallocations made (by any thread; this test's only thread allocates).
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        let live = if new_size >= layout.size() {
            LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size()
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed) - (layout.size() - new_size)
        };
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Peak = Peak;

/// A virtual clock: a sleep lets everything else run once, then jumps to its deadline.
struct JumpClock(RefCell<u64>);

impl Clock for JumpClock {
    fn now(&self) -> Instant {
        Instant::from_millis(*self.0.borrow())
    }

    async fn sleep_until(&self, at: Instant) {
        let mut yielded = false;
        poll_fn(|_| {
            if std::mem::replace(&mut yielded, true) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        let mut now = self.0.borrow_mut();
        *now = (*now).max(at.as_millis());
    }
}

/// Fixed-size byte queue (the broker must not allocate: it would be counted).
struct Bytes {
    data: [u8; 512],
    len: usize,
}

impl Bytes {
    fn push(&mut self, bytes: &[u8]) {
        self.data[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn take_front(&mut self, n: usize) {
        self.data.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

/// A broker that answers CONNECT, SUBSCRIBE (then sends one QoS 1 message on the filter),
/// PUBLISH and PINGREQ.
struct Script {
    to_client: RefCell<Bytes>,
    from_client: RefCell<Bytes>,
}

impl Script {
    fn answer(&self) {
        let mut from = self.from_client.borrow_mut();
        let mut to = self.to_client.borrow_mut();
        let mut out = [0u8; 64];
        loop {
            let (reply, consumed) = match decode(&from.data[..from.len], 4096) {
                Ok(Decoded::Complete { packet, consumed }) => (
                    match packet {
                        Packet::Connect(_) => Some(Packet::ConnAck(ConnAck::new(
                            false,
                            ConnectReturnCode::Accepted,
                        ))),
                        Packet::Subscribe(subscribe) => {
                            let suback = Packet::SubAck(SubAck {
                                packet_id: subscribe.packet_id,
                                return_codes: &[1],
                                properties: Properties::EMPTY,
                            });
                            let n = suback.encode(&mut out).expect("fits");
                            to.push(&out[..n]);
                            Some(Packet::Publish(Publish {
                                dup: false,
                                qos: QoS::AtLeastOnce,
                                retain: false,
                                topic: "fw/in",
                                packet_id: PacketId::new(7),
                                payload: b"hi",
                                properties: Properties::EMPTY,
                            }))
                        }
                        Packet::Publish(publish) => {
                            publish.packet_id.map(|id| Packet::PubAck(Ack::new(id)))
                        }
                        Packet::PingReq => Some(Packet::PingResp),
                        _ => None,
                    },
                    consumed,
                ),
                _ => return,
            };
            if let Some(reply) = reply {
                let n = reply.encode(&mut out).expect("fits");
                to.push(&out[..n]);
            }
            from.take_front(consumed);
        }
    }
}

struct ScriptConnection<'a>(&'a Script);

impl embedded_io_async::ErrorType for ScriptConnection<'_> {
    type Error = embedded_io_async::ErrorKind;
}

impl embedded_io_async::Read for ScriptConnection<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        poll_fn(|_| {
            let mut to = self.0.to_client.borrow_mut();
            if to.len == 0 {
                return Poll::Pending;
            }
            let n = to.len.min(buf.len());
            buf[..n].copy_from_slice(&to.data[..n]);
            to.take_front(n);
            Poll::Ready(Ok(n))
        })
        .await
    }
}

impl embedded_io_async::Write for ScriptConnection<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.from_client.borrow_mut().push(buf);
        self.0.answer();
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl TcpConnect for Script {
    type Error = embedded_io_async::ErrorKind;
    type Connection<'a> = ScriptConnection<'a>;

    async fn connect<'a>(
        &'a self,
        _remote: SocketAddr,
    ) -> Result<ScriptConnection<'a>, Self::Error> {
        Ok(ScriptConnection(self))
    }
}

/// The firmware's settings (firmware/src/lib.rs).
fn config<T: Strings>(client_id: &'static str) -> EngineConfig<T> {
    let session = SessionConfig {
        client_id: client_id.into(),
        keep_alive: 60,
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

/// The footprint job's heap peak with the client on storage `S`, and how many allocations it
/// made, building the client included.
fn heap_peak<S: Storage>() -> (usize, usize) {
    let script = Script {
        to_client: RefCell::new(Bytes {
            data: [0; 512],
            len: 0,
        }),
        from_client: RefCell::new(Bytes {
            data: [0; 512],
            len: 0,
        }),
    };
    let servers = [Server::Addr(SocketAddr::from(([192, 168, 1, 10], 1883)))];
    let mut rx = [0u8; 1024];
    let clock = JumpClock(RefCell::new(0));
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let client: Client<_, _, S> =
        Client::with_storage(config("footprint"), BatteryAware::new(), 1, &clock);
    let driver = Driver::new(&client, &script, &servers, &mut rx);
    let (mut delivered, mut received) = (false, false);
    let app = async {
        client.subscribe("fw/in", QoS::AtLeastOnce).expect("valid");
        client
            .publish("fw/out", b"hello", QoS::AtLeastOnce, false)
            .expect("queued");
        while !(delivered && received) {
            match client.next_event().await {
                Event::Delivered { .. } => delivered = true,
                Event::Message(message) => received = message.payload() == b"hi",
                _ => {}
            }
        }
    };
    embassy_futures::block_on(select(driver.run(), app));
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    drop(client);
    assert!(delivered && received);
    (peak, allocations)
}

#[test]
fn footprint_job_heap_peak() {
    let (heap, heap_allocations) = heap_peak::<Heap>();
    println!(
        "footprint job: heap peak {heap} bytes, {heap_allocations} allocations (client on the \
         heap)"
    );
    // The firmware's fixed storage (firmware/src/lib.rs): 6 entries, 128-byte buffers and
    // arenas, message lists of one.
    let (fixed, fixed_allocations) = heap_peak::<Fixed<6, 128, 128, 1>>();
    println!(
        "footprint job: heap peak {fixed} bytes, {fixed_allocations} allocations (client on \
         Fixed<6, 128, 128, 1>)"
    );
    // A guard against regressions, well above today's figures (see BENCHMARKS.md).
    assert!(heap < 8 * 1024, "heap peak {heap} bytes");
    assert!(
        heap_allocations > 0,
        "the counter sees the heap client's allocations"
    );
    // On fixed storage, nothing allocates: not the client being built (its configuration's
    // strings are `&'static`), not the driver, the engine or the session.
    assert_eq!((fixed_allocations, fixed), (0, 0));
}
