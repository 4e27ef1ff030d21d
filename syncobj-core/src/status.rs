//! The status report of a `SyncObj` node: every field of PySyncObj's `getStatus()`, typed.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use syncobj_net::TransportCounters;

use crate::raft::{RaftCounters, RoleKind};

/// The version of syncobj reported as [`Status::version`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A snapshot of one node's state, as PySyncObj's `getStatus()` reports it, plus syncobj's own
/// counters.
///
/// `Display` prints one `key: value` line per entry of [`key_values`](Self::key_values), sorted
/// by key, with PySyncObj's key names where PySyncObj has the field. [`Default`] is a fresh
/// follower that knows nothing yet, with [`VERSION`] filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The syncobj version, [`VERSION`] (key `version`; PySyncObj's `revision` is omitted).
    pub version: String,
    /// This node's address; on a read-only node, the name voters know it by (`readonly:` and
    /// its number) (key `self`).
    pub self_node: Option<String>,
    /// This node's Raft state (key `state`, PySyncObj's integer code; key `role`, its name).
    pub state: RaftState,
    /// The leader this node knows of, if any; `None` on a node removed from the cluster (key
    /// `leader`).
    pub leader: Option<String>,
    /// Whether this node and the voters connected to it form a majority (key `has_quorum`).
    pub has_quorum: bool,
    /// The other voting members, sorted by address (keys `partner_nodes_count`,
    /// `partner_node_status_server_<addr>`, and the next and match index keys).
    pub partner_nodes: Vec<PeerStatus>,
    /// The read-only nodes, sorted by address (keys `readonly_nodes_count`, `readonly_node_status_server_<addr>`,
    /// and the next and match index keys).
    pub readonly_nodes: Vec<PeerStatus>,
    /// How many entries the log holds (key `log_len`).
    pub log_len: u64,
    /// The index of the last entry applied to the state (key `last_applied`).
    pub last_applied: u64,
    /// The highest index this node knows to be committed (key `commit_idx`).
    pub commit_index: u64,
    /// This node's current term (key `raft_term`).
    pub raft_term: u64,
    /// The leader's commit index as last heard from it (key `leader_commit_idx`).
    pub leader_commit_index: u64,
    /// How long the node has run (key `uptime`, in whole seconds).
    pub uptime: Duration,
    /// The highest code version this node's code supports (key `self_code_version`).
    pub self_code_version: u32,
    /// The code version the cluster has enabled (key `enabled_code_version`).
    pub enabled_code_version: u32,
    /// The version the cluster enabled that this node's code lacks, when it has stopped applying
    /// because of it (key `stalled_at_code_version`); `None` while it keeps up.
    pub stalled_at_code_version: Option<u32>,
    /// Why this node stopped applying, when it has: a code version it lacks, or a command its
    /// code does not know (key `stalled_on`); `None` while it keeps up.
    pub stalled_on: Option<String>,
    /// Why this node stopped for good, when it has: its journal could not be written (key
    /// `halted`). A halted node sends nothing and refuses calls; restart it once the disk is
    /// fixed. `None` while it runs.
    pub halted: Option<String>,
    /// Counters of notable Raft events (one key per counter).
    pub counters: StatusCounters,
    /// Counters of bad input and losses on the wire (one key per counter).
    pub wire: WireCounters,
    /// Snapshots: the last one's index and size, and what was taken, sent and installed.
    pub snapshots: SnapshotStatus,
    /// The journal on disk: its size and the entries it holds.
    #[serde(default)]
    pub journal: JournalStatus,
    /// The membership in force on this node, and the change under way.
    pub membership: MembershipStatus,
    /// The longest iteration of the tick loop over the last 10 to 20 seconds (key
    /// `longest_tick_us`, in whole microseconds): from the end of its wait for the network to
    /// its end, the time the node could not answer a heartbeat, replicate or complete a call.
    /// A large batch of entries to apply, a slow disk under `journal_fsync = Always` or a user
    /// callback that takes long shows here; a snapshot does not (it is serialized on a thread
    /// of its own).
    #[serde(default)]
    pub longest_tick: Duration,
}

