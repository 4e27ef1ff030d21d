//! Raft rule tests that drive [`RaftNode`]s by hand, without a simulator: each test plays the
//! driver (persists every Ready, carries the messages, serves and assembles snapshot chunks), so
//! it can hold a write back, lose a chosen message or restart a node empty at an exact step. One
//! or a few per rule of the Raft paper ("In Search of an Understandable Consensus Algorithm",
//! extended version) or of Ongaro's thesis ("Consensus: Bridging Theory and Practice"), each
//! naming the section it checks.
//!
//! The rule tests that run whole clusters in syncobj-core's deterministic simulator, with its
//! invariant checks after every step, are in `syncobj-core/tests/raft_rules.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use syncobj_raft::{
    AppendEntries, AppendOutcome, Entry, EntryKind, Envelope, IncomingChunk, InstallSnapshot,
    Instant, LogIndex, LogPosition, LogReset, Membership, Message, NodeId, ProtocolViolation,
    RaftConfig, RaftNode, Ready, RequestVote, Restored, SnapshotError, SnapshotOutcome,
    SnapshotRead, StepError, Term, VoteKind,
};

/// Virtual time allowed for anything that must happen "soon" on a working network.
const LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn command(i: u64) -> Bytes {
    Bytes::from(format!("command {i}"))
}

