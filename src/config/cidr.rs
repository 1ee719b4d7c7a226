//! IP networks in CIDR notation (`10.1.2.0/24`, `::1/128`, or a bare address for one host),
//! as `admin.allow` lists them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network: an address whose bits past the prefix are zero, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, as a
    /// dual-stack socket reports IPv4 peers) counts as the IPv4 address it maps.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    /// `ADDRESS/PREFIX`, or a bare address (all its bits). Host bits set past the prefix are
    /// refused: `10.1.2.3/24` is more likely a typo than a way to write `10.1.2.0/24`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("invalid network {s:?}: expected ADDRESS/PREFIX, e.g. 10.0.0.0/8 or ::1/128")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "invalid network {s:?}: the prefix length must be 0 to {max}"
                    ))
                }
            },
        };
        let masked = match addr {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask32(prefix)).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask128(prefix)).into()),
        };
        if masked != addr {
            return Err(format!(
                "invalid network {s:?}: bits are set past the prefix (did you mean {masked}/{prefix}?)"
            ));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_networks_contain_their_addresses_only() {
        let n = net("10.1.2.0/24");
        assert!(n.contains(ip("10.1.2.0")) && n.contains(ip("10.1.2.255")));
        assert!(!n.contains(ip("10.1.3.0")) && !n.contains(ip("10.1.1.255")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(net("127.0.0.0/8").contains(ip("127.200.0.1")));
        let host = net("192.0.2.7");
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.6")));
        assert!(
            !n.contains(ip("::1")),
            "no IPv6 address is in an IPv4 network"
        );
    }

    #[test]
    fn ipv6_networks_and_mapped_ipv4_peers() {
        let n = net("2001:db8::/32");
        assert!(n.contains(ip("2001:db8:ffff::1")) && !n.contains(ip("2001:db9::1")));
        assert!(net("::1/128").contains(ip("::1")) && !net("::1/128").contains(ip("::2")));
        assert!(net("::/0").contains(ip("fe80::1")));
        assert!(!net("::/0").contains(ip("10.0.0.1")));
        // A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d.
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.9.8.7")));
        assert!(!net("10.0.0.0/8").contains(ip("::ffff:11.9.8.7")));
    }

    #[test]
    fn malformed_networks_are_refused_with_a_reason() {
        for (s, reason) in [
            ("10.0.0.0/33", "0 to 32"),
            ("::/129", "0 to 128"),
            ("10.0.0.0/", "0 to 32"),
            ("10.0.0.0/+8", "0 to 32"),
            ("10.0.0.0/x", "0 to 32"),
            ("10.0.0/8", "expected ADDRESS/PREFIX"),
            ("example.com/8", "expected ADDRESS/PREFIX"),
            ("", "expected ADDRESS/PREFIX"),
            ("10.1.2.3/24", "did you mean 10.1.2.0/24?"),
            ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
        ] {
            let e = s.parse::<Cidr>().expect_err(s);
            assert!(e.contains(reason), "{s}: {e}");
        }
    }
}
