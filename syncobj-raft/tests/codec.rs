//! Property tests of the wire encoding of Raft messages (MessagePack through `rmp-serde`):
//! every [`Envelope`] survives a round trip, and no input, garbled or cut short, makes the
//! decoder panic.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use syncobj_raft::{
    AppendEntries, AppendOutcome, AppendResponse, Entry, EntryKind, Envelope, LogIndex, Message,
    NodeId, RequestVote, Term, VoteKind, VoteResponse,
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
    prop_oneof![Just(EntryKind::Noop), Just(EntryKind::Command)]
}

prop_compose! {
    fn arb_entry()(
        index in arb_index(),
        term in arb_term(),
        kind in arb_entry_kind(),
        data in vec(any::<u8>(), 0..=256),
    ) -> Entry {
        Entry { index, term, kind, data: Bytes::from(data) }
    }
}

prop_compose! {
    fn arb_request_vote()(
        kind in arb_vote_kind(),
        term in arb_term(),
        last_log_index in arb_index(),
        last_log_term in arb_term(),
    ) -> RequestVote {
        RequestVote { kind, term, last_log_index, last_log_term }
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

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        arb_request_vote().prop_map(Message::RequestVote),
        arb_vote_response().prop_map(Message::VoteResponse),
        arb_append_entries().prop_map(Message::AppendEntries),
        arb_append_response().prop_map(Message::AppendResponse),
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
    let mut messages = Vec::new();
    for kind in [VoteKind::PreVote, VoteKind::Vote] {
        messages.push(Message::RequestVote(RequestVote {
            kind,
            term: Term(4),
            last_log_index: LogIndex(8),
            last_log_term: Term(3),
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
        entries: vec![entry, noop],
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
