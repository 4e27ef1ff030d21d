//! Raft rule tests: one or a few per rule of the Raft paper ("In Search of an Understandable
//! Consensus Algorithm", extended version) or of Ongaro's thesis ("Consensus: Bridging Theory and
//! Practice"), each named after the section it checks.
//!
//! Every test drives the real Raft core through the deterministic simulator in virtual time: no
//! sleeping, no wall clock. The simulator checks election safety, log matching, leader
//! completeness, state machine safety and persist-before-send after every step, so every
//! `expect("... no invariant breaks")` below is also an assertion.
//!
//! The rule tests that drive `RaftNode`s by hand, without the simulator, are in the Raft crate:
//! `syncobj-raft/tests/raft_rules.rs`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use syncobj_core::raft::{
    AppendEntries, AppendOutcome, AppendResponse, Entry, EntryKind, Envelope, Instant, LogIndex,
    LogPosition, Message, NodeId, ProtocolViolation, RaftConfig, RaftNode, RequestVote, RoleKind,
    StepError, Term, VoteKind,
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
            leadership_transfer: false,
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

/// §5.3: a follower that missed many entries rejects the appends that do not fit its log (the
/// next new entry's), the leader backs up, and the follower catches up to an identical log,
/// batch by batch.
#[test]
fn lagging_follower_catches_up() {
    let mut config = ClusterConfig::new(3, 4);
    config.raft.append_entries_batch_size_bytes = 64;
    // A leader told that the link reset would resend from the follower's known end, and no
    // append would be rejected: here it learns of the crash from nothing but messages.
    config.report_links = false;
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
    // A new entry: its append checks the log past the lagging follower's end.
    commit_on(&mut c, leader, 1);
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