/// The membership in force as a node sees it (keys `voters`, `non_voters`,
/// `membership_change`, `is_member`, `dynamic_membership_change`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipStatus {
    /// The voters' addresses, sorted, this node's included if it is one (key `voters`,
    /// comma-separated).
    pub voters: Vec<String>,
    /// The non-voting members' addresses, sorted: nodes catching up before their promotion
    /// (key `non_voters`). Read-only nodes are not members; see [`Status::readonly_nodes`].
    pub non_voters: Vec<String>,
    /// The membership change under way, if any (key `membership_change`).
    pub pending: Option<PendingChangeStatus>,
    /// Whether this node is a member of the membership in force; `false` once it was removed
    /// (it then takes no calls), and on read-only nodes (key `is_member`).
    pub is_member: bool,
    /// Whether the node allows membership changes (key `dynamic_membership_change`).
    pub dynamic_membership_change: bool,
}

/// A membership change under way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PendingChangeStatus {
    /// The configuration entry at `index` is in force, not committed yet.
    Uncommitted {
        /// The entry's index.
        index: u64,
    },
    /// The leader catches a new node up before making it a voter.
    CatchingUp {
        /// The new node's address.
        node: String,
        /// The last entry its log is known to share with the leader's.
        match_index: u64,
        /// How many entries it lacks.
        lag: u64,
    },
}

impl fmt::Display for PendingChangeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PendingChangeStatus::Uncommitted { index } => {
                write!(f, "configuration entry {index} not committed yet")
            }
            PendingChangeStatus::CatchingUp {
                node,
                match_index,
                lag,
            } => write!(
                f,
                "catching up {node} (at {match_index}, {lag} entries behind)"
            ),
        }
    }
}

impl MembershipStatus {
    /// One `(key, value)` pair per field.
    fn pairs(&self) -> Vec<(String, String)> {
        let pairs = [
            ("voters", self.voters.join(",")),
            ("non_voters", self.non_voters.join(",")),
            ("membership_change", optional(self.pending.as_ref())),
            ("is_member", self.is_member.to_string()),
            (
                "dynamic_membership_change",
                self.dynamic_membership_change.to_string(),
            ),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

/// Where a node's snapshots stand (keys `snapshot_index`, `snapshot_bytes` and one per
/// counter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    /// The last entry the latest snapshot covers: the log starts after it (0: none).
    pub snapshot_index: u64,
    /// The latest snapshot's size in bytes: its file's on a node that keeps snapshots on disk
    /// (`journal_file` or `full_dump_file`), its payload's (the state as serialized) on one
    /// that keeps them in memory only; 0 without a snapshot.
    #[serde(default)]
    pub snapshot_bytes: u64,
    /// Snapshots taken and the log compacted into.
    pub compactions: u64,
    /// Snapshot transfers started as leader, to followers too far behind.
    pub snapshots_sent: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
}

impl SnapshotStatus {
    /// One `(key, value)` pair per field, keyed by the field name.
    fn pairs(&self) -> Vec<(String, String)> {
        counter_pairs(&[
            ("snapshot_index", self.snapshot_index),
            ("snapshot_bytes", self.snapshot_bytes),
            ("compactions", self.compactions),
            ("snapshots_sent", self.snapshots_sent),
            ("snapshots_installed", self.snapshots_installed),
        ])
    }
}

/// A node's journal (keys `journal_bytes` and `journal_entries`); zero on a node without one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStatus {
    /// The length of the journal's segment files, in bytes (key `journal_bytes`). A compaction
    /// removes only whole segments (of about 64 MiB), or starts the log afresh when it covers all
    /// of it, so this may not shrink at once after one.
    pub bytes: u64,
    /// The entries the journal holds: those after the latest snapshot (key
    /// `journal_entries`).
    pub entries: u64,
}

impl JournalStatus {
    /// One `(key, value)` pair per field.
    fn pairs(&self) -> Vec<(String, String)> {
        counter_pairs(&[
            ("journal_bytes", self.bytes),
            ("journal_entries", self.entries),
        ])
    }
}

impl Status {
    /// The `(key, value)` pairs that `Display` prints, sorted by key; `None` shows as `None`.
    /// The driver's `print_status` logs each one. Allocates one pair of strings per key.
    pub fn key_values(&self) -> Vec<(String, String)> {
        let mut pairs = self.scalar_pairs();
        pairs.extend(self.peer_pairs());
        pairs.extend(self.counters.pairs());
        pairs.extend(self.wire.pairs());
        pairs.extend(self.snapshots.pairs());
        pairs.extend(self.journal.pairs());
        pairs.extend(self.membership.pairs());
        pairs.sort();
        pairs
    }

