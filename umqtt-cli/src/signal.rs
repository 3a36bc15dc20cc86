//! Ctrl-C and SIGTERM: end the command cleanly, with DISCONNECT, as mosquitto_pub/sub do —
//! so the broker does not publish the last will of a client that was asked to stop.
//!
//! The commands look at [`interrupted`] at least every 200 ms wherever they wait (for a
//! message, for stdin, for the stdout writer, between reconnect attempts), then send
//! DISCONNECT and exit 0. A few waits cannot be sliced: a TCP connect, a TLS handshake or a
//! CONNACK that does not come (up to the 10 s connect timeout), and the robust client's own
//! connection attempts. So the handler also starts a watchdog: if the process is still
//! running [`GRACE`] after the signal, it exits with status 255 — what mosquitto_sub does when
//! interrupted before its connection is up (`exit(-1)`). No connection is up in those states,
//! so no DISCONNECT is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long a command has to end by itself after the signal.
const GRACE: Duration = Duration::from_millis(800);
/// The watchdog's exit status (mosquitto_sub's `exit(-1)`).
const EXIT_WATCHDOG: i32 = 255;

/// Installs the handler; on failure the default behaviour (immediate exit) stays.
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if !INTERRUPTED.swap(true, Ordering::SeqCst) {
            // The handler runs on ctrlc's own thread: sleeping here delays nobody.
            thread::sleep(GRACE);
            std::process::exit(EXIT_WATCHDOG);
        }
    });
}

/// Whether SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
