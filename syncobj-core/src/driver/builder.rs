//! [`NodeBuilder`]: one way to start every kind of node — a voter or a read-only node, over
//! TCP, an in-process [`MemoryNetwork`] or a transport of the user's own, with any number of
//! consumers and any configuration.

use std::marker::PhantomData;

use syncobj_net::Transport;
use syncobj_net::handshake::Peer;
use syncobj_net::resolve::{AddressProblem, check_address};
use thiserror::Error;

use super::addresses::read_only_id;
use super::assembly::without;
use super::recovery::Disks;
use super::{Consumers, MemoryNetwork, StartError, SyncObj, network};
use crate::conf::{SyncObjConf, SyncObjConfBuilder};
use crate::object::Replicated;

/// Which address of a node was refused at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressRole {
    /// The node's own address.
    SelfAddress,
    /// One of its partners'.
    Partner,
}

/// An address refused at start: which one, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{} address {address:?} is refused: {problem}", match .role {
    AddressRole::SelfAddress => "the node's own",
    AddressRole::Partner => "the partner",
})]
pub struct BadAddress {
    /// Whose address it is.
    pub role: AddressRole,
    /// The address as given.
    pub address: String,
    /// What is wrong with it.
    pub problem: AddressProblem,
}

/// How the node talks to its peers.
enum Wire {
    /// TCP (the default), addresses `host:port`.
    Tcp,
    /// A transport given by the user; addresses are whatever it understands.
    Own(Box<dyn Transport>),
}

/// Starts a node of any kind: build one with [`SyncObj::builder`] (a voter) or
/// [`SyncObj::read_only_builder`] (a read-only node), then [`start`](Self::start) it with its
/// state.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use syncobj_core::driver::{MemoryNetwork, SyncObj};
/// # use syncobj_core::object::*;
/// # #[derive(Default, Serialize, Deserialize)] struct Log(Vec<u8>);
/// # impl ReplicatedState for Log { const NAME: &'static str = "Log"; }
/// # impl ReplicatedMethods for Log {
/// #     const METHODS: &'static [MethodSpec] = &[];
/// #     type Calls = Caller;
/// #     fn apply(&mut self, id: u16, _: &[u8]) -> Result<Vec<u8>, ApplyError> {
/// #         Err(ApplyError::UnknownMethod(id))
/// #     }
/// # }
/// let network = MemoryNetwork::new();
/// let node = SyncObj::builder("a")
///     .partners(["b", "c"])
///     .consumer(Log::default())
///     .memory(&network)
///     .start(Log::default())?;
/// assert!(node.consumer::<Log>(0).is_some());
/// # Ok::<(), syncobj_core::driver::StartError>(())
/// ```
#[must_use = "a builder does nothing until `start`"]
pub struct NodeBuilder<T> {
    /// The node's address; `None` for a read-only node.
    me: Option<String>,
    partners: Vec<String>,
    conf: SyncObjConfBuilder,
    consumers: Consumers,
    wire: Wire,
    disks: Disks,
    state: PhantomData<fn() -> T>,
}

impl<T: Replicated> NodeBuilder<T> {
    pub(super) fn new(me: Option<String>) -> NodeBuilder<T> {
        NodeBuilder {
            me,
            partners: Vec::new(),
            conf: SyncObjConf::builder(),
            consumers: Consumers::new(),
            wire: Wire::Tcp,
            disks: Disks::default(),
            state: PhantomData,
        }
    }

    /// The other voters' addresses (the node's own, if among them, is ignored, as PySyncObj
    /// does). Replaces those given before.
    pub fn partners(mut self, partners: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.partners = partners.into_iter().map(Into::into).collect();
        self
    }

    /// The configuration, replacing everything set on it before (including by
    /// [`password`](Self::password) and [`journal_file`](Self::journal_file)).
    pub fn conf(mut self, conf: SyncObjConf) -> Self {
        self.conf = conf.to_builder();
        self
    }

    /// Changes the configuration in place: `builder.configure(|c| c.auto_tick(false))`.
    pub fn configure(
        mut self,
        change: impl FnOnce(SyncObjConfBuilder) -> SyncObjConfBuilder,
    ) -> Self {
        self.conf = change(self.conf);
        self
    }

