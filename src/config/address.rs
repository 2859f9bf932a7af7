//! Addresses as people write them: the server a client dials
//! (`HOST`, `HOST:PORT`, `[IPv6]:PORT`, a bare IPv6 address) and the
//! address a server listens on (`PORT`, `:PORT`, `IP`, `IP:PORT`,
//! `[IPv6]:PORT`). A missing port is [`DEFAULT_PORT`]; a missing listen
//! address is every IPv4 interface, `0.0.0.0`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::error::{Error, Result};

/// The port both programs use when none is given.
pub(crate) const DEFAULT_PORT: u16 = 8080;

/// A server to connect to: a host name or IP address, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerAddress {
    /// A host name, an IPv4 address, or an IPv6 address without brackets.
    pub(crate) host: String,
    /// The TCP port.
    pub(crate) port: u16,
}

impl ServerAddress {
    /// Reads `HOST`, `HOST:PORT`, `[IPv6]:PORT`, `[IPv6]` or a bare IPv6
    /// address (which cannot carry a port: put it in brackets for that).
    ///
    /// Fails with a message that shows the accepted forms.
    pub(crate) fn parse(text: &str) -> std::result::Result<ServerAddress, String> {
        let bad = |why: &str| {
            format!(
                "invalid server address {text:?}: {why}; write HOST, HOST:PORT or [IPv6]:PORT, \
                 e.g. --server files.example.org or --server 192.0.2.7:{DEFAULT_PORT}"
            )
        };
        let text = text.trim();
        if let Ok(v6) = text.parse::<Ipv6Addr>() {
            return Ok(ServerAddress::new(v6.to_string(), DEFAULT_PORT));
        }
        let (host, port) = split_host_port(text).map_err(|why| bad(&why))?;
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => parse_port(p).map_err(|why| bad(&why))?,
        };
        if port == 0 {
            return Err(bad("port 0 cannot be dialed"));
        }
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let name_like = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        if host.parse::<Ipv6Addr>().is_err() && !name_like {
            return Err(bad("that is not a host name or IP address"));
        }
        Ok(ServerAddress::new(host.to_string(), port))
    }

    fn new(host: String, port: u16) -> ServerAddress {
        ServerAddress { host, port }
    }

    /// The first address the host resolves to.
    ///
    /// Fails when the name does not resolve.
    pub(crate) fn resolve(&self) -> Result<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| Error::Usage(format!("cannot resolve {}: {}", self.host, e)))?
            .next()
            .ok_or_else(|| Error::Usage(format!("{} has no address", self.host)))
    }
}

/// `host:port`, with an IPv6 host in brackets: the form `known_servers`
/// keys its pins by, whichever way the user wrote it.
impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Reads a listen address: `PORT` and `:PORT` mean every IPv4 interface
/// (`0.0.0.0`), as most servers take them; `IP` alone listens on
/// [`DEFAULT_PORT`]; `IP:PORT` and `[IPv6]:PORT` as written; `localhost`
/// is `127.0.0.1`. Port 0 picks a free port.
///
/// Fails with a message that shows the accepted forms.
pub(crate) fn parse_listen(text: &str) -> std::result::Result<SocketAddr, String> {
    let bad = |why: &str| {
        format!(
            "invalid listen address {text:?}: {why}; write PORT, :PORT, IP or IP:PORT, e.g. \
             --listen {DEFAULT_PORT} (every interface) or --listen 127.0.0.1:{DEFAULT_PORT}"
        )
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return parse_port(text)
            .map(|port| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))
            .map_err(|why| bad(&why));
    }
    let (host, port) = split_host_port(text).map_err(|why| bad(&why))?;
    let port = match port {
        Some(p) => parse_port(p).map_err(|why| bad(&why))?,
        None => DEFAULT_PORT,
    };
    let ip: IpAddr = match host {
        "" => Ipv4Addr::UNSPECIFIED.into(),
        "localhost" => Ipv4Addr::LOCALHOST.into(),
        other => other
            .parse()
            .map_err(|_| bad("the address must be an IP address"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Splits `host:port` or `[v6]:port`; the port is `None` when absent.
fn split_host_port(text: &str) -> std::result::Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "no closing ]".to_string())?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| format!("{host:?} in brackets is not an IPv6 address"))?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err("only :PORT may follow the ]".into()),
            },
        };
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            Err("an IPv6 address with a port goes in brackets, as [::1]:8080".into())
        }
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((text, None)),
    }
}

fn parse_port(text: &str) -> std::result::Result<u16, String> {
    text.parse()
        .map_err(|_| format!("the port {text:?} is not a number from 0 to 65535"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(text: &str) -> String {
        ServerAddress::parse(text).unwrap().to_string()
    }

    #[test]
    fn a_server_without_a_port_gets_the_default() {
        assert_eq!(server("10.200.0.1"), "10.200.0.1:8080");
        assert_eq!(server("files.example.org"), "files.example.org:8080");
        assert_eq!(server(" localhost:2121 "), "localhost:2121");
        assert_eq!(server("10.200.0.1:9000"), "10.200.0.1:9000");
    }

    #[test]
    fn ipv6_servers_with_and_without_brackets() {
        assert_eq!(server("::1"), "[::1]:8080");
        assert_eq!(server("[::1]"), "[::1]:8080");
        assert_eq!(server("[2001:db8::7]:9000"), "[2001:db8::7]:9000");
        let parsed = ServerAddress::parse("[::1]:9000").unwrap();
        assert_eq!((parsed.host.as_str(), parsed.port), ("::1", 9000));
    }

    #[test]
    fn bad_servers_are_explained_with_an_example() {
        for text in [
            "",
            ":8080",
            "host:",
            "host:http",
            "host:70000",
            "host:0",
            "[::1",
            "[nope]:80",
            "[::1]x",
            "http://host",
            "2001:db8::zz:80",
        ] {
            let err = ServerAddress::parse(text).unwrap_err();
            assert!(err.contains("e.g. --server"), "{text}: {err}");
        }
        let err = ServerAddress::parse("fe80::1::2:80").unwrap_err();
        assert!(err.contains("brackets"), "{err}");
    }

    #[test]
    fn a_server_resolves() {
        let addr = ServerAddress::parse("127.0.0.1:9").unwrap().resolve();
        assert_eq!(addr.unwrap(), "127.0.0.1:9".parse().unwrap());
        let addr = ServerAddress::parse("::1").unwrap().resolve();
        assert_eq!(addr.unwrap(), "[::1]:8080".parse().unwrap());
    }

    #[test]
    fn listen_forms() {
        let l = |t: &str| parse_listen(t).unwrap().to_string();
        assert_eq!(l("8080"), "0.0.0.0:8080");
        assert_eq!(l(":2121"), "0.0.0.0:2121");
        assert_eq!(l("0"), "0.0.0.0:0");
        assert_eq!(l("127.0.0.1:0"), "127.0.0.1:0");
        assert_eq!(l("10.0.0.5"), "10.0.0.5:8080");
        assert_eq!(l("localhost:9000"), "127.0.0.1:9000");
        assert_eq!(l("[::]:9000"), "[::]:9000");
        assert_eq!(l("::"), "[::]:8080");
    }

    #[test]
    fn bad_listen_addresses_get_an_example() {
        for text in ["", "abc", ":http", "99999", "example.org:80", "[::1"] {
            let err = parse_listen(text).unwrap_err();
            assert!(err.contains("e.g. --listen 8080"), "{text}: {err}");
        }
    }
}
