//! `syncobj-admin` against real nodes: two or three nodes in this process over loopback TCP,
//! the tool run as a process (PySyncObj's `test_syncobjAdminStatus`,
//! `test_syncobjAdminAddRemove`, `test_syncobjAdminSetVersion`).

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    fn add(&mut self, n: i64) -> i64 {
        self.value += n;
        self.value
    }

    #[replicated(ver = 1)]
    fn reset(&mut self) {
        self.value = 0;
    }
}

fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback has free ports");
    listener.local_addr().expect("bound").to_string()
}

fn conf(password: Option<&str>) -> SyncObjConf {
    let mut builder = SyncObjConf::builder()
        .append_entries_period(Duration::from_millis(20))
        .raft_min_timeout(Duration::from_millis(150))
        .raft_max_timeout(Duration::from_millis(300))
        .leader_fallback_timeout(Duration::from_millis(150))
        .connection_timeout(Duration::from_millis(600))
        .connection_retry_time(Duration::from_millis(50))
        .dynamic_membership_change(true);
    if let Some(password) = password {
        builder = builder.password(password);
    }
    builder.build().expect("a valid configuration")
}

fn start(me: &str, partners: &[String], password: Option<&str>) -> SyncObj<Counter> {
    let partners = partners.iter().filter(|a| *a != me).cloned();
    SyncObj::new(me, partners, Counter::default(), conf(password)).expect("the node starts")
}

fn cluster(n: usize, password: Option<&str>) -> (Vec<String>, Vec<SyncObj<Counter>>) {
    let addresses: Vec<String> = (0..n).map(|_| free_address()).collect();
    let nodes: Vec<_> = addresses
        .iter()
        .map(|me| start(me, &addresses, password))
        .collect();
    for node in &nodes {
        assert!(
            node.wait_ready(Duration::from_secs(20)),
            "the node is ready"
        );
    }
    (addresses, nodes)
}

