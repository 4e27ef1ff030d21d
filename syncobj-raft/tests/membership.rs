//! Membership changes and leadership transfer, driven by hand: each test plays the driver of a
//! small cluster (persists every Ready at once, carries the messages, serves snapshots as empty
//! streams) so it can cut a link or drop a message at an exact step. Each test names the section
//! of Ongaro's thesis ("Consensus: Bridging Theory and Practice") it checks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use syncobj_raft::{
    AppendEntries, ChangeError, ChangeStarted, Entry, EntryKind, Envelope, Instant, LogIndex,
    LogPosition, Membership, MembershipChange, Message, NodeId, PendingChange, ProposeError,
    RaftConfig, RaftEvent, RaftNode, Restored, RoleKind, Term, TransferError, TransferOutcome,
};

/// Virtual time allowed for anything that must happen "soon" on a working network.
const LIMIT: Duration = Duration::from_secs(30);

/// The step of virtual time between two ticks.
const STEP: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

fn id(n: u64) -> NodeId {
    NodeId(n)
}

fn address(n: NodeId) -> String {
    format!("10.0.0.{}:4321", n.0)
}

fn command(i: u64) -> Bytes {
    Bytes::from(format!("command {i}"))
}

fn config(seed: u64) -> RaftConfig {
    RaftConfig {
        seed,
        ..RaftConfig::default()
    }
}

/// A membership of `voters` and `non_voters`, each at its address.
fn members(voters: &[u64], non_voters: &[u64]) -> Membership {
    let with = |ids: &[u64]| -> Vec<(NodeId, String)> {
        ids.iter().map(|&n| (id(n), address(id(n)))).collect()
    };
    Membership::with_addresses(with(voters), with(non_voters))
}

struct Cluster {
    nodes: BTreeMap<NodeId, RaftNode>,
    now: Instant,
    /// Nodes cut off from everyone: what they send and what is sent to them is lost.
    isolated: BTreeSet<NodeId>,
    /// Messages lost while this returns true.
    drop_if: Box<dyn FnMut(&Envelope) -> bool>,
    /// Events every node reported, in order.
    events: Vec<(NodeId, RaftEvent)>,
    /// Every committed entry each node applied, by index (to compare committed logs).
    applied: BTreeMap<NodeId, BTreeMap<LogIndex, (Term, EntryKind)>>,
}

impl Cluster {
    /// A cluster of `voters` and `non_voters`, each started empty with that membership.
    fn new(voters: &[u64], non_voters: &[u64]) -> Cluster {
        Self::with_config(voters, non_voters, config)
    }

    fn with_config(voters: &[u64], non_voters: &[u64], config: fn(u64) -> RaftConfig) -> Cluster {
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            now: Instant::ZERO,
            isolated: BTreeSet::new(),
            drop_if: Box::new(|_| false),
            events: Vec::new(),
            applied: BTreeMap::new(),
        };
        let membership = members(voters, non_voters);
        for &n in voters.iter().chain(non_voters) {
            cluster.start(id(n), membership.clone(), config(n));
        }
        cluster
    }

    /// Starts `n` empty, with `membership` as its starting configuration.
    fn start(&mut self, n: NodeId, membership: Membership, config: RaftConfig) {
        let node = RaftNode::new(n, membership, config, Restored::default(), self.now)
            .expect("a valid node");
        self.nodes.insert(n, node);
        self.applied.insert(n, BTreeMap::new());
    }

    fn node(&self, n: u64) -> &RaftNode {
        self.nodes.get(&id(n)).expect("a node of the test")
    }

    fn node_mut(&mut self, n: u64) -> &mut RaftNode {
        self.nodes.get_mut(&id(n)).expect("a node of the test")
    }

    /// The leader of the highest term, if any.
    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.is_leader())
            .max_by_key(|n| n.term())
            .map(RaftNode::id)
    }

    /// Advances time by `duration` in steps, ticking every node and pumping messages.
    fn advance(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.step_time();
        }
    }

    fn step_time(&mut self) {
        self.now = self.now + STEP;
        let now = self.now;
        for node in self.nodes.values_mut() {
            node.tick(now);
        }
        self.pump();
    }

    /// Advances time until `done` holds, failing after [`LIMIT`].
    fn run_until(&mut self, what: &str, done: impl Fn(&Cluster) -> bool) {
        let limit = self.now + LIMIT;
        while !done(self) {
            assert!(
                self.now < limit,
                "not reached within {LIMIT:?}: {what}\n{}",
                self.describe()
            );
            self.step_time();
        }
    }

    /// One line per node: role, term, vote, last and commit index, voters.
    fn describe(&self) -> String {
        let mut out = String::new();
        for node in self.nodes.values() {
            out += &format!(
                "{}: {:?} {} vote {:?} last {} commit {} voters {:?} isolated {}\n",
                node.id(),
                node.role(),
                node.term(),
                node.vote(),
                node.last_index(),
                node.commit_index(),
                voters(node),
                self.isolated.contains(&node.id()),
            );
        }
        out
    }

    /// Runs until a leader is elected, and returns it.
    fn elect(&mut self) -> NodeId {
        self.run_until("a leader is elected", |c| c.leader().is_some());
        self.leader().expect("elected")
    }

    /// Runs until `leader` has committed an entry of its term (its no-op).
    fn settle(&mut self, leader: NodeId) {
        self.run_until("the leader commits its no-op", |c| {
            let l = &c.nodes[&leader];
            l.entry(l.commit_index())
                .is_some_and(|e| e.term == l.term())
        });
    }

    /// Delivers messages until none is left.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut mail = Vec::new();
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for n in ids {
                mail.extend(self.drain(n));
            }
            if mail.is_empty() {
                return;
            }
            for envelope in mail {
                let cut =
                    self.isolated.contains(&envelope.from) || self.isolated.contains(&envelope.to);
                if cut || (self.drop_if)(&envelope) {
                    continue;
                }
                let now = self.now;
                if let Some(node) = self.nodes.get_mut(&envelope.to) {
                    let _ = node.step(envelope, now);
                }
            }
        }
        panic!("the cluster never settles");
    }

    /// Plays the driver of `n` until it has no work; returns the messages to deliver.
    fn drain(&mut self, n: NodeId) -> Vec<Envelope> {
        let mut mail = Vec::new();
        let now = self.now;
        let node = self.nodes.get_mut(&n).expect("a node");
        while node.has_ready() {
            let ready = node.ready();
            node.on_persisted(ready.ack());
            mail.extend(ready.messages);
            mail.extend(ready.persisted_messages);
            let applied = self.applied.get_mut(&n).expect("a node");
            for entry in &ready.committed_entries {
                applied.insert(entry.index, (entry.term, entry.kind));
            }
            self.events.extend(ready.events.into_iter().map(|e| (n, e)));
            // Snapshots are empty streams: one empty last chunk, installed at once.
            for read in ready.snapshot_reads {
                node.snapshot_chunk(read.to, read.snapshot, 0, Bytes::new(), true, now)
                    .expect("an empty last chunk");
            }
            for chunk in ready.snapshot_chunks.into_iter().filter(|c| c.done) {
                node.snapshot_installed(chunk.snapshot, now)
                    .expect("the node awaits this install");
            }
        }
        mail
    }

    /// Proposes `count` commands on `leader` and delivers what can be.
    fn propose(&mut self, leader: NodeId, count: u64) {
        let now = self.now;
        for i in 0..count {
            self.nodes
                .get_mut(&leader)
                .expect("a node")
                .propose(command(i), now)
                .expect("the leader accepts");
        }
        self.pump();
    }

    fn change(
        &mut self,
        leader: NodeId,
        change: MembershipChange,
    ) -> Result<ChangeStarted, ChangeError> {
        let now = self.now;
        let result = self
            .nodes
            .get_mut(&leader)
            .expect("a node")
            .change_membership(change, now);
        self.pump();
        result
    }

    /// Every node that applied index `i` applied the same entry (State Machine Safety, §5.4.3).
    fn assert_committed_logs_agree(&self) {
        let mut seen: BTreeMap<LogIndex, (NodeId, Term)> = BTreeMap::new();
        for (n, applied) in &self.applied {
            for (index, (term, _)) in applied {
                let first = seen.entry(*index).or_insert((*n, *term));
                assert_eq!(
                    first.1, *term,
                    "{} and {n} applied different entries at {index}",
                    first.0
                );
            }
        }
    }

    /// Whether every node in `nodes` has `membership` in force, committed.
    fn all_have(&self, nodes: &[u64], membership: &Membership) -> bool {
        nodes.iter().all(|&n| {
            let node = self.node(n);
            node.membership() == membership && node.pending_change().is_none()
        })
    }
}

