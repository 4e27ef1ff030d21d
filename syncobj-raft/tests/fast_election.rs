//! The fast paths of elections, driven by hand: a follower whose link to its leader is reset
//! pre-votes at once (fast failover), and a node that just started campaigns soon after it is
//! linked to a majority (cold start). Each test plays the driver: it persists every Ready at
//! once, carries the messages over the links it keeps up, and reports links going up and down
//! as a transport would ([`RaftNode::link_up`], [`RaftNode::link_down`]). Time is virtual and
//! moves only when a test moves it, so "at once" means "at the same instant".

use std::collections::BTreeSet;
use std::time::Duration;

use syncobj_raft::{
    Instant, Membership, Message, NodeId, RaftConfig, RaftNode, Restored, RoleKind, Term, VoteKind,
};

/// Virtual time allowed for a first election on a working network.
const LIMIT: Duration = Duration::from_secs(20);

/// A cluster of voters `1..=n` with the links the test keeps up between them.
struct Hand {
    nodes: Vec<RaftNode>,
    /// Pairs (lower id, higher id) whose link is down: nothing passes either way.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Nodes whose process is gone: they receive and send nothing.
    dead: BTreeSet<NodeId>,
    now: Instant,
    /// Vote requests of the real kind delivered since the first leader was elected.
    vote_requests: usize,
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

fn config(seed: u64) -> RaftConfig {
    RaftConfig {
        seed,
        ..RaftConfig::default()
    }
}

impl Hand {
    fn new(n: u64, config: impl Fn(u64) -> RaftConfig) -> Hand {
        let voters: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let nodes = voters
            .iter()
            .map(|&id| {
                RaftNode::new(
                    id,
                    Membership::new(voters.iter().copied(), []),
                    config(id.0),
                    Restored::default(),
                    Instant::ZERO,
                )
                .expect("a valid voter")
            })
            .collect();
        Hand {
            nodes,
            cut: BTreeSet::new(),
            dead: BTreeSet::new(),
            now: Instant::ZERO,
            vote_requests: 0,
        }
    }

    fn node(&self, id: NodeId) -> &RaftNode {
        &self.nodes[usize::try_from(id.0 - 1).expect("small id")]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut RaftNode {
        &mut self.nodes[usize::try_from(id.0 - 1).expect("small id")]
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(RaftNode::id).collect()
    }

    fn alive(&self) -> Vec<NodeId> {
        self.ids()
            .into_iter()
            .filter(|id| !self.dead.contains(id))
            .collect()
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.alive()
            .into_iter()
            .filter(|&id| self.node(id).is_leader())
            .collect()
    }

    fn max_term(&self) -> Term {
        self.nodes
            .iter()
            .map(RaftNode::term)
            .max()
            .unwrap_or(Term(0))
    }

    /// Persists every Ready and delivers its messages over the links that are up, until quiet.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut mail = Vec::new();
            for id in self.alive() {
                let node = self.node_mut(id);
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
                let (from, to) = (envelope.from, envelope.to);
                if self.dead.contains(&to) || self.cut.contains(&pair(from, to)) {
                    continue;
                }
                if matches!(&envelope.message, Message::RequestVote(r) if r.kind == VoteKind::Vote)
                {
                    self.vote_requests += 1;
                }
                let now = self.now;
                let _ = self.node_mut(to).step(envelope, now);
            }
        }
        panic!("the nodes kept talking at one instant");
    }

    /// Reports every link between live nodes up, as a transport does once connected.
    fn link_all(&mut self) {
        let alive = self.alive();
        let now = self.now;
        for &a in &alive {
            for &b in &alive {
                if a != b && !self.cut.contains(&pair(a, b)) {
                    self.node_mut(a).link_up(b, now);
                }
            }
        }
        self.pump();
    }

    /// Moves time on in steps of `step`, ticking every live node, until `done` holds.
    fn run_until(&mut self, step: Duration, limit: Duration, done: impl Fn(&Hand) -> bool) {
        let deadline = self.now + limit;
        while !done(self) {
            assert!(self.now < deadline, "not done within {limit:?}");
            self.now = self.now + step;
            let now = self.now;
            for id in self.alive() {
                self.node_mut(id).tick(now);
            }
            self.pump();
        }
    }

