//! An in-process network: nodes in one process exchange frames through channels.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use syncobj_net::{Incoming, Transport, Wake};

/// The most frames waiting in one node's inbox; more are dropped, as a full socket would.
const INBOX_FRAMES_MAX: usize = 65_536;

/// The most frames one `poll` hands out.
const POLL_FRAMES_MAX: usize = 4_096;

/// Links between nodes of one process. Each link is first-in first-out and loses nothing while
/// both ends are connected; [`isolate`](Self::isolate) cuts a node off, as a partition would.
#[derive(Clone, Debug, Default)]
pub struct MemoryNetwork {
    hub: Arc<Mutex<Hub>>,
}

#[derive(Debug, Default)]
struct Hub {
    inboxes: BTreeMap<String, Sender<Item>>,
    isolated: BTreeSet<String>,
}

#[derive(Debug)]
enum Item {
    Frame(Incoming),
    Wake,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> MemoryNetwork {
        MemoryNetwork::default()
    }

    /// The transport of the node at `address`. A second endpoint for one address replaces the
    /// first, as a restarted process would.
    pub fn endpoint(&self, address: &str) -> MemoryTransport {
        let (sender, inbox) = crossbeam_channel::bounded(INBOX_FRAMES_MAX);
        self.hub
            .lock()
            .inboxes
            .insert(address.to_owned(), sender.clone());
        MemoryTransport {
            address: address.to_owned(),
            network: self.clone(),
            inbox,
            own: sender,
        }
    }

    /// Cuts `address` off from every other node until [`reconnect`](Self::reconnect).
    pub fn isolate(&self, address: &str) {
        self.hub.lock().isolated.insert(address.to_owned());
    }

    /// Ends the isolation of `address`.
    pub fn reconnect(&self, address: &str) {
        self.hub.lock().isolated.remove(address);
    }

    fn deliver(&self, from: &str, to: &str, frame: Bytes) -> bool {
        let hub = self.hub.lock();
        if hub.isolated.contains(from) || hub.isolated.contains(to) {
            return false;
        }
        let Some(inbox) = hub.inboxes.get(to) else {
            return false;
        };
        let item = Item::Frame(Incoming {
            from: from.to_owned(),
            frame,
        });
        !matches!(
            inbox.try_send(item),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
        )
    }

    fn is_linked(&self, a: &str, b: &str) -> bool {
        let hub = self.hub.lock();
        hub.inboxes.contains_key(b) && !hub.isolated.contains(a) && !hub.isolated.contains(b)
    }
}

/// One node's end of a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryTransport {
    address: String,
    network: MemoryNetwork,
    inbox: Receiver<Item>,
    own: Sender<Item>,
}

impl Transport for MemoryTransport {
    fn send(&mut self, to: &str, frame: Bytes) -> bool {
        self.network.deliver(&self.address, to, frame)
    }

    fn poll(&mut self, timeout: Duration, out: &mut Vec<Incoming>) {
        let first = if timeout.is_zero() {
            self.inbox.try_recv().ok()
        } else {
            self.inbox.recv_timeout(timeout).ok()
        };
        let rest = std::iter::from_fn(|| self.inbox.try_recv().ok());
        for item in first.into_iter().chain(rest).take(POLL_FRAMES_MAX) {
            if let Item::Frame(incoming) = item {
                out.push(incoming);
            }
        }
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::new(MemoryWaker {
            own: self.own.clone(),
        })
    }

    fn is_connected(&self, node: &str) -> bool {
        self.network.is_linked(&self.address, node)
    }
}

struct MemoryWaker {
    own: Sender<Item>,
}

impl Wake for MemoryWaker {
    fn wake(&self) {
        // A full inbox wakes the poller anyway.
        let _ = self.own.try_send(Item::Wake);
    }
}