/// The first of `nodes` that is not `leader`.
fn other_than(leader: NodeId, nodes: &[u64]) -> NodeId {
    nodes
        .iter()
        .map(|&n| id(n))
        .find(|&n| n != leader)
        .expect("a node other than the leader")
}

fn voters(node: &RaftNode) -> Vec<u64> {
    node.membership().voters().iter().map(|n| n.0).collect()
}

fn appended(started: ChangeStarted) -> LogPosition {
    match started {
        ChangeStarted::Appended(at) => at,
        ChangeStarted::CatchingUp(_) => panic!("expected an appended change, got {started:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// §4.1 Cluster membership changes, one server at a time; §4.2.1 catching up new servers
// ---------------------------------------------------------------------------------------------

/// Thesis §4.1, §4.2.1: a one-node cluster grows to two. The new node, started empty with the
/// configuration that names it a non-voter, is added as a non-voter first, catches up, and the
/// leader promotes it on its own; both nodes end with the same committed configuration, and
/// with its addresses.
#[test]
fn adds_a_voter_to_a_one_node_cluster() {
    let mut c = Cluster::new(&[1], &[]);
    let leader = c.elect();
    c.settle(leader);
    c.propose(leader, 5);
    c.start(id(2), members(&[1], &[2]), config(2));
    let started = c
        .change(
            leader,
            MembershipChange::AddVoter {
                id: id(2),
                address: address(id(2)),
            },
        )
        .expect("the leader accepts");
    assert!(
        matches!(started, ChangeStarted::CatchingUp(Some(_))),
        "{started:?}"
    );
    let target = members(&[1, 2], &[]);
    c.run_until("both nodes have the new configuration", |c| {
        c.all_have(&[1, 2], &target)
    });
    let promoted = c.events.iter().find_map(|(n, e)| match e {
        RaftEvent::PromotionAppended { id: p, at } if *n == leader && *p == id(2) => Some(*at),
        _ => None,
    });
    let at = promoted.expect("the promotion is reported");
    let entry = c.node(1).entry(at.index).expect("in the log");
    assert_eq!(entry.kind, EntryKind::Membership);
    assert_eq!(Membership::decode(&entry.data), Ok(target.clone()));
    assert_eq!(c.node(2).membership().address(id(1)), Some("10.0.0.1:4321"));
    // Two voters now: the leader alone commits nothing.
    c.isolated.insert(id(2));
    let before = c.node(1).commit_index();
    c.propose(leader, 1);
    assert_eq!(c.node(1).commit_index(), before, "a majority of two is two");
    c.assert_committed_logs_agree();
}

/// Thesis §4.1: a server grants its vote whatever its own configuration says. Here the new
/// node never received the entry promoting it, and the leader that appended it lost its
/// leadership before the entry committed: only the new node's vote can elect it again, and the
/// new node, a non-voter in its own log, must give it. (Found by the simulator with membership
/// changes: seed 1000041 of 3 voters, two voters waiting for each other for ever.)
#[test]
fn a_node_that_missed_its_promotion_still_votes() {
    let mut c = Cluster::new(&[1], &[]);
    let leader = c.elect();
    c.settle(leader);
    c.start(id(2), members(&[1], &[2]), config(2));
    c.drop_if = Box::new(|e| {
        let Message::AppendEntries(append) = &e.message else {
            return false;
        };
        append.entries.iter().any(|entry| {
            entry.kind == EntryKind::Membership
                && Membership::decode(&entry.data).is_ok_and(|m| m.is_voter(id(2)))
        })
    });
    c.change(
        leader,
        MembershipChange::AddVoter {
            id: id(2),
            address: address(id(2)),
        },
    )
    .expect("the leader accepts");
    c.run_until("the leader appends the promotion", |c| {
        voters(c.node(1)) == [1, 2]
    });
    assert_eq!(voters(c.node(2)), [1], "node 2 never hears of it");
    c.isolated.insert(leader);
    c.run_until("the leader steps down", |c| c.leader().is_none());
    c.isolated.clear();
    c.drop_if = Box::new(|_| false);
    c.run_until("node 1 is elected with node 2's vote", |c| {
        c.leader() == Some(leader)
    });
    let target = members(&[1, 2], &[]);
    c.run_until("the promotion commits", |c| c.all_have(&[1, 2], &target));
    c.assert_committed_logs_agree();
}

/// Thesis §4.1: a server accepts appends from a leader outside its configuration. Node 3 is cut
/// off while node 4 joins and takes the lead; once back, node 3 has never heard of its leader,
/// and can learn the configuration naming it only from that leader's appends. (Found by the
/// simulator with membership changes: seed 1000124 of 3 voters, a non-voter that never
/// applied an entry.)
#[test]
fn a_lagging_node_follows_a_leader_it_never_heard_of() {
    let mut c = Cluster::new(&[1, 2, 3], &[]);
    let leader = c.elect();
    c.settle(leader);
    let lagging = other_than(leader, &[1, 2, 3]);
    c.isolated.insert(lagging);
    c.start(id(4), members(&[1, 2, 3], &[4]), config(4));
    c.change(
        leader,
        MembershipChange::AddVoter {
            id: id(4),
            address: address(id(4)),
        },
    )
    .expect("the leader accepts");
    let grown = members(&[1, 2, 3, 4], &[]);
    let others: Vec<u64> = [1, 2, 3, 4]
        .into_iter()
        .filter(|&n| id(n) != lagging)
        .collect();
    c.run_until("node 4 is promoted", |c| c.all_have(&others, &grown));
    let now = c.now;
    c.node_mut(leader.0)
        .transfer_leadership(Some(id(4)), now)
        .expect("the leader hands over");
    c.run_until("node 4 leads", |c| c.leader() == Some(id(4)));
    c.propose(id(4), 3);
    assert_eq!(
        voters(c.node(lagging.0)),
        [1, 2, 3],
        "it knows nothing of 4"
    );
    c.isolated.clear();
    c.run_until("the lagging node catches up", |c| {
        c.all_have(&[1, 2, 3, 4], &grown)
            && c.node(lagging.0).applied_index() == c.node(4).commit_index()
    });
    c.assert_committed_logs_agree();
}

/// Thesis §4.2.2: a leader that removed itself and lost its leadership before the removal
/// committed may campaign again, in the configuration without itself: its log is the most up to
/// date, so no other node can win without its vote, and it never votes for a shorter log. It
/// wins with the other voter's vote, commits the removal and steps down. (Found by the simulator
/// with membership changes: seed 1000128 of 3 voters, no leader for ever.)
#[test]
fn a_leader_that_removed_itself_may_lead_again_until_that_commits() {
    let mut c = Cluster::new(&[1, 2], &[]);
    let leader = c.elect();
    c.settle(leader);
    let other = if leader == id(1) { id(2) } else { id(1) };
    c.drop_if = Box::new(|e| {
        let Message::AppendEntries(append) = &e.message else {
            return false;
        };
        append
            .entries
            .iter()
            .any(|x| x.kind == EntryKind::Membership)
    });
    c.change(leader, MembershipChange::Remove { id: leader })
        .expect("the leader accepts");
    assert_eq!(voters(c.node(leader.0)), [other.0], "in force on append");
    c.isolated.insert(leader);
    c.run_until("the leader steps down", |c| c.leader().is_none());
    c.isolated.clear();
    c.drop_if = Box::new(|_| false);
    let alone = members(&[other.0], &[]);
    c.run_until("the removal commits and the other node leads", |c| {
        c.leader() == Some(other) && c.all_have(&[other.0], &alone)
    });
    assert!(
        c.node(leader.0).membership() == &alone && !c.node(leader.0).is_leader(),
        "the removed node learned its removal and leads no more"
    );
    c.assert_committed_logs_agree();
}

/// Thesis §4.1: a three-node cluster grows to four; afterwards a majority is three of four, so
/// the cluster commits with one node cut off, and every node agrees on the configuration.
#[test]
fn adds_a_voter_to_a_three_node_cluster() {
    let mut c = Cluster::new(&[1, 2, 3], &[]);
    let leader = c.elect();
    c.settle(leader);
    c.propose(leader, 3);
    c.start(id(4), members(&[1, 2, 3], &[4]), config(4));
    c.change(
        leader,
        MembershipChange::AddVoter {
            id: id(4),
            address: address(id(4)),
        },
    )
    .expect("the leader accepts");
    let target = members(&[1, 2, 3, 4], &[]);
    c.run_until("every node has four voters", |c| {
        c.all_have(&[1, 2, 3, 4], &target)
    });
    let other = other_than(leader, &[1, 2, 3, 4]).0;
    c.isolated.insert(id(other));
    let before = c.node(leader.0).commit_index();
    c.propose(leader, 1);
    assert!(c.node(leader.0).commit_index() > before, "3 of 4 commit");
    c.assert_committed_logs_agree();
}

/// Thesis §4.2.1: adding a node that does not answer never costs the quorum. It stays a
/// non-voter (the cluster goes on committing with its three voters), the pending promotion
/// is reported and blocks other changes, and once the node is reachable and within
/// `promotion_lag_entries` of the leader, the leader promotes it by itself.
#[test]
fn a_new_voter_catches_up_before_it_counts() {
    fn small_lag(seed: u64) -> RaftConfig {
        RaftConfig {
            promotion_lag_entries: 2,
            ..config(seed)
        }
    }
    let mut c = Cluster::with_config(&[1, 2, 3], &[], small_lag);
    let leader = c.elect();
    c.settle(leader);
    c.start(id(4), members(&[1, 2, 3], &[4]), small_lag(4));
    c.isolated.insert(id(4));
    let started = c
        .change(
            leader,
            MembershipChange::AddVoter {
                id: id(4),
                address: address(id(4)),
            },
        )
        .expect("the leader accepts");
    let ChangeStarted::CatchingUp(Some(added)) = started else {
        panic!("a new node is caught up first, got {started:?}");
    };
    c.advance(Duration::from_secs(3));
    let l = c.node(leader.0);
    assert!(
        l.commit_index() >= added.index,
        "the non-voter entry commits"
    );
    assert!(l.membership().non_voters().contains(&id(4)));
    assert_eq!(voters(l), [1, 2, 3], "not promoted while unreachable");
    assert!(matches!(
        l.pending_change(),
        Some(PendingChange::CatchingUp { id: n, .. }) if n == id(4)
    ));
    let before = l.commit_index();
    c.propose(leader, 20);
    assert!(
        c.node(leader.0).commit_index() >= before + 20,
        "commits go on without it"
    );
    let refused = c.change(leader, MembershipChange::Remove { id: id(3) });
    assert_eq!(
        refused,
        Err(ChangeError::ChangeInProgress {
            index: added.index,
            promoting: Some(id(4))
        }),
        "one change at a time, the promotion included"
    );
    c.isolated.clear();
    let target = members(&[1, 2, 3, 4], &[]);
    c.run_until("the caught-up node is promoted", |c| {
        c.all_have(&[1, 2, 3, 4], &target)
    });
    let promoted = c.events.iter().any(|(n, e)| {
        *n == leader && matches!(e, RaftEvent::PromotionAppended { id: p, .. } if *p == id(4))
    });
    assert!(promoted);
    c.assert_committed_logs_agree();
}

/// Thesis §4.2.1: removing the non-voter being caught up cancels its promotion, which is
/// reported as abandoned.
#[test]
fn removing_the_node_being_caught_up_cancels_its_promotion() {
    let mut c = Cluster::new(&[1, 2, 3], &[]);
    let leader = c.elect();
    c.settle(leader);
    c.change(
        leader,
        MembershipChange::AddVoter {
            id: id(4),
            address: address(id(4)),
        },
    )
    .expect("accepted");
    c.advance(Duration::from_secs(1));
    let removed = c
        .change(leader, MembershipChange::Remove { id: id(4) })
        .expect("removing the node being caught up is allowed");
    appended(removed);
    let abandoned = c
        .events
        .iter()
        .any(|(_, e)| matches!(e, RaftEvent::PromotionAbandoned { id: p } if *p == id(4)));
    assert!(abandoned);
    c.run_until("back to three voters", |c| {
        c.all_have(&[1, 2, 3], &members(&[1, 2, 3], &[]))
    });
}

/// Thesis §4.1: a follower is removed; the remaining nodes hold the new configuration, the
/// removed one learns it was removed (the leader replicates to it until the change commits)
/// and never campaigns afterwards.
#[test]
fn removes_a_follower() {
    let mut c = Cluster::new(&[1, 2, 3], &[]);
    let leader = c.elect();
    c.settle(leader);
    let gone = other_than(leader, &[1, 2, 3]).0;
    let at = appended(
        c.change(leader, MembershipChange::Remove { id: id(gone) })
            .expect("accepted"),
    );
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|&n| n != gone).collect();
    let target = members(&rest, &[]);
    c.run_until("the others have two voters", |c| c.all_have(&rest, &target));
    assert!(
        c.node(gone).last_index() >= at.index,
        "it learned of its removal"
    );
    assert!(!c.node(gone).membership().contains(id(gone)));
    let campaigns = c.node(gone).counters().pre_votes_started;
    let term = c.node(leader.0).term();
    c.advance(Duration::from_secs(10));
    assert_eq!(c.node(gone).counters().pre_votes_started, campaigns);
    assert_eq!(
        c.node(leader.0).term(),
        term,
        "the leader was never disturbed"
    );
    assert!(c.node(leader.0).is_leader());
    assert!(c.node(leader.0).progress().iter().all(|p| p.0 != id(gone)));
}

// ---------------------------------------------------------------------------------------------
// §4.2.2 Removing the current cluster leader; §4.2.3 disruptive servers
// ---------------------------------------------------------------------------------------------

/// Thesis §4.2.2: a leader removes itself. It goes on leading without counting itself: with one
/// of the two remaining voters cut off the entry does not commit although the leader holds it.
/// Once both acknowledged, it commits and the old leader steps down; one of the others is
/// elected and the removed node never disrupts it (§4.2.3).
#[test]
fn the_leader_removes_itself_and_steps_down_after_commit() {
    let mut c = Cluster::new(&[1, 2, 3], &[]);
    let old = c.elect();
    c.settle(old);
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&n| id(n) != old).collect();
    c.isolated.insert(id(others[1]));
    let at = appended(
        c.change(old, MembershipChange::Remove { id: old })
            .expect("a leader may remove itself"),
    );
    c.advance(Duration::from_millis(300));
    let l = c.node(old.0);
    assert!(l.is_leader(), "it leads until the change commits");
    assert!(!l.membership().contains(old));
    assert!(l.persisted_index() >= at.index && c.node(others[0]).last_index() >= at.index);
    assert!(
        l.commit_index() < at.index,
        "the removed leader does not count itself"
    );
    c.isolated.clear();
    c.run_until("the old leader steps down", |c| !c.node(old.0).is_leader());
    assert!(c.node(old.0).commit_index() >= at.index);
    let new = c.elect();
    assert_ne!(new, old);
    c.settle(new);
    let term = c.node(new.0).term();
    let campaigns = c.node(old.0).counters();
    c.advance(Duration::from_secs(10));
    assert_eq!(
        c.node(new.0).term(),
        term,
        "the removed node never disrupts"
    );
    assert!(c.node(new.0).is_leader());
    let after = c.node(old.0).counters();
    assert_eq!(
        (after.pre_votes_started, after.elections_started),
        (campaigns.pre_votes_started, campaigns.elections_started),
        "a node outside the configuration never campaigns"
    );
    c.propose(new, 1);
    c.assert_committed_logs_agree();
}

/// Thesis §4.2.3: a node removed while cut off never learns of it and campaigns with ever
/// higher terms; the others no longer count it as a member and the leader is never disturbed.
#[test]
fn a_removed_node_that_missed_its_removal_never_disrupts() {
    fn no_pre_vote(seed: u64) -> RaftConfig {
        RaftConfig {
            pre_vote: false,
            ..config(seed)
        }
    }
    let mut c = Cluster::with_config(&[1, 2, 3], &[], no_pre_vote);
    let leader = c.elect();
    c.settle(leader);
    let gone = other_than(leader, &[1, 2, 3]).0;
    c.isolated.insert(id(gone));
    c.change(leader, MembershipChange::Remove { id: id(gone) })
        .expect("accepted");
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|&n| n != gone).collect();
    c.run_until("the removal commits", |c| {
        c.all_have(&rest, &members(&rest, &[]))
    });
    c.advance(Duration::from_secs(5));
    assert!(
        c.node(gone).term() > c.node(leader.0).term(),
        "it campaigned"
    );
    let term = c.node(leader.0).term();
    c.isolated.clear();
    c.advance(Duration::from_secs(10));
    assert_eq!(c.node(leader.0).term(), term);
    assert!(c.node(leader.0).is_leader());
}

