//! The per-client connection cap (`[proxy] max_conns_per_ip`): without it one address
//! could take every place under `max_connections` and lock everyone else out. Each
//! listener has its own counter, so a client filling the redirect listener keeps its
//! HTTPS places. IPv6 clients are counted per /64, the block one subscriber usually
//! holds (one address each would let a single host use 2^64 of them). Peers in
//! `trusted_proxies` (a load balancer carries many clients) are counted but not capped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One listener's connection pool: `[proxy] max_connections` places, at most
/// `max_conns_per_ip` of them per client.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub limit: Arc<Semaphore>,
    pub per_ip: Arc<PerIpLimit>,
}

impl Pool {
    /// A pool of `max` places.
    pub fn new(max: usize) -> Self {
        Pool {
            limit: Arc::new(Semaphore::new(max.max(1))),
            per_ip: Arc::default(),
        }
    }
}

/// A connection's places in its pool (shared with the WebSocket tunnels it opens).
#[derive(Debug)]
pub(crate) struct ConnPermit {
    _conn: OwnedSemaphorePermit,
    _ip: IpPermit,
}

impl ConnPermit {
    /// Both places held together.
    pub fn new(conn: OwnedSemaphorePermit, ip: IpPermit) -> Self {
        ConnPermit {
            _conn: conn,
            _ip: ip,
        }
    }
}

/// Open connections per client address on one listener.
#[derive(Debug, Default)]
pub(crate) struct PerIpLimit {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place under the cap; given back on drop.
#[derive(Debug)]
pub(crate) struct IpPermit {
    limit: Arc<PerIpLimit>,
    key: IpAddr,
}

impl PerIpLimit {
    /// A place for one more connection from `ip`, or None when it holds `max` (at least
    /// 1) already. The cap is passed each time, so a reload applies to new connections.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpPermit> {
        let key = client_key(ip);
        let max = max.max(1);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpPermit {
            limit: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            // Forget addresses with nothing open, so the map stays as small as the load.
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The address a client is counted under: IPv4 (also when mapped into IPv6) as is,
/// IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_address_and_gives_places_back() {
        let l = Arc::new(PerIpLimit::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = l.try_acquire(a, 2).unwrap();
        let _p2 = l.try_acquire(a, 2).unwrap();
        assert!(l.try_acquire(a, 2).is_none());
        // The IPv4-mapped form is the same client.
        assert!(l
            .try_acquire("::ffff:10.0.0.1".parse().unwrap(), 2)
            .is_none());
        let _pb = l.try_acquire(b, 2).unwrap();
        drop(p1);
        let _p3 = l.try_acquire(a, 2).unwrap();
        // A larger cap (reload) applies at once.
        let _p4 = l.try_acquire(a, 5).unwrap();
    }

    #[test]
    fn ipv6_counts_per_64_and_forgets_idle_addresses() {
        let l = Arc::new(PerIpLimit::default());
        let _p = l.try_acquire("2001:db8::1".parse().unwrap(), 1).unwrap();
        assert!(l
            .try_acquire("2001:db8::ffff:2".parse().unwrap(), 1)
            .is_none());
        let other = l
            .try_acquire("2001:db8:0:1::1".parse().unwrap(), 1)
            .unwrap();
        assert_eq!(l.tracked(), 2);
        drop(other);
        assert_eq!(l.tracked(), 1);
    }
}
