//! Ctrl-C and SIGTERM: end the command cleanly, with DISCONNECT, as mosquitto_pub/sub do —
//! so the broker does not publish the last will of a client that was asked to stop.
//!
//! As mosquitto_sub: before the first connection is up (no CONNACK yet), a signal ends the
//! process at once with status 255 (its `exit(-1)`): there is nothing to disconnect. This
//! holds with `--policy` too.
//!
//! Once connected, the commands look at [`interrupted`] at least every 200 ms wherever they
//! wait (for a message, an acknowledgement, stdin, the stdout writer, between reconnect
//! attempts), then send DISCONNECT and exit. A few waits cannot be sliced: a reconnection's
//! TCP connect, TLS handshake or CONNACK (up to the 10 s connect timeout), and the robust
//! client's own attempts. So the handler also starts a watchdog: if the process is still
//! running [`GRACE`] after the signal, it exits with status 255. No connection is up in those
//! states, so no DISCONNECT is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// A CONNACK was received at least once (mosquitto_sub's `connack_received`).
static EVER_CONNECTED: AtomicBool = AtomicBool::new(false);

/// How long a command has to end by itself after the signal.
const GRACE: Duration = Duration::from_millis(800);
/// The watchdog's exit status (mosquitto_sub's `exit(-1)`).
const EXIT_WATCHDOG: i32 = 255;

/// Installs the handler; on failure the default behaviour (immediate exit) stays.
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if !EVER_CONNECTED.load(Ordering::SeqCst) {
            std::process::exit(EXIT_WATCHDOG);
        }
        if !INTERRUPTED.swap(true, Ordering::SeqCst) {
            // The handler runs on ctrlc's own thread: sleeping here delays nobody.
            thread::sleep(GRACE);
            std::process::exit(EXIT_WATCHDOG);
        }
    });
}

/// A connection is up (CONNACK received), or the command's loop can end it cleanly anyway
/// (`--policy`): from now on a signal is left to the command, within [`GRACE`].
pub fn connected() {
    EVER_CONNECTED.store(true, Ordering::SeqCst);
}

/// Whether SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
