//! MQTT 5 Server Reference (sections 3.2.2.3.16, 3.14.2.2.5 and 4.11): where a broker that
//! answers 0x9C Use another server or 0x9D Server moved sends the client.

use crate::storage::{DefaultText, Text};

/// Longest host name taken from a Server Reference (a DNS name is at most 253 bytes; the
/// rest of an arbitrary string is not kept).
pub const MAX_REFERENCE_HOST_LEN: usize = 255;

/// A server named by a broker's Server Reference: a host (name, IPv4 or IPv6 address) and a
/// port if the reference gave one (otherwise the driver's configured or default port).
///
/// `T` holds the host: a `String` for an engine on the heap, a
/// [`FixedText<B>`](crate::storage::FixedText) on [`Fixed`](crate::storage::Fixed)`<N, B>`
/// storage (the reference came in a packet of at most `B` bytes, so its host fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddress<T = DefaultText> {
    /// Host name or address (an IPv6 address without its brackets).
    pub host: T,
    /// Port, if the reference named one.
    pub port: Option<u16>,
}

impl<T: Text> ServerAddress<T> {
    /// The first usable server of a Server Reference. The specification leaves its format
    /// open; its examples are `host`, `host:port` and a space-separated list such as
    /// `10.10.151.22:8883 [fe80::9c8:b0:e:bc54]:8883`. Entries are tried in order and the
    /// first that parses is taken; `None` when none does (empty, a host longer than
    /// [`MAX_REFERENCE_HOST_LEN`], a port that is not 1–65535, spaces or control
    /// characters in a host, or a host longer than a fixed `T` holds).
    pub fn parse_reference(reference: &str) -> Option<ServerAddress<T>> {
        reference.split_ascii_whitespace().find_map(Self::parse_one)
    }

    fn parse_one(entry: &str) -> Option<ServerAddress<T>> {
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            // [IPv6]:port or [IPv6]
            let (host, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (host, port)
        } else {
            match entry.rsplit_once(':') {
                // A bare IPv6 address has several colons and no port.
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                _ => (entry, None),
            }
        };
        if host.is_empty()
            || host.len() > MAX_REFERENCE_HOST_LEN
            || host.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return None;
        }
        let port = match port {
            None => None,
            Some(text) => Some(text.parse::<u16>().ok().filter(|&p| p != 0)?),
        };
        Some(ServerAddress {
            host: T::try_from_str(host).ok()?,
            port,
        })
    }
}

impl<T: Text> core::fmt::Display for ServerAddress<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let bracket = self.host.contains(':');
        match (bracket, self.port) {
            (true, Some(port)) => write!(f, "[{}]:{port}", &*self.host),
            (false, Some(port)) => write!(f, "{}:{port}", &*self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::{String, ToString};

    use super::*;

    fn parsed(reference: &str) -> Option<(String, Option<u16>)> {
        ServerAddress::parse_reference(reference).map(|a| (a.host, a.port))
    }

    #[test]
    fn the_specifications_examples_and_bad_references() {
        let host = |h: &str, p: Option<u16>| Some((h.to_string(), p));
        assert_eq!(parsed("myserver.xyz.org"), host("myserver.xyz.org", None));
        assert_eq!(
            parsed("myserver.xyz.org:8883"),
            host("myserver.xyz.org", Some(8883))
        );
        assert_eq!(
            parsed("10.10.151.22:8883 [fe80::9c8:b0:e:bc54]:8883"),
            host("10.10.151.22", Some(8883))
        );
        assert_eq!(
            parsed("[fe80::9c8:b0:e:bc54]:8883"),
            host("fe80::9c8:b0:e:bc54", Some(8883))
        );
        assert_eq!(parsed("[::1]"), host("::1", None));
        assert_eq!(parsed("fe80::1"), host("fe80::1", None));
        // A bad first entry falls through to the next.
        assert_eq!(parsed("bad:port other:1884"), host("other", Some(1884)));
        for bad in [
            "",
            "   ",
            "host:0",
            "host:65536",
            "host:",
            ":1883",
            "[::1",
            "[::1]x",
            "a\u{7}b",
        ] {
            assert_eq!(parsed(bad), None, "{bad:?}");
        }
        let long = "h".repeat(MAX_REFERENCE_HOST_LEN + 1);
        assert_eq!(parsed(&long), None);
        assert_eq!(
            ServerAddress::<String>::parse_reference("[::1]:1883")
                .unwrap()
                .to_string(),
            "[::1]:1883"
        );
    }
}
