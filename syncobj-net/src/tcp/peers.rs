//! The peers of a [`TcpTransport`](super::TcpTransport): their ids, names, links and dial
//! schedules.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mio::Token;

use crate::PeerId;

/// What kind of peer a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A voter, configured or added with `add_peer`; `dials` if this node dials it first.
    Voter {
        /// Whether this node dials it as soon as due (its address sorts below ours, or we are
        /// read-only); if not, this node knocks (dials it after a delay) while unlinked.
        dials: bool,
    },
    /// A read-only node, while it is linked.
    ReadOnly,
    /// A voter of the cluster that is not a peer of this node, while it is linked (never
    /// dialled); [`Peers::promote`] makes it a voter.
    Stranger,
}

impl Kind {
    /// Whether a slot of this kind lives only as long as its link.
    pub(super) fn transient(self) -> bool {
        matches!(self, Kind::ReadOnly | Kind::Stranger)
    }
}

/// One peer.
#[derive(Debug)]
pub(super) struct Slot {
    /// A voter's address, or a read-only node's name.
    pub(super) name: String,
    pub(super) kind: Kind,
    /// The open connection that is its link, while the link is up.
    pub(super) link: Option<Token>,
    /// When it may be dialled next (voters).
    pub(super) next_dial: Instant,
    /// The pause after the next dial; back to the minimum when a link with it opens.
    pub(super) backoff: Duration,
    /// Whether a link with it ever opened: a peer reached before is redialled sooner while
    /// this node is in a minority (its own network was likely cut).
    pub(super) reached: bool,
}

/// The peers, by id and by name. Ids index `slots`, so they stay dense: a read-only node's or
/// a stranger's id is freed when it leaves and handed out again first.
#[derive(Debug, Default)]
pub(super) struct Peers {
    /// Indexed by [`PeerId`]; `None` for a freed id.
    slots: Vec<Option<Slot>>,
    by_name: HashMap<String, PeerId>,
    /// Freed ids, reused before new ones.
    free: Vec<PeerId>,
}

impl Peers {
    /// The id of the peer named `name`, if it is one. Costs a hash of `name`.
    pub(super) fn id(&self, name: &str) -> Option<PeerId> {
        self.by_name.get(name).copied()
    }

    /// The peer `id`, if it is one.
    pub(super) fn get(&self, id: PeerId) -> Option<&Slot> {
        self.slots.get(id.index()).and_then(Option::as_ref)
    }

    /// The peer `id`, if it is one.
    pub(super) fn get_mut(&mut self, id: PeerId) -> Option<&mut Slot> {
        self.slots.get_mut(id.index()).and_then(Option::as_mut)
    }

