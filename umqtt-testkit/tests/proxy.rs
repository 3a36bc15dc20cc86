//! Self-tests of the fault proxy, against a trivial echo server and once
//! through a real mosquitto.
//!
//! Timing assertions are lower bounds only; every wait has a deadline well
//! under the 3 s each test may take.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use umqtt_testkit::broker::{free_port, Mosquitto};
use umqtt_testkit::proxy::{FaultProxy, Mode};
use umqtt_testkit::raw;

const IO_TIMEOUT: Duration = Duration::from_secs(2);
const SILENCE: Duration = Duration::from_millis(300);

/// An upstream that writes back whatever it reads, on its own threads.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !thread_stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let stop = Arc::clone(&thread_stop);
                        thread::spawn(move || echo(stream, &stop));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Echo {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

fn echo(mut stream: TcpStream, stop: &AtomicBool) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buffer = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(count) => {
                if stream.write_all(&buffer[..count]).is_err() {
                    return;
                }
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn connect(proxy: &FaultProxy) -> TcpStream {
    let stream = TcpStream::connect(proxy.addr()).expect("the proxy accepts connections");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

fn read_exactly(stream: &mut TcpStream, count: usize) -> Vec<u8> {
    let mut buffer = vec![0u8; count];
    stream.read_exact(&mut buffer).expect("echoed bytes");
    buffer
}

fn round_trip(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).unwrap();
    assert_eq!(read_exactly(stream, message.len()), message);
}

/// Asserts that nothing at all arrives for `SILENCE`: no byte, no EOF, no
/// error other than the read timeout.
fn assert_silent(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(SILENCE)).unwrap();
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected silence (a read timeout), got {other:?}"),
    }
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
}

fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn forwards_both_ways_and_counts() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    assert_eq!(
        proxy.addr(),
        SocketAddr::from(([127, 0, 0, 1], proxy.port()))
    );
    assert_eq!(proxy.mode(), Mode::Forward);

    let mut stream = connect(&proxy);
    round_trip(&mut stream, b"hello");

    // Enough to need many chunks and some back-pressure.
    let payload: Vec<u8> = (0..300_000u32).map(|index| (index % 251) as u8).collect();
    let mut writer = stream.try_clone().unwrap();
    let to_write = payload.clone();
    let writing = thread::spawn(move || writer.write_all(&to_write).unwrap());
    assert!(read_exactly(&mut stream, payload.len()) == payload);
    writing.join().unwrap();

    let total = 5 + payload.len() as u64;
    assert_eq!(proxy.bytes_up(), total);
    assert_eq!(proxy.bytes_down(), total);
    assert_eq!(proxy.connections_accepted(), 1);
    assert_eq!(proxy.active_connections(), 1);

    drop(stream);
    wait_for("the connection to close", || {
        proxy.active_connections() == 0
    });
    assert_eq!(proxy.upstream_failures(), 0);
}

#[test]
fn cut_gives_the_client_eof_and_new_connections_work() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let mut first = connect(&proxy);
    let mut second = connect(&proxy);
    round_trip(&mut first, b"one");
    round_trip(&mut second, b"two");

    proxy.cut();
    let mut buffer = [0u8; 16];
    assert_eq!(first.read(&mut buffer).unwrap(), 0, "EOF after cut()");
    assert_eq!(second.read(&mut buffer).unwrap(), 0, "EOF after cut()");
    assert_eq!(proxy.active_connections(), 0);

    let mut third = connect(&proxy);
    round_trip(&mut third, b"three");
    assert_eq!(proxy.connections_accepted(), 3);
}

#[test]
fn cut_also_hits_a_connection_not_yet_accepted() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    // connect() returns once the kernel completed the handshake, possibly
    // before the proxy's accept loop has picked the connection up.
    let mut stream = connect(&proxy);
    proxy.cut();
    let mut buffer = [0u8; 16];
    assert_eq!(stream.read(&mut buffer).unwrap(), 0);
    assert_eq!(proxy.connections_accepted(), 1);
}

#[test]
fn reset_gives_the_client_connection_reset() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let mut stream = connect(&proxy);
    round_trip(&mut stream, b"before");

    proxy.reset();
    let mut buffer = [0u8; 16];
    let error = stream
        .read(&mut buffer)
        .expect_err("a reset, not data or EOF");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error:?}");
    assert_eq!(proxy.active_connections(), 0);

    let mut again = connect(&proxy);
    round_trip(&mut again, b"after");
}

#[test]
fn reset_is_seen_by_a_writing_client_too() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let mut stream = connect(&proxy);
    round_trip(&mut stream, b"before");

    proxy.reset();
    // The RST has arrived (reset() returns once the socket is closed), so
    // the first write reports it.
    let error = stream.write_all(b"after").expect_err("a reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error:?}");
}

#[test]
fn black_hole_is_silence_then_forward_works_again() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let mut old = connect(&proxy);
    round_trip(&mut old, b"warm-up");

    proxy.set_mode(Mode::BlackHole);
    old.write_all(b"lost?").unwrap();
    assert_silent(&mut old);

    // A newcomer is accepted but hears nothing either.
    let mut newcomer = connect(&proxy);
    newcomer.write_all(b"hello?").unwrap();
    assert_silent(&mut newcomer);
    assert_eq!(proxy.connections_accepted(), 2);
    assert_eq!(proxy.active_connections(), 2);
    let bytes_up = proxy.bytes_up();

    // Still open: writing does not fail.
    old.write_all(b"!").unwrap();
    assert_silent(&mut old);
    assert_eq!(proxy.bytes_up(), bytes_up, "nothing forwarded upstream");

    proxy.set_mode(Mode::Forward);
    let mut fresh = connect(&proxy);
    round_trip(&mut fresh, b"fresh");

    // Nothing was thrown away: the partition heals.
    assert_eq!(read_exactly(&mut old, 6), b"lost?!");
    assert_eq!(read_exactly(&mut newcomer, 6), b"hello?");
}