/// Thesis §4.2.3: a non-voter that believes it votes (it missed the configuration that made it
/// a non-voter) asks for votes with a higher term. Even without check-quorum, whose lease would
/// hide the request, voters neither grant it nor adopt its term, so the leader is not deposed.
#[test]
fn a_non_voter_asking_for_votes_never_deposes_the_leader() {
    fn plain(seed: u64) -> RaftConfig {
        RaftConfig {
            pre_vote: false,
            check_quorum: false,
            ..config(seed)
        }
    }
    let mut c = Cluster::with_config(&[1, 2, 3], &[], plain);
    let leader = c.elect();
    c.settle(leader);
    // Node 4 starts believing it is a voter, and is cut off before it learns otherwise.
    c.start(id(4), members(&[1, 2, 3, 4], &[]), plain(4));
    c.isolated.insert(id(4));
    c.change(
        leader,
        MembershipChange::AddNonVoter {
            id: id(4),
            address: address(id(4)),
        },
    )
    .expect("accepted");
    c.advance(Duration::from_secs(1));
    let term = c.node(leader.0).term();
    c.advance(Duration::from_secs(3));
    assert!(c.node(4).term() > term, "node 4 campaigned");
    // Its next vote request reaches the voters.
    c.isolated.clear();
    c.drop_if = Box::new(|e| e.from == NodeId(4) && !matches!(e.message, Message::RequestVote(_)));
    c.run_until("node 4 campaigns again", |c| {
        c.node(4).role() == RoleKind::Candidate
    });
    c.pump();
    assert_eq!(c.node(leader.0).term(), term, "no voter adopted its term");
    assert!(c.node(leader.0).is_leader());
}

