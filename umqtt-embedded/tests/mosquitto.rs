//! The embedded driver end to end against a real mosquitto (started by the test on free
//! ports), over tokio TCP made an `embedded-nal-async` stack through `embedded-io-adapters`:
//! the fault scenarios of the blocking robust client — broker restart, link cut, black hole,
//! session lost — with every QoS 1 message counted. Timeouts only guard against a hang; every
//! assertion counts messages.

mod support;

/// The session on the heap (the default).
type SessionStorage = umqtt_embedded::Heap;

include!("support/scenarios.rs");