    /// Elects a first leader the slow way (no link reported) and lets it commit its no-op
    /// everywhere, then reports every link up.
    fn elect(&mut self) -> NodeId {
        self.run_until(Duration::from_millis(10), LIMIT, |h| h.leaders().len() == 1);
        let leader = self.leaders()[0];
        self.settle();
        self.link_all();
        self.vote_requests = 0;
        leader
    }

    /// Lets heartbeats flow for a few rounds, so every follower has heard from the leader.
    fn settle(&mut self) {
        let until = self.now + Duration::from_millis(250);
        while self.now < until {
            self.now = self.now + Duration::from_millis(50);
            let now = self.now;
            for id in self.alive() {
                self.node_mut(id).tick(now);
            }
            self.pump();
        }
    }

    /// `id`'s process dies: every live node's link to it resets at this same instant.
    fn kill(&mut self, id: NodeId) {
        self.dead.insert(id);
        let now = self.now;
        for other in self.alive() {
            self.node_mut(other).link_down(id, now);
        }
        self.pump();
    }

    /// The link between `a` and `b` breaks; both ends learn of it at this instant.
    fn cut_link(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert(pair(a, b));
        let now = self.now;
        if !self.dead.contains(&a) {
            self.node_mut(a).link_down(b, now);
        }
        if !self.dead.contains(&b) {
            self.node_mut(b).link_down(a, now);
        }
    }

    /// The link between `a` and `b` works again; both ends learn of it at this instant.
    fn mend_link(&mut self, a: NodeId, b: NodeId) {
        self.cut.remove(&pair(a, b));
        let now = self.now;
        self.node_mut(a).link_up(b, now);
        self.node_mut(b).link_up(a, now);
    }
}

/// Fast failover, 3 and 5 voters: the leader's process dies, every follower sees its link reset
/// at the same instant, and a new leader is elected at that instant, in a single term (the
/// concurrent pre-candidates give way to one another rather than split the vote), with every
/// entry committed before.
#[test]
fn followers_of_a_dead_leader_elect_at_once() {
    for n in [3, 5] {
        for seed in 0..20 {
            let mut hand = Hand::new(n, |id| config(seed * 100 + id));
            let old = hand.elect();
            let term = hand.max_term();
            let committed = hand.node(old).commit_index();
            let before = hand.now;
            hand.kill(old);
            assert_eq!(hand.now, before, "no time passed");
            let leaders = hand.leaders();
            assert_eq!(
                leaders.len(),
                1,
                "n={n} seed={seed}: one new leader at once"
            );
            let new = hand.node(leaders[0]);
            assert_eq!(
                new.term(),
                Term(term.0 + 1),
                "n={n} seed={seed}: one election, no split vote"
            );
            assert!(new.commit_index() > committed, "its no-op commits at once");
            for id in hand.alive() {
                assert_eq!(hand.node(id).leader(), Some(leaders[0]), "all follow it");
            }
        }
    }
}

/// Fast failover when the followers' logs differ: the follower with the longer log is elected,
/// whichever follower learns of the reset first.
#[test]
fn the_most_up_to_date_follower_wins_a_fast_failover() {
    for ahead_first in [true, false] {
        let mut hand = Hand::new(3, config);
        let leader = hand.elect();
        let followers: Vec<NodeId> = hand.ids().into_iter().filter(|&i| i != leader).collect();
        let (behind, ahead) = (followers[0], followers[1]);
        // One follower misses the last entry.
        hand.cut.insert(pair(leader, behind));
        let now = hand.now;
        hand.node_mut(leader)
            .propose(bytes::Bytes::from_static(b"x"), now)
            .expect("the leader accepts");
        hand.pump();
        hand.cut.remove(&pair(leader, behind));
        assert!(hand.node(ahead).last_index() > hand.node(behind).last_index());
        // The leader dies; one follower learns of it before the other.
        hand.dead.insert(leader);
        let (first, second) = if ahead_first {
            (ahead, behind)
        } else {
            (behind, ahead)
        };
        hand.node_mut(first).link_down(leader, now);
        hand.pump();
        hand.node_mut(second).link_down(leader, now);
        hand.pump();
        assert_eq!(
            hand.leaders(),
            [ahead],
            "ahead first: {ahead_first}: the longer log wins, at once"
        );
    }
}