    /// Every peer, by id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (PeerId, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| Some((PeerId(i as u32), slot.as_ref()?)))
    }

    /// The id of voter `address`, added (to be dialled first at `now` if `dials`) unless known.
    pub(super) fn add_voter(
        &mut self,
        address: &str,
        dials: bool,
        backoff: Duration,
        now: Instant,
    ) -> PeerId {
        if let Some(id) = self.id(address) {
            return id;
        }
        self.insert(address, Kind::Voter { dials }, backoff, now)
    }

    /// The read-only nodes linked now.
    pub(super) fn read_only_count(&self) -> usize {
        self.count(Kind::ReadOnly)
    }

    /// An id for the read-only node `name`, which linked; `None` when `max` are linked
    /// already. The caller checked that the name is new.
    pub(super) fn add_read_only(&mut self, name: &str, max: usize, now: Instant) -> Option<PeerId> {
        self.add_transient(name, Kind::ReadOnly, max, now)
    }

    /// The strangers linked now.
    pub(super) fn stranger_count(&self) -> usize {
        self.count(Kind::Stranger)
    }

    /// An id for the stranger `name`, which linked; `None` when `max` are linked already. The
    /// caller checked that the name is new.
    pub(super) fn add_stranger(&mut self, name: &str, max: usize, now: Instant) -> Option<PeerId> {
        self.add_transient(name, Kind::Stranger, max, now)
    }

    /// The peers of `kind`. Costs a pass over the slots (once per accepted hello).
    fn count(&self, kind: Kind) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.kind == kind)
            .count()
    }

    /// An id for `name`, a transient peer of `kind`, unless `max` of that kind are linked.
    fn add_transient(
        &mut self,
        name: &str,
        kind: Kind,
        max: usize,
        now: Instant,
    ) -> Option<PeerId> {
        (self.count(kind) < max).then(|| self.insert(name, kind, Duration::ZERO, now))
    }

    /// Makes stranger `id` a voter, keeping its id and link (to be dialled, if `dials`, once
    /// its link is gone). Returns whether it was a stranger.
    pub(super) fn promote(&mut self, id: PeerId, dials: bool, backoff: Duration) -> bool {
        let Some(slot) = self.get_mut(id) else {
            return false;
        };
        if slot.kind != Kind::Stranger {
            return false;
        }
        slot.kind = Kind::Voter { dials };
        slot.backoff = backoff;
        true
    }

    /// Forgets read-only node or stranger `id`, whose link is gone; its id may be handed out
    /// again. Returns its kind, or `None` (nothing done) for a voter or an unknown id.
    pub(super) fn remove_transient(&mut self, id: PeerId) -> Option<Kind> {
        let slot = self.slots.get_mut(id.index())?;
        let kind = slot.as_ref()?.kind;
        if !kind.transient() {
            return None;
        }
        let slot = slot.take()?;
        self.by_name.remove(&slot.name);
        self.free.push(id);
        Some(kind)
    }

    /// Forgets voter `id`, which left the cluster; returns its name. Its id is not handed out
    /// again (the layer above may still hear of it), and its name may be added anew.
    pub(super) fn remove_voter(&mut self, id: PeerId) -> Option<String> {
        let slot = self.slots.get_mut(id.index())?;
        if !matches!(slot.as_ref()?.kind, Kind::Voter { .. }) {
            return None;
        }
        let slot = slot.take()?;
        self.by_name.remove(&slot.name);
        Some(slot.name)
    }

    fn insert(&mut self, name: &str, kind: Kind, backoff: Duration, now: Instant) -> PeerId {
        let slot = Slot {
            name: name.to_owned(),
            kind,
            link: None,
            next_dial: now,
            backoff,
            reached: false,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id.index()] = Some(slot);
                id
            }
            None => {
                let id = PeerId(u32::try_from(self.slots.len()).unwrap_or(u32::MAX));
                self.slots.push(Some(slot));
                id
            }
        };
        self.by_name.insert(name.to_owned(), id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ_ONLY_LINKS_MAX: usize = 256;

    #[test]
    fn voters_keep_their_ids_and_read_only_ids_are_reused() {
        let now = Instant::now();
        let mut peers = Peers::default();
        let a = peers.add_voter("a:1", true, Duration::ZERO, now);
        let b = peers.add_voter("b:2", false, Duration::ZERO, now);
        assert_eq!((a, b), (PeerId(0), PeerId(1)));
        assert_eq!(peers.add_voter("a:1", false, Duration::ZERO, now), a);
        let r = peers
            .add_read_only("readonly:1", READ_ONLY_LINKS_MAX, now)
            .expect("room");
        assert_eq!(r, PeerId(2));
        assert_eq!(peers.remove_transient(a), None);
        assert_eq!(peers.id("a:1"), Some(a), "voters are never removed");
        assert_eq!(peers.remove_transient(r), Some(Kind::ReadOnly));
        assert_eq!(peers.id("readonly:1"), None);
        assert!(peers.get(r).is_none());
        let s = peers
            .add_read_only("readonly:2", READ_ONLY_LINKS_MAX, now)
            .expect("room");
        assert_eq!(s, r, "the freed id is reused");
        assert_eq!(peers.iter().count(), 3);
        assert_eq!(peers.remove_voter(s), None, "not a voter");
        assert_eq!(peers.remove_voter(b).as_deref(), Some("b:2"));
        assert_eq!(peers.id("b:2"), None);
        let c = peers.add_voter("c:3", true, Duration::ZERO, now);
        assert_ne!(c, b, "a removed voter's id is not reused");
        assert_eq!(peers.add_voter("b:2", true, Duration::ZERO, now).index(), 4);
    }

    #[test]
    fn read_only_nodes_are_limited() {
        let now = Instant::now();
        let mut peers = Peers::default();
        for i in 0..READ_ONLY_LINKS_MAX {
            assert!(
                peers
                    .add_read_only(&format!("readonly:{i:x}"), READ_ONLY_LINKS_MAX, now)
                    .is_some()
            );
        }
        let max = READ_ONLY_LINKS_MAX;
        assert_eq!(peers.add_read_only("readonly:ffff", max, now), None);
        assert_eq!(peers.read_only_count(), max);
        peers.remove_transient(PeerId(0));
        assert_eq!(
            peers.add_read_only("readonly:ffff", max, now),
            Some(PeerId(0))
        );
    }

    #[test]
    fn strangers_are_limited_and_promoted_in_place() {
        let now = Instant::now();
        let mut peers = Peers::default();
        let a = peers.add_voter("a:1", true, Duration::ZERO, now);
        let max = 2;
        let s = peers.add_stranger("s:1", max, now).expect("room");
        let t = peers.add_stranger("t:1", max, now).expect("room");
        assert_eq!(peers.add_stranger("u:1", max, now), None, "at the cap");
        assert_eq!(peers.stranger_count(), 2);
        assert!(!peers.promote(a, true, Duration::ZERO), "a voter already");
        assert!(peers.promote(s, false, Duration::ZERO));
        assert_eq!(peers.id("s:1"), Some(s), "the same id");
        assert_eq!(
            peers.get(s).map(|slot| slot.kind),
            Some(Kind::Voter { dials: false })
        );
        assert_eq!(peers.stranger_count(), 1);
        assert_eq!(peers.remove_transient(s), None, "a voter now");
        assert_eq!(peers.remove_transient(t), Some(Kind::Stranger));
        assert_eq!(peers.stranger_count(), 0);
        let u = peers.add_stranger("u:1", max, now).expect("room again");
        assert_eq!(u, t, "the freed id is reused");
    }
}