fn vote_request(from: NodeId, to: NodeId, term: Term, last: (LogIndex, Term)) -> Envelope {
    Envelope {
        from,
        to,
        message: Message::RequestVote(RequestVote {
            kind: VoteKind::Vote,
            term,
            last_log_index: last.0,
            last_log_term: last.1,
            leadership_transfer: false,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// §5.4 Safety, Figure 2: persist before send
// ---------------------------------------------------------------------------------------------

/// Figure 2 persist-before-send, for a driver that persists a Ready while the node keeps
/// stepping: a vote grant repeated before the first grant's vote is durable must still wait for
/// persistence (it must not be among the messages that may be sent at once).
#[test]
fn repeated_vote_grant_waits_for_outstanding_persist() {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let mut node = RaftNode::new(
        NodeId(3),
        Membership::new(voters, []),
        RaftConfig::default(),
        Restored::default(),
        Instant::ZERO,
    )
    .expect("a valid configuration");
    let ask = vote_request(NodeId(1), NodeId(3), Term(1), (LogIndex::ZERO, Term(0)));
    node.step(ask.clone(), Instant::ZERO)
        .expect("a valid request");
    let first = node.ready();
    assert_eq!(first.hard_state.and_then(|h| h.vote), Some(NodeId(1)));
    assert_eq!(
        first.persisted_messages.len(),
        1,
        "the grant waits for persistence"
    );
    // The driver is still writing `first` when the candidate retries its request.
    node.step(ask, Instant::ZERO + Duration::from_millis(1))
        .expect("a valid request");
    let second = node.ready();
    let early_grant = second
        .messages
        .iter()
        .any(|e| matches!(&e.message, Message::VoteResponse(r) if r.granted));
    assert!(!early_grant, "a grant may leave before its vote is durable");
}

// ---------------------------------------------------------------------------------------------
// Observers (read-only nodes, outside the membership)
// ---------------------------------------------------------------------------------------------

/// A tiny manual network for nodes driven without the simulator: every Ready is persisted at
/// once and its messages delivered, except to the nodes in `cut`.
fn pump(nodes: &mut [RaftNode], cut: &BTreeSet<NodeId>, now: Instant) {
    for _ in 0..50 {
        let mut mail = Vec::new();
        for node in nodes.iter_mut() {
            if !node.has_ready() {
                continue;
            }
            let ready = node.ready();
            node.on_persisted(ready.ack());
            mail.extend(ready.messages);
            mail.extend(ready.persisted_messages);
        }
        if mail.is_empty() {
            return;
        }
        for envelope in mail {
            if cut.contains(&envelope.to) || cut.contains(&envelope.from) {
                continue;
            }
            if let Some(node) = nodes.iter_mut().find(|n| n.id() == envelope.to) {
                let _ = node.step(envelope, now);
            }
        }
    }
}

/// Thesis §4.2.1 (non-voting servers), applied to observers: a read-only node linked to the
/// leader receives the log and the commit index, but its acknowledgements never count toward a
/// majority, and once removed it receives nothing more.
#[test]
fn observers_follow_the_log_and_never_count_toward_a_majority() {
    let (v1, v2, observer) = (NodeId(1), NodeId(2), NodeId(1 << 63 | 7));
    let voters = [v1, v2];
    let config = |seed| RaftConfig {
        seed,
        ..RaftConfig::default()
    };
    let voter = |id, seed| {
        RaftNode::new(
            id,
            Membership::new(voters, []),
            config(seed),
            Restored::default(),
            Instant::ZERO,
        )
        .expect("a valid voter")
    };
    let reader = RaftNode::new(
        observer,
        Membership::new(voters, [observer]),
        config(3),
        Restored::default(),
        Instant::ZERO,
    )
    .expect("a read-only node sees itself as a non-voter");
    let mut nodes = vec![voter(v1, 1), voter(v2, 2), reader];
    let none = BTreeSet::new();
    let mut now = Instant::ZERO;
    while nodes.iter().all(|n| !n.is_leader()) {
        now = now + Duration::from_millis(10);
        assert!(now < Instant::ZERO + LIMIT, "a leader is elected");
        for node in &mut nodes {
            node.tick(now);
        }
        pump(&mut nodes, &none, now);
    }
    assert!(!nodes[2].is_leader(), "an observer never leads");
    let leader = usize::from(!nodes[0].is_leader());
    nodes[leader].add_observer(observer, now);
    nodes[leader]
        .propose(command(1), now)
        .expect("the leader accepts");
    pump(&mut nodes, &none, now);
    let committed = nodes[leader].commit_index();
    assert_eq!(
        nodes[2].commit_index(),
        committed,
        "the observer learns the commit index"
    );
    assert_eq!(nodes[2].last_index(), nodes[leader].last_index());

    // With the other voter cut off, the observer's acknowledgement commits nothing.
    let other = NodeId(u64::try_from(2 - leader).expect("1 or 2"));
    let cut = BTreeSet::from([other]);
    nodes[leader]
        .propose(command(2), now)
        .expect("the leader accepts");
    pump(&mut nodes, &cut, now);
    assert_eq!(
        nodes[2].last_index(),
        nodes[leader].last_index(),
        "replicated"
    );
    assert_eq!(nodes[leader].commit_index(), committed, "but not committed");

    // Removed, the observer hears nothing more.
    nodes[leader].remove_observer(observer);
    assert!(nodes[leader].progress().iter().all(|p| p.0 != observer));
    pump(&mut nodes, &none, now);
    nodes[leader]
        .propose(command(3), now)
        .expect("the leader accepts");
    pump(&mut nodes, &none, now);
    assert!(nodes[2].last_index() < nodes[leader].last_index());
}

/// Raft paper §5.3 on a network that reorders: a heartbeat sent while an append is in flight
/// checks the follower's log at the index the follower is known to match, so it may arrive
/// first (syncobj's transport sends heartbeats ahead of bulk data). The follower accepts it,
/// the leader keeps replicating without sending the entries again, and the commit index still
/// reaches the follower.
#[test]
fn heartbeat_may_overtake_appends_in_flight() {
    let (v1, v2) = (NodeId(1), NodeId(2));
    let voter = |id, seed| {
        let config = RaftConfig {
            seed,
            ..RaftConfig::default()
        };
        RaftNode::new(
            id,
            Membership::new([v1, v2], []),
            config,
            Restored::default(),
            Instant::ZERO,
        )
        .expect("a valid voter")
    };
    let mut nodes = vec![voter(v1, 1), voter(v2, 2)];
    let none = BTreeSet::new();
    let mut now = Instant::ZERO;
    while nodes.iter().all(|n| !n.is_leader()) {
        now = now + Duration::from_millis(10);
        assert!(now < Instant::ZERO + LIMIT, "a leader is elected");
        for node in &mut nodes {
            node.tick(now);
        }
        pump(&mut nodes, &none, now);
    }
    let (leader, follower) = if nodes[0].is_leader() { (0, 1) } else { (1, 0) };
    let at = nodes[leader]
        .propose(command(1), now)
        .expect("the leader accepts");
    let mut sent = Vec::new();
    let held: Vec<Envelope> = drain_persisted(&mut nodes[leader]);
    sent.extend(held.iter().cloned());
    let carries = |e: &Envelope| matches!(&e.message, Message::AppendEntries(a) if a.entries.iter().any(|x| x.index == at.index));
    assert!(held.iter().any(carries), "the append is in flight");

    // The next heartbeat overtakes it.
    let heartbeat = loop {
        now = now + Duration::from_millis(10);
        assert!(now < Instant::ZERO + LIMIT, "a heartbeat is due");
        nodes[leader].tick(now);
        let out = drain_persisted(&mut nodes[leader]);
        sent.extend(out.iter().cloned());
        if let Some(h) = out
            .into_iter()
            .find(|e| matches!(&e.message, Message::AppendEntries(a) if a.entries.is_empty()))
        {
            break h;
        }
    };
    nodes[follower]
        .step(heartbeat, now)
        .expect("a valid heartbeat");
    let answers = drain_persisted(&mut nodes[follower]);
    assert!(
        answers.iter().all(|e| matches!(
            &e.message,
            Message::AppendResponse(r) if matches!(r.outcome, AppendOutcome::Accepted { .. })
        )),
        "the follower accepts the heartbeat: {answers:?}"
    );
    for answer in answers {
        nodes[leader].step(answer, now).expect("a valid answer");
    }
    for envelope in held {
        nodes[follower].step(envelope, now).expect("a valid append");
    }
    let answers = drain_persisted(&mut nodes[follower]);
    for answer in answers {
        nodes[leader].step(answer, now).expect("a valid answer");
    }
    sent.extend(drain_persisted(&mut nodes[leader]));
    assert_eq!(nodes[leader].commit_index(), at.index, "committed");
    assert_eq!(
        sent.iter().filter(|e| carries(e)).count(),
        1,
        "the entry was sent once"
    );
    // The commit index reaches the follower with the next empty append, even though that one
    // checks the log at the match index only.
    pump(&mut nodes, &none, now);
    for _ in 0..20 {
        now = now + Duration::from_millis(10);
        nodes[leader].tick(now);
        pump(&mut nodes, &none, now);
    }
    assert_eq!(nodes[follower].commit_index(), at.index);
}

/// Persists what `node` asks at once and returns every message it sends.
fn drain_persisted(node: &mut RaftNode) -> Vec<Envelope> {
    let mut out = Vec::new();
    while node.has_ready() {
        let ready = node.ready();
        node.on_persisted(ready.ack());
        out.extend(ready.messages);
        out.extend(ready.persisted_messages);
    }
    out
}

/// A follower that restarts with nothing (no journal, or a wiped disk) rejects the leader's
/// appends at the index it once acknowledged; the leader starts over from what the follower
/// has instead of probing that index for ever, and the follower catches up.
#[test]
fn a_follower_restarted_empty_catches_up() {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let fresh = |id: NodeId, seed| {
        let config = RaftConfig {
            seed,
            ..RaftConfig::default()
        };
        RaftNode::new(
            id,
            Membership::new(voters, []),
            config,
            Restored::default(),
            Instant::ZERO,
        )
        .expect("a valid voter")
    };
    let mut nodes: Vec<RaftNode> = voters.iter().map(|&id| fresh(id, id.0)).collect();
    let none = BTreeSet::new();
    let mut now = Instant::ZERO;
    let mut run_until = |nodes: &mut Vec<RaftNode>, done: &dyn Fn(&[RaftNode]) -> bool| {
        while !done(nodes) {
            now = now + Duration::from_millis(10);
            assert!(now < Instant::ZERO + LIMIT, "reached within the limit");
            for node in nodes.iter_mut() {
                node.tick(now);
            }
            pump(nodes, &none, now);
        }
        now
    };
    let now = run_until(&mut nodes, &|n| n.iter().any(RaftNode::is_leader));
    let leader = nodes.iter().position(RaftNode::is_leader).expect("elected");
    for i in 0..5 {
        nodes[leader]
            .propose(command(i), now)
            .expect("the leader accepts");
    }
    pump(&mut nodes, &none, now);
    let follower = (leader + 1) % 3;
    let target = nodes[leader].last_index();
    assert_eq!(nodes[follower].last_index(), target);
    nodes[follower] = fresh(voters[follower], 99);
    run_until(&mut nodes, &|n| n[follower].last_index() == target);
    assert_eq!(nodes[follower].commit_index(), nodes[leader].commit_index());
}

// ---------------------------------------------------------------------------------------------
// §7 Log compaction, thesis §5: snapshots, transferred and installed by hand
// ---------------------------------------------------------------------------------------------

// A hand-driven cluster: node 1 is the only voter and leads alone; node 2 is a non-voting member
// and node 9 an observer (a read-only node outside the membership, linked to the leader). The test plays the driver: it persists every Ready at once,
// keeps each snapshot as bytes, serves reads from them, assembles received chunks and installs.

/// The snapshot "state" of the leader at `index`: 40 bytes that depend on it.
fn state_bytes(index: LogIndex) -> Bytes {
    (0..40u64).map(|i| (index.0 * 7 + i) as u8).collect()
}

/// Node `id` of the hand-driven cluster, empty: 1 and 2 are members, 9 an observer that sees
/// itself as a non-voter.
fn hand_node(id: u64, chunk_bytes: usize, now: Instant) -> RaftNode {
    let mut non_voters = vec![NodeId(2)];
    if id == 9 {
        non_voters.push(NodeId(9));
    }
    let config = RaftConfig {
        seed: id,
        snapshot_chunk_bytes: chunk_bytes,
        ..RaftConfig::default()
    };
    let membership = Membership::new([NodeId(1)], non_voters);
    RaftNode::new(NodeId(id), membership, config, Restored::default(), now).expect("a valid node")
}

struct Hand {
    nodes: Vec<RaftNode>,
    now: Instant,
    /// Every snapshot a node took or installed, as bytes.
    snapshots: Vec<(NodeId, LogPosition, Bytes)>,
    /// Bytes received so far, per node.
    receiving: Vec<(NodeId, LogPosition, Vec<u8>)>,
    /// Messages dropped while this returns true.
    drop_if: Box<dyn FnMut(&Envelope) -> bool>,
    /// Every message sent (dropped ones included).
    sent: Vec<Envelope>,
    /// Every log reset handed out.
    resets: Vec<(NodeId, LogReset)>,
}

impl Hand {
    fn new(chunk_bytes: usize) -> Hand {
        let mut hand = Hand {
            nodes: vec![
                hand_node(1, chunk_bytes, Instant::ZERO),
                hand_node(2, chunk_bytes, Instant::ZERO),
                hand_node(9, chunk_bytes, Instant::ZERO),
            ],
            now: Instant::ZERO,
            snapshots: Vec::new(),
            receiving: Vec::new(),
            drop_if: Box::new(|_| false),
            sent: Vec::new(),
            resets: Vec::new(),
        };
        hand.advance(Duration::from_secs(2));
        assert!(hand.node(NodeId(1)).is_leader(), "the lone voter leads");
        let now = hand.now;
        hand.node_mut(NodeId(1)).add_observer(NodeId(9), now);
        hand
    }

    /// Replaces `id` by a node started afresh with nothing (a restart with its partial snapshot
    /// and everything volatile lost).
    fn restart_empty(&mut self, id: NodeId, chunk_bytes: usize) {
        let fresh = hand_node(id.0, chunk_bytes, self.now);
        *self.node_mut(id) = fresh;
        self.receiving.retain(|(n, _, _)| *n != id);
    }

    fn node(&self, id: NodeId) -> &RaftNode {
        self.nodes
            .iter()
            .find(|n| n.id() == id)
            .expect("a node of the test")
    }

    fn node_mut(&mut self, id: NodeId) -> &mut RaftNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id() == id)
            .expect("a node of the test")
    }

    /// Ticks every node in 10 ms steps for `duration`, pumping messages after each.
    fn advance(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now = self.now + Duration::from_millis(10);
            let now = self.now;
            for node in &mut self.nodes {
                node.tick(now);
            }
            self.pump();
        }
    }

    /// Proposes `n` commands on the leader and commits them.
    fn commit(&mut self, n: u64) {
        let now = self.now;
        for i in 0..n {
            self.node_mut(NodeId(1))
                .propose(command(i), now)
                .expect("the leader accepts");
        }
        self.pump();
    }

    /// The leader snapshots its applied state and compacts.
    fn compact_leader(&mut self) -> LogPosition {
        let leader = self.node_mut(NodeId(1));
        let index = leader.applied_index();
        leader.compact(index).expect("compacts its applied prefix");
        let point = leader.log_base();
        self.snapshots.push((NodeId(1), point, state_bytes(index)));
        point
    }

    /// The snapshot bytes `node` installed last, if any.
    fn installed(&self, node: NodeId) -> Option<(LogPosition, Bytes)> {
        self.snapshots
            .iter()
            .rev()
            .find(|(n, _, _)| *n == node)
            .map(|(_, p, b)| (*p, b.clone()))
    }

    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut mail = Vec::new();
            for i in 0..self.nodes.len() {
                mail.extend(self.drain(i));
            }
            if mail.is_empty() {
                return;
            }
            for envelope in mail {
                self.sent.push(envelope.clone());
                if (self.drop_if)(&envelope) {
                    continue;
                }
                let now = self.now;
                if let Some(node) = self.nodes.iter_mut().find(|n| n.id() == envelope.to) {
                    let _ = node.step(envelope, now);
                }
            }
        }
        panic!("the hand-driven cluster never settles");
    }

    /// Plays the driver for node `i` until it has no work: returns the messages to deliver.
    fn drain(&mut self, i: usize) -> Vec<Envelope> {
        let mut mail = Vec::new();
        while self.nodes[i].has_ready() {
            let ready = self.nodes[i].ready();
            let id = self.nodes[i].id();
            if let Some(reset) = ready.log_reset {
                self.resets.push((id, reset));
            }
            self.nodes[i].on_persisted(ready.ack());
            mail.extend(ready.messages);
            mail.extend(ready.persisted_messages);
            for read in ready.snapshot_reads {
                self.serve(i, read);
            }
            for chunk in ready.snapshot_chunks {
                self.receive(i, chunk);
            }
        }
        mail
    }

    fn serve(&mut self, i: usize, read: SnapshotRead) {
        let id = self.nodes[i].id();
        let Some((_, _, bytes)) = self
            .snapshots
            .iter()
            .find(|(n, p, _)| *n == id && *p == read.snapshot)
        else {
            self.nodes[i].snapshot_unavailable(read.to, read.snapshot);
            return;
        };
        let start = usize::try_from(read.offset)
            .expect("small")
            .min(bytes.len());
        let end = (start + read.len).min(bytes.len());
        let data = bytes.slice(start..end);
        let now = self.now;
        self.nodes[i]
            .snapshot_chunk(
                read.to,
                read.snapshot,
                read.offset,
                data,
                end == bytes.len(),
                now,
            )
            .expect("a chunk of the asked size");
    }

    fn receive(&mut self, i: usize, chunk: IncomingChunk) {
        let id = self.nodes[i].id();
        if chunk.offset == 0 {
            self.receiving.retain(|(n, _, _)| *n != id);
            self.receiving.push((id, chunk.snapshot, Vec::new()));
        }
        let slot = self
            .receiving
            .iter_mut()
            .find(|(n, _, _)| *n == id)
            .expect("chunks start at offset 0");
        assert_eq!(slot.1, chunk.snapshot, "one snapshot at a time");
        assert_eq!(slot.2.len() as u64, chunk.offset, "chunks come in order");
        slot.2.extend_from_slice(&chunk.data);
        if chunk.done {
            let bytes = Bytes::from(std::mem::take(&mut slot.2));
            self.snapshots.push((id, chunk.snapshot, bytes));
            let now = self.now;
            self.nodes[i]
                .snapshot_installed(chunk.snapshot, now)
                .expect("the node awaits this install");
        }
    }

    /// The log resets (installed snapshots) of `node`, in order.
    fn installs(&self, node: NodeId) -> Vec<LogPosition> {
        self.resets
            .iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, r)| r.snapshot)
            .collect()
    }

    /// The InstallSnapshot chunks sent to `to` that carried bytes: (snapshot index, offset).
    fn chunks_to(&self, to: NodeId) -> Vec<(LogIndex, u64)> {
        self.sent
            .iter()
            .filter(|e| e.to == to)
            .filter_map(|e| match &e.message {
                Message::InstallSnapshot(m) if !m.data.is_empty() => Some((m.last_index, m.offset)),
                _ => None,
            })
            .collect()
    }
}