    /// The keys with one value each.
    fn scalar_pairs(&self) -> Vec<(String, String)> {
        let pairs = [
            ("version", self.version.clone()),
            ("self", optional(self.self_node.as_ref())),
            ("state", self.state.code().to_string()),
            ("role", self.state.to_string()),
            ("leader", optional(self.leader.as_ref())),
            ("has_quorum", self.has_quorum.to_string()),
            ("log_len", self.log_len.to_string()),
            ("last_applied", self.last_applied.to_string()),
            ("commit_idx", self.commit_index.to_string()),
            ("raft_term", self.raft_term.to_string()),
            ("leader_commit_idx", self.leader_commit_index.to_string()),
            ("uptime", self.uptime.as_secs().to_string()),
            ("longest_tick_us", self.longest_tick.as_micros().to_string()),
            ("self_code_version", self.self_code_version.to_string()),
            (
                "enabled_code_version",
                self.enabled_code_version.to_string(),
            ),
            (
                "stalled_at_code_version",
                optional(self.stalled_at_code_version.as_ref()),
            ),
            ("stalled_on", optional(self.stalled_on.as_ref())),
            ("halted", optional(self.halted.as_ref())),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// The per-peer keys: connection state, next index and match index.
    fn peer_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = connection_pairs("partner_node", &self.partner_nodes);
        pairs.extend(connection_pairs("readonly_node", &self.readonly_nodes));
        let peers = || self.partner_nodes.iter().chain(&self.readonly_nodes);
        pairs.extend(index_pairs(
            "next_node_idx",
            peers().map(|p| (&p.node, p.next_index)),
        ));
        pairs.extend(index_pairs(
            "match_idx",
            peers().map(|p| (&p.node, p.match_index)),
        ));
        pairs
    }
}

impl Default for Status {
    fn default() -> Self {
        Status {
            version: VERSION.to_owned(),
            self_node: None,
            state: RaftState::Follower,
            leader: None,
            has_quorum: false,
            partner_nodes: Vec::new(),
            readonly_nodes: Vec::new(),
            log_len: 0,
            last_applied: 0,
            commit_index: 0,
            raft_term: 0,
            leader_commit_index: 0,
            uptime: Duration::ZERO,
            self_code_version: 0,
            enabled_code_version: 0,
            stalled_at_code_version: None,
            stalled_on: None,
            halted: None,
            counters: StatusCounters::default(),
            wire: WireCounters::default(),
            snapshots: SnapshotStatus::default(),
            journal: JournalStatus::default(),
            membership: MembershipStatus::default(),
            longest_tick: Duration::ZERO,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.key_values().iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{key}: {value}")?;
        }
        Ok(())
    }
}

/// The role of a node as status reports and `on_state_changed` show it.
///
/// PySyncObj knows three states; syncobj adds [`PreCandidate`](Self::PreCandidate), which
/// [`code`](Self::code) reports as PySyncObj's candidate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RaftState {
    /// Follows a leader, or waits for one. The default.
    #[default]
    Follower,
    /// Asks whether it could win an election, without raising the term (pre-vote).
    PreCandidate,
    /// Runs an election.
    Candidate,
    /// Leads the cluster in the current term.
    Leader,
}

impl RaftState {
    /// PySyncObj's `_RAFT_STATE` integer: follower 0, candidate 1 (pre-candidates included),
    /// leader 2.
    pub fn code(self) -> u8 {
        match self {
            RaftState::Follower => 0,
            RaftState::PreCandidate | RaftState::Candidate => 1,
            RaftState::Leader => 2,
        }
    }