// ---------------------------------------------------------------------------------------------
// §4.1: one change at a time, and only after the leader committed an entry of its term
// ---------------------------------------------------------------------------------------------

/// Thesis §4.1: while a configuration entry is uncommitted, a second change is refused; once it
/// commits, the next is accepted.
#[test]
fn a_second_change_is_refused_while_one_is_uncommitted() {
    let mut c = Cluster::new(&[1, 2, 3], &[]);
    let leader = c.elect();
    c.settle(leader);
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|&n| id(n) != leader).collect();
    c.isolated.extend(followers.iter().map(|&n| id(n)));
    let first = appended(
        c.change(
            leader,
            MembershipChange::AddNonVoter {
                id: id(4),
                address: address(id(4)),
            },
        )
        .expect("accepted"),
    );
    assert_eq!(
        c.node(leader.0).pending_change(),
        Some(PendingChange::Uncommitted(first.index))
    );
    let second = c.change(leader, MembershipChange::Remove { id: id(4) });
    assert_eq!(
        second,
        Err(ChangeError::ChangeInProgress {
            index: first.index,
            promoting: None
        })
    );
    c.isolated.clear();
    c.run_until("the first change commits", |c| {
        c.node(leader.0).commit_index() >= first.index
    });
    assert_eq!(c.node(leader.0).pending_change(), None);
    c.change(leader, MembershipChange::Remove { id: id(4) })
        .expect("accepted once the first committed");
}