/// §7, and thesis §4.2.1 for non-voting members: a member that was cut off while the leader
/// compacted is sent the snapshot in chunks of `snapshot_chunk_bytes`, installs exactly the
/// leader's bytes, then receives the rest of the log by appends.
#[test]
fn non_voter_catches_up_by_snapshot_in_chunks() {
    let mut hand = Hand::new(8);
    let member = NodeId(2);
    hand.drop_if = Box::new(move |e| e.to == member || e.from == member);
    hand.commit(10);
    let point = hand.compact_leader();
    hand.commit(2);
    hand.drop_if = Box::new(|_| false);
    hand.advance(Duration::from_millis(300));
    assert_eq!(
        hand.installed(member),
        Some((point, state_bytes(point.index)))
    );
    let offsets: Vec<u64> = hand.chunks_to(member).iter().map(|c| c.1).collect();
    assert_eq!(
        offsets,
        [0, 8, 16, 24, 32],
        "five chunks of 8 bytes, in order"
    );
    let follower = hand.node(member);
    assert_eq!(follower.log_base(), point);
    assert_eq!(follower.last_index(), hand.node(NodeId(1)).last_index());
    assert_eq!(follower.commit_index(), hand.node(NodeId(1)).commit_index());
}

/// §7 (thesis §5.3): a lost chunk is sent again at the next heartbeat from the same offset,
/// not from the start; after the member restarts mid-transfer (its partial copy is volatile) it
/// asks for offset 0 and the transfer starts over; either way the bytes installed are exactly the
/// snapshot's.
#[test]
fn snapshot_transfer_resumes_after_a_lost_chunk_and_restarts_after_a_crash() {
    let mut hand = Hand::new(8);
    let member = NodeId(2);
    hand.drop_if = Box::new(move |e| e.to == member || e.from == member);
    hand.commit(10);
    let point = hand.compact_leader();
    // Lose the third chunk once.
    let mut lost = false;
    hand.drop_if = Box::new(move |e| match &e.message {
        Message::InstallSnapshot(m) if m.offset == 16 && !lost => {
            lost = true;
            true
        }
        _ => false,
    });
    hand.advance(Duration::from_millis(500));
    assert_eq!(
        hand.installed(member),
        Some((point, state_bytes(point.index)))
    );
    let offsets: Vec<u64> = hand.chunks_to(member).iter().map(|c| c.1).collect();
    assert_eq!(
        offsets,
        [0, 8, 16, 16, 24, 32],
        "the lost chunk again, then on"
    );

    // A second member, 9, restarts after two chunks: the transfer starts over from 0.
    let observer = NodeId(9);
    let mut hand = Hand::new(8);
    hand.drop_if = Box::new(move |e| e.to == observer || e.from == observer);
    hand.commit(10);
    let point = hand.compact_leader();
    let mut seen = 0;
    hand.drop_if = Box::new(move |e| match &e.message {
        Message::InstallSnapshot(m) if e.to == observer && !m.data.is_empty() => {
            seen += 1;
            seen == 3
        }
        _ => false,
    });
    // Restarted as soon as the third chunk was sent (and lost), before it goes again.
    while hand.chunks_to(observer).len() < 3 {
        hand.advance(Duration::from_millis(10));
    }
    hand.restart_empty(observer, 8);
    hand.advance(Duration::from_millis(500));
    assert_eq!(
        hand.installed(observer),
        Some((point, state_bytes(point.index)))
    );
    let offsets: Vec<u64> = hand.chunks_to(observer).iter().map(|c| c.1).collect();
    assert_eq!(offsets[..3], [0, 8, 16], "two chunks, the third lost");
    let restart = 1 + offsets[1..]
        .iter()
        .position(|&o| o == 0)
        .expect("the transfer starts over");
    assert!(
        offsets[3..restart].iter().all(|&o| o == 16),
        "before the restart only the lost chunk goes again: {offsets:?}"
    );
    assert_eq!(
        offsets[restart..],
        [0, 8, 16, 24, 32],
        "then from the start"
    );
    assert_eq!(hand.node(observer).log_base(), point);
}