/// Runs the tool; returns its exit code, stdout and stderr.
fn admin(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_syncobj-admin"))
        .args(args)
        .output()
        .expect("the tool runs");
    (
        output.status.code().expect("the tool exits, not killed"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// `status` prints sorted `key: value` lines, the keys of `SyncObj::status`; `--json` the
/// same report as JSON; PySyncObj's spellings work.
#[test]
fn status_over_loopback_text_json_and_pysyncobj_spellings() {
    let (addresses, nodes) = cluster(2, None);
    let (code, out, err) = admin(&["--conn", &addresses[0], "status"]);
    assert_eq!(code, 0, "{err}");
    let keys: Vec<&str> = out
        .lines()
        .map(|l| l.split(": ").next().unwrap_or(""))
        .collect();
    let expected: Vec<String> = nodes[0]
        .status()
        .key_values()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, expected);
    assert!(out.contains(&format!("self: {}", addresses[0])), "{out}");

    let (code, out, err) = admin(&["--conn", &addresses[0], "status", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim_start().starts_with('{'), "{out}");
    assert!(
        out.contains(&format!("\"self_node\": \"{}\"", addresses[0])),
        "{out}"
    );

    let (code, out, err) = admin(&["-conn", &addresses[1], "-status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("self: {}", addresses[1])), "{out}");
    // The count is published with the node's next iteration, which may come after the answer.
    wait_until("the status counts the administrator's connection", || {
        nodes[1].status().wire.admin_connections >= 1
    });
}

/// PySyncObj `test_syncobjAdminStatus`: with a password; a wrong or missing one is refused.
#[test]
fn status_with_a_password_and_wrong_passwords() {
    let (addresses, nodes) = cluster(2, Some("123"));
    let (code, out, err) = admin(&["-conn", &addresses[0], "-pass", "123", "-status"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().count(),
        nodes[0].status().key_values().len(),
        "{out}"
    );

    let (code, out, err) = admin(&["--conn", &addresses[0], "--password", "456", "status"]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("closed the connection"), "{err}");

    let (code, _, err) = admin(&["--conn", &addresses[0], "status"]);
    assert_eq!(code, 2);
    assert!(err.contains("requires a password"), "{err}");
}

/// PySyncObj `test_syncobjAdminAddRemove`: add a third node (the tool waits while it starts
/// and catches up), then remove it.
#[test]
fn add_then_remove_a_node() {
    let (addresses, nodes) = cluster(2, None);
    let third = free_address();
    let adding = Command::new(env!("CARGO_BIN_EXE_syncobj-admin"))
        .args(["-conn", &addresses[0], "-add", &third])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tool runs");
    let mut all = addresses.clone();
    all.push(third.clone());
    let new = start(&third, &all, None);
    let output = adding.wait_with_output().expect("the tool ends");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(0), "{out} {err}");
    assert_eq!(out.trim(), format!("SUCCESS ADD {third}"));
    assert!(new.wait_ready(Duration::from_secs(20)));
    wait_until("the third node votes", || {
        nodes[1].status().membership.voters.len() == 3
    });

    let (code, out, err) = admin(&["--conn", &addresses[1], "remove", &third]);
    assert_eq!(
        (code, out.trim()),
        (0, &*format!("SUCCESS REMOVE {third}")),
        "{err}"
    );
    drop(new);
    wait_until("two voters remain", || {
        nodes
            .iter()
            .all(|n| n.status().membership.voters.len() == 2)
    });
    assert_eq!(nodes[0].add(1).wait(), Ok(1));

    // A member cannot be added twice: refused, exit 1 with the reason.
    let (code, out, _) = admin(&["--conn", &addresses[0], "add", &addresses[1]]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!("FAIL ADD {}: ", addresses[1])),
        "{out}"
    );
}

/// PySyncObj `test_syncobjAdminSetVersion`: version 1 enables the `ver = 1` method everywhere.
#[test]
fn set_version_enables_newer_methods() {
    let (addresses, nodes) = cluster(2, None);
    assert_eq!(nodes[0].add(5).wait(), Ok(5));
    assert!(nodes[0].reset().wait().is_err(), "reset needs version 1");
    let (code, out, err) = admin(&["-conn", &addresses[0], "-set_version", "1"]);
    assert_eq!((code, out.trim()), (0, "SUCCESS SET_VERSION 1"), "{err}");
    wait_until("both nodes run version 1", || {
        nodes.iter().all(|n| n.code_version() == 1)
    });
    assert_eq!(nodes[1].reset().wait(), Ok(()));
    assert_eq!(nodes[0].add(2).wait(), Ok(2));

    let (code, out, _) = admin(&["--conn", &addresses[0], "set-version", "7"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAIL SET_VERSION 7: "), "{out}");
}

/// `transfer` hands the leadership over, to a named voter or to the most up-to-date one.
#[test]
fn transfer_the_leadership() {
    let (addresses, nodes) = cluster(3, None);
    let leader = nodes[0].leader().expect("a leader");
    let target = addresses
        .iter()
        .find(|a| **a != leader)
        .expect("a follower")
        .clone();
    let (code, out, err) = admin(&["--conn", &addresses[0], "transfer", &target]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out.trim(), format!("SUCCESS TRANSFER {target}"));
    assert_eq!(nodes[0].leader().as_deref(), Some(&*target));

    // A transfer to the leader is refused with that reason (it once read as a refused
    // membership change). Asked of the leader, which knows it leads.
    let (code, out, err) = admin(&["--conn", &target, "transfer", &target]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        out.trim(),
        format!("FAIL TRANSFER {target}: refused: {target} leads already")
    );

    let (code, out, err) = admin(&["--conn", &addresses[1], "transfer"]);
    assert_eq!((code, out.trim()), (0, "SUCCESS TRANSFER"), "{err}");
    assert_ne!(nodes[1].leader().as_deref(), Some(&*target));
}

/// Unreachable nodes and bad arguments exit 2.
#[test]
fn unreachable_and_bad_arguments_exit_2() {
    let nobody = free_address();
    let (code, _, err) = admin(&["--conn", &nobody, "--timeout", "5", "status"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot connect"), "{err}");
    for args in [
        &["status"][..],
        &["--conn", "no-port", "status"],
        &["--conn", &nobody],
        &["--conn", &nobody, "set-version", "x"],
        &["--conn", &nobody, "frobnicate"],
    ] {
        let (code, _, err) = admin(args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}
