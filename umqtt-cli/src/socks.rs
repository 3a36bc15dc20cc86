//! `--proxy socks5h://[user[:password]@]host[:port]`: reach the broker through a SOCKS5 proxy
//! (RFC 1928), as mosquitto's clients do.
//!
//! As mosquitto: only `socks5h` (the proxy resolves the broker's name), only "no
//! authentication" and "user name / password" (RFC 1929); port 1080 by default. TLS, if asked
//! for, runs end to end over the proxied connection (`umqtt::transport::connect_over`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A parsed `--proxy` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl Proxy {
    /// Parses `socks5h://[user[:password]@]host[:port]`.
    pub fn parse(url: &str) -> Result<Proxy, String> {
        let Some(rest) = url.strip_prefix("socks5h://") else {
            return Err(format!(
                "unsupported proxy {}: only socks5h://[user[:password]@]host[:port] is supported \
                 (as mosquitto)",
                crate::error::echo(url)
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((user_info, address)) => {
                let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
                if user.len() > 255 || password.len() > 255 {
                    return Err("proxy user name and password are limited to 255 bytes".into());
                }
                (Some((user.to_owned(), password.to_owned())), address)
            }
            None => (None, rest),
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
                let port =
                    port.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| {
                        format!("invalid proxy port {}", crate::error::echo(port))
                    })?;
                (host, port)
            }
            _ => (address, 1080),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("the proxy URL names no host".to_owned());
        }
        Ok(Proxy {
            host: host.to_owned(),
            port,
            credentials,
        })
    }

    /// Opens a TCP connection to `target:port` through the proxy.
    pub fn connect(&self, target: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
        let address = (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other(format!("no address for proxy {}", self.host)))?;
        let mut stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        self.handshake(&mut stream, target, port)?;
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;
        Ok(stream)
    }

    fn handshake(
        &self,
        stream: &mut (impl Read + Write),
        target: &str,
        port: u16,
    ) -> io::Result<()> {
        let refused = |what: String| io::Error::new(io::ErrorKind::ConnectionRefused, what);
        // Greeting: the methods we can do (0 = none, 2 = user name / password).
        match &self.credentials {
            Some(_) => stream.write_all(&[5, 2, 0, 2])?,
            None => stream.write_all(&[5, 1, 0])?,
        }
        let mut choice = [0u8; 2];
        stream.read_exact(&mut choice)?;
        match (choice, &self.credentials) {
            ([5, 0], _) => {}
            ([5, 2], Some((user, password))) => {
                let mut request = vec![1, user.len() as u8];
                request.extend_from_slice(user.as_bytes());
                request.push(password.len() as u8);
                request.extend_from_slice(password.as_bytes());
                stream.write_all(&request)?;
                let mut status = [0u8; 2];
                stream.read_exact(&mut status)?;
                if status[1] != 0 {
                    return Err(refused(
                        "the SOCKS proxy refused the user name or password".into(),
                    ));
                }
            }
            ([5, 0xFF], _) => {
                return Err(refused(
                    "the SOCKS proxy accepts none of our authentication methods".into(),
                ))
            }
            _ => return Err(refused("not a SOCKS5 proxy (unexpected greeting)".into())),
        }
        // CONNECT to the broker, by address or by name (the proxy resolves it).
        let mut request = vec![5, 1, 0];
        match target
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(IpAddr::V4(ip)) => {
                request.push(1);
                request.extend_from_slice(&ip.octets());
            }
            Ok(IpAddr::V6(ip)) => {
                request.push(4);
                request.extend_from_slice(&ip.octets());
            }
            Err(_) => {
                let name = target.as_bytes();
                if name.len() > 255 {
                    return Err(refused("broker host name too long for SOCKS5".into()));
                }
                request.push(3);
                request.push(name.len() as u8);
                request.extend_from_slice(name);
            }
        }
        request.extend_from_slice(&port.to_be_bytes());
        stream.write_all(&request)?;
        let mut reply = [0u8; 4];
        stream.read_exact(&mut reply)?;
        if reply[0] != 5 {
            return Err(refused("not a SOCKS5 proxy (unexpected reply)".into()));
        }
        if reply[1] != 0 {
            return Err(refused(format!(
                "the SOCKS proxy could not connect to {target}:{port}: {}",
                reply_text(reply[1])
            )));
        }
        // The address the proxy bound: skipped.
        let skip = match reply[3] {
            1 => 4,
            4 => 16,
            3 => {
                let mut length = [0u8; 1];
                stream.read_exact(&mut length)?;
                usize::from(length[0])
            }
            _ => return Err(refused("not a SOCKS5 proxy (bad address type)".into())),
        };
        let mut bound = vec![0u8; skip + 2];
        stream.read_exact(&mut bound)?;
        Ok(())
    }
}

/// RFC 1928 §6 reply codes.
fn reply_text(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Proxy::parse("socks5h://proxy:9050").unwrap(),
            Proxy {
                host: "proxy".into(),
                port: 9050,
                credentials: None
            }
        );
        assert_eq!(
            Proxy::parse("socks5h://me:secret@proxy").unwrap(),
            Proxy {
                host: "proxy".into(),
                port: 1080,
                credentials: Some(("me".into(), "secret".into()))
            }
        );
        assert_eq!(Proxy::parse("socks5h://[::1]:1081").unwrap().host, "::1");
        for bad in [
            "http://proxy",
            "socks5h://",
            "socks5h://h:0",
            "socks5h://h:x",
            "socks4://h",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
    }

    /// A scripted proxy: the bytes it answers, and what it was sent.
    struct Script {
        replies: io::Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.replies.read(buf)
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn handshake_with_password_and_a_name() {
        let proxy = Proxy::parse("socks5h://u:p@h").unwrap();
        let mut script = Script {
            replies: io::Cursor::new(vec![5, 2, 1, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
            sent: Vec::new(),
        };
        proxy.handshake(&mut script, "broker", 1883).unwrap();
        let mut expected = vec![5, 2, 0, 2, 1, 1, b'u', 1, b'p', 5, 1, 0, 3, 6];
        expected.extend_from_slice(b"broker");
        expected.extend_from_slice(&1883u16.to_be_bytes());
        assert_eq!(script.sent, expected);

        let mut refused = Script {
            replies: io::Cursor::new(vec![5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0]),
            sent: Vec::new(),
        };
        let error = Proxy::parse("socks5h://h")
            .unwrap()
            .handshake(&mut refused, "127.0.0.1", 1883)
            .unwrap_err();
        assert!(error.to_string().contains("connection refused"), "{error}");
    }
}
