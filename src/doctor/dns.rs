//! The site names (lobe.DOMAIN, auth.DOMAIN, …) resolve, and to an address of this host.

use super::Finding;
use crate::plan::Plan;
use std::net::{IpAddr, ToSocketAddrs};

/// The proxy's site names (wildcard sites have no one name to look up).
pub fn dns_hosts(plan: &Plan) -> Vec<String> {
    plan.proxy
        .iter()
        .flat_map(|p| p.sites.iter())
        .map(|s| s.host.clone())
        .filter(|h| !h.starts_with("*."))
        .collect()
}

/// Resolves each host the way browsers on this machine would (getaddrinfo: DNS and
/// /etc/hosts); an address this host cannot bind is not this host's.
pub fn check_dns(hosts: &[String]) -> Vec<Finding> {
    let mut out = Vec::new();
    for host in hosts {
        let addrs: Vec<IpAddr> = match (host.as_str(), 443).to_socket_addrs() {
            Ok(a) => a.map(|s| s.ip()).collect(),
            Err(e) => {
                out.push(Finding::error(
                    "dns",
                    format!("{host} does not resolve ({e})"),
                    format!("add a DNS A/AAAA record for {host} pointing at this server (or a line in /etc/hosts of each client)"),
                ));
                continue;
            }
        };
        if !addrs.is_empty() && !addrs.iter().any(|ip| is_local(*ip)) {
            let list: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
            out.push(Finding::warning(
                "dns",
                format!("{host} resolves to {}, not to an address of this host", list.join(", ")),
                format!("point {host} at this server, unless a NAT or load balancer forwards that address here"),
            ));
        }
    }
    out
}

/// Whether `ip` is one of this host's addresses: binding to it succeeds only then.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unresolvable_foreign_and_local_names() {
        let f = check_dns(&["lobe.doctor-test.invalid".into()]);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message
                .starts_with("lobe.doctor-test.invalid does not resolve ("),
            "{f:?}"
        );
        // A literal documentation address (RFC 5737) resolves to itself, which is not ours.
        assert_eq!(
            check_dns(&["192.0.2.7".into()]),
            vec![Finding::warning(
                "dns",
                "192.0.2.7 resolves to 192.0.2.7, not to an address of this host",
                "point 192.0.2.7 at this server, unless a NAT or load balancer forwards that address here"
            )]
        );
        assert_eq!(check_dns(&["localhost".into()]), vec![]);
    }
}