    /// The state's snake_case name: `follower`, `pre_candidate`, `candidate` or `leader`.
    pub fn name(self) -> &'static str {
        match self {
            RaftState::Follower => "follower",
            RaftState::PreCandidate => "pre_candidate",
            RaftState::Candidate => "candidate",
            RaftState::Leader => "leader",
        }
    }
}

impl From<RoleKind> for RaftState {
    fn from(role: RoleKind) -> Self {
        match role {
            RoleKind::Follower => RaftState::Follower,
            RoleKind::PreCandidate => RaftState::PreCandidate,
            RoleKind::Candidate => RaftState::Candidate,
            RoleKind::Leader => RaftState::Leader,
        }
    }
}

impl fmt::Display for RaftState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a node knows of one other node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The other node's address.
    pub node: String,
    /// Whether a connection to it is up (PySyncObj status 2 when connected, 0 when not).
    pub connected: bool,
    /// On the leader, the next log index to send it; `None` elsewhere.
    pub next_index: Option<u64>,
    /// On the leader, the highest log index known to be replicated on it; `None` elsewhere.
    pub match_index: Option<u64>,
}

/// Counters of notable Raft events, as [`RaftCounters`] counts them. Default: all zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounters {
    /// Messages that broke the protocol and were dropped.
    pub protocol_errors: u64,
    /// Messages from non-members or for other nodes, dropped.
    pub misdirected_messages: u64,
    /// Elections (real votes) this node started.
    pub elections_started: u64,
    /// Pre-vote rounds this node started.
    pub pre_votes_started: u64,
    /// Times this node stepped down as leader because it lost contact with a majority.
    pub check_quorum_step_downs: u64,
    /// Vote requests ignored because a leader was heard from recently.
    pub votes_ignored_in_lease: u64,
}

impl StatusCounters {
    /// One `(key, value)` pair per counter, keyed by the field name.
    fn pairs(&self) -> Vec<(String, String)> {
        counter_pairs(&[
            ("protocol_errors", self.protocol_errors),
            ("misdirected_messages", self.misdirected_messages),
            ("elections_started", self.elections_started),
            ("pre_votes_started", self.pre_votes_started),
            ("check_quorum_step_downs", self.check_quorum_step_downs),
            ("votes_ignored_in_lease", self.votes_ignored_in_lease),
        ])
    }
}

