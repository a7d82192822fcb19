//! Loopback TCP proxies between replicas, so the harness can break links
//! without root.
//!
//! Replica `i` dials replica `j` through its own proxy `i→j` (a tokio
//! listener forwarding byte streams both ways to `j`'s real port), set up
//! with `chatd --replica-routes`. Clients never go through a proxy.
//!
//! # Fault model
//!
//! What happens to bytes is decided per *direction between two replicas*,
//! not per TCP connection: the [`Flow`] from `a` to `b` governs every byte
//! `a` sends to `b`, on the connection `a` opened to `b` (its requests) and
//! on the connection `b` opened to `a` (its responses). This is what packet
//! loss does to TCP, where both conversations share the wire.
//!
//! * [`Flow::Open`]: bytes are forwarded.
//! * [`Flow::Held`]: bytes are not forwarded but kept (the proxy stops
//!   reading, so they wait in the socket buffers) and delivered, late, when
//!   the flow opens again — a TCP connection over a path that dropped
//!   packets for a while and then retransmitted them. This is the "one-way"
//!   fault: with `a→b` held and `b→a` open, `b` hears nothing from `a` while
//!   `a` still receives `b`'s requests (votes, forwarded writes) and acts on
//!   them; `b`'s requests to `a` get no answer until the heal.
//! * [`Flow::Lost`]: bytes are dropped. Connections affected are silent (not
//!   reset: the peer finds out through its own timeouts and keep-alives, as
//!   in a real partition) and are closed when the flow heals, since bytes
//!   were lost from their middle; new connections are accepted but stay
//!   silent the same way. Partitions are built from lost flows.
//!
//! A second rule is per *dialled link*: [`Mesh::hold_dials_to`] holds every
//! byte, both ways, of the connections opened *to* a replica, while the
//! connections it opens itself flow. This is a firewall that drops packets
//! to a replica's port: its own outgoing connections keep working (an
//! asymmetric partition), and nothing dialled to it gets through.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What happens to the bytes one replica sends another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Flow {
    Open,
    Held,
    Lost,
}

/// The flows between every ordered pair of replicas and the proxies that
/// enforce them.
pub struct Mesh {
    flows: BTreeMap<(u64, u64), watch::Sender<Flow>>,
    /// By link `i→j`: what happens to the connections `i` opens to `j`.
    dials: BTreeMap<(u64, u64), watch::Sender<Flow>>,
    proxies: BTreeMap<(u64, u64), LinkProxy>,
}

impl Mesh {
    /// Starts a proxy `i→j` for every ordered pair of distinct ids, each
    /// forwarding to `targets[j]`.
    pub async fn start(targets: &BTreeMap<u64, SocketAddr>) -> io::Result<Self> {
        let mut flows = BTreeMap::new();
        for a in targets.keys() {
            for b in targets.keys().filter(|b| *b != a) {
                flows.insert((*a, *b), watch::channel(Flow::Open).0);
            }
        }
        let dials: BTreeMap<(u64, u64), watch::Sender<Flow>> = flows
            .keys()
            .map(|pair| (*pair, watch::channel(Flow::Open).0))
            .collect();
        let mut proxies = BTreeMap::new();
        for (&(from, to), forward) in &flows {
            let flows = Flows {
                forward: forward.subscribe(),
                backward: flows[&(to, from)].subscribe(),
                dialled: dials[&(from, to)].subscribe(),
            };
            let proxy = LinkProxy::start(targets[&to], flows).await?;
            proxies.insert((from, to), proxy);
        }
        Ok(Self {
            flows,
            dials,
            proxies,
        })
    }

    /// The address replica `from` must dial to reach `to`.
    pub fn route(&self, from: u64, to: u64) -> Option<SocketAddr> {
        self.proxies.get(&(from, to)).map(|p| p.addr)
    }

    /// Every route, for `local_cluster::Cluster::routes`.
    pub fn routes(&self) -> BTreeMap<(u64, u64), String> {
        self.proxies
            .iter()
            .map(|(pair, p)| (*pair, p.addr.to_string()))
            .collect()
    }

    /// Sets the flow of bytes from `from` to `to`.
    pub fn set(&self, from: u64, to: u64, flow: Flow) {
        if let Some(tx) = self.flows.get(&(from, to)) {
            tx.send_replace(flow);
        }
    }

