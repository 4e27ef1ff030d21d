//! Property tests of the wire encoding of Raft messages (MessagePack through `rmp-serde`):
//! every [`Envelope`] survives a round trip, and no input, garbled or cut short, makes the
//! decoder panic.

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use syncobj_raft::{
    AppendEntries, AppendOutcome, AppendResponse, Entry, EntryKind, Envelope, InstallSnapshot,
    InstallSnapshotResponse, LogIndex, Membership, Message, NodeId, RequestVote, SnapshotOutcome,
    Term, TimeoutNow, VoteKind, VoteResponse,
};

fn arb_term() -> impl Strategy<Value = Term> {
    any::<u64>().prop_map(Term)
}

fn arb_index() -> impl Strategy<Value = LogIndex> {
    any::<u64>().prop_map(LogIndex)
}

fn arb_vote_kind() -> impl Strategy<Value = VoteKind> {
    prop_oneof![Just(VoteKind::PreVote), Just(VoteKind::Vote)]
}

fn arb_entry_kind() -> impl Strategy<Value = EntryKind> {
    prop_oneof![
        Just(EntryKind::Noop),
        Just(EntryKind::Command),
        Just(EntryKind::Membership)
    ]
}

/// One member: id, whether it votes, its address if it has one.
type Member = (u64, bool, Option<String>);