/// The refusals that need no cluster history: not the leader, already a member, not a member,
/// demotion, the last voter, an address too long.
#[test]
fn nonsensical_changes_are_refused() {
    let mut c = Cluster::new(&[1], &[2]);
    let leader = c.elect();
    c.settle(leader);
    let add = |n: u64| MembershipChange::AddVoter {
        id: id(n),
        address: address(id(n)),
    };
    assert_eq!(
        c.change(id(2), add(3)),
        Err(ChangeError::NotLeader {
            leader: Some(leader)
        })
    );
    assert_eq!(
        c.change(leader, add(1)),
        Err(ChangeError::AlreadyMember(id(1)))
    );
    let again = MembershipChange::AddNonVoter {
        id: id(2),
        address: address(id(2)),
    };
    assert_eq!(
        c.change(leader, again),
        Err(ChangeError::AlreadyMember(id(2)))
    );
    let demote = MembershipChange::AddNonVoter {
        id: id(1),
        address: address(id(1)),
    };
    assert_eq!(
        c.change(leader, demote),
        Err(ChangeError::WouldDemote(id(1)))
    );
    assert_eq!(
        c.change(leader, MembershipChange::Remove { id: id(7) }),
        Err(ChangeError::NotMember(id(7)))
    );
    assert_eq!(
        c.change(leader, MembershipChange::Remove { id: id(1) }),
        Err(ChangeError::WouldLeaveNoVoters(id(1)))
    );
    let long = MembershipChange::AddNonVoter {
        id: id(5),
        address: "x".repeat(syncobj_raft::ADDRESS_BYTES_MAX + 1),
    };
    assert_eq!(
        c.change(leader, long),
        Err(ChangeError::AddressTooLong(id(5)))
    );
}