/// §7: a leader that compacts again during a transfer finishes the transfer with the snapshot
/// it started with (the driver keeps serving it), then sends the newer snapshot, and the member
/// ends with the leader's log; a transfer not yet started switches to the newer snapshot at
/// once.
#[test]
fn leader_compacting_mid_transfer_finishes_then_sends_the_newer_snapshot() {
    let mut hand = Hand::new(8);
    let member = NodeId(2);
    hand.drop_if = Box::new(move |e| e.to == member || e.from == member);
    hand.commit(10);
    let first = hand.compact_leader();
    // Let two chunks go, then compact again.
    hand.drop_if = Box::new(move |e| {
        e.to == member && matches!(&e.message, Message::InstallSnapshot(m) if m.offset >= 16)
    });
    hand.advance(Duration::from_millis(150));
    assert_eq!(
        hand.chunks_to(member)[..2],
        [(first.index, 0), (first.index, 8)]
    );
    hand.commit(5);
    let second = hand.compact_leader();
    assert!(second.index > first.index);
    hand.drop_if = Box::new(|_| false);
    hand.advance(Duration::from_millis(600));
    let snapshots: Vec<LogIndex> = hand.chunks_to(member).iter().map(|c| c.0).collect();
    let switch = snapshots
        .iter()
        .position(|&i| i == second.index)
        .expect("the newer one was sent");
    assert!(snapshots[..switch].iter().all(|&i| i == first.index));
    assert!(snapshots[switch..].iter().all(|&i| i == second.index));
    assert_eq!(hand.installs(member), [first, second]);
    assert_eq!(
        hand.node(member).last_index(),
        hand.node(NodeId(1)).last_index()
    );

    // Compacting before the first chunk is confirmed: the newer snapshot goes instead.
    let mut hand = Hand::new(8);
    hand.drop_if = Box::new(move |e| e.to == member || e.from == member);
    hand.commit(10);
    hand.compact_leader();
    // The first chunk goes, its confirmation is lost: nothing of the transfer is confirmed.
    hand.drop_if = Box::new(move |e| {
        e.from == member && matches!(e.message, Message::InstallSnapshotResponse(_))
    });
    hand.advance(Duration::from_millis(150));
    assert!(!hand.chunks_to(member).is_empty(), "the transfer began");
    hand.commit(5);
    let newer = hand.compact_leader();
    hand.drop_if = Box::new(|_| false);
    hand.advance(Duration::from_millis(600));
    assert_eq!(hand.installs(member), [newer]);
}

