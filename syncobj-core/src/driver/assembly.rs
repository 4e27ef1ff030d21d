//! How a node is put together: its identity among its peers, its recovered durable state, its
//! Raft node, its calls and links. `SyncObj` and the driver-level simulator build every node
//! with [`assemble`], and run it with the same `Engine::iterate`.

use std::sync::Arc;

use syncobj_net::handshake::Peer;
use syncobj_net::{Transport, Wake};

use super::StartError;
use super::addresses::{Addresses, disk_id, read_only_id, read_only_name};
use super::engine::{
    CallLimits, Callbacks, Calls, Changes, Engine, Links, Parts, Queued, QueuedChange, Strangers,
};
use super::life::Signals;
use super::network;
use super::objects::{ErasedObject, SYSTEM_OBJECT};
use super::observed::Observed;
use super::queue::{self, QueueSender};
use super::recovery::Recovered;
use super::writer::Writer;
use crate::conf::SyncObjConf;
use crate::raft::{Instant, Membership, NodeId, RaftConfig, RaftNode};
use crate::storage::Identity;

/// Opens a node's durable state and loads its latest snapshot into its objects, given the
/// node's place among the voters and the identity its files must record.
pub(crate) type Recover<'a> =
    &'a dyn Fn(&[Arc<dyn ErasedObject>], (u64, u64), Identity) -> Result<Recovered, StartError>;

/// What a node is built from.
pub(crate) struct Blueprint<'a> {
    /// This node: a voter's address, or a read-only node's number.
    pub(crate) me: Peer,
    /// The other voters' addresses.
    pub(crate) partners: Vec<String>,
    /// The main object, then the consumers.
    pub(crate) objects: Vec<Arc<dyn ErasedObject>>,
    pub(crate) conf: &'a SyncObjConf,
    /// The Raft settings, seeded.
    pub(crate) raft: RaftConfig,
    pub(crate) transport: Box<dyn Transport>,
    /// A number that differs between incarnations of the node.
    pub(crate) session: u64,
    /// Opens the node's durable state and loads its latest snapshot into the objects, given
    /// this node's place among the voters (for `log_compaction_split`) and its identity.
    pub(crate) recover: Recover<'a>,
    /// Write snapshots on the tick thread rather than on a thread of their own (the
    /// deterministic simulator).
    pub(crate) inline_snapshots: bool,
    /// Run the journal writer when the simulator says so rather than on a thread of its own
    /// (see [`Writer::inline`]).
    pub(crate) inline_journal: bool,
}

/// A node, assembled and not yet run.
pub(crate) struct Assembled {
    pub(crate) engine: Engine,
    pub(crate) signals: Arc<Signals>,
    /// Where calls are queued for the engine.
    pub(crate) queue: QueueSender<Queued>,
    /// Where membership changes and leadership transfers are queued for the engine.
    pub(crate) changes: QueueSender<QueuedChange>,
    /// Wakes the engine's poll.
    pub(crate) waker: Arc<dyn Wake>,
    /// Whether committed entries wait in the journal: the node should iterate once at once,
    /// so that they are applied before anyone reads.
    pub(crate) has_committed: bool,
}