    pub fn get(&self, from: u64, to: u64) -> Flow {
        self.flows
            .get(&(from, to))
            .map_or(Flow::Open, |tx| *tx.borrow())
    }

    /// Sets both directions between `a` and `b`.
    pub fn set_both(&self, a: u64, b: u64, flow: Flow) {
        self.set(a, b, flow);
        self.set(b, a, flow);
    }

    /// Loses every byte between the two sides (both directions).
    pub fn partition(&self, left: &[u64], right: &[u64]) {
        for a in left {
            for b in right {
                self.set_both(*a, *b, Flow::Lost);
            }
        }
    }

    /// Holds every connection the other replicas open to `to`, both ways,
    /// those open now and those opened later; `to`'s own connections flow.
    pub fn hold_dials_to(&self, to: u64) {
        for ((_, j), tx) in &self.dials {
            if *j == to {
                tx.send_replace(Flow::Held);
            }
        }
    }

    /// Opens every flow and every dialled link.
    pub fn heal(&self) {
        for tx in self.flows.values().chain(self.dials.values()) {
            tx.send_replace(Flow::Open);
        }
    }

    /// Whether every flow and dialled link is open.
    pub fn all_open(&self) -> bool {
        self.flows
            .values()
            .chain(self.dials.values())
            .all(|tx| *tx.borrow() == Flow::Open)
    }

    /// The flows that are not open, then the dialled links that are not,
    /// for reports.
    pub fn broken(&self) -> Vec<((u64, u64), Flow)> {
        self.flows
            .iter()
            .chain(&self.dials)
            .map(|(pair, tx)| (*pair, *tx.borrow()))
            .filter(|(_, f)| *f != Flow::Open)
            .collect()
    }
}

/// One directed link's proxy: a listener whose connections are forwarded to
/// the target, subject to the two flows.
struct LinkProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What governs one link proxy's connections.
#[derive(Clone)]
struct Flows {
    /// Bytes from the dialler to the target.
    forward: watch::Receiver<Flow>,
    /// Bytes from the target back to the dialler.
    backward: watch::Receiver<Flow>,
    /// Every byte of connections through this proxy, both ways.
    dialled: watch::Receiver<Flow>,
}

impl LinkProxy {
    async fn start(target: SocketAddr, flows: Flows) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // A failed accept (fd exhaustion) only loses that connection;
            // the dialer retries.
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(relay(inbound, target, flows.clone()));
            }
        });
        Ok(Self { addr, task })
    }
}