/// Bad input, losses and connection endings on the wire: what the transport counted
/// ([`TransportCounters`], whose documentation says which counters partition a connection's
/// endings), plus messages the driver could not decode. One key per counter, named as the
/// field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCounters {
    /// Connections dropped for a bad frame (oversized for the link), and frames whose message
    /// did not decode (key `bad_frames`).
    pub bad_frames: u64,
    /// Connections whose hello was refused, by either side: another cluster, an unknown node,
    /// a read-only node where none is accepted, a password on one side only (key
    /// `refused_handshakes`).
    pub refused_handshakes: u64,
    /// Connections dropped for bytes that failed authentication (another password, tampering,
    /// a replay) (key `auth_failures`).
    pub auth_failures: u64,
    /// Links dropped for reading nothing within the connection timeout (key `link_timeouts`).
    pub link_timeouts: u64,
    /// Frames dropped because a peer was not connected, its send queue was full, or the frame
    /// was larger than its link takes (key `dropped_frames`).
    pub dropped_frames: u64,
    /// Host-name lookups that failed or found no address (key `resolve_failures`).
    pub resolve_failures: u64,
    /// Connections accepted and taken in for a handshake (key `connections_accepted`).
    pub connections_accepted: u64,
    /// Connections closed because their handshake was not done within `handshake_timeout`
    /// (key `handshake_timeouts`).
    pub handshake_timeouts: u64,
    /// Connections the peer closed, reset or lost before their handshake was done: a
    /// connect-and-close (key `handshake_closes`).
    pub handshake_closes: u64,
    /// Dials that could not connect (key `dial_failures`).
    pub dial_failures: u64,
    /// Links that the peer closed or reset, or that failed on a socket error (key
    /// `link_failures`).
    pub link_failures: u64,
    /// Links replaced by a newer connection of the same peer (key `links_replaced`).
    pub links_replaced: u64,
    /// Links closed because their peer left the cluster (key `links_removed`).
    pub links_removed: u64,
    /// Connections reset as soon as accepted because `unauthenticated_connections_max` were in
    /// their handshake (key `unauthenticated_over_cap`).
    pub unauthenticated_over_cap: u64,
    /// Read-only nodes refused as busy because `read_only_nodes_max` were linked (key
    /// `read_only_over_cap`).
    pub read_only_over_cap: u64,
    /// Connections reset as soon as accepted because they came faster than
    /// `accepts_per_second` (key `accepts_rate_limited`).
    pub accepts_rate_limited: u64,
    /// Times reading a connection paused for the budgets of incoming bytes (key
    /// `reads_paused`).
    pub reads_paused: u64,
    /// Administrators' connections (`syncobj-admin`) that ended after their handshake (key
    /// `admin_connections`).
    #[serde(default)]
    pub admin_connections: u64,
    /// Strangers linked: nodes of the cluster that were not peers of this node, linked with
    /// `dynamic_membership_change` on (a node whose membership lags hears the leader this way)
    /// (key `strangers_linked`).
    #[serde(default)]
    pub strangers_linked: u64,
    /// Strangers refused as busy because as many as allowed were linked (key
    /// `strangers_refused`).
    #[serde(default)]
    pub strangers_refused: u64,
}

impl WireCounters {
    /// The transport's counters, with `undecodable_messages` (frames whose message the driver
    /// could not decode) added to `bad_frames`.
    pub fn new(transport: TransportCounters, undecodable_messages: u64) -> WireCounters {
        let TransportCounters {
            bad_frames,
            refused_handshakes,
            auth_failures,
            link_timeouts,
            dropped_frames,
            resolve_failures,
            connections_accepted,
            handshake_timeouts,
            handshake_closes,
            dial_failures,
            link_failures,
            links_replaced,
            links_removed,
            unauthenticated_over_cap,
            read_only_over_cap,
            accepts_rate_limited,
            reads_paused,
            admin_connections,
            strangers_linked,
            strangers_refused,
        } = transport;
        WireCounters {
            bad_frames: bad_frames + undecodable_messages,
            refused_handshakes,
            auth_failures,
            link_timeouts,
            dropped_frames,
            resolve_failures,
            connections_accepted,
            handshake_timeouts,
            handshake_closes,
            dial_failures,
            link_failures,
            links_replaced,
            links_removed,
            unauthenticated_over_cap,
            read_only_over_cap,
            accepts_rate_limited,
            reads_paused,
            admin_connections,
            strangers_linked,
            strangers_refused,
        }
    }