#[test]
fn black_hole_stays_silent_with_the_upstream_down() {
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], free_port())));
    proxy.set_mode(Mode::BlackHole);
    let mut stream = connect(&proxy);
    assert_silent(&mut stream);
    assert_eq!(proxy.upstream_failures(), 0);
}

#[test]
fn refuse_closes_the_port_and_forward_reopens_it() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let port = proxy.port();
    let mut established = connect(&proxy);
    round_trip(&mut established, b"before");

    proxy.set_mode(Mode::Refuse);
    let error = TcpStream::connect(proxy.addr()).expect_err("the port is closed");
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error:?}");
    // Only new connections are refused.
    round_trip(&mut established, b"still here");

    proxy.set_mode(Mode::Forward);
    assert_eq!(proxy.port(), port);
    let mut stream = connect(&proxy);
    round_trip(&mut stream, b"after");

    // And once more, to be sure the port really comes back each time.
    proxy.set_mode(Mode::Refuse);
    assert!(TcpStream::connect(proxy.addr()).is_err());
    proxy.set_mode(Mode::BlackHole);
    let mut silent = connect(&proxy);
    silent.write_all(b"x").unwrap();
    assert_silent(&mut silent);
    proxy.set_mode(Mode::Forward);
    assert_eq!(read_exactly(&mut silent, 1), b"x");
}

#[test]
fn slice_of_one_delivers_the_bytes_one_at_a_time() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    proxy.set_slice(Some(1));

    let message: Vec<u8> = (0..200u8).collect();
    let mut stream = connect(&proxy);
    stream.write_all(&message).unwrap();
    let mut received = Vec::new();
    let mut reads = 0;
    let mut buffer = [0u8; 1024];
    while received.len() < message.len() {
        let count = stream.read(&mut buffer).unwrap();
        assert!(count > 0, "EOF after {} bytes", received.len());
        received.extend_from_slice(&buffer[..count]);
        reads += 1;
    }
    assert_eq!(received, message);
    // 200 pieces with 1 ms pauses in between arrive over 200 ms or more.
    assert!(reads > 1, "all 200 bytes came in one read");

    proxy.set_slice(None);
    round_trip(&mut stream, &message);
}

#[test]
fn delay_adds_at_least_the_delay_each_way() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let mut stream = connect(&proxy);
    round_trip(&mut stream, b"warm-up");

    let delay = Duration::from_millis(150);
    proxy.set_delay(delay);
    assert_eq!(proxy.delay(), delay);
    let started = Instant::now();
    round_trip(&mut stream, b"slow");
    assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());

    // Order is kept across chunks queued behind one another.
    for index in 0..5u8 {
        stream.write_all(&[index]).unwrap();
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(read_exactly(&mut stream, 5), [0, 1, 2, 3, 4]);
}

#[test]
fn an_unreachable_upstream_closes_the_client_at_once() {
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], free_port())));
    let mut stream = connect(&proxy);
    let mut buffer = [0u8; 16];
    match stream.read(&mut buffer) {
        Ok(0) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected EOF or a reset, got {other:?}"),
    }
    wait_for("the failure to be counted", || {
        proxy.upstream_failures() == 1
    });
    assert_eq!(proxy.connections_accepted(), 1);
    wait_for("the connection to close", || {
        proxy.active_connections() == 0
    });
}

#[test]
fn drop_closes_connections_and_the_port() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let addr = proxy.addr();
    let mut stream = connect(&proxy);
    round_trip(&mut stream, b"hi");
    proxy.set_mode(Mode::BlackHole);
    proxy.set_delay(Duration::from_secs(60));

    drop(proxy);
    let mut buffer = [0u8; 16];
    assert_eq!(stream.read(&mut buffer).unwrap(), 0);
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn mqtt_connect_through_the_proxy_to_mosquitto() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());

    let mut stream = connect(&proxy);
    let connect_packet = raw::connect("proxy-plain", 60, true);
    stream.write_all(&connect_packet).unwrap();
    let (first, body) = raw::read_packet(&mut stream).expect("CONNACK");
    assert_eq!(raw::packet_type(first), 2, "CONNACK, got {first:#04x}");
    assert_eq!(body, [0, 0]);
    assert_eq!(proxy.bytes_up(), connect_packet.len() as u64);
    assert_eq!(proxy.bytes_down(), raw::CONNACK_ACCEPTED.len() as u64);

    // The same, one byte at a time in both directions.
    proxy.set_slice(Some(1));
    let mut sliced = connect(&proxy);
    sliced
        .write_all(&raw::connect("proxy-sliced", 60, true))
        .unwrap();
    let (first, _) = raw::read_packet(&mut sliced).expect("CONNACK");
    assert_eq!(raw::packet_type(first), 2);

    // The broker loses both connections too (mosquitto 2.0 logs a reset
    // like an EOF: "closed its connection").
    proxy.reset();
    for client in ["proxy-plain", "proxy-sliced"] {
        let line = format!("Client {client} closed its connection");
        assert!(broker.wait_for_log(&line, IO_TIMEOUT), "{line}");
    }
    let error = stream.read(&mut [0u8; 4]).expect_err("reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
}
