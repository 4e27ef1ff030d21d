//! Link cuts: a TCP proxy in front of every node. A node listens on its bind address; its
//! peers dial its public address, where the controller's proxy accepts, reads the dialler's
//! hello (the plaintext handshake names the dialling voter), and forwards to the bind address
//! unless the pair is cut. Cutting a pair closes its proxied connections at once and refuses
//! new ones until the pair is healed. Cuts are symmetric: over TCP a link needs both
//! directions (the handshake is answered), so a one-way loss takes the link down just the same.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncobj_net::frame::FRAME_HEADER_BYTES;
use syncobj_net::handshake::{HELLO_BYTES_MAX, Hello, Peer};

use crate::Error;
use crate::cluster::lock;

/// The cut pairs and the open proxied connections, shared by every proxy.
pub(crate) struct Network {
    public: Vec<String>,
    bind: Vec<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Cut pairs, the lower node first.
    cuts: BTreeSet<(usize, usize)>,
    /// Open connections: a number, the pair (lower node first) and both sockets.
    open: Vec<(u64, (usize, usize), TcpStream, TcpStream)>,
    opened: u64,
    refused: u64,
}

impl Network {
    /// Starts a proxy on each listener (bound to the node's public address).
    pub(crate) fn start(
        listeners: Vec<TcpListener>,
        public: Vec<String>,
        bind: Vec<String>,
    ) -> Arc<Network> {
        let network = Arc::new(Network {
            public,
            bind,
            state: Mutex::default(),
        });
        for (node, listener) in listeners.into_iter().enumerate() {
            let network = Arc::clone(&network);
            std::thread::spawn(move || network.accept(node, &listener));
        }
        network
    }

    /// Cuts every pair of `pairs`: closes their connections, refuses new ones.
    pub(crate) fn cut(&self, pairs: &[(usize, usize)]) {
        let mut state = lock(&self.state);
        for &(a, b) in pairs {
            state.cuts.insert((a.min(b), a.max(b)));
        }
        let State { cuts, open, .. } = &mut *state;
        open.retain(|(_, pair, left, right)| {
            let keep = !cuts.contains(pair);
            if !keep {
                let _ = left.shutdown(Shutdown::Both);
                let _ = right.shutdown(Shutdown::Both);
            }
            keep
        });
    }

    /// Heals every cut.
    pub(crate) fn heal(&self) {
        lock(&self.state).cuts.clear();
    }

    /// How many connections the cuts refused.
    pub(crate) fn refused(&self) -> u64 {
        lock(&self.state).refused
    }

    fn accept(self: Arc<Self>, node: usize, listener: &TcpListener) {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let network = Arc::clone(&self);
            std::thread::spawn(move || {
                let _ = network.forward(node, stream);
            });
        }
    }

    /// Reads the dialler's hello, then forwards the connection both ways unless its pair is
    /// cut.
    fn forward(&self, node: usize, mut dialled: TcpStream) -> Result<(), Error> {
        dialled.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut first = [0u8; FRAME_HEADER_BYTES];
        dialled.read_exact(&mut first)?;
        let len = u32::from_le_bytes(first) as usize;
        if len > HELLO_BYTES_MAX {
            return Err(format!("a first frame of {len} bytes is no hello").into());
        }
        let mut hello = vec![0u8; len];
        dialled.read_exact(&mut hello)?;
        dialled.set_read_timeout(None)?;
        // Anything but a voter of ours (an administrator) is forwarded whatever the cuts.
        let dialler = match Hello::decode(&hello).map(|h| h.node) {
            Ok(Peer::Voter(address)) => self.public.iter().position(|a| *a == address),
            _ => None,
        };
        let pair = dialler.map(|d| (d.min(node), d.max(node)));
        if pair.is_some_and(|pair| lock(&self.state).cuts.contains(&pair)) {
            lock(&self.state).refused += 1;
            return Ok(());
        }
        let mut upstream = TcpStream::connect(&self.bind[node])?;
        upstream.set_nodelay(true)?;
        dialled.set_nodelay(true)?;
        upstream.write_all(&first)?;
        upstream.write_all(&hello)?;
        let number = {
            let mut state = lock(&self.state);
            // A cut made while the upstream was being dialled.
            if pair.is_some_and(|pair| state.cuts.contains(&pair)) {
                state.refused += 1;
                return Ok(());
            }
            state.opened += 1;
            let number = state.opened;
            if let Some(pair) = pair {
                let sockets = (dialled.try_clone()?, upstream.try_clone()?);
                state.open.push((number, pair, sockets.0, sockets.1));
            }
            number
        };
        let (down_in, down_out) = (upstream.try_clone()?, dialled.try_clone()?);
        std::thread::spawn(move || copy(down_in, down_out));
        copy(dialled, upstream);
        lock(&self.state).open.retain(|(n, ..)| *n != number);
        Ok(())
    }
}

/// Copies one direction until either side closes, then closes both.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use syncobj_net::handshake::ClusterId;

    use super::*;

    /// Long enough for any loopback event; the tests wait on events, never for time.
    const DEADLINE: Duration = Duration::from_secs(10);

    /// A proxy for node 0 in front of `upstream`; node 1 is only named.
    fn proxy() -> (Arc<Network>, String, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let public = listener.local_addr().expect("address").to_string();
        let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
        let bind = upstream.local_addr().expect("address").to_string();
        let names = vec![public.clone(), "127.0.0.1:1".to_owned()];
        let network = Network::start(vec![listener], names, vec![bind, String::new()]);
        (network, public, upstream)
    }

    /// Dials `public` as node 1 and sends its hello.
    fn dial_as_node_1(public: &str) -> TcpStream {
        let mut hello = Vec::new();
        Hello::new(ClusterId([0; 16]), Peer::Voter("127.0.0.1:1".into()))
            .encode(&mut hello)
            .expect("hello");
        let mut stream = TcpStream::connect(public).expect("connect");
        stream
            .write_all(&(hello.len() as u32).to_le_bytes())
            .expect("write");
        stream.write_all(&hello).expect("write");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        stream
    }

    /// Whether the proxy closed `stream` (rather than leaving it open until the deadline).
    fn closed(stream: &mut TcpStream) -> bool {
        match stream.read(&mut [0u8; 1]) {
            Ok(0) => true,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            Ok(_) => false,
        }
    }

    #[test]
    fn a_cut_closes_the_pairs_connections_and_refuses_new_ones_until_healed() {
        let (network, public, upstream) = proxy();
        let mut dialler = dial_as_node_1(&public);
        let (mut node, _) = upstream.accept().expect("forwarded");
        node.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut header = [0u8; FRAME_HEADER_BYTES];
        node.read_exact(&mut header)
            .expect("the hello is forwarded");
        network.cut(&[(1, 0)]);
        assert!(closed(&mut dialler), "the cut closes the dialler's side");
        // A cut that comes while the proxy dials upstream refuses the first connection too,
        // counted before it is closed: the count is settled once the dialler saw the close.
        let before = network.refused();
        let mut refused = dial_as_node_1(&public);
        assert!(closed(&mut refused), "a new connection is refused");
        assert_eq!(network.refused(), before + 1);
        network.heal();
        let _healed = dial_as_node_1(&public);
        let (mut node, _) = upstream.accept().expect("forwarded after the heal");
        node.set_read_timeout(Some(DEADLINE)).expect("timeout");
        node.read_exact(&mut header)
            .expect("the hello is forwarded");
    }
}