    /// Encrypts and authenticates every connection with `password` (`SyncObjConf::password`).
    pub fn password(self, password: impl Into<String>) -> Self {
        self.configure(|c| c.password(password))
    }

    /// Keeps the log, the vote and the snapshots in the directory `path`
    /// (`SyncObjConf::journal_file`).
    pub fn journal_file(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.configure(|c| c.journal_file(path))
    }

    /// Keeps the journal and the snapshots on `disk`, a simulated disk, instead of the real file
    /// system (feature `sim`): the journal at [`journal_file`](Self::journal_file) (`journal`
    /// if unset), the snapshots beside it (or at `full_dump_file`), both from the disk's root.
    /// Then
    /// [`SyncObj::crash`] crashes the disk too, losing every write it did not sync; a node
    /// built again on the same disk (a clone) recovers what survived.
    ///
    /// Give each node a disk of its own: a crash of one disk loses the unsynced writes of
    /// every node on it.
    #[cfg(feature = "sim")]
    pub fn sim_disk(mut self, disk: crate::storage::SimDisk) -> Self {
        self.disks.sim = Some(disk);
        self
    }

    /// Adds a consumer holding `state`: another replicated object on the same log, number
    /// `n` for the `n`-th added (from 0), reached with [`SyncObj::consumer`].
    pub fn consumer<C: Replicated>(mut self, state: C) -> Self {
        self.consumers = self.consumers.with(state);
        self
    }

    /// Adds the consumers of `consumers`, after those added before.
    pub fn consumers(mut self, consumers: Consumers) -> Self {
        self.consumers.cells.extend(consumers.cells);
        self
    }

    /// Talks through `transport` instead of TCP. Addresses are then whatever it understands:
    /// they are not checked as `host:port`.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.wire = Wire::Own(Box::new(transport));
        self
    }

    /// Talks through `network`, in this process (a voter only).
    pub fn memory(self, network: &MemoryNetwork) -> Self {
        let endpoint = network.endpoint(self.me.as_deref().unwrap_or_default());
        self.transport(endpoint)
    }

    /// Starts the node, holding `state`.
    ///
    /// # Errors
    /// [`StartError::Conf`] listing every broken configuration rule; [`StartError::Address`]
    /// for a malformed address (TCP only); [`StartError::NoVoters`] for a read-only node
    /// without partners; and whatever else [`StartError`] names (the listener, the journal,
    /// the snapshots, the tick thread).
    pub fn start(self, state: T) -> Result<SyncObj<T>, StartError> {
        let conf = self.conf.build()?;
        let partners = match &self.me {
            Some(me) => without(self.partners, me),
            None => self.partners,
        };
        if self.me.is_none() && partners.is_empty() {
            return Err(StartError::NoVoters);
        }
        let tcp = matches!(self.wire, Wire::Tcp);
        let (me, transport) = match self.wire {
            Wire::Own(transport) => (identity(self.me), transport),
            Wire::Tcp => {
                check_addresses(self.me.as_deref(), &partners)?;
                let me = identity(self.me);
                let mut voters = partners.clone();
                if let Peer::Voter(address) = &me {
                    voters.push(address.clone());
                }
                let transport = network::tcp_transport(me.clone(), &voters, &conf)?;
                (me, Box::new(transport) as Box<dyn Transport>)
            }
        };
        let wire = super::WireKind {
            tcp,
            transport,
            disks: self.disks,
        };
        SyncObj::start(me, partners, state, self.consumers, conf, wire)
    }
}

/// The node's name in the handshake: its address, or a fresh read-only number.
fn identity(me: Option<String>) -> Peer {
    match me {
        Some(address) => Peer::Voter(address),
        // The top bit is set at the source, so that the number in the hello and the node's own
        // id name it alike.
        None => Peer::ReadOnly(read_only_id(network::random_number()).0),
    }
}

/// Refuses a malformed `host:port` among the node's own address and its partners'.
fn check_addresses(me: Option<&str>, partners: &[String]) -> Result<(), BadAddress> {
    let own = me.map(|a| (AddressRole::SelfAddress, a));
    let others = partners.iter().map(|a| (AddressRole::Partner, a.as_str()));
    for (role, address) in own.into_iter().chain(others) {
        if let Err(problem) = check_address(address) {
            return Err(BadAddress {
                role,
                address: address.to_owned(),
                problem,
            });
        }
    }
    Ok(())
}