/// Thesis §4.2.1 applied to observers (read-only nodes outside the membership): an observer
/// linked after the leader compacted catches up by snapshot, then follows the log by appends.
#[test]
fn observer_catches_up_by_snapshot() {
    let observer = NodeId(9);
    let mut hand = Hand::new(16);
    hand.node_mut(NodeId(1)).remove_observer(observer);
    hand.commit(10);
    let point = hand.compact_leader();
    assert!(hand.node(observer).last_index() < point.index);
    let now = hand.now;
    hand.node_mut(NodeId(1)).add_observer(observer, now);
    hand.advance(Duration::from_millis(300));
    assert_eq!(
        hand.installed(observer),
        Some((point, state_bytes(point.index)))
    );
    assert_eq!(hand.installs(observer), [point]);
    hand.commit(3);
    assert_eq!(
        hand.node(observer).last_index(),
        hand.node(NodeId(1)).last_index()
    );
    assert_eq!(
        hand.node(observer).commit_index(),
        hand.node(NodeId(1)).commit_index()
    );
}

/// A follower (node 2 of 1, 2, 3) holding entries 1..=`last` of `term`, none committed, as
/// appended by leader 1 in `term`.
fn follower_with_log(last: u64, term: Term) -> RaftNode {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let config = RaftConfig {
        seed: 2,
        ..RaftConfig::default()
    };
    let mut node = RaftNode::new(
        NodeId(2),
        Membership::new(voters, []),
        config,
        Restored::default(),
        Instant::ZERO,
    )
    .expect("a valid follower");
    let entries = (1..=last)
        .map(|i| Entry {
            index: LogIndex(i),
            term,
            kind: EntryKind::Command,
            data: command(i),
        })
        .collect();
    let append = AppendEntries {
        term,
        prev_log_index: LogIndex::ZERO,
        prev_log_term: Term(0),
        entries,
        leader_commit: LogIndex::ZERO,
    };
    node.step(from_leader(Message::AppendEntries(append)), Instant::ZERO)
        .expect("a valid append");
    let ready = node.ready();
    node.on_persisted(ready.ack());
    node
}

