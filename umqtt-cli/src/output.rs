//! `sub`'s stdout, written by its own thread.
//!
//! A reader that stops reading (a full pipe) blocks `write` for as long as it likes. Written
//! from the main thread, that would leave Ctrl-C / SIGTERM unanswered and the broker without
//! DISCONNECT; mosquitto_sub ends within a moment. So the main thread hands each formatted
//! message to a writer thread through a short queue and, while the queue is full, keeps
//! looking for a signal. On exit the writer may still be blocked: the process ends anyway
//! (Rust's exit only `try_lock`s stdout).

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Messages formatted but not yet written.
const QUEUE: usize = 64;
/// How often a wait on the writer looks for Ctrl-C / SIGTERM.
const SIGNAL_TICK: Duration = Duration::from_millis(20);

/// Why printing stopped.
#[derive(Debug)]
pub enum Stopped {
    /// Ctrl-C / SIGTERM arrived while waiting for the writer.
    Interrupted,
    /// Writing failed (a closed pipe is `BrokenPipe`).
    Failed(io::Error),
}

/// The writer thread and its queue.
pub struct Printer {
    queue: Option<SyncSender<Vec<u8>>>,
    failure: Arc<Mutex<Option<io::Error>>>,
    writer: Option<JoinHandle<()>>,
}

impl Printer {
    /// Starts the writer thread on stdout.
    pub fn stdout() -> io::Result<Printer> {
        let (queue, chunks) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let failure = Arc::new(Mutex::new(None));
        let writer_failure = Arc::clone(&failure);
        let writer = thread::Builder::new()
            .name("stdout".to_owned())
            .spawn(move || write_all(&chunks, &mut io::stdout().lock(), &writer_failure))?;
        Ok(Printer {
            queue: Some(queue),
            failure,
            writer: Some(writer),
        })
    }

    /// Queues `bytes` for stdout; waits (looking for signals) while the queue is full.
    pub fn print(&mut self, mut bytes: Vec<u8>) -> Result<(), Stopped> {
        let Some(queue) = &self.queue else {
            return Err(self.failure());
        };
        loop {
            match queue.try_send(bytes) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) => {
                    if crate::signal::interrupted() {
                        return Err(Stopped::Interrupted);
                    }
                    bytes = back;
                    thread::sleep(SIGNAL_TICK);
                }
                Err(TrySendError::Disconnected(_)) => return Err(self.failure()),
            }
        }
    }

    /// `Err` once the writer has stopped on a failed write (a closed pipe), so that the
    /// command ends without waiting for another message to print.
    pub fn check(&mut self) -> Result<(), Stopped> {
        match &self.writer {
            Some(writer) if writer.is_finished() => {
                self.queue = None;
                Err(self.failure())
            }
            _ => Ok(()),
        }
    }

    /// Waits until everything queued is written (or a signal arrives).
    pub fn finish(mut self) -> Result<(), Stopped> {
        drop(self.queue.take());
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        while !writer.is_finished() {
            if crate::signal::interrupted() {
                return Err(Stopped::Interrupted);
            }
            thread::sleep(SIGNAL_TICK);
        }
        let _ = writer.join();
        match self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(error) => Err(Stopped::Failed(error)),
            None => Ok(()),
        }
    }

    fn failure(&self) -> Stopped {
        let error = self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Stopped::Failed(error.unwrap_or_else(|| io::Error::other("the stdout writer stopped")))
    }
}

/// The writer thread: each chunk written and flushed, until the queue closes or a write fails.
fn write_all(chunks: &Receiver<Vec<u8>>, out: &mut impl Write, failure: &Mutex<Option<io::Error>>) {
    for chunk in chunks {
        if let Err(error) = out.write_all(&chunk).and_then(|()| out.flush()) {
            *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writer_writes_in_order_and_reports_a_failure() {
        let (queue, chunks) = mpsc::sync_channel(4);
        queue.send(b"a".to_vec()).unwrap();
        queue.send(b"b".to_vec()).unwrap();
        drop(queue);
        let failure = Mutex::new(None);
        let mut out = Vec::new();
        write_all(&chunks, &mut out, &failure);
        assert_eq!(out, b"ab");
        assert!(failure.lock().unwrap().is_none());

        let (queue, chunks) = mpsc::sync_channel(4);
        queue.send(b"a".to_vec()).unwrap();
        drop(queue);
        write_all(&chunks, &mut Closed, &failure);
        let error = failure.lock().unwrap().take().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