/// Forwards one connection until either side closes it or a lost flow
/// poisons it.
async fn relay(inbound: TcpStream, target: SocketAddr, flows: Flows) {
    let _ = inbound.set_nodelay(true);
    // A dial that would cross a lost flow must not reveal itself by a quick
    // refusal: hold the accepted socket silently until the flow heals.
    let Flows {
        forward,
        backward,
        dialled,
    } = flows;
    if wait_open(&mut forward.clone()).await == Gate::Poisoned
        || wait_open(&mut dialled.clone()).await == Gate::Poisoned
    {
        return;
    }
    let Ok(outbound) = TcpStream::connect(target).await else {
        return; // target down: the dialer sees a closed connection
    };
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let there = pump(in_read, out_write, forward, dialled.clone());
    let back = pump(out_read, in_write, backward, dialled);
    tokio::pin!(there, back);
    // A poisoned direction closes the whole connection; a clean EOF in one
    // direction lets the other finish.
    tokio::select! {
        end = &mut there => if end == End::Eof { back.await; },
        end = &mut back => if end == End::Eof { there.await; },
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The sender closed its side; the close was passed on.
    Eof,
    /// An I/O error or lost bytes: the connection must be dropped.
    Abort,
}

#[derive(Debug, PartialEq, Eq)]
enum Gate {
    Open,
    /// The flow was lost at some point: bytes are missing, close.
    Poisoned,
}

/// Waits until the flow is open; reports whether it was lost meanwhile.
async fn wait_open(flow: &mut watch::Receiver<Flow>) -> Gate {
    let mut poisoned = false;
    loop {
        match *flow.borrow_and_update() {
            Flow::Open => return if poisoned { Gate::Poisoned } else { Gate::Open },
            Flow::Lost => poisoned = true,
            Flow::Held => {}
        }
        if flow.changed().await.is_err() {
            return Gate::Poisoned; // the mesh is gone
        }
    }
}

/// Waits until both the direction's flow and the dialled link are open.
async fn wait_both(flow: &mut watch::Receiver<Flow>, link: &mut watch::Receiver<Flow>) -> Gate {
    loop {
        if wait_open(flow).await == Gate::Poisoned || wait_open(link).await == Gate::Poisoned {
            return Gate::Poisoned;
        }
        // The link may have opened while the flow closed again.
        if *flow.borrow() == Flow::Open {
            return Gate::Open;
        }
    }
}

/// Copies bytes one way while the flow and the dialled link allow it. Bytes
/// read while both are open but not yet written wait for them to open again
/// (held) or abort the connection (lost).
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut flow: watch::Receiver<Flow>,
    mut link: watch::Receiver<Flow>,
) -> End {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if wait_both(&mut flow, &mut link).await == Gate::Poisoned {
            return End::Abort;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(n) => n,
                Err(_) => return End::Abort,
            },
            // Re-check the flows: stop reading when one closes.
            _ = flow.changed() => continue,
            _ = link.changed() => continue,
        };
        if n == 0 {
            let _ = to.shutdown().await;
            return End::Eof;
        }
        if wait_both(&mut flow, &mut link).await == Gate::Poisoned {
            return End::Abort;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return End::Abort;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An echo server; returns its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn mesh_to_echo() -> Mesh {
        let target = echo().await;
        let targets: BTreeMap<u64, SocketAddr> = [(1, target), (2, target)].into();
        Mesh::start(&targets).await.unwrap()
    }

    async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> Option<Vec<u8>> {
        stream.write_all(msg).await.ok()?;
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf)
    }

    #[tokio::test]
    async fn open_flows_forward_both_ways() {
        let mesh = mesh_to_echo().await;
        let mut s = TcpStream::connect(mesh.route(1, 2).unwrap()).await.unwrap();
        assert_eq!(round_trip(&mut s, b"hello").await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn held_bytes_arrive_after_the_heal() {
        let mesh = mesh_to_echo().await;
        let mut s = TcpStream::connect(mesh.route(1, 2).unwrap()).await.unwrap();
        assert!(round_trip(&mut s, b"a").await.is_some());
        mesh.set(1, 2, Flow::Held);
        assert_eq!(round_trip(&mut s, b"held").await, None);
        mesh.heal();
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"held");
    }

    #[tokio::test]
    async fn held_dials_hold_connections_to_a_replica_but_not_from_it() {
        let mesh = mesh_to_echo().await;
        let mut to_two = TcpStream::connect(mesh.route(1, 2).unwrap()).await.unwrap();
        let mut from_two = TcpStream::connect(mesh.route(2, 1).unwrap()).await.unwrap();
        assert!(round_trip(&mut to_two, b"a").await.is_some());
        mesh.hold_dials_to(2);
        // Connections to 2, old and new, are silent both ways ...
        assert_eq!(round_trip(&mut to_two, b"held").await, None);
        let mut fresh = TcpStream::connect(mesh.route(1, 2).unwrap()).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"x").await, None);
        // ... while 2's own connection flows both ways.
        assert_eq!(round_trip(&mut from_two, b"out").await.unwrap(), b"out");
        assert!(!mesh.all_open());
        mesh.heal();
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(1), to_two.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"held", "held bytes arrive after the heal");
    }

    #[tokio::test]
    async fn lost_flows_silence_then_close_connections() {
        let mesh = mesh_to_echo().await;
        let mut s = TcpStream::connect(mesh.route(1, 2).unwrap()).await.unwrap();
        assert!(round_trip(&mut s, b"a").await.is_some());
        // The answers (2→1) are lost: silence, not a reset.
        mesh.set(2, 1, Flow::Lost);
        assert_eq!(round_trip(&mut s, b"lost").await, None);
        // A new connection is accepted but silent too.
        let mut fresh = TcpStream::connect(mesh.route(1, 2).unwrap()).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"x").await, None);
        mesh.heal();
        // After the heal the poisoned connection is closed ...
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "a connection that lost bytes must be closed");
        // ... and new connections work.
        let mut s = TcpStream::connect(mesh.route(1, 2).unwrap()).await.unwrap();
        assert_eq!(round_trip(&mut s, b"back").await.unwrap(), b"back");
    }
}
