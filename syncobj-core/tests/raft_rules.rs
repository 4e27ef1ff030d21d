//! Raft rule tests: one or a few per rule of the Raft paper ("In Search of an Understandable
//! Consensus Algorithm", extended version) or of Ongaro's thesis ("Consensus: Bridging Theory and
//! Practice"), each named after the section it checks.
//!
//! Every test drives the real Raft core through the deterministic simulator in virtual time: no
//! sleeping, no wall clock. The simulator checks election safety, log matching, leader
//! completeness, state machine safety and persist-before-send after every step, so every
//! `expect("... no invariant breaks")` below is also an assertion.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use syncobj_core::raft::{
    AppendEntries, AppendOutcome, AppendResponse, Entry, EntryKind, Envelope, IncomingChunk,
    InstallSnapshot, Instant, LogIndex, LogPosition, LogReset, Membership, Message, NodeId,
    ProtocolViolation, RaftConfig, RaftNode, Ready, RequestVote, Restored, RoleKind, SnapshotError,
    SnapshotOutcome, SnapshotRead, StepError, Term, VoteKind,
};
use syncobj_core::sim::{
    CallOutcome, Cluster, ClusterConfig, NetConfig, SeedFailure, SimConfig, TraceEvent, Violation,
    run_seed,
};

/// Virtual time allowed for anything that must happen "soon" on a working network.
const LIMIT: Duration = Duration::from_secs(20);

/// What a cluster reported through its trace, in order.
type Events = Rc<RefCell<Vec<(Instant, TraceEvent)>>>;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn new_cluster(voters: usize, seed: u64) -> Cluster {
    Cluster::new(ClusterConfig::new(voters, seed))
}

fn command(i: u64) -> Bytes {
    Bytes::from(format!("command {i}"))
}

/// Records every trace event of `c`; with `messages`, every delivered message too.
fn record(c: &mut Cluster, messages: bool) -> Events {
    let events = Events::default();
    let sink = Rc::clone(&events);
    c.set_trace(
        move |at, event| sink.borrow_mut().push((at, event.clone())),
        messages,
    );
    events
}

/// The messages delivered so far (needs a trace recorded with `messages`).
fn delivered(events: &Events) -> Vec<Envelope> {
    events
        .borrow()
        .iter()
        .filter_map(|(_, event)| match event {
            TraceEvent::Delivered { envelope } => Some(envelope.clone()),
            _ => None,
        })
        .collect()
}

/// The (to, granted, term) of every vote response `from` sent that was delivered.
fn vote_answers(events: &Events, from: NodeId, kind: VoteKind) -> Vec<(NodeId, bool, Term)> {
    delivered(events)
        .into_iter()
        .filter(|e| e.from == from)
        .filter_map(|e| match e.message {
            Message::VoteResponse(r) if r.kind == kind => Some((e.to, r.granted, r.term)),
            _ => None,
        })
        .collect()
}

/// Whether `node` ever became leader while the trace was recorded.
fn ever_led(events: &Events, node: NodeId) -> bool {
    events.borrow().iter().any(|(_, e)| {
        matches!(e, TraceEvent::RoleChanged { node: n, role: RoleKind::Leader, .. } if *n == node)
    })
}

fn run(c: &mut Cluster, duration: Duration) {
    c.run_for(duration)
        .expect("the simulator finds no invariant broken");
}

/// Runs until `done` holds, failing the test if it does not within [`LIMIT`].
fn run_until(c: &mut Cluster, what: &str, done: impl FnMut(&Cluster) -> bool) {
    let held = c
        .run_until_true(LIMIT, done)
        .expect("the simulator finds no invariant broken");
    assert!(held, "{what}: not reached within {LIMIT:?} of virtual time");
}

fn raft(c: &Cluster, node: NodeId) -> &RaftNode {
    c.node(node).expect("the node under test is running")
}

fn running_ids(c: &Cluster) -> Vec<NodeId> {
    c.running().map(RaftNode::id).collect()
}

fn others(c: &Cluster, excluded: &[NodeId]) -> Vec<NodeId> {
    c.node_ids()
        .into_iter()
        .filter(|n| !excluded.contains(n))
        .collect()
}

/// The leader every node of `nodes` (which must include it) follows in the leader's term.
fn agreed_leader(c: &Cluster, nodes: &[NodeId]) -> Option<NodeId> {
    let leader = c.node(*nodes.first()?)?.leader()?;
    let term = c.node(leader)?.term();
    let agreed = nodes.contains(&leader)
        && nodes.iter().all(|&n| {
            c.node(n)
                .is_some_and(|r| r.term() == term && r.leader() == Some(leader))
        });
    agreed.then_some(leader)
}

/// Runs until `nodes` agree on a leader among them, and returns it.
fn elect_among(c: &mut Cluster, nodes: &[NodeId]) -> NodeId {
    run_until(c, "a leader every node agrees on", |c| {
        agreed_leader(c, nodes).is_some()
    });
    agreed_leader(c, nodes).expect("the nodes just agreed on a leader")
}

/// Runs until every running node follows one leader, and returns it.
fn elect(c: &mut Cluster) -> NodeId {
    let nodes = running_ids(c);
    elect_among(c, &nodes)
}

/// Proposes `n` commands on `leader` and runs until the leader has applied every one.
fn commit_on(c: &mut Cluster, leader: NodeId, n: u64) -> Vec<LogPosition> {
    let positions: Vec<LogPosition> = (0..n)
        .map(|i| {
            c.propose(leader, command(i))
                .expect("the leader accepts a proposal")
        })
        .collect();
    run_until(c, "the proposals are applied on the leader", |c| {
        positions
            .iter()
            .all(|&p| c.call_outcome(leader, p) == Some(CallOutcome::Applied))
    });
    positions
}

/// Whether every running node holds the same log, all of it committed and applied.
fn converged(c: &Cluster) -> bool {
    let nodes: Vec<&RaftNode> = c.running().collect();
    let Some(first) = nodes.first() else {
        return true;
    };
    nodes.iter().all(|n| {
        n.last_index() == first.last_index()
            && n.commit_index() == n.last_index()
            && n.applied_index() == n.commit_index()
            && n.entries().eq(first.entries())
    })
}

