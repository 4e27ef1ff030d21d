//! A bounded queue that holds memory only for what it holds.
//!
//! `crossbeam_channel::bounded(n)` builds its ring of `n` slots up front and touches every one:
//! with the default `commands_queue_size` of 100 000 calls, that is 4.6 MiB resident in every
//! node from its start, idle or not. This queue keeps the same limit with a counter in front
//! of an unbounded channel, whose blocks are allocated as items arrive and freed as they are
//! taken. The counter is raised before an item goes in and lowered after it comes out, so the
//! channel never holds more than the limit, however many threads send at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::TrySendError;

/// A queue of at most `capacity` items: its sending and receiving ends (both cloneable).
pub(crate) fn bounded<T>(capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    let held = Arc::new(AtomicUsize::new(0));
    (
        QueueSender {
            sender,
            held: Arc::clone(&held),
            capacity,
        },
        QueueReceiver { receiver, held },
    )
}

/// The sending end of [`bounded`].
pub(crate) struct QueueSender<T> {
    sender: crossbeam_channel::Sender<T>,
    /// Items sent and not yet taken, counting those being sent now.
    held: Arc<AtomicUsize>,
    capacity: usize,
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        QueueSender {
            sender: self.sender.clone(),
            held: Arc::clone(&self.held),
            capacity: self.capacity,
        }
    }
}

impl<T> QueueSender<T> {
    /// Queues `item` unless the queue holds `capacity` items (`Full`) or every receiving end
    /// is gone (`Disconnected`); either way the item comes back.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        if self.held.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.held.fetch_sub(1, Ordering::AcqRel);
            return Err(TrySendError::Full(item));
        }
        self.sender.try_send(item).inspect_err(|_| {
            self.held.fetch_sub(1, Ordering::AcqRel);
        })
    }
}

/// The receiving end of [`bounded`].
pub(crate) struct QueueReceiver<T> {
    receiver: crossbeam_channel::Receiver<T>,
    held: Arc<AtomicUsize>,
}

impl<T> Clone for QueueReceiver<T> {
    fn clone(&self) -> Self {
        QueueReceiver {
            receiver: self.receiver.clone(),
            held: Arc::clone(&self.held),
        }
    }
}

impl<T> QueueReceiver<T> {
    /// Takes the items queued now, one by one, without waiting.
    pub(crate) fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        self.receiver.try_iter().inspect(|_| {
            self.held.fetch_sub(1, Ordering::AcqRel);
        })
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// How many items are queued.
    #[cfg(feature = "sim")]
    pub(crate) fn len(&self) -> usize {
        self.receiver.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_and_taking_makes_room() {
        let (sender, receiver) = bounded::<u32>(2);
        assert!(sender.try_send(1).is_ok());
        assert!(sender.clone().try_send(2).is_ok());
        assert!(matches!(sender.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(receiver.try_iter().next(), Some(1));
        assert!(sender.try_send(3).is_ok());
        assert_eq!(receiver.try_iter().collect::<Vec<_>>(), vec![2, 3]);
        assert!(sender.try_send(4).is_ok());
    }

    #[test]
    fn a_queue_without_receivers_is_disconnected_and_frees_its_count() {
        let (sender, receiver) = bounded::<u32>(1);
        drop(receiver);
        assert!(matches!(
            sender.try_send(1),
            Err(TrySendError::Disconnected(1))
        ));
        assert_eq!(sender.held.load(Ordering::Acquire), 0);
    }

    #[test]
    fn concurrent_senders_never_exceed_the_limit() {
        let (sender, receiver) = bounded::<u32>(100);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    (0..1_000).filter(|&i| sender.try_send(i).is_ok()).count()
                })
            })
            .collect();
        let sent: usize = threads
            .into_iter()
            .map(|t| t.join().expect("a sender thread panicked"))
            .sum();
        assert_eq!(sent, 100);
        assert_eq!(receiver.try_iter().count(), 100);
    }
}
