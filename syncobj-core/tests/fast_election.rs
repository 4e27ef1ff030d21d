//! The fast paths of elections in the deterministic simulator, whose transports report links
//! going down when a peer's process dies (within 5 ms), down across a partition only after a
//! silence of 0.1 s to 4 s, and up 1 to 20 ms after a start or a heal. Every invariant is
//! checked after every step; times are virtual.
//!
//! The same rules driven by hand, message by message, are in `syncobj-raft/tests/fast_election.rs`.

use std::time::Duration;

use syncobj_core::raft::{NodeId, RaftConfig, Term};
use syncobj_core::sim::{Cluster, ClusterConfig};

/// A cluster of `voters` on the simulator's reliable network (1–5 ms per message).
fn cluster(voters: usize, seed: u64, raft: RaftConfig) -> Cluster {
    Cluster::new(ClusterConfig {
        raft,
        ..ClusterConfig::new(voters, seed)
    })
}

fn leader_of_max_term(c: &Cluster) -> Option<NodeId> {
    c.leader()
        .filter(|&l| c.node(l).is_some_and(|n| n.term() == c.max_term()))
}

/// A cluster that starts together elects its leader through the cold-start timeout, well
/// before the minimum election timeout, in the first term.
#[test]
fn a_cluster_started_together_elects_within_the_cold_start_timeout() {
    for voters in [3, 5] {
        for seed in 0..50 {
            let mut c = cluster(voters, seed, RaftConfig::default());
            let min = RaftConfig::default().election_timeout_min;
            let elected = c
                .run_until_true(min, |c| leader_of_max_term(c).is_some())
                .expect("no invariant breaks");
            assert!(
                elected,
                "voters={voters} seed={seed}: elected before {min:?}"
            );
            assert_eq!(c.max_term(), Term(1), "voters={voters} seed={seed}");
        }
    }
}

/// The leader's process dies: its followers hear of the reset within 5 ms and elect a new
/// leader, which commits, well within the minimum election timeout, in the next term.
#[test]
fn a_dead_leader_is_replaced_before_any_election_timeout() {
    for voters in [3, 5] {
        for seed in 0..50 {
            let mut c = cluster(voters, seed, RaftConfig::default());
            c.run_until_true(Duration::from_secs(20), |c| leader_of_max_term(c).is_some())
                .expect("no invariant breaks");
            c.run_for(Duration::from_secs(1))
                .expect("no invariant breaks");
            let old = c.leader().expect("a leader");
            let term = c.max_term();
            c.crash(old);
            let min = RaftConfig::default().election_timeout_min;
            let replaced = c
                .run_until_true(min, |c| {
                    leader_of_max_term(c).is_some_and(|l| {
                        l != old
                            && c.node(l).is_some_and(|n| {
                                n.commit_index() == n.last_index() && n.term() > term
                            })
                    })
                })
                .expect("no invariant breaks");
            assert!(
                replaced,
                "voters={voters} seed={seed}: replaced before {min:?}"
            );
            assert_eq!(
                c.max_term(),
                Term(term.0 + 1),
                "voters={voters} seed={seed}"
            );
        }
    }
}

/// A minority cut off by a partition hears of it only after its links time out; its fast
/// pre-votes then reach no majority: for ten seconds no term rises and the leader stays.
#[test]
fn a_partitioned_minority_leaves_the_leader_alone() {
    for seed in 0..10 {
        let mut c = cluster(5, seed, RaftConfig::default());
        c.run_until_true(Duration::from_secs(20), |c| leader_of_max_term(c).is_some())
            .expect("no invariant breaks");
        c.run_for(Duration::from_secs(1))
            .expect("no invariant breaks");
        let leader = c.leader().expect("a leader");
        let term = c.max_term();
        let minority: Vec<NodeId> = c
            .node_ids()
            .into_iter()
            .filter(|&n| n != leader)
            .take(2)
            .collect();
        c.partition(&[minority]);
        c.run_for(Duration::from_secs(10))
            .expect("no invariant breaks");
        assert_eq!(c.leader(), Some(leader), "seed={seed}: the leader stays");
        assert_eq!(c.max_term(), term, "seed={seed}: no term rose");
        c.heal();
        c.run_for(Duration::from_secs(2))
            .expect("no invariant breaks");
        assert_eq!(c.leader(), Some(leader), "seed={seed}: the leader stays");
        assert_eq!(c.max_term(), term, "seed={seed}: no term rose");
    }
}