/// Thesis §4.1 and Ongaro's correction on raft-dev (2015, "bug in single-server membership
/// changes"): a leader must commit an entry of its own term before it changes the membership.
///
/// Voters 1–4 and non-voter 5. Leader 1 (term 1) promotes 5; the entry reaches only 5. Node 2
/// is elected in term 2 by 2, 3, 4 and at once tries to remove 1, which with 3 alone would
/// commit in {2, 3, 4}. Then 1 comes back and is elected in term 3 by 1, 4 and 5 of its
/// configuration {1..5}, and commits its own entry at the same index. Without the rule two
/// different entries are committed at one index; with it, node 2's change is refused with
/// `LeaderNotReady`, and the committed logs agree.
#[test]
fn a_change_waits_for_the_leaders_own_term_commit() {
    let mut c = Cluster::new(&[1, 2, 3, 4], &[5]);
    // Node 1 leads term 1: the others hear of no timeout before it.
    c.run_until("node 1 leads", |c| {
        c.leader() == Some(NodeId(1)) || c.leader().is_some()
    });
    let first = c.leader().expect("elected");
    let renumber = |n: u64| -> u64 {
        // Call the first leader "1" whatever its id: swap it with 1.
        if n == first.0 {
            1
        } else if n == 1 {
            first.0
        } else {
            n
        }
    };
    let (s1, s2, s3, s4, s5) = (first.0, renumber(2), renumber(3), renumber(4), 5);
    assert_ne!(s1, 5, "a non-voter never leads");
    c.settle(first);
    c.propose(first, 2);
    c.run_until("every node holds the log", |c| {
        let last = c.node(s1).last_index();
        [s2, s3, s4, s5]
            .iter()
            .all(|&n| c.node(n).commit_index() == last)
    });
    // 1 promotes 5; only 5 hears of it.
    let only_to_5 = move |e: &Envelope| e.from == NodeId(s1) && e.to != NodeId(s5);
    c.drop_if = Box::new(only_to_5);
    let promotion = appended(
        c.change(
            first,
            MembershipChange::AddVoter {
                id: id(s5),
                address: address(id(s5)),
            },
        )
        .expect("5 is caught up"),
    );
    c.pump();
    assert_eq!(c.node(s5).last_index(), promotion.index);
    assert_eq!(c.node(s2).last_index(), promotion.index.prev());
    // 1 and 5 are cut off; 2 (or 3) is elected by 2, 3, 4. Node 4 is slow: it votes, but no
    // append reaches it, so the new leader's no-op does not commit (it needs 3 of 4).
    let slow = NodeId(s4);
    c.drop_if = Box::new(move |e| match e.message {
        Message::AppendEntries(_) => e.to == slow,
        Message::AppendResponse(_) | Message::RequestVote(_) => e.from == slow,
        _ => false,
    });
    c.isolated.extend([id(s1), id(s5)]);
    c.run_until("2 or 3 leads term 2", |c| {
        c.leader().is_some_and(|l| l != NodeId(s1))
    });
    let second = c.leader().expect("elected");
    let other = if second == id(s2) { s3 } else { s2 };
    assert!(
        c.node(s4).vote() == Some(second),
        "4 voted for the new leader"
    );
    let refused = c.change(second, MembershipChange::Remove { id: id(s1) });
    if refused.is_ok() {
        // Without the rule: the removal commits in {2, 3, 4} with 2 and 3 alone.
        c.run_until("the removal commits", |c| {
            c.node(second.0).pending_change().is_none()
        });
    } else {
        assert_eq!(refused, Err(ChangeError::LeaderNotReady));
    }
    // 1 comes back with 4 and 5; 2 and 3 are cut off. 1's configuration is {1..5}.
    c.drop_if = Box::new(|_| false);
    c.isolated = BTreeSet::from([second, id(other)]);
    c.run_until("1, 4 or 5 leads", |c| {
        c.leader()
            .is_some_and(|l| l != second && l != NodeId(other))
    });
    let third = c.leader().expect("elected");
    c.settle(third);
    c.isolated.clear();
    c.advance(Duration::from_secs(5));
    c.assert_committed_logs_agree();
}

// ---------------------------------------------------------------------------------------------
// §4.1: a configuration is in force once appended, and reverts when truncated
// ---------------------------------------------------------------------------------------------

fn entry(index: u64, term: u64, kind: EntryKind, data: Bytes) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        kind,
        data,
    }
}

fn config_entry(index: u64, term: u64, membership: &Membership) -> Entry {
    entry(
        index,
        term,
        EntryKind::Membership,
        Bytes::from(membership.encode()),
    )
}

fn append(from: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>) -> Envelope {
    Envelope {
        from: id(from),
        to: id(2),
        message: Message::AppendEntries(AppendEntries {
            term: Term(term),
            prev_log_index: LogIndex(prev.0),
            prev_log_term: Term(prev.1),
            entries,
            leader_commit: LogIndex::ZERO,
        }),
    }
}

/// Thesis §4.1: a follower uses a configuration as soon as it appends it, uncommitted; when a
/// later leader overwrites that entry, the follower goes back to the previous configuration in
/// its log (here the one given at start).
#[test]
fn a_truncated_configuration_entry_reverts() {
    let start = members(&[1, 2, 3], &[]);
    let mut node = RaftNode::new(
        id(2),
        start.clone(),
        config(2),
        Restored::default(),
        Instant::ZERO,
    )
    .expect("valid");
    let grown = members(&[1, 2, 3], &[4]);
    let noop = entry(1, 1, EntryKind::Noop, Bytes::new());
    node.step(
        append(1, 1, (0, 0), vec![noop, config_entry(2, 1, &grown)]),
        Instant::ZERO,
    )
    .expect("a valid append");
    assert_eq!(node.membership(), &grown, "in force once appended");
    assert_eq!(
        node.pending_change(),
        Some(PendingChange::Uncommitted(LogIndex(2)))
    );
    let replacement = entry(2, 2, EntryKind::Noop, Bytes::new());
    node.step(append(3, 2, (1, 1), vec![replacement]), Instant::ZERO)
        .expect("a valid append from the next leader");
    assert_eq!(
        node.membership(),
        &start,
        "the previous configuration is back"
    );
    assert_eq!(node.pending_change(), None);
    assert_eq!(node.membership_at(LogIndex(2)), Some(&start));
}

/// A configuration entry whose data is not a membership is a protocol violation: refused,
/// nothing appended.
#[test]
fn a_garbled_configuration_entry_is_refused() {
    let start = members(&[1, 2, 3], &[]);
    let mut node = RaftNode::new(
        id(2),
        start.clone(),
        config(2),
        Restored::default(),
        Instant::ZERO,
    )
    .expect("valid");
    let bad = entry(
        1,
        1,
        EntryKind::Membership,
        Bytes::from_static(b"\x01garbage"),
    );
    let refused = node.step(append(1, 1, (0, 0), vec![bad]), Instant::ZERO);
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(node.last_index(), LogIndex::ZERO);
    assert_eq!(node.membership(), &start);
}

// ---------------------------------------------------------------------------------------------
// Restoring: log > snapshot > constructor
// ---------------------------------------------------------------------------------------------