fn converge(c: &mut Cluster) {
    run_until(c, "every log equal, committed and applied", converged);
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
        }),
    }
}

fn last_of(node: &RaftNode) -> (LogIndex, Term) {
    let index = node.last_index();
    let term = node.entry(index).map_or(Term(0), |e| e.term);
    (index, term)
}

// ---------------------------------------------------------------------------------------------
// §5.1 Terms
// ---------------------------------------------------------------------------------------------

/// §5.1: a request from a stale term is rejected with the current term, so a deposed leader
/// learns it is stale; the receiver's log and leader are unchanged.
#[test]
fn stale_term_append_is_rejected_with_current_term() {
    let mut c = new_cluster(3, 31);
    let events = record(&mut c, true);
    let old = elect(&mut c);
    let old_term = raft(&c, old).term();
    c.crash(old);
    let rest = others(&c, &[old]);
    let new = elect_among(&mut c, &rest);
    let follower = others(&c, &[old, new])[0];
    let new_term = raft(&c, new).term();
    assert!(new_term > old_term, "a new election raises the term");
    let log_before: Vec<Entry> = raft(&c, follower).entries().cloned().collect();

    let stale = Envelope {
        from: old,
        to: follower,
        message: Message::AppendEntries(AppendEntries {
            term: old_term,
            prev_log_index: LogIndex::ZERO,
            prev_log_term: Term(0),
            entries: Vec::new(),
            leader_commit: LogIndex::ZERO,
        }),
    };
    c.inject(stale).expect("no invariant breaks");
    run(&mut c, Duration::from_millis(10));

    let answers: Vec<AppendResponse> = delivered(&events)
        .into_iter()
        .filter(|e| (e.from, e.to) == (follower, old))
        .filter_map(|e| match e.message {
            Message::AppendResponse(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(
        matches!(answers.last(), Some(r) if r.term == new_term && matches!(r.outcome, AppendOutcome::Rejected { .. })),
        "the stale leader is told the current term: {answers:?}"
    );
    let f = raft(&c, follower);
    assert_eq!((f.term(), f.leader()), (new_term, Some(new)));
    assert!(f.entries().cloned().eq(log_before), "the log is untouched");
}

/// §5.1 and Figure 2 (persistent state): currentTerm and votedFor are the same after a crash and
/// restart of every node, and a new election then uses a higher term.
#[test]
fn term_and_vote_survive_crash_and_restart() {
    for seed in 1..=3 {
        let mut c = new_cluster(3, seed);
        let leader = elect(&mut c);
        commit_on(&mut c, leader, 2);
        let ids = c.node_ids();
        let state = |c: &Cluster| -> Vec<(Term, Option<NodeId>)> {
            ids.iter()
                .map(|&n| (raft(c, n).term(), raft(c, n).vote()))
                .collect()
        };
        let before = state(&c);
        let votes = before.iter().filter(|(_, v)| v.is_some()).count();
        assert!(
            votes >= 2,
            "a majority voted in the leader's term: {before:?}"
        );
        for &n in &ids {
            c.crash(n);
        }
        for &n in &ids {
            c.restart(n)
                .expect("a node restarts from its durable state");
        }
        assert_eq!(state(&c), before, "seed {seed}: term and vote are durable");
        let again = elect(&mut c);
        assert!(raft(&c, again).term() > before[0].0, "seed {seed}");
        assert!(c.violation().is_none());
    }
}

/// §5.1 and Figure 2: under crashes of every node in turn on a lossy network, no message leaves
/// before the term, vote and entries it depends on are durable (the simulator's persist-before-send
/// check), and a restarted node comes back with the term and vote it had.
#[test]
fn persist_before_send_holds_under_crash_churn() {
    let mut config = ClusterConfig::new(5, 77);
    config.net = NetConfig {
        drop_rate: 0.05,
        duplicate_rate: 0.05,
        delay_max: Duration::from_millis(20),
        ..NetConfig::reliable()
    };
    let mut c = Cluster::new(config);
    let ids = c.node_ids();
    for round in 0..10u64 {
        if let Some(leader) = c.leader() {
            let _ = c.propose(leader, command(round));
        }
        let node = ids[usize::try_from(round).expect("small") % ids.len()];
        let before = (raft(&c, node).term(), raft(&c, node).vote());
        c.crash(node);
        run(&mut c, Duration::from_millis(300));
        c.restart(node)
            .expect("a node restarts from its durable state");
        assert_eq!((raft(&c, node).term(), raft(&c, node).vote()), before);
        run(&mut c, Duration::from_millis(700));
    }
    c.set_net(NetConfig::reliable());
    elect(&mut c);
    converge(&mut c);
    assert!(c.violation().is_none());
    assert!(
        c.highest_committed() > LogIndex(5),
        "the cluster made progress"
    );
}

// ---------------------------------------------------------------------------------------------
// §5.2 Leader election
// ---------------------------------------------------------------------------------------------

/// §5.2: a 3-node and a 5-node cluster elect exactly one leader, every node follows it in its
/// term, and it keeps leading while nothing fails.
#[test]
fn election_yields_one_leader_every_node_follows() {
    for voters in [3, 5] {
        for seed in 1..=4 {
            let mut c = new_cluster(voters, seed);
            let leader = elect(&mut c);
            let term = raft(&c, leader).term();
            let leaders = c.running().filter(|n| n.is_leader()).count();
            assert_eq!(leaders, 1, "{voters} nodes, seed {seed}");
            run(&mut c, Duration::from_secs(3));
            let all = running_ids(&c);
            assert_eq!(agreed_leader(&c, &all), Some(leader), "seed {seed}");
            assert_eq!(raft(&c, leader).term(), term, "no election without a fault");
            assert_eq!(c.running().filter(|n| n.is_leader()).count(), 1);
        }
    }
}

/// §5.2: election timeouts are drawn at random, anew each time, from
/// [election_timeout_min, election_timeout_max]: measured on lone nodes that cannot hear anyone.
#[test]
fn election_timeouts_are_randomized_within_bounds() {
    let config = RaftConfig::default();
    let (min, max) = (config.election_timeout_min, config.election_timeout_max);
    let mut waits = Vec::new();
    for seed in 1..=4 {
        let mut c = new_cluster(3, seed);
        let ids = c.node_ids();
        let alone: Vec<Vec<NodeId>> = ids.iter().map(|&n| vec![n]).collect();
        c.partition(&alone);
        // Per node: pre-vote rounds started, and when the last one started.
        let mut last = vec![(0u64, Instant::ZERO); ids.len()];
        while c.now() < Instant::ZERO + Duration::from_secs(20) {
            assert!(c.step().expect("no invariant breaks"), "timers are pending");
            for (i, &n) in ids.iter().enumerate() {
                let started = raft(&c, n).counters().pre_votes_started;
                if started != last[i].0 {
                    assert_eq!(started, last[i].0 + 1, "one timeout per step");
                    assert_eq!(raft(&c, n).role(), RoleKind::PreCandidate);
                    waits.push(c.now() - last[i].1);
                    last[i] = (started, c.now());
                }
            }
        }
    }
    assert!(waits.len() > 100, "enough samples: {}", waits.len());
    for wait in &waits {
        assert!(
            (min..=max).contains(wait),
            "{wait:?} outside [{min:?}, {max:?}]"
        );
    }
    let fifth = (max - min) / 5;
    let shortest = *waits.iter().min().expect("samples exist");
    let longest = *waits.iter().max().expect("samples exist");
    assert!(
        shortest < min + fifth && longest > max - fifth,
        "spread over the range"
    );
    let distinct: BTreeSet<Duration> = waits.iter().copied().collect();
    assert!(distinct.len() > waits.len() / 2, "not a fixed timeout");
}

/// §5.2: a node grants at most one vote per term, first come first served, also after a crash and
/// restart (Figure 2: votedFor is persistent); it may repeat its grant to the same candidate.
#[test]
fn one_vote_per_term_even_across_restart() {
    let mut c = new_cluster(3, 11);
    let events = record(&mut c, true);
    let (first, second, voter) = (NodeId(1), NodeId(2), NodeId(3));
    let empty = (LogIndex::ZERO, Term(0));
    for (candidate, crash_before) in [
        (first, false),
        (second, false),
        (second, true),
        (first, false),
    ] {
        if crash_before {
            c.crash(voter);
            c.restart(voter)
                .expect("a node restarts from its durable state");
            assert_eq!(raft(&c, voter).vote(), Some(first), "the vote is durable");
        }
        c.inject(vote_request(candidate, voter, Term(1), empty))
            .expect("no invariant breaks");
        run(&mut c, Duration::from_millis(10));
    }
    assert_eq!(
        vote_answers(&events, voter, VoteKind::Vote),
        vec![
            (first, true, Term(1)),
            (second, false, Term(1)),
            (second, false, Term(1)),
            (first, true, Term(1)),
        ]
    );
    assert_eq!(raft(&c, voter).vote(), Some(first));
    assert_eq!(raft(&c, voter).term(), Term(1));
}

// ---------------------------------------------------------------------------------------------
// §5.3 Log replication
// ---------------------------------------------------------------------------------------------

/// §5.3: a deposed leader's uncommitted entries fail the consistency check of the new leader's
/// appends, are truncated, and are replaced by the new leader's entries; the client calls behind
/// them are reported discarded.
#[test]
fn deposed_leader_uncommitted_entries_are_replaced() {
    let mut c = new_cluster(3, 21);
    let events = record(&mut c, true);
    let old = elect(&mut c);
    commit_on(&mut c, old, 2);
    c.isolate(old);
    let doomed: Vec<LogPosition> = (100..103)
        .map(|i| {
            c.propose(old, command(i))
                .expect("still leader right after the cut")
        })
        .collect();
    let rest = others(&c, &[old]);
    let new = elect_among(&mut c, &rest);
    let new_term = raft(&c, new).term();
    commit_on(&mut c, new, 4);
    let old_log: Vec<Entry> = raft(&c, old).entries().cloned().collect();
    assert_eq!(raft(&c, old).last_index(), doomed[2].index, "it holds them");

    // A probe the new leader could send: its entry at doomed[1] is of its own term.
    c.heal();
    let probe_at = doomed[1].index;
    assert_eq!(
        raft(&c, new).entry(probe_at).map(|e| e.term),
        Some(new_term)
    );
    c.inject(Envelope {
        from: new,
        to: old,
        message: Message::AppendEntries(AppendEntries {
            term: new_term,
            prev_log_index: probe_at,
            prev_log_term: new_term,
            entries: Vec::new(),
            leader_commit: raft(&c, new).commit_index(),
        }),
    })
    .expect("no invariant breaks");
    assert!(
        raft(&c, old).entries().cloned().eq(old_log.iter().cloned()),
        "a mismatched prev changes nothing"
    );
    converge(&mut c);

    let rejected = delivered(&events).into_iter().any(|e| {
        (e.from, e.to) == (old, new)
            && matches!(e.message, Message::AppendResponse(AppendResponse {
                outcome: AppendOutcome::Rejected { rejected, .. }, ..
            }) if rejected == probe_at)
    });
    assert!(rejected, "the append with a mismatched prev was rejected");
    assert!(raft(&c, old).entries().eq(raft(&c, new).entries()));
    for p in &doomed {
        assert_eq!(c.call_outcome(old, *p), Some(CallOutcome::Discarded));
        assert_ne!(raft(&c, old).entry(p.index).map(|e| e.term), Some(p.term));
    }
}

/// §5.3: a follower that missed many entries rejects the appends that do not fit its log, the
/// leader backs up, and the follower catches up to an identical log, batch by batch.
#[test]
fn lagging_follower_catches_up() {
    let mut config = ClusterConfig::new(3, 4);
    config.raft.append_entries_batch_size_bytes = 64;
    let mut c = Cluster::new(config);
    let events = record(&mut c, true);
    let leader = elect(&mut c);
    commit_on(&mut c, leader, 3);
    let lagging = others(&c, &[leader])[0];
    c.crash(lagging);
    commit_on(&mut c, leader, 30);
    c.restart(lagging)
        .expect("a node restarts from its durable state");
    assert!(raft(&c, lagging).last_index() + 30 <= raft(&c, leader).last_index());
    converge(&mut c);

    assert!(raft(&c, lagging).entries().eq(raft(&c, leader).entries()));
    let rejections = delivered(&events)
        .into_iter()
        .filter(|e| (e.from, e.to) == (lagging, leader))
        .filter(|e| {
            matches!(
                e.message,
                Message::AppendResponse(AppendResponse {
                    outcome: AppendOutcome::Rejected { .. },
                    ..
                })
            )
        })
        .count();
    assert!(rejections >= 1, "appends past its log were rejected");
    assert_eq!(c.applied(lagging), c.applied(leader));
}

// ---------------------------------------------------------------------------------------------
// §5.4 Safety
// ---------------------------------------------------------------------------------------------

/// §5.4.1 election restriction: a node whose log lacks committed entries cannot win an election,
/// even with a much higher term (pre-vote off so it can inflate its term); the winner holds every
/// committed entry.
#[test]
fn node_with_stale_log_never_wins() {
    for seed in 1..=3 {
        let mut config = ClusterConfig::new(3, seed);
        config.raft.pre_vote = false;
        let mut c = Cluster::new(config);
        let events = record(&mut c, false);
        let leader = elect(&mut c);
        let [stale, fresh] = others(&c, &[leader])[..] else {
            panic!("a 3-node cluster has two followers");
        };
        c.isolate(stale);
        let committed = commit_on(&mut c, leader, 5);
        run(&mut c, Duration::from_secs(3));
        c.crash(leader);
        c.heal();
        assert!(
            raft(&c, stale).term() > raft(&c, fresh).term(),
            "seed {seed}"
        );
        assert!(raft(&c, stale).last_index() < committed[0].index);

        let winner = elect_among(&mut c, &[stale, fresh]);
        assert_eq!(winner, fresh, "seed {seed}");
        assert!(!ever_led(&events, stale), "seed {seed}: the stale node led");
        for p in &committed {
            assert_eq!(
                raft(&c, winner).entry(p.index).map(|e| e.term),
                Some(p.term)
            );
        }
    }
}

/// §5.4.1: a voter refuses a candidate whose last entry has an older term even if its log is
/// longer, and one whose log is shorter with the same last term; it grants a log as up-to-date as
/// its own. (Check-quorum is off so the voter has no leader lease.)
#[test]
fn vote_requires_up_to_date_log() {
    let mut config = ClusterConfig::new(3, 13);
    config.raft.check_quorum = false;
    let mut t = two_term_cluster(config);
    let events = record(&mut t.c, true);
    let voter = t.follower;
    let candidate = others(&t.c, &[t.leader, voter])[0];
    let (last, last_term) = last_of(raft(&t.c, voter));
    let term = raft(&t.c, voter).term();
    let requests = [
        (Term(term.0 + 1), (last + 5, t.older)),
        (Term(term.0 + 2), (last.prev(), last_term)),
        (Term(term.0 + 3), (last, last_term)),
    ];
    for (request_term, candidate_last) in requests {
        t.c.inject(vote_request(candidate, voter, request_term, candidate_last))
            .expect("no invariant breaks");
        run(&mut t.c, Duration::from_millis(10));
    }
    let answers: Vec<(NodeId, bool)> = vote_answers(&events, voter, VoteKind::Vote)
        .into_iter()
        .map(|(to, granted, _)| (to, granted))
        .collect();
    let expected: Vec<(NodeId, bool)> = [false, false, true]
        .into_iter()
        .map(|granted| (candidate, granted))
        .collect();
    assert_eq!(answers, expected);
    assert_eq!(raft(&t.c, voter).vote(), Some(candidate));
    assert_eq!(raft(&t.c, voter).term(), requests[2].0);
}

/// §5.4.2 (Figure 8): a new leader does not commit an entry of an earlier term although a majority
/// holds it; that entry commits only together with the leader's own no-op (§8).
#[test]
fn previous_term_entry_commits_only_with_current_term_entry() {
    let mut c = new_cluster(3, 5);
    let events = record(&mut c, false);
    let old = elect(&mut c);
    commit_on(&mut c, old, 1);
    let x = c.propose(old, command(7)).expect("the leader accepts");
    c.crash(old); // x is on its way to both followers, not committed anywhere
    let rest = others(&c, &[old]);
    run_until(&mut c, "x reaches both followers", |c| {
        rest.iter()
            .all(|&n| c.node(n).is_some_and(|r| r.last_index() == x.index))
    });
    run_until(&mut c, "a new leader", |c| c.leader().is_some());
    let new = c.leader().expect("just elected");
    let follower = others(&c, &[old, new])[0];
    // Cut the new leader off before its no-op reaches the follower.
    c.isolate(new);
    let term = raft(&c, new).term();
    let noop = raft(&c, new).entry(x.index.next()).cloned();
    assert!(matches!(noop, Some(e) if e.kind == EntryKind::Noop && e.term == term));
    assert_eq!(raft(&c, follower).last_index(), x.index);

    // The follower reports it holds x: with the leader, 2 of 3 voters hold x.
    c.inject(Envelope {
        from: follower,
        to: new,
        message: Message::AppendResponse(AppendResponse {
            term,
            outcome: AppendOutcome::Accepted {
                match_index: x.index,
            },
        }),
    })
    .expect("no invariant breaks");
    let progress = raft(&c, new).progress();
    let matched = progress.iter().find(|p| p.0 == follower).map(|p| p.2);
    assert_eq!(matched, Some(x.index), "{progress:?}");
    assert!(
        raft(&c, new).commit_index() < x.index,
        "x, of the earlier {}, committed by counting replicas",
        x.term
    );

    c.heal();
    run_until(&mut c, "the new leader commits x", |c| {
        c.node(new).is_some_and(|r| r.commit_index() >= x.index)
    });
    assert_eq!(
        raft(&c, new).commit_index(),
        x.index.next(),
        "x with the no-op"
    );
    let commits_of_new: Vec<LogIndex> = events
        .borrow()
        .iter()
        .filter_map(|(_, e)| match e {
            TraceEvent::Committed { node, index } if *node == new => Some(*index),
            _ => None,
        })
        .collect();
    assert!(!commits_of_new.contains(&x.index), "{commits_of_new:?}");
    assert_eq!(c.committed_term(x.index), Some(x.term));
}

/// A converged 3-node cluster whose log holds entries of two terms, all committed.
struct TwoTerms {
    c: Cluster,
    leader: NodeId,
    follower: NodeId,
    /// The index of the current leader's first entry (its no-op).
    first_of_term: LogIndex,
    /// The term of the entry before it.
    older: Term,
}

fn two_term_cluster(config: ClusterConfig) -> TwoTerms {
    let mut c = Cluster::new(config);
    let first = elect(&mut c);
    commit_on(&mut c, first, 2);
    c.crash(first);
    let rest = others(&c, &[first]);
    let leader = elect_among(&mut c, &rest);
    c.restart(first)
        .expect("a node restarts from its durable state");
    commit_on(&mut c, leader, 2);
    converge(&mut c);
    let follower = others(&c, &[leader])[0];
    let term = raft(&c, leader).term();
    let f = raft(&c, follower);
    let first_of_term = f
        .entries()
        .find(|e| e.term == term)
        .expect("the leader's no-op")
        .index;
    let older = f
        .entry(first_of_term.prev())
        .expect("an entry of the first term")
        .term;
    assert!(older < term && first_of_term <= f.commit_index());
    TwoTerms {
        c,
        leader,
        follower,
        first_of_term,
        older,
    }
}

/// A well-formed append from the current leader, in its term, carrying a deposed leader's log:
/// the older term continued from the leader's first entry up to `last`.
fn deposed_log_append(t: &TwoTerms, last: LogIndex) -> Envelope {
    let leader = raft(&t.c, t.leader);
    let entries = (t.first_of_term.0..=last.0)
        .map(|i| Entry {
            index: LogIndex(i),
            term: t.older,
            kind: EntryKind::Command,
            data: command(1000 + i),
        })
        .collect();
    Envelope {
        from: t.leader,
        to: t.follower,
        message: Message::AppendEntries(AppendEntries {
            term: leader.term(),
            prev_log_index: t.first_of_term.prev(),
            prev_log_term: t.older,
            entries,
            leader_commit: leader.commit_index(),
        }),
    }
}

/// Figure 2 and §5.4: a node never truncates at or below its commit index: a forged append from
/// the current leader, in its term, that contradicts committed entries and runs past the commit
/// index is refused as a protocol violation, counted, and leaves log and commit index unchanged.
#[test]
fn append_conflicting_with_committed_entries_is_refused() {
    let mut t = two_term_cluster(ClusterConfig::new(3, 9));
    let events = record(&mut t.c, false);
    let f = raft(&t.c, t.follower);
    let (log, commit) = (f.entries().cloned().collect::<Vec<_>>(), f.commit_index());
    let errors = f.counters().protocol_errors;
    let forged = deposed_log_append(&t, commit.next());
    t.c.inject(forged).expect("no invariant breaks");

    let (follower, leader) = (t.follower, t.leader);
    let refused = events.borrow().iter().any(|(_, e)| {
        matches!(e, TraceEvent::Refused {
            node,
            error: StepError::Protocol {
                from,
                violation: ProtocolViolation::TruncateCommitted { committed, .. },
            },
        } if (*node, *from, *committed) == (follower, leader, commit))
    });
    assert!(refused, "TruncateCommitted refusal traced");
    let f = raft(&t.c, follower);
    assert_eq!(f.counters().protocol_errors, errors + 1);
    assert!(
        f.entries().cloned().eq(log.iter().cloned()),
        "log unchanged"
    );
    assert_eq!(f.commit_index(), commit);
    run(&mut t.c, Duration::from_secs(1));
    assert!(t.c.violation().is_none());
}

/// Figure 2 (AppendEntries receiver, step 3) and §5.4: entries at or below the commit index are
/// never rewritten: a forged append whose conflicting entries all lie at or below the commit
/// index leaves log and commit index unchanged.
#[test]
fn append_below_commit_index_never_rewrites_the_log() {
    let mut t = two_term_cluster(ClusterConfig::new(3, 19));
    let f = raft(&t.c, t.follower);
    let (log, commit) = (f.entries().cloned().collect::<Vec<_>>(), f.commit_index());
    let forged = deposed_log_append(&t, commit);
    t.c.inject(forged).expect("no invariant breaks");
    let f = raft(&t.c, t.follower);
    assert!(
        f.entries().cloned().eq(log.iter().cloned()),
        "log unchanged"
    );
    assert_eq!(f.commit_index(), commit);
    run(&mut t.c, Duration::from_secs(1));
    assert!(t.c.violation().is_none());
}

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
// §5.5 Follower and candidate crashes; §8 Client interaction
// ---------------------------------------------------------------------------------------------

/// §5.5: a crashed follower restarts, re-applies its committed entries from durable state at once
/// (before hearing from any leader), then catches up on what it missed.
#[test]
fn restarted_follower_reapplies_then_catches_up() {
    let mut c = new_cluster(3, 17);
    let leader = elect(&mut c);
    commit_on(&mut c, leader, 10);
    let follower = others(&c, &[leader])[0];
    let target = raft(&c, leader).commit_index();
    run_until(&mut c, "the follower learns the commit index", |c| {
        c.node(follower).is_some_and(|r| r.commit_index() == target)
    });
    let applied_before: Vec<Entry> = c.applied(follower).to_vec();
    c.crash(follower);
    assert!(
        c.applied(follower).is_empty(),
        "the state machine is volatile"
    );
    c.isolate(follower);
    c.restart(follower)
        .expect("a node restarts from its durable state");
    assert_eq!(raft(&c, follower).leader(), None);
    assert_eq!(
        c.applied(follower),
        applied_before.as_slice(),
        "re-applied at once"
    );

    commit_on(&mut c, leader, 5);
    c.heal();
    converge(&mut c);
    assert_eq!(c.applied(follower), c.applied(leader));
    assert!(c.applied(follower).len() > applied_before.len());
}

/// §8: a new leader's first entry in its term is a no-op (EntryKind::Noop), for the first leader
/// and for its successor, and every node applies it.
#[test]
fn new_leader_appends_a_noop_first() {
    let mut c = new_cluster(5, 23);
    let mut leader = elect(&mut c);
    for round in 0..2 {
        let term = raft(&c, leader).term();
        let first_of_term = raft(&c, leader)
            .entries()
            .find(|e| e.term == term)
            .cloned()
            .expect("the leader appended in its term");
        assert_eq!(first_of_term.kind, EntryKind::Noop, "round {round}");
        assert!(first_of_term.data.is_empty());
        let previous = raft(&c, leader).entry(first_of_term.index.prev());
        assert!(previous.is_none_or(|e| e.term < term));
        commit_on(&mut c, leader, 2);
        converge(&mut c);
        for n in running_ids(&c) {
            assert!(
                c.applied(n).contains(&first_of_term),
                "{n} applied the no-op"
            );
        }
        c.crash(leader);
        leader = elect(&mut c);
    }
}

// ---------------------------------------------------------------------------------------------
// Thesis §9.6 pre-vote, §6.2 check-quorum, §4.2.3 disruptive servers
// ---------------------------------------------------------------------------------------------

/// Thesis §9.6 pre-vote: a node cut off for a long time keeps its term (it only pre-votes) and,
/// when it rejoins, does not depose the healthy leader.
#[test]
fn pre_vote_keeps_isolated_node_from_disrupting() {
    let mut c = new_cluster(3, 6);
    let leader = elect(&mut c);
    let term = raft(&c, leader).term();
    let loner = others(&c, &[leader])[0];
    c.isolate(loner);
    run(&mut c, Duration::from_secs(30));
    let l = raft(&c, loner);
    assert_eq!((l.term(), l.role()), (term, RoleKind::PreCandidate));
    assert!(l.counters().pre_votes_started >= 10, "it kept trying");
    assert_eq!(l.counters().elections_started, 0);

    c.heal();
    run(&mut c, Duration::from_secs(3));
    assert_eq!(c.leader(), Some(leader));
    assert_eq!(raft(&c, leader).term(), term);
    assert_eq!(raft(&c, loner).leader(), Some(leader));
    assert_eq!(raft(&c, loner).term(), term);
}

/// Thesis §6.2 check-quorum: a leader cut off from a majority steps down within
/// leader_fallback_timeout plus one heartbeat interval, without raising its term, and the majority
/// elects a new leader.
#[test]
fn leader_cut_off_from_majority_steps_down() {
    let config = RaftConfig::default();
    let (fallback, heartbeat) = (config.leader_fallback_timeout, config.heartbeat_interval);
    let mut c = new_cluster(5, 8);
    let old = elect(&mut c);
    let term = raft(&c, old).term();
    let buddy = others(&c, &[old])[0];
    let cut_at = c.now();
    c.partition(&[vec![old, buddy]]);
    run_until(&mut c, "the old leader steps down", |c| {
        !c.node(old).is_some_and(RaftNode::is_leader)
    });
    let took = c.now() - cut_at;
    assert!(took <= fallback + heartbeat, "stepped down after {took:?}");
    assert!(
        took > fallback - 2 * heartbeat,
        "stepped down early, after {took:?}"
    );
    assert_eq!(raft(&c, old).counters().check_quorum_step_downs, 1);
    assert_eq!(raft(&c, old).term(), term);

    let majority = others(&c, &[old, buddy]);
    let new = elect_among(&mut c, &majority);
    assert!(raft(&c, new).term() > term);
}

/// Thesis §6.2, PySyncObj's test_leaderFallback: an isolated leader of 2 nodes is still leader
/// before leader_fallback_timeout (3 s here) and no longer leader after it.
#[test]
fn two_node_leader_falls_back() {
    let mut config = ClusterConfig::new(2, 12);
    config.raft.leader_fallback_timeout = Duration::from_secs(3);
    let mut c = Cluster::new(config);
    let leader = elect(&mut c);
    c.isolate(leader);
    run(&mut c, Duration::from_secs(2));
    assert!(
        raft(&c, leader).is_leader(),
        "still leader before the fallback"
    );
    run(&mut c, Duration::from_secs(2));
    assert!(
        !raft(&c, leader).is_leader(),
        "not leader after the fallback"
    );
    assert_eq!(raft(&c, leader).counters().check_quorum_step_downs, 1);
    assert_eq!(c.leader(), None, "one node of two cannot win");
}

/// Thesis §4.2.3 disruptive servers: a follower that heard from its leader recently, and the
/// leader itself, ignore a vote request of a higher term; a node with no leader does not.
#[test]
fn recent_leader_contact_ignores_higher_term_vote_request() {
    let mut c = new_cluster(3, 14);
    let leader = elect(&mut c);
    run(&mut c, Duration::from_millis(150));
    let [follower, disruptor] = others(&c, &[leader])[..] else {
        panic!("a 3-node cluster has two followers");
    };
    let term = raft(&c, follower).term();
    let big = (raft(&c, follower).last_index() + 10, term);
    for target in [follower, leader] {
        let ignored = raft(&c, target).counters().votes_ignored_in_lease;
        let vote = raft(&c, target).vote();
        c.inject(vote_request(disruptor, target, Term(term.0 + 5), big))
            .expect("no invariant breaks");
        let t = raft(&c, target);
        assert_eq!(
            (t.term(), t.vote()),
            (term, vote),
            "{target} kept term and vote"
        );
        assert_eq!(t.counters().votes_ignored_in_lease, ignored + 1);
    }
    run(&mut c, Duration::from_secs(1));
    assert_eq!(agreed_leader(&c, &running_ids(&c)), Some(leader));
    assert_eq!(raft(&c, leader).term(), term);

    // Control: in a cluster that has no leader yet, the same request is heard.
    let mut fresh = new_cluster(3, 14);
    fresh
        .inject(vote_request(NodeId(2), NodeId(1), Term(5), big))
        .expect("no invariant breaks");
    let n = raft(&fresh, NodeId(1));
    assert_eq!((n.term(), n.vote()), (Term(5), Some(NodeId(2))));
    assert_eq!(n.counters().votes_ignored_in_lease, 0);
}

// ---------------------------------------------------------------------------------------------
// Thesis §4.2.1 non-voting members
// ---------------------------------------------------------------------------------------------

fn with_non_voters(voters: usize, non_voters: usize, seed: u64) -> Cluster {
    Cluster::new(ClusterConfig {
        non_voters,
        ..ClusterConfig::new(voters, seed)
    })
}

/// Thesis §4.2.1: non-voting members receive and apply the log but never become (pre-)candidates
/// or leaders, even cut off from the leader or through a leader change.
#[test]
fn non_voters_apply_the_log_and_never_campaign() {
    let mut c = with_non_voters(3, 2, 41);
    let events = record(&mut c, false);
    let non_voters: Vec<NodeId> = c.membership().non_voters().iter().copied().collect();
    let leader = elect(&mut c);
    commit_on(&mut c, leader, 5);
    c.isolate(non_voters[0]);
    run(&mut c, Duration::from_secs(5));
    c.crash(leader);
    c.heal();
    let leader = elect(&mut c);
    commit_on(&mut c, leader, 5);
    converge(&mut c);
    for &n in &non_voters {
        assert_eq!(c.applied(n), c.applied(leader), "{n} applies the log");
        let counters = raft(&c, n).counters();
        assert_eq!(
            (counters.pre_votes_started, counters.elections_started),
            (0, 0)
        );
        let campaigned = events.borrow().iter().any(|(_, e)| {
            matches!(e, TraceEvent::RoleChanged { node, role, .. } if *node == n && *role != RoleKind::Follower)
        });
        assert!(!campaigned, "{n} left the follower role");
    }
    assert!(c.applied(non_voters[0]).len() >= 12, "both terms' entries");
}

/// Thesis §4.2.1: a non-voter does not count toward a commit majority: with 2 voters and 1
/// non-voter, an entry held by the leader and the non-voter stays uncommitted while the other voter
/// is down, and commits once that voter is back.
#[test]
fn non_voter_does_not_count_toward_majority() {
    let mut c = with_non_voters(2, 1, 43);
    let non_voter = NodeId(3);
    let leader = elect(&mut c);
    let voter = others(&c, &[leader, non_voter])[0];
    c.crash(voter);
    let p = c.propose(leader, command(1)).expect("the leader accepts");
    run(&mut c, Duration::from_millis(300));
    assert!(raft(&c, leader).is_leader());
    assert!(
        raft(&c, non_voter).last_index() >= p.index,
        "the non-voter holds it"
    );
    assert!(
        raft(&c, leader).commit_index() < p.index,
        "no majority of voters"
    );
    assert_eq!(c.call_outcome(leader, p), Some(CallOutcome::Pending));

    c.restart(voter)
        .expect("a node restarts from its durable state");
    run_until(&mut c, "the entry commits", |c| {
        c.call_outcome(leader, p) == Some(CallOutcome::Applied)
    });
}

/// Thesis §4.2.1: with 3 voters and 2 non-voters, crashing both non-voters does not stop commits.
#[test]
fn commits_continue_without_non_voters() {
    let mut c = with_non_voters(3, 2, 47);
    let leader = elect(&mut c);
    for &n in c.membership().non_voters().clone().iter() {
        c.crash(n);
    }
    let before = raft(&c, leader).commit_index();
    let positions = commit_on(&mut c, leader, 5);
    assert!(raft(&c, leader).commit_index() >= positions[4].index);
    assert!(before < positions[0].index);
}

// ---------------------------------------------------------------------------------------------
// Liveness and determinism
// ---------------------------------------------------------------------------------------------

/// §5.5 and §5.3 (RPCs are idempotent and retried): with 20% loss, 10% duplication and reordering,
/// commits still progress, and every node converges once the network heals.
#[test]
fn commits_progress_under_loss_duplication_and_reordering() {
    let mut c = new_cluster(5, 51);
    elect(&mut c);
    c.set_net(NetConfig {
        drop_rate: 0.2,
        duplicate_rate: 0.1,
        delay_max: Duration::from_millis(30),
        reorder: true,
        ..NetConfig::reliable()
    });
    let mut calls = Vec::new();
    for i in 0..60 {
        if let Some(leader) = c.leader()
            && let Ok(p) = c.propose(leader, command(i))
        {
            calls.push((leader, p));
        }
        run(&mut c, Duration::from_millis(100));
    }
    let applied = calls
        .iter()
        .filter(|&&(n, p)| c.call_outcome(n, p) == Some(CallOutcome::Applied))
        .count();
    assert!(
        applied >= 20,
        "only {applied} of {} calls applied",
        calls.len()
    );
    let net = c.stats().net;
    assert!(net.dropped > 0 && net.duplicated > 0, "{net:?}");

    c.set_net(NetConfig::reliable());
    let leader = elect(&mut c);
    commit_on(&mut c, leader, 1);
    converge(&mut c);
    for (n, p) in calls {
        if c.call_outcome(n, p) == Some(CallOutcome::Applied) {
            let held = raft(&c, leader).entry(p.index).map(|e| e.term);
            assert_eq!(held, Some(p.term), "acknowledged write lost");
        }
    }
}

/// One scripted run with faults; returns its full trace as text.
fn scripted_trace(seed: u64) -> Vec<String> {
    let mut config = ClusterConfig::new(5, seed);
    config.net = NetConfig {
        drop_rate: 0.1,
        duplicate_rate: 0.1,
        delay_max: Duration::from_millis(20),
        reorder: true,
        ..NetConfig::reliable()
    };
    let mut c = Cluster::new(config);
    let events = record(&mut c, true);
    for round in 0..6u64 {
        run(&mut c, Duration::from_millis(500));
        if let Some(leader) = c.leader() {
            let _ = c.propose(leader, command(round));
        }
        match round {
            1 => c.crash(NodeId(1)),
            2 => c.partition(&[vec![NodeId(2), NodeId(3)]]),
            3 => c.restart(NodeId(1)).expect("a node restarts"),
            4 => c.heal(),
            _ => {}
        }
    }
    let lines: Vec<String> = events
        .borrow()
        .iter()
        .map(|(at, e)| format!("{at} {e}"))
        .collect();
    lines
}

/// Determinism (the simulator's contract): the same seed driven the same way replays the same
/// trace, message for message; another seed gives another run.
#[test]
fn same_seed_same_trace() {
    let a = scripted_trace(99);
    let b = scripted_trace(99);
    assert!(a.len() > 100, "a trace worth comparing: {} events", a.len());
    assert_eq!(a, b);
    assert_ne!(a, scripted_trace(100));
}

/// Randomized runs (every rule at once, with crashes, partitions and a lossy network): a handful
/// of seeds pass, and a failure names the command that replays it.
#[test]
fn randomized_seeds_pass_and_failures_print_replay() {
    let config = SimConfig {
        fault_duration: Duration::from_secs(5),
        ..SimConfig::default()
    };
    for seed in 1..=4 {
        match run_seed(seed, &config, None) {
            Ok(report) => assert!(report.committed > 0, "seed {seed}: {report:?}"),
            Err(failure) => panic!("{failure}"),
        }
    }
    let failure = SeedFailure {
        seed: 1234,
        nodes: 5,
        violation: Violation {
            at: Instant::ZERO,
            what: "example".to_owned(),
        },
        replay_flags: " --level raft",
    };
    let shown = failure.to_string();
    assert!(
        shown.contains("--seed 1234") && shown.contains("--nodes 5 --level raft"),
        "{shown}"
    );
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
// §7 Log compaction, thesis §5: snapshots
// ---------------------------------------------------------------------------------------------

/// A cluster whose nodes snapshot and compact their logs every `every` applied entries.
fn compacting(voters: usize, seed: u64, every: u64, chunk_bytes: usize) -> Cluster {
    let mut config = ClusterConfig::new(voters, seed);
    config.compact_every = Some(every);
    config.raft.snapshot_chunk_bytes = chunk_bytes;
    Cluster::new(config)
}

/// The nodes that installed a snapshot while the trace was recorded.
fn installed_by(events: &Events) -> Vec<NodeId> {
    events
        .borrow()
        .iter()
        .filter_map(|(_, e)| match e {
            TraceEvent::SnapshotInstalled { node, .. } => Some(*node),
            _ => None,
        })
        .collect()
}

/// §7: a follower cut off while the others commit and compact far past it catches up by an
/// InstallSnapshot transfer in several chunks; its state machine (snapshot contents, then later
/// entries) equals the leader's; after a crash it restarts from its durable snapshot and log.
#[test]
fn follower_far_behind_catches_up_by_snapshot() {
    let mut c = compacting(3, 71, 10, 256);
    let events = record(&mut c, true);
    let leader = elect(&mut c);
    let lagging = others(&c, &[leader])[0];
    c.isolate(lagging);
    commit_on(&mut c, leader, 60);
    assert!(
        raft(&c, leader).log_base().index >= LogIndex(50),
        "the leader compacted"
    );
    c.heal();
    run_until(&mut c, "the lagging follower caught up", |c| {
        c.applied(lagging).len() == c.applied(leader).len()
    });
    assert!(installed_by(&events).contains(&lagging));
    let chunks = delivered(&events)
        .iter()
        .filter(|e| {
            e.to == lagging
                && matches!(&e.message, Message::InstallSnapshot(m) if !m.data.is_empty())
        })
        .count();
    assert!(chunks > 1, "the snapshot went in several chunks ({chunks})");
    assert_eq!(c.applied(lagging), c.applied(leader));
    assert!(raft(&c, lagging).log_base().index > LogIndex::ZERO);

    c.crash(lagging);
    c.restart(lagging).expect("restarts from its snapshot");
    let restarted = raft(&c, lagging);
    assert!(restarted.log_base().index > LogIndex::ZERO);
    assert_eq!(
        restarted.applied_index(),
        restarted.log_base().index.max(restarted.applied_index())
    );
    commit_on(&mut c, leader, 3);
    run_until(&mut c, "the restarted follower caught up", |c| {
        c.applied(lagging).len() == c.applied(leader).len()
    });
    assert_eq!(c.applied(lagging), c.applied(leader));
}

/// §7 under faults: with every node compacting every few entries, a lossy, duplicating,
/// reordering network and crashes, snapshots are transferred and installed and the state
/// machines still agree (the simulator checks each installed snapshot entry by entry).
#[test]
fn snapshots_under_loss_and_crashes_keep_state_machines_equal() {
    let mut c = compacting(5, 72, 5, 128);
    let events = record(&mut c, false);
    let leader = elect(&mut c);
    c.set_net(NetConfig {
        drop_rate: 0.1,
        duplicate_rate: 0.1,
        reorder: true,
        ..NetConfig::reliable()
    });
    let victims = others(&c, &[leader]);
    for round in 0..6u64 {
        let victim = victims[usize::try_from(round).expect("small") % victims.len()];
        c.crash(victim);
        for i in 0..15 {
            if let Some(l) = c.leader() {
                let _ = c.propose(l, command(round * 100 + i));
            }
            run(&mut c, Duration::from_millis(20));
        }
        c.restart(victim).expect("restarts");
    }
    c.set_net(NetConfig::reliable());
    let leader = elect(&mut c);
    commit_on(&mut c, leader, 1);
    run_until(&mut c, "every state machine caught up", |c| {
        let n = c.applied(leader).len();
        c.node_ids().iter().all(|&id| c.applied(id).len() == n)
    });
    for id in c.node_ids() {
        assert_eq!(c.applied(id), c.applied(leader), "{id}");
    }
    assert!(
        !installed_by(&events).is_empty(),
        "some node caught up by snapshot"
    );
}

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
    hand.advance(Duration::from_millis(50));
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

/// A one-chunk snapshot covering up to `at`, from leader 1 in `term`.
fn whole_snapshot(term: Term, at: LogPosition) -> Envelope {
    from_leader(Message::InstallSnapshot(InstallSnapshot {
        term,
        last_index: at.index,
        last_term: at.term,
        offset: 0,
        data: Bytes::from_static(b"state"),
        done: true,
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