/// A healthy leader whose link to one follower resets is not disturbed, with 3 and 5 voters:
/// that follower's pre-vote is refused by the followers still linked to the leader, no term
/// rises, and once the link is back the follower follows the same leader.
#[test]
fn a_leader_that_lost_one_link_is_not_disturbed() {
    for n in [3, 5] {
        let mut hand = Hand::new(n, config);
        let leader = hand.elect();
        let term = hand.max_term();
        let lonely = hand
            .ids()
            .into_iter()
            .find(|&i| i != leader)
            .expect("a follower");
        hand.cut_link(leader, lonely);
        hand.pump();
        assert_eq!(hand.leaders(), [leader], "n={n}: the leader stays");
        assert_eq!(hand.max_term(), term, "n={n}: no term rose");
        assert_eq!(hand.vote_requests, 0, "n={n}: no real election started");
        assert_ne!(
            hand.node(lonely).role(),
            RoleKind::Leader,
            "n={n}: the cut-off follower does not lead"
        );
        // Heartbeats go on to the others for a while, then the link comes back.
        hand.settle();
        assert_eq!(hand.leaders(), [leader]);
        hand.mend_link(leader, lonely);
        hand.settle();
        assert_eq!(hand.leaders(), [leader], "n={n}: still the same leader");
        assert_eq!(hand.max_term(), term, "n={n}: still the same term");
        assert_eq!(
            hand.node(lonely).leader(),
            Some(leader),
            "n={n}: it follows again"
        );
    }
}

/// A partitioned minority does not disrupt the majority: with 5 voters, two followers lose
/// every link to the other three (the leader's included) at once. Their fast pre-votes grant
/// each other but reach no majority; no term rises anywhere, and after healing they follow the
/// same leader. Their ordinary election timeouts while cut off change nothing either.
#[test]
fn a_partitioned_minority_does_not_disrupt() {
    let mut hand = Hand::new(5, config);
    let leader = hand.elect();
    let term = hand.max_term();
    let others: Vec<NodeId> = hand.ids().into_iter().filter(|&i| i != leader).collect();
    let minority = [others[0], others[1]];
    let majority: Vec<NodeId> = hand
        .ids()
        .into_iter()
        .filter(|i| !minority.contains(i))
        .collect();
    for &a in &minority {
        for &b in &majority {
            hand.cut_link(a, b);
        }
    }
    hand.pump();
    assert_eq!(hand.leaders(), [leader]);
    assert_eq!(hand.max_term(), term, "the fast pre-votes raised no term");
    // Several election timeouts pass on both sides.
    let until = hand.now + Duration::from_secs(10);
    hand.run_until(Duration::from_millis(50), Duration::from_secs(11), |h| {
        h.now >= until
    });
    assert_eq!(hand.leaders(), [leader], "the majority keeps its leader");
    for &a in &minority {
        assert_eq!(hand.node(a).term(), term, "pre-votes never raise a term");
        for &b in &majority {
            hand.mend_link(a, b);
        }
    }
    hand.settle();
    assert_eq!(hand.leaders(), [leader]);
    assert_eq!(hand.max_term(), term);
    for id in hand.ids() {
        assert_eq!(
            hand.node(id).leader(),
            Some(leader),
            "{id} follows the leader"
        );
    }
}

/// Without pre-vote there is no fast failover (it would raise terms on any lost link): a
/// follower whose link to its leader resets keeps following it until its election timeout.
#[test]
fn no_fast_failover_without_pre_vote() {
    let mut hand = Hand::new(3, |seed| RaftConfig {
        pre_vote: false,
        ..config(seed)
    });
    let leader = hand.elect();
    let follower = hand.ids().into_iter().find(|&i| i != leader).expect("one");
    hand.cut_link(leader, follower);
    hand.pump();
    assert_eq!(hand.node(follower).role(), RoleKind::Follower);
    assert_eq!(hand.node(follower).leader(), Some(leader));
    // Nor with fast failover turned off.
    let mut hand = Hand::new(3, |seed| RaftConfig {
        fast_failover: false,
        ..config(seed)
    });
    let leader = hand.elect();
    let term = hand.max_term();
    hand.kill(leader);
    assert!(hand.leaders().is_empty(), "no leader before a timeout");
    assert_eq!(hand.max_term(), term);
}

