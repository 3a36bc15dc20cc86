//! Ctrl-C and SIGTERM: end the command cleanly, with DISCONNECT, as mosquitto_pub/sub do —
//! so the broker does not publish the last will of a client that was asked to stop.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler; on failure the default behaviour (immediate exit) stays.
pub fn install() {
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
}

/// Whether SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