fn from_leader(message: Message) -> Envelope {
    Envelope {
        from: NodeId(1),
        to: NodeId(2),
        message,
    }
}

/// §5.3, the answer to an append: an empty append that only moves a follower's commit index,
/// at a match it already answered in this term (the leader's commit broadcast), goes
/// unanswered; the next heartbeat, which moves nothing, is answered, and so is an empty append
/// at a match not answered yet.
#[test]
fn a_commit_broadcast_goes_unanswered() {
    let term = Term(1);
    let mut node = follower_with_log(3, term);
    let empty = |prev: u64, commit: u64| {
        from_leader(Message::AppendEntries(AppendEntries {
            term,
            prev_log_index: LogIndex(prev),
            prev_log_term: term,
            entries: Vec::new(),
            leader_commit: LogIndex(commit),
        }))
    };
    let answers = |node: &mut RaftNode| drain_persisted(node).len();
    node.step(empty(3, 2), Instant::ZERO)
        .expect("a valid append");
    assert_eq!(node.commit_index(), LogIndex(2));
    assert_eq!(
        answers(&mut node),
        0,
        "the commit broadcast is not answered"
    );
    node.step(empty(3, 2), Instant::ZERO)
        .expect("a valid append");
    assert_eq!(answers(&mut node), 1, "a heartbeat is answered");

    // A follower that never answered at the append's match answers, commit or not.
    let mut fresh = follower_with_log(3, term);
    let _ = drain_persisted(&mut fresh);
    fresh
        .step(
            from_leader(Message::AppendEntries(AppendEntries {
                term: Term(2),
                prev_log_index: LogIndex(3),
                prev_log_term: term,
                entries: Vec::new(),
                leader_commit: LogIndex(1),
            })),
            Instant::ZERO,
        )
        .expect("a valid append");
    assert_eq!(fresh.commit_index(), LogIndex(1));
    assert_eq!(
        answers(&mut fresh),
        1,
        "a new term's first append is answered"
    );
}

/// A one-chunk snapshot covering up to `at`, from leader 1 in `term`.
fn whole_snapshot(term: Term, at: LogPosition) -> Envelope {
    from_leader(Message::InstallSnapshot(InstallSnapshot {
        term,
        last_index: at.index,
        last_term: at.term,
        offset: 0,
        data: Bytes::from_static(b"state"),
        done: true,
        membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)], []),
    }))
}

/// The snapshot outcomes `ready` answers with, now or after persisting.
fn snapshot_answers(ready: &Ready) -> Vec<SnapshotOutcome> {
    ready
        .messages
        .iter()
        .chain(&ready.persisted_messages)
        .filter_map(|e| match &e.message {
            Message::InstallSnapshotResponse(r) => Some(r.outcome),
            _ => None,
        })
        .collect()
}

