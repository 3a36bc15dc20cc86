//! The `-L` URL of mosquitto's clients: `mqtt(s)://[username[:password]@]host[:port]/topic`,
//! and `ws(s)://…` for MQTT over WebSocket (the path is still the topic, as for `mqtt://`; the
//! WebSocket request path is `--ws-path`, `/mqtt` by default).
//!
//! Like mosquitto, the parts are taken as written: no percent-decoding, so a topic such as
//! `sensors/#` works without escaping.

/// The parts of a `-L` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://` or `wss://`: connect with TLS (default port 8883, or 443 for `wss://`).
    pub tls: bool,
    /// `ws://` or `wss://`: MQTT over WebSocket (default port 80 or 443).
    pub websocket: bool,
    /// User name, if given.
    pub username: Option<String>,
    /// Password, if given after the user name.
    pub password: Option<String>,
    /// Host name or IP address (IPv6 without its brackets).
    pub host: String,
    /// Port, if given.
    pub port: Option<u16>,
    /// The path after the first `/`, if not empty.
    pub topic: Option<String>,
}

impl BrokerUrl {
    /// Parses a `-L` URL.
    pub fn parse(text: &str) -> Result<BrokerUrl, String> {
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            format!(
                "invalid URL '{text}': expected mqtt://host[:port]/topic, mqtts://…, ws://… or \
                 wss://…"
            )
        })?;
        let (tls, websocket) = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" => (false, false),
            "mqtts" => (true, false),
            "ws" => (false, true),
            "wss" => (true, true),
            _ => {
                return Err(format!(
                    "unsupported URL scheme '{scheme}://' (use mqtt://, mqtts://, ws:// or \
                     wss://)"
                ))
            }
        };
        let (authority, topic) = match rest.split_once('/') {
            Some((authority, topic)) => (authority, (!topic.is_empty()).then(|| topic.to_owned())),
            None => (rest, None),
        };
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => match userinfo.split_once(':') {
                Some((user, password)) => (Some(user.to_owned()), Some(password.to_owned())),
                None => (Some(userinfo.to_owned()), None),
            },
        };
        if username.as_deref() == Some("") {
            return Err(format!("invalid URL '{text}': empty user name"));
        }
        let (host, port) = split_host_port(host_port)
            .map_err(|reason| format!("invalid URL '{text}': {reason}"))?;
        Ok(BrokerUrl {
            tls,
            websocket,
            username,
            password,
            host,
            port,
            topic,
        })
    }
}

fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("missing ']' after the IPv6 address")?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected '{after}' after the IPv6 address")),
            },
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("no host".to_owned());
    }
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("invalid port '{port}'")),
            Ok(port) => Some(port),
        },
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(
        tls: bool,
        user: Option<&str>,
        password: Option<&str>,
        host: &str,
        port: Option<u16>,
        topic: Option<&str>,
    ) -> BrokerUrl {
        BrokerUrl {
            tls,
            websocket: false,
            username: user.map(str::to_owned),
            password: password.map(str::to_owned),
            host: host.to_owned(),
            port,
            topic: topic.map(str::to_owned),
        }
    }

    #[test]
    fn accepted() {
        let cases = [
            (
                "mqtt://127.0.0.1:1883/a/b",
                url(false, None, None, "127.0.0.1", Some(1883), Some("a/b")),
            ),
            (
                "mqtts://broker.example/t",
                url(true, None, None, "broker.example", None, Some("t")),
            ),
            (
                "mqtt://alice:s3:cr@t@host:10/x/#",
                url(
                    false,
                    Some("alice"),
                    Some("s3:cr@t"),
                    "host",
                    Some(10),
                    Some("x/#"),
                ),
            ),
            (
                "mqtt://bob@host",
                url(false, Some("bob"), None, "host", None, None),
            ),
            ("mqtt://host/", url(false, None, None, "host", None, None)),
            (
                "mqtt://[::1]:1884/t",
                url(false, None, None, "::1", Some(1884), Some("t")),
            ),
            (
                "MQTT://[::1]/t",
                url(false, None, None, "::1", None, Some("t")),
            ),
            (
                "mqtt://host/+/temp",
                url(false, None, None, "host", None, Some("+/temp")),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(BrokerUrl::parse(text), Ok(expected), "{text}");
        }
        let ws = BrokerUrl::parse("ws://h:8080/a/b").unwrap();
        assert!(ws.websocket && !ws.tls);
        assert_eq!((ws.port, ws.topic.as_deref()), (Some(8080), Some("a/b")));
        let wss = BrokerUrl::parse("WSS://u:p@h/t").unwrap();
        assert!(wss.websocket && wss.tls);
        assert_eq!(wss.username.as_deref(), Some("u"));
    }

    #[test]
    fn rejected() {
        let cases = [
            ("127.0.0.1:1883/t", "expected mqtt://"),
            ("http://host/t", "unsupported URL scheme"),
            ("wsx://host/t", "unsupported URL scheme"),
            ("mqtt:///t", "no host"),
            ("mqtt://:1883/t", "no host"),
            ("mqtt://host:0/t", "invalid port '0'"),
            ("mqtt://host:70000/t", "invalid port '70000'"),
            ("mqtt://host:x/t", "invalid port 'x'"),
            ("mqtt://host:/t", "invalid port ''"),
            ("mqtt://[::1/t", "missing ']'"),
            ("mqtt://[::1]x/t", "unexpected 'x'"),
            ("mqtt://:pw@host/t", "empty user name"),
        ];
        for (text, expected) in cases {
            let error = BrokerUrl::parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