/// The encoding of a membership as its documentation describes it (see `Membership::encode`):
/// version 1, a u32 count, then per member id (u64), role (1 voter, 2 non-voter) and address
/// (u32 length or `u32::MAX` for none, then the bytes), little-endian.
fn encode_by_hand(members: &[Member]) -> Vec<u8> {
    let mut out = vec![1u8];
    let count = u32::try_from(members.len()).expect("few members");
    out.extend_from_slice(&count.to_le_bytes());
    for (id, voter, address) in members {
        out.extend_from_slice(&id.to_le_bytes());
        out.push(if *voter { 1 } else { 2 });
        match address {
            Some(a) => {
                let len = u32::try_from(a.len()).expect("short address");
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(a.as_bytes());
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
    out
}

prop_compose! {
    /// Up to 8 distinct members, with or without an address.
    fn arb_members()(
        members in vec((any::<u64>(), any::<bool>(), proptest::option::of("[a-z0-9.:]{0,24}")), 0..8),
    ) -> Vec<Member> {
        let mut seen = BTreeSet::new();
        members.into_iter().filter(|(id, _, _)| seen.insert(*id)).collect()
    }
}

fn arb_membership() -> impl Strategy<Value = Membership> {
    arb_members().prop_map(|members| {
        Membership::decode(&encode_by_hand(&members)).expect("a valid encoding decodes")
    })
}

prop_compose! {
    fn arb_entry()(
        index in arb_index(),
        term in arb_term(),
        kind in arb_entry_kind(),
        data in vec(any::<u8>(), 0..=256),
        membership in arb_membership(),
    ) -> Entry {
        let data = match kind {
            EntryKind::Membership => Bytes::from(membership.encode()),
            _ => Bytes::from(data),
        };
        Entry { index, term, kind, data }
    }
}

prop_compose! {
    fn arb_request_vote()(
        kind in arb_vote_kind(),
        term in arb_term(),
        last_log_index in arb_index(),
        last_log_term in arb_term(),
        leadership_transfer in any::<bool>(),
    ) -> RequestVote {
        RequestVote { kind, term, last_log_index, last_log_term, leadership_transfer }
    }
}

prop_compose! {
    fn arb_vote_response()(
        kind in arb_vote_kind(),
        term in arb_term(),
        granted in any::<bool>(),
    ) -> VoteResponse {
        VoteResponse { kind, term, granted }
    }
}

prop_compose! {
    fn arb_append_entries()(
        term in arb_term(),
        prev_log_index in arb_index(),
        prev_log_term in arb_term(),
        entries in vec(arb_entry(), 0..8),
        leader_commit in arb_index(),
    ) -> AppendEntries {
        AppendEntries { term, prev_log_index, prev_log_term, entries, leader_commit }
    }
}

fn arb_append_outcome() -> impl Strategy<Value = AppendOutcome> {
    prop_oneof![
        arb_index().prop_map(|match_index| AppendOutcome::Accepted { match_index }),
        (arb_index(), arb_index())
            .prop_map(|(rejected, hint)| AppendOutcome::Rejected { rejected, hint }),
    ]
}

prop_compose! {
    fn arb_append_response()(
        term in arb_term(),
        outcome in arb_append_outcome(),
    ) -> AppendResponse {
        AppendResponse { term, outcome }
    }
}

prop_compose! {
    fn arb_install_snapshot()(
        term in arb_term(),
        last_index in arb_index(),
        last_term in arb_term(),
        offset in any::<u64>(),
        data in vec(any::<u8>(), 0..=64),
        done in any::<bool>(),
        membership in arb_membership(),
    ) -> InstallSnapshot {
        InstallSnapshot { term, last_index, last_term, offset, data: Bytes::from(data), done, membership }
    }
}

fn arb_snapshot_outcome() -> impl Strategy<Value = SnapshotOutcome> {
    prop_oneof![
        any::<u64>().prop_map(|next_offset| SnapshotOutcome::Continue { next_offset }),
        Just(SnapshotOutcome::Installed),
        arb_index().prop_map(|committed| SnapshotOutcome::Stale { committed }),
    ]
}

prop_compose! {
    fn arb_install_snapshot_response()(
        term in arb_term(),
        last_index in arb_index(),
        last_term in arb_term(),
        outcome in arb_snapshot_outcome(),
    ) -> InstallSnapshotResponse {
        InstallSnapshotResponse { term, last_index, last_term, outcome }
    }
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        arb_request_vote().prop_map(Message::RequestVote),
        arb_vote_response().prop_map(Message::VoteResponse),
        arb_append_entries().prop_map(Message::AppendEntries),
        arb_append_response().prop_map(Message::AppendResponse),
        arb_install_snapshot().prop_map(Message::InstallSnapshot),
        arb_install_snapshot_response().prop_map(Message::InstallSnapshotResponse),
        arb_term().prop_map(|term| Message::TimeoutNow(TimeoutNow { term })),
    ]
}

prop_compose! {
    fn arb_envelope()(
        from in any::<u64>(),
        to in any::<u64>(),
        message in arb_message(),
    ) -> Envelope {
        Envelope { from: NodeId(from), to: NodeId(to), message }
    }
}

/// Encodes `envelope` the way the wire does.
fn encode(envelope: &Envelope) -> Vec<u8> {
    rmp_serde::to_vec(envelope).expect("every Envelope is serializable to MessagePack")
}

proptest! {
    /// Encoding then decoding any envelope gives back an equal envelope.
    #[test]
    fn envelope_round_trips(envelope in arb_envelope()) {
        let bytes = encode(&envelope);
        let decoded: Envelope = rmp_serde::from_slice(&bytes)
            .map_err(|e| TestCaseError::fail(format!("decoding a valid encoding failed: {e}")))?;
        prop_assert_eq!(decoded, envelope);
    }

    /// Decoding arbitrary bytes never panics; whatever does decode re-encodes to an equal value.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..512)) {
        if let Ok(envelope) = rmp_serde::from_slice::<Envelope>(&bytes) {
            let again: Envelope = rmp_serde::from_slice(&encode(&envelope))
                .map_err(|e| TestCaseError::fail(format!("re-decoding failed: {e}")))?;
            prop_assert_eq!(again, envelope);
        }
    }

    /// Overwriting one byte of a valid encoding never makes the decoder panic; whatever still
    /// decodes re-encodes to an equal value.
    #[test]
    fn corrupted_encoding_never_panics(
        envelope in arb_envelope(),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = encode(&envelope);
        let at = position.index(bytes.len());
        bytes[at] = byte;
        if let Ok(decoded) = rmp_serde::from_slice::<Envelope>(&bytes) {
            let again: Envelope = rmp_serde::from_slice(&encode(&decoded))
                .map_err(|e| TestCaseError::fail(format!("re-decoding failed: {e}")))?;
            prop_assert_eq!(again, decoded);
        }
    }

    /// Every strict prefix of a valid encoding is rejected with an error, never a panic.
    #[test]
    fn truncated_encoding_is_an_error(envelope in arb_envelope()) {
        let bytes = encode(&envelope);
        for len in 0..bytes.len() {
            let result = rmp_serde::from_slice::<Envelope>(&bytes[..len]);
            prop_assert!(
                result.is_err(),
                "prefix of {} of {} bytes decoded as {:?}",
                len,
                bytes.len(),
                result
            );
        }
    }
}

proptest! {
    /// Thesis §4.1: a configuration entry's data decodes to the membership it was encoded from,
    /// addresses and roles included, and pins the documented byte layout.
    #[test]
    fn membership_encoding_round_trips(members in arb_members()) {
        let bytes = encode_by_hand(&members);
        let membership = Membership::decode(&bytes)
            .map_err(|e| TestCaseError::fail(format!("a valid encoding failed: {e}")))?;
        for (id, voter, address) in &members {
            prop_assert_eq!(membership.is_voter(NodeId(*id)), *voter);
            prop_assert_eq!(membership.address(NodeId(*id)), address.as_deref());
        }
        prop_assert_eq!(membership.members().count(), members.len());
        prop_assert_eq!(Membership::decode(&membership.encode()), Ok(membership.clone()));
        let through_serde: Membership = rmp_serde::from_slice(
            &rmp_serde::to_vec(&membership).expect("serializable"),
        ).map_err(|e| TestCaseError::fail(format!("serde round trip failed: {e}")))?;
        prop_assert_eq!(through_serde, membership);
    }

    /// Garbled or cut membership bytes are refused with an error, never a panic.
    #[test]
    fn garbled_membership_never_panics(
        members in arb_members(),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = encode_by_hand(&members);
        for len in 0..bytes.len() {
            prop_assert!(Membership::decode(&bytes[..len]).is_err(), "prefix of {}", len);
        }
        let at = position.index(bytes.len());
        bytes[at] = byte;
        if let Ok(decoded) = Membership::decode(&bytes) {
            prop_assert_eq!(Membership::decode(&decoded.encode()), Ok(decoded));
        }
    }
}

/// A membership listing one node twice, or as both voter and non-voter, is refused.
#[test]
fn duplicate_members_are_refused() {
    let twice = encode_by_hand(&[(1, true, None), (1, false, None)]);
    assert!(Membership::decode(&twice).is_err());
    let fine = Membership::new([NodeId(1)], [NodeId(2)]);
    let as_wire = |voters: Vec<u64>, non_voters: Vec<u64>| {
        let addresses = std::collections::BTreeMap::<u64, String>::new();
        rmp_serde::to_vec(&(voters, non_voters, addresses)).expect("serializable")
    };
    let decoded: Membership = rmp_serde::from_slice(&as_wire(vec![1], vec![2])).expect("valid");
    assert_eq!(
        decoded, fine,
        "the wire form is (voters, non-voters, addresses)"
    );
    assert!(rmp_serde::from_slice::<Membership>(&as_wire(vec![1], vec![1])).is_err());
}

/// Every `Message` variant, both vote kinds and both append outcomes round-trip; a fixed sample
/// so that a strategy that stopped producing some variant would not hide a codec gap.
#[test]
fn every_variant_round_trips() {
    let entry = Entry {
        index: LogIndex(7),
        term: Term(3),
        kind: EntryKind::Command,
        data: Bytes::from_static(b"payload"),
    };
    let noop = Entry {
        index: LogIndex(8),
        term: Term(3),
        kind: EntryKind::Noop,
        data: Bytes::new(),
    };
    let membership = Membership::with_addresses(
        [(NodeId(1), "10.0.0.1:4321".to_owned())],
        [(NodeId(2), "10.0.0.2:4321".to_owned())],
    );
    let config = Entry {
        index: LogIndex(9),
        term: Term(3),
        kind: EntryKind::Membership,
        data: Bytes::from(membership.encode()),
    };
    let mut messages = vec![
        Message::TimeoutNow(TimeoutNow { term: Term(3) }),
        Message::InstallSnapshot(InstallSnapshot {
            term: Term(3),
            last_index: LogIndex(9),
            last_term: Term(3),
            offset: 0,
            data: Bytes::from_static(b"state"),
            done: true,
            membership: membership.clone(),
        }),
        Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term: Term(3),
            last_index: LogIndex(9),
            last_term: Term(3),
            outcome: SnapshotOutcome::Installed,
        }),
    ];
    for (kind, leadership_transfer) in [
        (VoteKind::PreVote, false),
        (VoteKind::Vote, false),
        (VoteKind::Vote, true),
    ] {
        messages.push(Message::RequestVote(RequestVote {
            kind,
            term: Term(4),
            last_log_index: LogIndex(8),
            last_log_term: Term(3),
            leadership_transfer,
        }));
        messages.push(Message::VoteResponse(VoteResponse {
            kind,
            term: Term(4),
            granted: kind == VoteKind::Vote,
        }));
    }
    messages.push(Message::AppendEntries(AppendEntries {
        term: Term(3),
        prev_log_index: LogIndex(6),
        prev_log_term: Term(2),
        entries: vec![entry, noop, config],
        leader_commit: LogIndex(6),
    }));
    for outcome in [
        AppendOutcome::Accepted {
            match_index: LogIndex(8),
        },
        AppendOutcome::Rejected {
            rejected: LogIndex(6),
            hint: LogIndex(2),
        },
    ] {
        messages.push(Message::AppendResponse(AppendResponse {
            term: Term(3),
            outcome,
        }));
    }
    for message in messages {
        let envelope = Envelope {
            from: NodeId(1),
            to: NodeId(u64::MAX),
            message,
        };
        let decoded: Envelope =
            rmp_serde::from_slice(&encode(&envelope)).expect("a valid encoding decodes");
        assert_eq!(decoded, envelope);
    }
}