/// §7, chunked transfer: a chunk beyond what the follower holds means the follower lost what
/// the leader counts as received (it restarted, and a delayed first chunk then started a new
/// copy). It drops its partial copy and asks for the transfer from the start; answering with
/// what it holds would never be heard, since a leader takes a lower offset for a stale answer.
/// (Found by the simulator: seed 337 of 5 voters, the same chunk sent for ever.)
#[test]
fn a_chunk_beyond_the_partial_copy_restarts_the_transfer() {
    let mut node = follower_with_log(0, Term(1));
    let at = LogPosition {
        index: LogIndex(10),
        term: Term(1),
    };
    let chunk = |offset: u64| {
        from_leader(Message::InstallSnapshot(InstallSnapshot {
            term: Term(1),
            last_index: at.index,
            last_term: at.term,
            offset,
            data: Bytes::from_static(b"part"),
            done: false,
            membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)], []),
        }))
    };
    let now = Instant::ZERO;
    node.step(chunk(0), now).expect("a valid chunk");
    let ready = node.ready();
    assert_eq!(
        snapshot_answers(&ready),
        [SnapshotOutcome::Continue { next_offset: 4 }]
    );
    node.on_persisted(ready.ack());
    node.step(chunk(4096), now).expect("a valid chunk");
    let ready = node.ready();
    assert_eq!(
        snapshot_answers(&ready),
        [SnapshotOutcome::Continue { next_offset: 0 }],
        "the transfer starts over"
    );
    node.on_persisted(ready.ack());
    node.step(chunk(0), now).expect("a valid chunk");
    let ready = node.ready();
    assert_eq!(
        snapshot_answers(&ready),
        [SnapshotOutcome::Continue { next_offset: 4 }]
    );
    assert_eq!(
        ready.snapshot_chunks.len(),
        1,
        "the first chunk is taken again"
    );
    assert_eq!(ready.snapshot_chunks[0].offset, 0);
}

/// §7 (Figure 13, receiver step 6): a follower whose log holds an entry matching the snapshot's
/// last one keeps the entries after it; committed and applied index move to the snapshot; the
/// journal is told to drop only the prefix; the leader hears `Installed` only after persisting.
#[test]
fn install_keeps_a_matching_suffix() {
    let mut node = follower_with_log(20, Term(1));
    let at = LogPosition {
        index: LogIndex(10),
        term: Term(1),
    };
    node.step(whole_snapshot(Term(1), at), Instant::ZERO)
        .expect("a valid chunk");
    let ready = node.ready();
    assert_eq!(ready.snapshot_chunks.len(), 1);
    assert!(ready.snapshot_chunks[0].done);
    assert_eq!(
        snapshot_answers(&ready),
        [SnapshotOutcome::Continue { next_offset: 5 }]
    );
    node.on_persisted(ready.ack());
    node.snapshot_installed(at, Instant::ZERO)
        .expect("awaiting this install");
    let ready = node.ready();
    assert_eq!(
        ready.log_reset.map(|r| (r.snapshot, r.suffix_kept)),
        Some((at, true))
    );
    assert!(ready.committed_entries.is_empty());
    assert!(
        ready
            .messages
            .iter()
            .all(|e| !matches!(e.message, Message::InstallSnapshotResponse(_)))
    );
    assert_eq!(snapshot_answers(&ready), [SnapshotOutcome::Installed]);
    assert_eq!(ready.hard_state.map(|h| h.commit), Some(LogIndex(10)));
    assert_eq!(node.log_base(), at);
    assert_eq!(node.last_index(), LogIndex(20));
    assert_eq!(node.log_len(), 10);
    assert_eq!(
        (node.commit_index(), node.applied_index()),
        (LogIndex(10), LogIndex(10))
    );
    assert!(node.entry(LogIndex(10)).is_none() && node.entry(LogIndex(11)).is_some());
    assert_eq!(
        node.snapshot_installed(at, Instant::ZERO),
        Err(SnapshotError::NotAwaitingInstall(at)),
        "an install is reported once"
    );
}

/// §7 (Figure 13, receiver step 7): a snapshot whose last entry conflicts with the follower's
/// log makes the follower discard its whole log.
#[test]
fn install_discards_a_conflicting_log() {
    let mut node = follower_with_log(20, Term(1));
    let at = LogPosition {
        index: LogIndex(10),
        term: Term(2),
    };
    node.step(whole_snapshot(Term(2), at), Instant::ZERO)
        .expect("a valid chunk");
    let ready = node.ready();
    node.on_persisted(ready.ack());
    node.snapshot_installed(at, Instant::ZERO)
        .expect("awaiting this install");
    let ready = node.ready();
    assert_eq!(ready.log_reset.map(|r| r.suffix_kept), Some(false));
    assert_eq!((node.last_index(), node.log_len()), (LogIndex(10), 0));
}

/// §7: a snapshot that does not go past the follower's commit index is refused as stale and
/// nothing is handed to the driver; no complete snapshot, no install.
#[test]
fn stale_snapshot_is_refused() {
    let mut node = follower_with_log(20, Term(1));
    let commit = AppendEntries {
        term: Term(1),
        prev_log_index: LogIndex(20),
        prev_log_term: Term(1),
        entries: Vec::new(),
        leader_commit: LogIndex(12),
    };
    node.step(from_leader(Message::AppendEntries(commit)), Instant::ZERO)
        .expect("a heartbeat");
    let ready = node.ready();
    node.on_persisted(ready.ack());
    assert_eq!(node.commit_index(), LogIndex(12));
    for index in [10, 12] {
        let at = LogPosition {
            index: LogIndex(index),
            term: Term(1),
        };
        node.step(whole_snapshot(Term(1), at), Instant::ZERO)
            .expect("a valid chunk");
        let ready = node.ready();
        assert!(ready.snapshot_chunks.is_empty(), "nothing to install");
        assert_eq!(
            snapshot_answers(&ready),
            [SnapshotOutcome::Stale {
                committed: LogIndex(12)
            }]
        );
        node.on_persisted(ready.ack());
        assert_eq!(
            node.snapshot_installed(at, Instant::ZERO),
            Err(SnapshotError::NotAwaitingInstall(at))
        );
    }
    assert_eq!(
        (node.log_base(), node.last_index()),
        (LogPosition::ZERO, LogIndex(20))
    );
}