/// Builds a node from `blueprint`.
///
/// # Errors
/// [`StartError`] if there are too many consumers, the durable state cannot be recovered, or
/// the Raft node refuses it.
pub(crate) fn assemble(blueprint: Blueprint<'_>) -> Result<Assembled, StartError> {
    let Blueprint {
        me,
        partners,
        objects,
        conf,
        raft,
        transport,
        session,
        recover,
        inline_snapshots,
        inline_journal,
    } = blueprint;
    if objects.len() > usize::from(SYSTEM_OBJECT) {
        return Err(StartError::TooManyConsumers(objects.len() - 1));
    }
    let (addresses, id, membership) = identities(&me, partners)?;
    let identity = Identity {
        node: disk_id(id),
        cluster: conf.cluster_id(),
    };
    let mut recovered = recover(&objects, compaction_slot(&addresses, id), identity)?;
    if !conf.dynamic_membership_change {
        // A fixed membership is the configuration's: a dump restored on other addresses
        // (PySyncObj's `test_checkDumpToFile`) takes the new ones.
        recovered.restored.membership = None;
    }
    if inline_snapshots {
        recovered.snapshots.write_inline();
    }
    let has_committed = recovered.has_committed();
    let mut raft = RaftNode::new(id, membership, raft, recovered.restored, Instant::ZERO)?;
    let (queue, receiver) = queue::bounded(conf.commands_queue_size);
    let (changes, change_receiver) = queue::bounded(CHANGES_QUEUED_MAX);
    let waker = transport.waker();
    let writer = match recovered.persistence {
        Some(persistence) if inline_journal => Some(Writer::inline(persistence)),
        Some(persistence) => {
            Some(Writer::spawn(persistence, Arc::clone(&waker)).map_err(StartError::Writer)?)
        }
        None => None,
    };
    // A stranger observed follows the log like a read-only node: refused with them.
    let strangers = match (conf.dynamic_membership_change, conf.accept_read_only) {
        (false, _) => Strangers::Refused,
        (true, false) => Strangers::Linked,
        (true, true) => Strangers::Observed,
    };
    let mut links = Links::new(transport, addresses, id, strangers);
    // The membership recovered from the journal or the snapshot may name other members than
    // the configuration does: it wins.
    links.follow(&mut raft);
    let observed = Observed::initial(&raft, links.peers());
    let carried = recovered.carried.unwrap_or_default();
    let code_version = carried.code_version;
    let signals = Arc::new(Signals::new(observed, code_version, receiver.clone()));
    let limits = CallLimits {
        wait_leader: conf.commands_wait_leader,
        leaderless_calls_max: conf.leaderless_calls_max,
        call_timeout: conf.call_timeout,
    };
    let engine = Engine::new(Parts {
        raft,
        links,
        calls: Calls::new(receiver, limits, session),
        changes: Changes::new(
            change_receiver,
            conf.dynamic_membership_change,
            transfer_wait(conf),
        ),
        objects,
        callbacks: Callbacks {
            on_state_changed: conf.on_state_changed.clone(),
            on_ready: conf.on_ready.clone(),
            on_code_version_changed: conf.on_code_version_changed.clone(),
        },
        signals: Arc::clone(&signals),
        writer,
        snapshots: recovered.snapshots,
        command_time: carried.command_time,
    });
    Ok(Assembled {
        engine,
        signals,
        queue,
        changes,
        waker,
        has_committed,
    })
}

/// The most membership changes and transfers queued at once; one more fails with `QueueFull`.
const CHANGES_QUEUED_MAX: usize = 64;

/// How long a leadership transfer may take before its caller hears that it failed: the
/// leader gives up after the minimum election timeout; the target's election takes at most
/// about one more round of the maximum.
fn transfer_wait(conf: &SyncObjConf) -> std::time::Duration {
    conf.raft_min_timeout + conf.raft_max_timeout * 2
}

/// This node's place among the voters, for `log_compaction_split`: (its rank, their number).
fn compaction_slot(addresses: &Addresses, id: NodeId) -> (u64, u64) {
    let voters: Vec<NodeId> = addresses.voters().map(|(id, _)| id).collect();
    let rank = voters.iter().position(|&v| v == id).unwrap_or(0);
    (rank as u64, voters.len().max(1) as u64)
}

/// `partners` without `me`.
pub(crate) fn without(
    partners: impl IntoIterator<Item = impl Into<String>>,
    me: &str,
) -> Vec<String> {
    partners
        .into_iter()
        .map(Into::into)
        .filter(|p| p != me)
        .collect()
}

/// The names and Raft ids of `me` and the voters: a voter is one of them; a read-only node
/// sees itself as a non-voting member, and the voters see it as an observer. The membership
/// carries each member's address, so that a configuration entry made from it tells every node
/// how to reach every member.
fn identities(
    me: &Peer,
    partners: Vec<String>,
) -> Result<(Addresses, NodeId, Membership), StartError> {
    let voters = match me {
        Peer::Voter(address) => partners.into_iter().chain([address.clone()]).collect(),
        Peer::ReadOnly(_) | Peer::Admin => partners,
    };
    let mut addresses = Addresses::new(voters).map_err(|c| StartError::IdCollision {
        first: c.member,
        second: c.address,
    })?;
    let voters: Vec<(NodeId, String)> = addresses
        .voters()
        .map(|(id, address)| (id, address.clone()))
        .collect();
    Ok(match me {
        Peer::Voter(address) => {
            let id = addresses.by_address.get(address).copied();
            let id = id.expect("the voters include this node");
            (addresses, id, Membership::with_addresses(voters, []))
        }
        Peer::Admin => unreachable!("the builder makes voters and read-only nodes, never an admin"),
        Peer::ReadOnly(number) => {
            let id = read_only_id(*number);
            let name = read_only_name(id);
            addresses.insert_read_only(&name);
            (
                addresses,
                id,
                Membership::with_addresses(voters, [(id, name)]),
            )
        }
    })
}

/// A seed for the election-timeout generator when the configuration gives none: distinct per
/// address (FNV-1a) and per start (the clock), which is all elections need.
pub(crate) fn seed_from_address(address: &str) -> u64 {
    let hash = network::fnv1a(0xcbf2_9ce4_8422_2325, address.as_bytes());
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    hash ^ clock
}