/// Cold start, 3 and 5 voters: nodes that just started and are linked to each other elect a
/// leader within the cold-start timeout (plus the network's instant here), far sooner than the
/// minimum election timeout, in one term.
#[test]
fn a_cold_start_elects_within_the_cold_start_timeout() {
    for n in [3, 5] {
        for seed in 0..20 {
            let mut hand = Hand::new(n, |id| config(seed * 100 + id));
            hand.link_all();
            let limit = RaftConfig::default()
                .cold_start_timeout
                .expect("on by default");
            hand.run_until(
                Duration::from_millis(1),
                limit + Duration::from_millis(1),
                |h| h.leaders().len() == 1,
            );
            assert!(hand.now < Instant::ZERO + RaftConfig::default().election_timeout_min);
            assert_eq!(hand.max_term(), Term(1), "n={n} seed={seed}: one election");
        }
    }
}

/// A lone voter is its own majority: started (or restarted) with no partner, it campaigns
/// within the cold-start timeout, not after a whole election timeout.
#[test]
fn a_lone_voter_cold_starts_at_once() {
    for seed in 0..20 {
        let mut hand = Hand::new(1, |id| config(seed * 100 + id));
        let limit = RaftConfig::default()
            .cold_start_timeout
            .expect("on by default");
        let due = hand
            .node(NodeId(1))
            .next_deadline()
            .expect("an election timer");
        assert!(due <= Instant::ZERO + limit, "seed={seed}: due at {due:?}");
        hand.run_until(
            Duration::from_millis(1),
            limit + Duration::from_millis(1),
            |h| h.leaders().len() == 1,
        );
        assert_eq!(hand.leaders().len(), 1, "seed={seed}: the lone voter leads");
    }
}

/// Cold start needs links to a majority: a node of 5 linked to only one other keeps its whole
/// election timeout, and so does every node with the shortcut turned off.
#[test]
fn a_cold_start_waits_for_links_to_a_majority() {
    let mut hand = Hand::new(5, config);
    let (a, b) = (NodeId(1), NodeId(2));
    hand.node_mut(a).link_up(b, Instant::ZERO);
    hand.node_mut(b).link_up(a, Instant::ZERO);
    let min = RaftConfig::default().election_timeout_min;
    for id in hand.ids() {
        let due = hand.node(id).next_deadline().expect("an election timer");
        assert!(
            due >= Instant::ZERO + min,
            "{id} keeps its election timeout"
        );
    }
    hand.node_mut(a).link_up(NodeId(3), Instant::ZERO);
    let due = hand.node(a).next_deadline().expect("an election timer");
    assert!(
        due < Instant::ZERO + min,
        "linked to a majority, it may campaign early"
    );

    let mut hand = Hand::new(3, |seed| RaftConfig {
        cold_start_timeout: None,
        ..config(seed)
    });
    hand.link_all();
    for id in hand.ids() {
        let due = hand.node(id).next_deadline().expect("an election timer");
        assert!(due >= Instant::ZERO + min, "{id}: the shortcut is off");
    }
}

/// A node restarted into a running cluster takes the cold-start shortcut too, and disturbs
/// nobody: the followers linked to the leader refuse its pre-vote, no term rises, and it follows
/// the leader at its next heartbeat.
#[test]
fn a_restarted_node_does_not_disturb_the_leader() {
    let mut hand = Hand::new(3, config);
    let leader = hand.elect();
    let term = hand.max_term();
    let restarted = hand.ids().into_iter().find(|&i| i != leader).expect("one");
    // It restarts empty, with its durable term, at this instant.
    let voters = hand.ids();
    let now = hand.now;
    let mut fresh = RaftNode::new(
        restarted,
        Membership::new(voters.iter().copied(), []),
        config(77),
        Restored {
            hard_state: syncobj_raft::HardState {
                term,
                vote: None,
                commit: syncobj_raft::LogIndex::ZERO,
            },
            ..Restored::default()
        },
        now,
    )
    .expect("a valid voter");
    for &other in &voters {
        if other != restarted {
            fresh.link_up(other, now);
        }
    }
    *hand.node_mut(restarted) = fresh;
    // Time moves in small steps, so its short timer fires before the next heartbeat.
    hand.run_until(Duration::from_millis(1), Duration::from_secs(1), |h| {
        h.node(restarted).leader() == Some(leader)
    });
    assert_eq!(hand.leaders(), [leader]);
    assert_eq!(hand.max_term(), term, "no term rose");
    assert_eq!(hand.vote_requests, 0, "no real election started");
}