    /// One `(key, value)` pair per counter, keyed by the field name.
    fn pairs(&self) -> Vec<(String, String)> {
        counter_pairs(&[
            ("bad_frames", self.bad_frames),
            ("refused_handshakes", self.refused_handshakes),
            ("auth_failures", self.auth_failures),
            ("link_timeouts", self.link_timeouts),
            ("dropped_frames", self.dropped_frames),
            ("resolve_failures", self.resolve_failures),
            ("connections_accepted", self.connections_accepted),
            ("handshake_timeouts", self.handshake_timeouts),
            ("handshake_closes", self.handshake_closes),
            ("dial_failures", self.dial_failures),
            ("link_failures", self.link_failures),
            ("links_replaced", self.links_replaced),
            ("links_removed", self.links_removed),
            ("unauthenticated_over_cap", self.unauthenticated_over_cap),
            ("read_only_over_cap", self.read_only_over_cap),
            ("accepts_rate_limited", self.accepts_rate_limited),
            ("reads_paused", self.reads_paused),
            ("admin_connections", self.admin_connections),
            ("strangers_linked", self.strangers_linked),
            ("strangers_refused", self.strangers_refused),
        ])
    }
}

/// `(key, value)` string pairs from named counters.
fn counter_pairs(counters: &[(&str, u64)]) -> Vec<(String, String)> {
    counters
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.to_string()))
        .collect()
}

impl From<RaftCounters> for StatusCounters {
    fn from(counters: RaftCounters) -> Self {
        let RaftCounters {
            protocol_errors,
            misdirected_messages,
            elections_started,
            pre_votes_started,
            check_quorum_step_downs,
            votes_ignored_in_lease,
        } = counters;
        StatusCounters {
            protocol_errors,
            misdirected_messages,
            elections_started,
            pre_votes_started,
            check_quorum_step_downs,
            votes_ignored_in_lease,
        }
    }
}

/// A value, or `None`.
fn optional<T: ToString>(value: Option<&T>) -> String {
    value.map_or_else(|| "None".to_owned(), ToString::to_string)
}

/// `<prefix>s_count` and `<prefix>_status_server_<addr>` (2 connected, 0 not) for `peers`.
fn connection_pairs(prefix: &str, peers: &[PeerStatus]) -> Vec<(String, String)> {
    let mut pairs = vec![(format!("{prefix}s_count"), peers.len().to_string())];
    pairs.extend(peers.iter().map(|peer| {
        let code = if peer.connected { "2" } else { "0" };
        (
            format!("{prefix}_status_server_{}", peer.node),
            code.to_owned(),
        )
    }));
    pairs
}