/// §7 and §5.1: a snapshot chunk from a stale term is answered with the current term (so the
/// stale leader steps down) and handed to no one; one claiming an entry of a later term than
/// its leader's is a protocol violation.
#[test]
fn snapshot_chunks_obey_the_term_rules() {
    let mut node = follower_with_log(3, Term(2));
    let at = LogPosition {
        index: LogIndex(10),
        term: Term(1),
    };
    node.step(whole_snapshot(Term(1), at), Instant::ZERO)
        .expect("answered, not refused");
    let ready = node.ready();
    assert!(ready.snapshot_chunks.is_empty());
    let answer = ready.messages.iter().find_map(|e| match &e.message {
        Message::InstallSnapshotResponse(r) => Some(r.term),
        _ => None,
    });
    assert_eq!(answer, Some(Term(2)));
    let future = LogPosition {
        index: LogIndex(10),
        term: Term(3),
    };
    let refused = node.step(whole_snapshot(Term(2), future), Instant::ZERO);
    assert!(matches!(
        refused,
        Err(StepError::Protocol {
            violation: ProtocolViolation::SnapshotFromTheFuture { .. },
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------------
// The driver pauses applying (a snapshot being serialized)
// ---------------------------------------------------------------------------------------------

/// While the driver pauses applying, a single-node leader still persists and commits what it
/// is given, but hands out no entry to apply and the applied index stays; once resumed, every
/// entry committed meanwhile comes, in order.
#[test]
fn paused_applying_commits_and_hands_out_later() {
    let me = NodeId(1);
    let mut node = RaftNode::new(
        me,
        Membership::new([me], []),
        RaftConfig::default(),
        Restored::default(),
        Instant::ZERO,
    )
    .expect("a valid node");
    let drive = |node: &mut RaftNode| {
        let mut applied = Vec::new();
        while node.has_ready() {
            let ready = node.ready();
            node.on_persisted(ready.ack());
            applied.extend(ready.committed_entries);
        }
        applied
    };
    let mut now = Instant::ZERO;
    while !node.is_leader() {
        now = node.next_deadline().expect("a voter has a timer");
        node.tick(now);
        drive(&mut node);
    }
    let applied_before = node.applied_index();
    node.pause_applying(true);
    let proposed: Vec<LogIndex> = (0..3)
        .map(|i| {
            node.propose(command(i), now)
                .expect("a leader proposes")
                .index
        })
        .collect();
    assert!(
        drive(&mut node).is_empty(),
        "nothing is handed out while paused"
    );
    assert_eq!(node.commit_index(), proposed[2], "commitment goes on");
    assert_eq!(node.applied_index(), applied_before);
    node.pause_applying(false);
    let applied: Vec<LogIndex> = drive(&mut node).iter().map(|e| e.index).collect();
    assert_eq!(applied, proposed);
    assert_eq!(node.applied_index(), proposed[2]);
}

/// A leader that inherited a long uncommitted tail (a restart recovered an old commit index)
/// takes proposals at once: `uncommitted_entries_max` bounds its own entries, and the tail
/// commits with them.
#[test]
fn an_inherited_uncommitted_tail_does_not_refuse_proposals() {
    let max = 16;
    let config = RaftConfig {
        uncommitted_entries_max: max,
        seed: 5,
        ..RaftConfig::default()
    };
    let entries: Vec<Entry> = (1..=3 * max)
        .map(|i| Entry {
            index: syncobj_raft::LogIndex(i),
            term: Term(1),
            kind: EntryKind::Command,
            data: Bytes::from_static(b"x"),
        })
        .collect();
    let restored = Restored {
        hard_state: syncobj_raft::HardState {
            term: Term(1),
            vote: Some(NodeId(1)),
            commit: syncobj_raft::LogIndex::ZERO,
        },
        entries,
        ..Restored::default()
    };
    let mut node = RaftNode::new(
        NodeId(1),
        Membership::new([NodeId(1)], []),
        config,
        restored,
        Instant::ZERO,
    )
    .expect("a valid voter");
    let mut now = Instant::ZERO;
    while !node.is_leader() {
        now = node.next_deadline().expect("an election timer");
        node.tick(now);
        if node.is_leader() {
            break;
        }
        let ready = node.ready();
        node.on_persisted(ready.ack);
    }
    assert!(
        node.commit_index() < LogIndex(3 * max),
        "the inherited tail is not committed yet"
    );
    for i in 0..max - 1 {
        let proposed = node.propose(Bytes::from_static(b"y"), now);
        assert!(proposed.is_ok(), "proposal {i}: {proposed:?}");
    }
    assert!(
        node.propose(Bytes::from_static(b"y"), now).is_err(),
        "its own entries stay bounded"
    );
    let ready = node.ready();
    node.on_persisted(ready.ack);
    assert_eq!(
        node.commit_index(),
        node.last_index(),
        "the tail commits with them"
    );
}