/// The membership in force on a restarted node is the latest configuration entry in its log,
/// else the snapshot's, else the one given to `RaftNode::new` (thesis §4.1, §5.1). Compaction
/// hands the driver the membership at the compaction point.
#[test]
fn restored_membership_precedence() {
    let given = members(&[1, 2, 3], &[]);
    let in_snapshot = members(&[1, 2, 3], &[4]);
    let in_log = members(&[1, 2, 3, 4], &[]);
    let hard_state = |commit| syncobj_raft::HardState {
        term: Term(2),
        vote: None,
        commit: LogIndex(commit),
    };
    let snapshot = Some(LogPosition {
        index: LogIndex(10),
        term: Term(1),
    });
    let restore = |restored: Restored| {
        RaftNode::new(id(1), given.clone(), config(1), restored, Instant::ZERO).expect("valid")
    };
    // Nothing durable names a membership: the given one.
    assert_eq!(restore(Restored::default()).membership(), &given);
    // A snapshot's membership wins over the given one.
    let node = restore(Restored {
        hard_state: hard_state(10),
        entries: vec![entry(11, 2, EntryKind::Noop, Bytes::new())],
        snapshot,
        membership: Some(in_snapshot.clone()),
    });
    assert_eq!(node.membership(), &in_snapshot);
    assert_eq!(node.membership_at(LogIndex(9)), None, "below the base");
    // A configuration entry after the snapshot wins over both.
    let mut node = restore(Restored {
        hard_state: hard_state(12),
        entries: vec![
            entry(11, 2, EntryKind::Noop, Bytes::new()),
            config_entry(12, 2, &in_log),
        ],
        snapshot,
        membership: Some(in_snapshot.clone()),
    });
    assert_eq!(node.membership(), &in_log);
    assert_eq!(node.membership_at(LogIndex(11)), Some(&in_snapshot));
    // Compacting past the entry hands its membership to the driver, and keeps it in force.
    let mut applied = 0;
    while node.has_ready() {
        let ready = node.ready();
        applied += ready.committed_entries.len();
        node.on_persisted(ready.ack());
    }
    assert_eq!(applied, 2);
    assert_eq!(
        node.compact(LogIndex(11)).map(|c| c.membership),
        Ok(in_snapshot.clone())
    );
    assert_eq!(
        node.compact(LogIndex(12)).map(|c| c.membership),
        Ok(in_log.clone())
    );
    assert_eq!(node.membership(), &in_log);
    assert_eq!(node.membership_at(LogIndex(12)), Some(&in_log));
    // A log whose configuration entry is garbled does not restore.
    let garbled = RaftNode::new(
        id(1),
        given.clone(),
        config(1),
        Restored {
            hard_state: hard_state(0),
            entries: vec![entry(1, 1, EntryKind::Membership, Bytes::from_static(b"?"))],
            snapshot: None,
            membership: None,
        },
        Instant::ZERO,
    );
    assert!(garbled.is_err());
}

/// Thesis §5.3 with §4.2.1: a node added after the leader compacted its log receives the
/// snapshot, and with it the configuration at the snapshot's last entry; it then receives the
/// rest of the log and is promoted.
#[test]
fn a_new_node_learns_the_membership_from_the_snapshot() {
    let mut c = Cluster::new(&[1], &[]);
    let leader = c.elect();
    c.settle(leader);
    c.change(
        leader,
        MembershipChange::AddNonVoter {
            id: id(3),
            address: address(id(3)),
        },
    )
    .expect("accepted");
    c.propose(leader, 5);
    let applied = c.node(1).applied_index();
    let at_snapshot = c.node_mut(1).compact(applied).expect("compacts");
    assert_eq!(at_snapshot.membership, members(&[1], &[3]));
    assert_eq!(
        at_snapshot.entries.len() as u64,
        applied.0,
        "the whole applied prefix"
    );
    // Node 2 starts knowing only itself and the leader.
    c.start(id(2), members(&[1], &[2]), config(2));
    c.change(
        leader,
        MembershipChange::AddVoter {
            id: id(2),
            address: address(id(2)),
        },
    )
    .expect("accepted");
    let target = members(&[1, 2], &[3]);
    c.run_until("node 2 is promoted", |c| c.all_have(&[1, 2], &target));
    assert!(
        c.node(2).log_base().index >= applied,
        "it installed the snapshot"
    );
}

// ---------------------------------------------------------------------------------------------
// §3.10 Leadership transfer
// ---------------------------------------------------------------------------------------------

/// Thesis §3.10: the leader hands over to a chosen voter. Meanwhile it refuses proposals and
/// membership changes; the target is elected in the next term although every voter heard from
/// the old leader recently, and the old leader reports success.
#[test]
fn leadership_transfer_to_a_target() {
    let mut c = Cluster::new(&[1, 2, 3], &[]);
    let old = c.elect();
    c.settle(old);
    c.propose(old, 3);
    let to = other_than(old, &[1, 2, 3]);
    // Hold the TimeoutNow back to look at the leader while it hands over.
    c.drop_if = Box::new(|e| matches!(e.message, Message::TimeoutNow(_)));
    let now = c.now;
    let target = c.node_mut(old.0).transfer_leadership(Some(to), now);
    assert_eq!(target, Ok(to));
    assert_eq!(c.node(old.0).transfer_target(), Some(to));
    assert_eq!(
        c.node_mut(old.0).propose(command(9), now),
        Err(ProposeError::TransferInProgress { to })
    );
    assert_eq!(
        c.node_mut(old.0)
            .change_membership(MembershipChange::Remove { id: to }, now),
        Err(ChangeError::TransferInProgress { to })
    );
    assert_eq!(
        c.node_mut(old.0).transfer_leadership(None, now),
        Err(TransferError::InProgress { to })
    );
    // The TimeoutNow goes again at the next heartbeat.
    c.drop_if = Box::new(|_| false);
    let term = c.node(old.0).term();
    c.run_until("the target leads", |c| c.leader() == Some(to));
    assert_eq!(
        c.node(to.0).term(),
        term.next(),
        "one election, no pre-vote"
    );
    assert!(c.events.contains(&(
        old,
        RaftEvent::TransferEnded {
            to,
            outcome: TransferOutcome::Succeeded
        }
    )));
    c.settle(to);
    c.propose(to, 1);
    c.assert_committed_logs_agree();
}

