//! A session on `Fixed` storage allocates nothing once it is built: a whole life (connect,
//! subscribe, QoS 0/1/2 both ways, keepalive, a lost link, a resumed session with resends, a
//! clean disconnect) is run with every allocation on this thread counted. The same run on
//! the heap is counted too, so a counter that sees nothing cannot pass for a result.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use umqtt_core::packet::{encode_publish_header, Publish};
use umqtt_core::session::{Event, Session, SessionConfig};
use umqtt_core::storage::{Fixed, Heap, Storage};
use umqtt_core::{Instant, PacketId, QoS};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Bytes written, checked packet by packet (first bytes counted), without allocating.
#[derive(Default)]
struct Wire {
    packets: [usize; 16],
    messages: usize,
    closed: usize,
}

fn drain<S: Storage>(session: &mut Session<S>, now: Instant, wire: &mut Wire) -> usize {
    let mut events = 0;
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                Event::Closed(_) => wire.closed += 1,
                Event::Message(_) => wire.messages += 1,
                _ => {}
            }
            events += 1;
        }
        let mut wrote = false;
        while let Some(bytes) = session.poll_transmit(now) {
            let mut rest = bytes;
            while let Some(&first) = rest.first() {
                wire.packets[usize::from(first >> 4)] += 1;
                let len = usize::from(rest[1]) + 2; // every packet here is < 128 bytes
                rest = &rest[len..];
            }
            wrote = true;
        }
        if !(wrote && session.has_unprocessed_input()) {
            return events;
        }
    }
}

fn publish_in(buf: &mut [u8; 64], qos: QoS, id: u16) -> usize {
    let publish = Publish {
        dup: false,
        qos,
        retain: false,
        topic: "in",
        packet_id: PacketId::new(id),
        payload: b"hi",
        properties: Default::default(),
    };
    let n = encode_publish_header(&publish, buf).expect("fits");
    buf[n..n + 2].copy_from_slice(b"hi");
    n + 2
}

/// Runs a whole life of a session and returns how many allocations it made after being built.
fn life<S: Storage>() -> usize {
    let config = SessionConfig {
        client_id: "fixed".into(),
        keep_alive: 10,
        max_in_flight: 2,
        ..SessionConfig::default()
    };
    COUNTING.with(|c| c.set(true));
    ALLOCATIONS.with(|n| n.set(0));
    let mut session = Session::<S>::with_storage(config.clone());
    let built = ALLOCATIONS.with(Cell::get);
    let mut wire = Wire::default();
    let mut buf = [0u8; 64];

    session.connect(t(0), false).unwrap();
    drain(&mut session, t(0), &mut wire);
    session.handle_read(t(1), &[0x20, 0x02, 0x00, 0x00]);
    drain(&mut session, t(1), &mut wire);
    let sub = session.subscribe(&[("in", QoS::ExactlyOnce)]).unwrap();
    drain(&mut session, t(2), &mut wire);
    let [hi, lo] = sub.get().to_be_bytes();
    session.handle_read(t(3), &[0x90, 0x03, hi, lo, 0x02]);
    drain(&mut session, t(3), &mut wire);

    // Outgoing: QoS 0, three QoS 1 (window 2), one QoS 2.
    session
        .publish("out", b"0", QoS::AtMostOnce, false)
        .unwrap();
    let ids: [PacketId; 4] = [
        session
            .publish("out", b"1", QoS::AtLeastOnce, false)
            .unwrap()
            .unwrap(),
        session
            .publish("out", b"2", QoS::AtLeastOnce, false)
            .unwrap()
            .unwrap(),
        session
            .publish("out", b"3", QoS::AtLeastOnce, false)
            .unwrap()
            .unwrap(),
        session
            .publish("out", b"4", QoS::ExactlyOnce, false)
            .unwrap()
            .unwrap(),
    ];
    drain(&mut session, t(4), &mut wire);
    for id in &ids[..3] {
        let [hi, lo] = id.get().to_be_bytes();
        session.handle_read(t(5), &[0x40, 0x02, hi, lo]);
        drain(&mut session, t(5), &mut wire);
    }
    let [hi, lo] = ids[3].get().to_be_bytes();
    session.handle_read(t(6), &[0x50, 0x02, hi, lo]);
    drain(&mut session, t(6), &mut wire);

    // The link drops before PUBCOMP; the broker resumes the session: PUBREL again.
    session.handle_connection_lost();
    session.connect(t(7), false).unwrap();
    drain(&mut session, t(7), &mut wire);
    session.handle_read(t(8), &[0x20, 0x02, 0x01, 0x00]);
    drain(&mut session, t(8), &mut wire);
    session.handle_read(t(9), &[0x70, 0x02, hi, lo]);
    drain(&mut session, t(9), &mut wire);

    // Incoming: QoS 1, QoS 2 (PUBREC, then PUBREL → PUBCOMP), in one read.
    let mut stream = [0u8; 64];
    let a = publish_in(&mut buf, QoS::AtLeastOnce, 7);
    stream[..a].copy_from_slice(&buf[..a]);
    let b = publish_in(&mut buf, QoS::ExactlyOnce, 8);
    stream[a..a + b].copy_from_slice(&buf[..b]);
    session.handle_read(t(10), &stream[..a + b]);
    drain(&mut session, t(10), &mut wire);
    session.handle_read(t(11), &[0x62, 0x02, 0x00, 0x08]);
    drain(&mut session, t(11), &mut wire);

    // Keepalive: PINGREQ after 10 s of quiet, PINGRESP.
    session.handle_timeout(t(10_011));
    drain(&mut session, t(10_011), &mut wire);
    session.handle_read(t(10_012), &[0xD0, 0x00]);
    drain(&mut session, t(10_012), &mut wire);
    session.disconnect().unwrap();
    drain(&mut session, t(10_013), &mut wire);
    let after = ALLOCATIONS.with(Cell::get) - built;
    COUNTING.with(|c| c.set(false));

    // What went on the wire: CONNECT ×2, SUBSCRIBE, 5 PUBLISH, PUBREL ×2, PUBACK, PUBREC,
    // PUBCOMP, PINGREQ, DISCONNECT.
    let p = &wire.packets;
    assert_eq!(
        [p[1], p[8], p[3], p[6], p[4], p[5], p[7], p[12], p[14]],
        [2, 1, 5, 2, 1, 1, 1, 1, 1]
    );
    assert_eq!(session.outgoing_len(), 0);
    // Both messages reached the application; the only close was the DISCONNECT's.
    assert_eq!((wire.messages, wire.closed), (2, 1));
    after
}

#[test]
fn a_session_on_fixed_storage_allocates_nothing_once_built() {
    assert_eq!(life::<Fixed<8, 256>>(), 0);
}

#[test]
fn the_same_life_on_the_heap_allocates_so_the_count_is_real() {
    assert!(life::<Heap>() > 0);
}