/// `<prefix>_count` and `<prefix>_server_<addr>` for the peers whose index is known.
fn index_pairs<'a>(
    prefix: &str,
    indexes: impl Iterator<Item = (&'a String, Option<u64>)>,
) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = indexes
        .filter_map(|(node, index)| Some((format!("{prefix}_server_{node}"), index?.to_string())))
        .collect();
    pairs.push((format!("{prefix}_count"), pairs.len().to_string()));
    pairs
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{PeerStatus, RaftState, Status, StatusCounters, VERSION};
    use crate::raft::{RaftCounters, RoleKind};

    /// A peer with the given connection state and indexes.
    fn peer(node: &str, connected: bool, next: Option<u64>, matched: Option<u64>) -> PeerStatus {
        PeerStatus {
            node: node.to_owned(),
            connected,
            next_index: next,
            match_index: matched,
        }
    }

    /// A leader of three voters and one read-only node, one voter disconnected.
    fn leader_status() -> Status {
        Status {
            self_node: Some("127.0.0.1:4321".to_owned()),
            state: RaftState::Leader,
            leader: Some("127.0.0.1:4321".to_owned()),
            has_quorum: true,
            partner_nodes: vec![
                peer("127.0.0.1:4322", true, Some(8), Some(7)),
                peer("127.0.0.1:4323", false, Some(3), Some(0)),
            ],
            readonly_nodes: vec![peer("127.0.0.1:5000", true, Some(8), Some(7))],
            log_len: 7,
            last_applied: 6,
            commit_index: 7,
            raft_term: 3,
            leader_commit_index: 7,
            uptime: Duration::from_millis(12_900),
            longest_tick: Duration::from_micros(1_500),
            self_code_version: 2,
            enabled_code_version: 1,
            stalled_at_code_version: None,
            counters: StatusCounters {
                elections_started: 1,
                pre_votes_started: 2,
                ..StatusCounters::default()
            },
            snapshots: super::SnapshotStatus {
                snapshot_index: 4,
                snapshot_bytes: 1234,
                ..super::SnapshotStatus::default()
            },
            journal: super::JournalStatus {
                bytes: 4096,
                entries: 3,
            },
            ..Status::default()
        }
    }

    /// `Display` prints sorted `key: value` lines with PySyncObj's key names, state as its
    /// integer code, uptime in whole seconds, connection as 2/0 and `None` as `None`.
    #[test]
    fn display_is_sorted_and_uses_pysyncobj_keys() {
        let text = leader_status().to_string();
        let lines: Vec<&str> = text.lines().collect();
        let keys: Vec<&str> = lines
            .iter()
            .map(|l| l.rsplit_once(": ").expect("every line is key: value").0)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "{text}");
        let expected = [
            format!("version: {VERSION}"),
            "self: 127.0.0.1:4321".to_owned(),
            "state: 2".to_owned(),
            "role: leader".to_owned(),
            "leader: 127.0.0.1:4321".to_owned(),
            "has_quorum: true".to_owned(),
            "partner_nodes_count: 2".to_owned(),
            "partner_node_status_server_127.0.0.1:4322: 2".to_owned(),
            "partner_node_status_server_127.0.0.1:4323: 0".to_owned(),
            "readonly_nodes_count: 1".to_owned(),
            "readonly_node_status_server_127.0.0.1:5000: 2".to_owned(),
            "log_len: 7".to_owned(),
            "last_applied: 6".to_owned(),
            "commit_idx: 7".to_owned(),
            "raft_term: 3".to_owned(),
            "next_node_idx_count: 3".to_owned(),
            "next_node_idx_server_127.0.0.1:4323: 3".to_owned(),
            "match_idx_count: 3".to_owned(),
            "match_idx_server_127.0.0.1:4322: 7".to_owned(),
            "leader_commit_idx: 7".to_owned(),
            "uptime: 12".to_owned(),
            "longest_tick_us: 1500".to_owned(),
            "self_code_version: 2".to_owned(),
            "enabled_code_version: 1".to_owned(),
            "stalled_at_code_version: None".to_owned(),
            "stalled_on: None".to_owned(),
            "elections_started: 1".to_owned(),
            "pre_votes_started: 2".to_owned(),
            "protocol_errors: 0".to_owned(),
            "snapshot_index: 4".to_owned(),
            "snapshot_bytes: 1234".to_owned(),
            "journal_bytes: 4096".to_owned(),
            "journal_entries: 3".to_owned(),
        ];
        for line in &expected {
            assert!(
                lines.contains(&line.as_str()),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(lines.len(), 69, "{text}");
        assert!(!text.ends_with('\n'));
    }

    /// A fresh follower prints `None` for unknown nodes and no per-peer index keys, and shows a
    /// pre-candidate as PySyncObj's candidate (1).
    #[test]
    fn display_of_a_fresh_pre_candidate() {
        let status = Status {
            state: RaftState::PreCandidate,
            partner_nodes: vec![peer("b:1", false, None, None)],
            stalled_at_code_version: Some(4),
            ..Status::default()
        };
        let text = status.to_string();
        for line in [
            "self: None",
            "leader: None",
            "state: 1",
            "role: pre_candidate",
            "next_node_idx_count: 0",
            "match_idx_count: 0",
            "partner_node_status_server_b:1: 0",
            "stalled_at_code_version: 4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("next_node_idx_server_"), "{text}");
    }

    /// `Status` round-trips through MessagePack, as arrays and as maps.
    #[test]
    fn round_trips_through_messagepack() {
        let status = leader_status();
        let compact = rmp_serde::to_vec(&status).expect("a status serializes");
        let back: Status = rmp_serde::from_slice(&compact).expect("and deserializes");
        assert_eq!(back, status);
        let named = rmp_serde::to_vec_named(&status).expect("a status serializes with names");
        let back: Status = rmp_serde::from_slice(&named).expect("and deserializes");
        assert_eq!(back, status);
    }

    /// `StatusCounters` carries every Raft counter over.
    #[test]
    fn counters_come_from_raft_counters() {
        let raft = RaftCounters {
            protocol_errors: 1,
            misdirected_messages: 2,
            elections_started: 3,
            pre_votes_started: 4,
            check_quorum_step_downs: 5,
            votes_ignored_in_lease: 6,
        };
        let counters = StatusCounters::from(raft);
        let values: Vec<String> = counters.pairs().into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, ["1", "2", "3", "4", "5", "6"]);
    }

    /// Every counter of the transport reaches the status under its own name, with the
    /// messages the driver could not decode added to `bad_frames`.
    #[test]
    fn wire_counters_come_from_the_transport() {
        let stats = syncobj_net::WireStats::default();
        for (i, counter) in [
            &stats.bad_frames,
            &stats.refused_handshakes,
            &stats.auth_failures,
            &stats.link_timeouts,
            &stats.dropped_frames,
            &stats.resolve_failures,
            &stats.connections_accepted,
            &stats.handshake_timeouts,
            &stats.handshake_closes,
            &stats.dial_failures,
            &stats.link_failures,
            &stats.links_replaced,
            &stats.links_removed,
            &stats.unauthenticated_over_cap,
            &stats.read_only_over_cap,
            &stats.accepts_rate_limited,
            &stats.reads_paused,
            &stats.admin_connections,
            &stats.strangers_linked,
            &stats.strangers_refused,
        ]
        .into_iter()
        .enumerate()
        {
            counter.store(i as u64 + 1, std::sync::atomic::Ordering::Relaxed);
        }
        let transport = stats.snapshot();
        assert_eq!(
            transport.named().len(),
            20,
            "a new counter needs a key here"
        );
        let status = Status {
            wire: super::WireCounters::new(transport, 100),
            ..Status::default()
        };
        let pairs = status.key_values();
        for (name, value) in transport.named() {
            let expected = if name == "bad_frames" {
                value + 100
            } else {
                value
            };
            assert!(
                pairs.contains(&(name.to_owned(), expected.to_string())),
                "{name}: {expected} missing from {pairs:?}"
            );
        }
    }

    /// The default status reports this crate's version and a follower that knows nothing.
    #[test]
    fn default_reports_the_crate_version() {
        let status = Status::default();
        assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(status.state, RaftState::Follower);
        assert_eq!(status.uptime, Duration::ZERO);
    }

    /// `RaftState` maps every role and gives PySyncObj's integer codes, with a pre-candidate
    /// shown as a candidate.
    #[test]
    fn raft_state_codes_and_names() {
        let cases = [
            (RoleKind::Follower, RaftState::Follower, 0, "follower"),
            (
                RoleKind::PreCandidate,
                RaftState::PreCandidate,
                1,
                "pre_candidate",
            ),
            (RoleKind::Candidate, RaftState::Candidate, 1, "candidate"),
            (RoleKind::Leader, RaftState::Leader, 2, "leader"),
        ];
        for (role, state, code, name) in cases {
            assert_eq!(RaftState::from(role), state);
            assert_eq!(state.code(), code);
            assert_eq!(state.to_string(), name);
        }
        assert_eq!(RaftState::default(), RaftState::Follower);
    }
}