/// Thesis §3.10: with no target named, the leader hands over to the voter whose log is the most
/// up to date.
#[test]
fn leadership_transfer_to_the_most_up_to_date_voter() {
    let mut c = Cluster::new(&[1, 2, 3], &[]);
    let old = c.elect();
    c.settle(old);
    let followers: Vec<NodeId> = [1, 2, 3]
        .into_iter()
        .map(id)
        .filter(|&n| n != old)
        .collect();
    let (behind, ahead) = (followers[0], followers[1]);
    c.isolated.insert(behind);
    c.propose(old, 4);
    c.isolated.clear();
    let now = c.now;
    assert_eq!(c.node_mut(old.0).transfer_leadership(None, now), Ok(ahead));
    c.run_until("the up-to-date voter leads", |c| c.leader() == Some(ahead));
    c.settle(ahead);
    c.assert_committed_logs_agree();
}

/// Thesis §3.10: a transfer to a target that never answers is abandoned after an election
/// timeout; the leader reports it, leads on, and takes proposals again.
#[test]
fn leadership_transfer_times_out() {
    let mut c = Cluster::new(&[1, 2, 3], &[]);
    let old = c.elect();
    c.settle(old);
    let to = other_than(old, &[1, 2, 3]);
    c.isolated.insert(to);
    c.propose(old, 2);
    let now = c.now;
    c.node_mut(old.0)
        .transfer_leadership(Some(to), now)
        .expect("accepted");
    c.run_until("the transfer is abandoned", |c| {
        c.node(old.0).transfer_target().is_none()
    });
    let waited = c.now.saturating_duration_since(now);
    assert!(
        waited >= RaftConfig::default().election_timeout_min,
        "{waited:?}"
    );
    assert!(c.node(old.0).is_leader());
    assert!(c.events.contains(&(
        old,
        RaftEvent::TransferEnded {
            to,
            outcome: TransferOutcome::TimedOut
        }
    )));
    let now = c.now;
    c.node_mut(old.0)
        .propose(command(1), now)
        .expect("proposals are taken again");
}

/// The refusals of a transfer: not the leader, the leader itself, a non-voter, no other voter.
#[test]
fn leadership_transfer_refusals() {
    let mut c = Cluster::new(&[1], &[2]);
    let leader = c.elect();
    c.settle(leader);
    let now = c.now;
    assert_eq!(
        c.node_mut(2).transfer_leadership(Some(leader), now),
        Err(TransferError::NotLeader {
            leader: Some(leader)
        })
    );
    assert_eq!(
        c.node_mut(1).transfer_leadership(Some(id(1)), now),
        Err(TransferError::TargetIsLeader(id(1)))
    );
    assert_eq!(
        c.node_mut(1).transfer_leadership(Some(id(2)), now),
        Err(TransferError::TargetNotVoter(id(2)))
    );
    assert_eq!(
        c.node_mut(1).transfer_leadership(None, now),
        Err(TransferError::NoOtherVoter)
    );
}

// ---------------------------------------------------------------------------------------------
// §4.2.1 An observer (a read-only node) added as a voter keeps what it holds
// ---------------------------------------------------------------------------------------------

/// Thesis §4.2.1, with an observer as the new server: node 4 follows the log as an observer of
/// every voter (its own view names it a non-voter, so it never campaigns), is added with
/// `AddVoter` under the same id, and is promoted without being sent again any entry it held:
/// the leader keeps the observer's progress. Once promoted it stops being an observer (the
/// driver may call `remove_observer` when its read-only link gives way to a member's) and
/// still counts: with one original voter cut off, 3 of 4 commit.
#[test]
fn an_observer_added_as_a_voter_keeps_its_log_and_counts() {
    use std::cell::Cell;
    use std::rc::Rc;

    let mut c = Cluster::new(&[1, 2, 3], &[]);
    let leader = c.elect();
    c.settle(leader);
    c.propose(leader, 20);
    c.start(id(4), members(&[1, 2, 3], &[4]), config(4));
    let now = c.now;
    for n in [1, 2, 3] {
        c.node_mut(n).add_observer(id(4), now);
    }
    c.run_until("the observer holds the leader's log", |c| {
        c.node(4).last_index() == c.node(leader.0).last_index()
            && c.node(4).commit_index() == c.node(leader.0).commit_index()
    });
    assert_eq!(voters(c.node(4)), [1, 2, 3], "an observer never votes");
    let held = c.node(4).last_index();
    // From here on, count what the leader sends node 4 again of what it held.
    let resent = Rc::new(Cell::new(0u64));
    let counter = Rc::clone(&resent);
    c.drop_if = Box::new(move |envelope: &Envelope| {
        if envelope.to == id(4) {
            match &envelope.message {
                Message::AppendEntries(append) => {
                    let again = append.entries.iter().filter(|e| e.index <= held).count();
                    counter.set(counter.get() + again as u64);
                }
                Message::InstallSnapshot(_) => counter.set(counter.get() + 1),
                _ => {}
            }
        }
        false
    });
    c.change(
        leader,
        MembershipChange::AddVoter {
            id: id(4),
            address: address(id(4)),
        },
    )
    .expect("the leader accepts");
    let target = members(&[1, 2, 3, 4], &[]);
    c.run_until("every node has four voters", |c| {
        c.all_have(&[1, 2, 3, 4], &target)
    });
    assert_eq!(resent.get(), 0, "nothing it held is sent again");
    for n in [1, 2, 3] {
        c.node_mut(n).remove_observer(id(4));
        assert!(!c.node(n).observers().contains(&id(4)));
    }
    let other = other_than(leader, &[1, 2, 3]).0;
    c.isolated.insert(id(other));
    let (before, term) = (c.node(leader.0).commit_index(), c.node(leader.0).term());
    c.propose(leader, 1);
    c.run_until("3 of 4 commit, the promoted observer among them", |c| {
        c.node(leader.0).commit_index() > before
    });
    let l = c.node(leader.0);
    assert!(
        l.is_leader() && l.term() == term,
        "the same leader commits, no election needed"
    );
    assert_eq!(
        c.node(4).last_index(),
        c.node(leader.0).last_index(),
        "it is still replicated to"
    );
    c.assert_committed_logs_agree();
}
