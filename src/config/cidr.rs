//! Address ranges written as CIDR (`192.0.2.0/24`, `2001:db8::/32`, or
//! one address alone), for the users file's `allowed_from`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A range of addresses: a network and the length of its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the range. An IPv4 peer reaching an IPv6 socket
    /// shows as `::ffff:a.b.c.d`, and is matched as the IPv4 address.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(ip).into(), 32, self.prefix) == u32::from(net).into()
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(ip), 128, self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `bits` with all but the first `prefix` of its `width` bits cleared.
fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (width - p)) & (u128::MAX >> (128 - u32::from(width))),
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// Parses `ADDR/LEN` or `ADDR`. Bits set past the prefix are refused:
    /// `10.1.2.3/8` is more likely a typo than a wish for `10.0.0.0/8`.
    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad = |why: &str| format!("invalid address range {text:?}: {why}");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| bad("write it like 192.0.2.0/24 or 2001:db8::/32"))?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(len) => len
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= width)
                .ok_or_else(|| bad(&format!("the prefix length must be 0 to {width}")))?,
            None => width,
        };
        let cidr = Cidr { network, prefix };
        let bits = match network {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        if masked(bits, width, prefix) != bits {
            return Err(bad("it has bits set past the prefix length"));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_hold_their_addresses_in_both_families() {
        let v4: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(v4.contains(ip("192.0.2.77")));
        assert!(v4.contains(ip("::ffff:192.0.2.1")));
        assert!(!v4.contains(ip("192.0.3.1")));
        assert!(!v4.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!("::/0".parse::<Cidr>().unwrap().contains(ip("::1")));
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        for (text, want) in [
            ("10.1.2.3/8", "bits set past the prefix"),
            ("10.0.0.0/33", "0 to 32"),
            ("::/129", "0 to 128"),
            ("localhost", "write it like"),
            ("10.0.0.0/x", "0 to 32"),
        ] {
            let got = text.parse::<Cidr>().unwrap_err();
            assert!(got.contains(want), "{text}: {got}");
        }
    }
}
