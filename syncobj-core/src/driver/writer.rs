//! The journal writer: persistence off the tick thread.
//!
//! The tick loop hands each `Ready`'s writes (log reset, hard state, entries) to the writer in
//! the order the Readys were drained, numbered by a sequence number, and goes on: it sends
//! what depends on nothing unsaved, steps Raft, applies what is committed. The writer takes
//! whatever was handed over since its last sync as one group, writes it in order, makes the
//! whole group durable with one sync (as the fsync policy defines durable), and reports the
//! highest sequence number now durable. Only then does the tick loop send the messages each
//! write held back and tell Raft (`on_persisted`). Compactions of the journal travel the same
//! queue, so one never overtakes the entries it covers.
//!
//! Two ways to run the same [`Worker`]:
//! - [`Writer::spawn`]: on a thread of its own (`syncobj-journal`), fed by a bounded channel,
//!   answering on a bounded channel and waking the tick loop through the transport's waker;
//! - [`Writer::inline`]: the deterministic simulator's. Handed-over work waits in a bounded
//!   queue until the simulator runs [`Writer::step`] at a virtual time it chose (or the queue
//!   is full), so that nodes go on stepping, sending and crashing while writes are in flight.
//!
//! Either way the ordering is the same: groups in hand-over order, one answer per group,
//! answers in order, nothing acknowledged that the disk refused. After a failure the writer
//! answers with the error once and takes nothing more.
//!
//! A small write when the writer is idle (everything handed over before is answered and the
//! answers taken) is written and synced on the tick thread instead, [`Writer::save_now`]: a
//! hand-over to the writer thread and its answer back cost two thread wake-ups on the path of
//! every call when calls come one at a time, more than writing a few entries. Under load the
//! writes are large or the writer busy, and they go to the thread as before. The order is the
//! same either way: nothing is in flight when a write is made at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, TrySendError};
use parking_lot::Mutex;
use syncobj_net::Wake;

use super::persistence::Persistence;
use crate::conf::FsyncPolicy;
use crate::raft::{Entry, HardState, Instant, LogIndex, LogReset};
use crate::status::JournalStatus;
use crate::storage::StorageError;

/// The most operations handed over and not yet taken by the writer; the tick loop waits
/// (draining answers meanwhile) when it is reached. Each holds one `Ready`'s entries, whose
/// payloads are shared with the Raft log, not copied.
pub(crate) const QUEUED_OPS_MAX: usize = 64;

/// The most answers the writer may have sent and the tick loop not yet taken.
const ANSWERS_MAX: usize = 64;

/// The most entries, and bytes of entries, of a write made at once on the tick thread
/// ([`Writer::save_now`]); larger ones go to the writer thread.
pub(crate) const SAVE_NOW_ENTRIES_MAX: usize = 16;
pub(crate) const SAVE_NOW_BYTES_MAX: usize = 64 << 10;

/// Work for the writer, in the order it must reach the disk.
#[derive(Debug)]
pub(crate) enum Op {
    /// One `Ready`'s writes: the log reset first, then the hard state and the entries.
    Save {
        seq: u64,
        reset: Option<LogReset>,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
        /// The tick loop's time, for holding a hard state that only moves the commit index.
        now: Instant,
    },
    /// Drop the journal's entries up to this index, which a durable snapshot covers.
    DropPrefix(LogIndex),
    /// Under a periodic fsync policy: its period passed, sync what was written.
    Sync,
    /// The node stops: sync everything, the held commit index too, and end.
    Finish,
    /// The node crashed: end at once, writing nothing more and syncing nothing.
    Abandon,
}

/// What the writer reports after each group.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Every `Save` up to `seq` is durable (as the fsync policy defines durable); the
    /// journal now looks like `status`. `ops` operations made the group.
    Durable {
        seq: u64,
        ops: u64,
        status: JournalStatus,
    },
    /// A write or sync failed: what is on disk is unknown, nothing more is acknowledged.
    Failed(StorageError),
}

/// The journal and what the writer needs to run groups on it.
pub(crate) struct Worker {
    persistence: Persistence,
    policy: FsyncPolicy,
    /// The sequence number of the last `Save` written.
    written: u64,
    failed: bool,
}

impl Worker {
    pub(crate) fn new(persistence: Persistence) -> Worker {
        let policy = persistence.policy();
        Worker {
            persistence,
            policy,
            written: 0,
            failed: false,
        }
    }

    /// Writes a group in order and makes it durable with one sync under
    /// [`FsyncPolicy::Always`] (hands it to the operating system under the others; syncs it
    /// too if the group holds a [`Op::Sync`]). With a [`Op::Finish`], the last sync saves the
    /// held commit index too. The answer: `None` if the writer failed before.
    fn run_group(&mut self, ops: impl IntoIterator<Item = Op>) -> Option<Answer> {
        if self.failed {
            return None;
        }
        let mut written = Ok(());
        let (mut sync, mut finish) = (false, false);
        let mut count = 0;
        for op in ops {
            count += 1;
            written = match op {
                Op::Save {
                    seq,
                    reset,
                    hard_state,
                    entries,
                    now,
                } => {
                    self.written = seq;
                    reset
                        .map_or(Ok(()), |reset| self.persistence.reset(reset))
                        .and_then(|()| self.persistence.write(hard_state, &entries, now))
                }
                Op::DropPrefix(index) => self.persistence.drop_prefix(index),
                Op::Sync => {
                    sync = true;
                    Ok(())
                }
                Op::Finish => {
                    finish = true;
                    Ok(())
                }
                // Never run: the thread ends before a group holding it.
                Op::Abandon => Ok(()),
            };
            if written.is_err() {
                break;
            }
        }
        let written = written.and_then(|()| match (self.policy, sync, finish) {
            (_, _, true) => self.persistence.sync_all(),
            (FsyncPolicy::Always, _, _) | (_, true, _) => self.persistence.sync(),
            (FsyncPolicy::Periodic(_) | FsyncPolicy::Never, false, false) => {
                self.persistence.flush()
            }
        });
        match written {
            Ok(()) => Some(Answer::Durable {
                seq: self.written,
                ops: count,
                status: self.persistence.status(),
            }),
            Err(error) => {
                self.failed = true;
                Some(Answer::Failed(error))
            }
        }
    }
}

/// The tick loop's end of the writer.
pub(crate) struct Writer {
    mode: Mode,
    /// The sequence number of the last `Save` handed over.
    last_seq: u64,
    /// Answers taken while waiting for room in the queue, not yet handed to the tick loop.
    early: VecDeque<Answer>,
    policy: FsyncPolicy,
    /// The journal as the writer last reported it.
    status: JournalStatus,
    /// Under a periodic policy: whether writes were handed over since the last sync asked for,
    /// and when that was.
    unsynced: bool,
    last_sync: Instant,
    /// Operations handed over, and those the answers taken so far covered: equal when the
    /// writer is idle.
    handed_ops: u64,
    answered_ops: u64,
}

enum Mode {
    Thread {
        ops: Sender<Op>,
        answers: Receiver<Answer>,
        handle: JoinHandle<()>,
        /// Locked by the thread for each group, and by the tick thread for a write made at
        /// once (when the thread has nothing to do).
        worker: Arc<Mutex<Worker>>,
    },
    Inline {
        worker: Worker,
        queue: VecDeque<Op>,
        answers: VecDeque<Answer>,
    },
    Stopped,
}

impl Writer {
    /// Starts the writer thread on `persistence`; it wakes the tick loop through `waker`
    /// whenever it answers.
    pub(crate) fn spawn(persistence: Persistence, waker: Arc<dyn Wake>) -> std::io::Result<Writer> {
        let (policy, status) = (persistence.policy(), persistence.status());
        let (ops, ops_in) = crossbeam_channel::bounded(QUEUED_OPS_MAX);
        let (answers_out, answers) = crossbeam_channel::bounded(ANSWERS_MAX);
        let worker = Arc::new(Mutex::new(Worker::new(persistence)));
        let shared = Arc::clone(&worker);
        let handle = std::thread::Builder::new()
            .name("syncobj-journal".into())
            .spawn(move || run_thread(&shared, &ops_in, &answers_out, &*waker))?;
        Ok(Writer::with_mode(
            Mode::Thread {
                ops,
                answers,
                handle,
                worker,
            },
            policy,
            status,
        ))
    }

    /// A writer that works only when [`step`](Self::step) is called (or its queue is full):
    /// for the deterministic simulator.
    pub(crate) fn inline(persistence: Persistence) -> Writer {
        let (policy, status) = (persistence.policy(), persistence.status());
        let mode = Mode::Inline {
            worker: Worker::new(persistence),
            queue: VecDeque::new(),
            answers: VecDeque::new(),
        };
        Writer::with_mode(mode, policy, status)
    }

    fn with_mode(mode: Mode, policy: FsyncPolicy, status: JournalStatus) -> Writer {
        Writer {
            mode,
            last_seq: 0,
            early: VecDeque::new(),
            policy,
            status,
            unsynced: false,
            last_sync: Instant::ZERO,
            handed_ops: 0,
            answered_ops: 0,
        }
    }

    /// Whether `entries` (with a hard state, and no log reset) may be written at once on the
    /// tick thread now: they are few and small, and the writer is idle. The simulator's
    /// writer says yes to every other write only, so that both paths run in every seed.
    pub(crate) fn may_save_now(&self, reset: bool, entries: &[Entry]) -> bool {
        let small = || {
            entries.len() <= SAVE_NOW_ENTRIES_MAX
                && entries.iter().map(|e| e.data.len()).sum::<usize>() <= SAVE_NOW_BYTES_MAX
        };
        let idle = self.handed_ops == self.answered_ops && self.early.is_empty();
        let mode = match &self.mode {
            Mode::Thread { .. } => true,
            Mode::Inline { .. } => self.last_seq % 2 == 1,
            Mode::Stopped => false,
        };
        !reset && idle && mode && small()
    }

    /// Writes one `Ready`'s writes and makes them durable (as the policy says) on this thread,
    /// as the writer would have: only when [`may_save_now`](Self::may_save_now) said so, so
    /// that nothing handed over before is still in flight. Returns its sequence number.
    ///
    /// # Errors
    /// The write's or the sync's failure (the writer then takes nothing more);
    /// [`StorageError::Poisoned`] if the writer ended before.
    pub(crate) fn save_now(
        &mut self,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
        now: Instant,
    ) -> Result<u64, StorageError> {
        debug_assert_eq!(self.handed_ops, self.answered_ops, "the writer is idle");
        let seq = self.last_seq + 1;
        let op = Op::Save {
            seq,
            reset: None,
            hard_state,
            entries,
            now,
        };
        let answer = match &mut self.mode {
            Mode::Thread { worker, .. } => worker.lock().run_group([op]),
            Mode::Inline { worker, .. } => worker.run_group([op]),
            Mode::Stopped => None,
        };
        self.last_seq = seq;
        self.unsynced = true;
        match answer {
            Some(Answer::Durable { status, .. }) => {
                self.status = status;
                Ok(seq)
            }
            Some(Answer::Failed(error)) => Err(error),
            None => Err(StorageError::Poisoned),
        }
    }

    /// Hands one `Ready`'s writes over; returns their sequence number. Waits while the queue
    /// is full.
    ///
    /// # Errors
    /// [`StorageError::Poisoned`] if the writer ended (it failed: its answer says why).
    pub(crate) fn save(
        &mut self,
        reset: Option<LogReset>,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
        now: Instant,
    ) -> Result<u64, StorageError> {
        let seq = self.last_seq + 1;
        self.submit(Op::Save {
            seq,
            reset,
            hard_state,
            entries,
            now,
        })?;
        self.last_seq = seq;
        self.unsynced = true;
        Ok(seq)
    }

    /// Hands over a compaction, ordered after every write handed over before it.
    ///
    /// # Errors
    /// As [`save`](Self::save).
    pub(crate) fn drop_prefix(&mut self, index: LogIndex) -> Result<(), StorageError> {
        self.submit(Op::DropPrefix(index))
    }

    /// Under [`FsyncPolicy::Periodic`], asks for a sync once the period has passed since the
    /// last one asked for.
    ///
    /// # Errors
    /// As [`save`](Self::save).
    pub(crate) fn sync_if_due(&mut self, now: Instant) -> Result<(), StorageError> {
        match self.policy {
            FsyncPolicy::Periodic(period) if self.unsynced && now - self.last_sync >= period => {
                self.unsynced = false;
                self.last_sync = now;
                self.submit(Op::Sync)
            }
            _ => Ok(()),
        }
    }

    /// When the next periodic sync is due, if one is.
    pub(crate) fn next_sync(&self) -> Option<Instant> {
        match self.policy {
            FsyncPolicy::Periodic(period) if self.unsynced => Some(self.last_sync + period),
            _ => None,
        }
    }

    /// The journal as the writer last reported it.
    pub(crate) fn status(&self) -> JournalStatus {
        self.status
    }

    /// The writer's next answer, if one came.
    pub(crate) fn try_answer(&mut self) -> Option<Answer> {
        let answer = match self.early.pop_front() {
            Some(answer) => Some(answer),
            None => match &mut self.mode {
                Mode::Thread { answers, .. } => answers.try_recv().ok(),
                Mode::Inline { answers, .. } => answers.pop_front(),
                Mode::Stopped => None,
            },
        };
        if let Some(Answer::Durable { status, ops, .. }) = &answer {
            self.status = *status;
            self.answered_ops += ops;
        }
        answer
    }

    fn submit(&mut self, op: Op) -> Result<(), StorageError> {
        self.handed_ops += 1;
        match &mut self.mode {
            Mode::Thread { ops, answers, .. } => send_draining(ops, answers, op, &mut self.early),
            Mode::Inline { queue, .. } => {
                queue.push_back(op);
                if queue.len() >= QUEUED_OPS_MAX {
                    self.step();
                }
                Ok(())
            }
            Mode::Stopped => Err(StorageError::Poisoned),
        }
    }

    /// Inline writer: whether work waits for [`step`](Self::step).
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn has_pending(&self) -> bool {
        matches!(&self.mode, Mode::Inline { queue, .. } if !queue.is_empty())
    }

    /// Inline writer: runs everything handed over as one group, as the thread would.
    pub(crate) fn step(&mut self) {
        if let Mode::Inline {
            worker,
            queue,
            answers,
        } = &mut self.mode
            && !queue.is_empty()
            && let Some(answer) = worker.run_group(queue.drain(..))
        {
            answers.push_back(answer);
        }
    }

    /// Inline writer: the hard state and the last index its journal holds. Outside
    /// [`step`](Self::step), under [`FsyncPolicy::Always`], all of it is durable.
    #[cfg(feature = "sim")]
    pub(crate) fn durable_view(&self) -> Option<(HardState, LogIndex)> {
        match &self.mode {
            Mode::Inline { worker, .. } if !worker.failed => Some(worker.persistence.view()),
            _ => None,
        }
    }

    /// Stops the writer: everything handed over is written, then synced whatever the policy
    /// (the held commit index too), and the thread is joined. Answers still unread are
    /// dropped (the node is stopping), but a failure among them is returned.
    ///
    /// # Errors
    /// The failure of a write or of the final sync.
    pub(crate) fn finish(&mut self) -> Result<(), StorageError> {
        match std::mem::replace(&mut self.mode, Mode::Stopped) {
            Mode::Thread {
                ops,
                answers,
                handle,
                ..
            } => end_thread((ops, answers, handle), Op::Finish, &mut self.early),
            Mode::Inline {
                mut worker,
                mut queue,
                answers,
            } => {
                self.early.extend(answers);
                queue.push_back(Op::Finish);
                self.early.extend(worker.run_group(queue.drain(..)));
            }
            Mode::Stopped => {}
        }
        let failure = self.early.drain(..).find_map(|answer| match answer {
            Answer::Failed(error) => Some(error),
            Answer::Durable { .. } => None,
        });
        failure.map_or(Ok(()), Err)
    }
}

impl Writer {
    /// Stops the writer as a crash would: what was handed over and not yet written is never
    /// written, nothing more is synced (the held commit index is lost), and the thread is
    /// joined, so that nothing reaches the disk after this returns. A group being written
    /// when this is called is finished first, as a process killed after its write calls.
    pub(crate) fn abandon(&mut self) {
        match std::mem::replace(&mut self.mode, Mode::Stopped) {
            Mode::Thread {
                ops,
                answers,
                handle,
                ..
            } => end_thread((ops, answers, handle), Op::Abandon, &mut self.early),
            Mode::Inline { .. } | Mode::Stopped => {}
        }
        self.early.clear();
    }
}

impl Drop for Writer {
    /// A writer thread never outlives its node: what was handed over is written and synced,
    /// then the thread is joined. An inline writer (the simulator's) does nothing, as a
    /// crashed process would not.
    fn drop(&mut self) {
        if let Mode::Thread { .. } = self.mode
            && let Err(error) = self.finish()
        {
            tracing::error!(%error, "the journal's last sync failed");
        }
    }
}

/// Ends the writer thread with its last op (`Finish` or `Abandon`) and joins it, keeping the
/// answers it gives meanwhile in `early`.
fn end_thread(
    (ops, answers, handle): (Sender<Op>, Receiver<Answer>, JoinHandle<()>),
    last: Op,
    early: &mut VecDeque<Answer>,
) {
    // Refused only if the writer already ended (it failed): its answer says why.
    let _ = send_draining(&ops, &answers, last, early);
    drop(ops);
    // The writer's end of the answers goes when it ends; take them meanwhile, so that it
    // never waits for room.
    early.extend(answers.iter());
    let _ = handle.join();
}

/// Sends `op`, waiting for room while the queue is full and keeping the answers that arrive
/// meanwhile (the writer may itself be waiting for room to answer).
fn send_draining(
    ops: &Sender<Op>,
    answers: &Receiver<Answer>,
    op: Op,
    early: &mut VecDeque<Answer>,
) -> Result<(), StorageError> {
    let op = match ops.try_send(op) {
        Ok(()) => return Ok(()),
        Err(TrySendError::Disconnected(_)) => return Err(StorageError::Poisoned),
        Err(TrySendError::Full(op)) => op,
    };
    loop {
        let mut select = Select::new();
        let send = select.send(ops);
        let recv = select.recv(answers);
        let ready = select.select();
        if ready.index() == send {
            return ready.send(ops, op).map_err(|_| StorageError::Poisoned);
        }
        debug_assert_eq!(ready.index(), recv);
        match ready.recv(answers) {
            Ok(answer) => early.push_back(answer),
            // The writer ended; only the send can tell whether it still takes work.
            Err(_) => return ops.try_send(op).map_err(|_| StorageError::Poisoned),
        }
    }
}

/// The writer thread: takes everything queued as one group, writes and syncs it, answers,
/// wakes the tick loop; ends after [`Op::Finish`], after a failure, or when the tick loop's
/// end of the queue is gone (with a last sync).
fn run_thread(
    worker: &Mutex<Worker>,
    ops: &Receiver<Op>,
    answers: &Sender<Answer>,
    waker: &dyn Wake,
) {
    let mut group = Vec::with_capacity(QUEUED_OPS_MAX);
    loop {
        let Ok(first) = ops.recv() else {
            group.push(Op::Finish);
            let _ = worker.lock().run_group(group.drain(..));
            return;
        };
        group.push(first);
        while group.len() < QUEUED_OPS_MAX {
            match ops.try_recv() {
                Ok(op) => group.push(op),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if group.iter().any(|op| matches!(op, Op::Abandon)) {
            return;
        }
        let finish = group.iter().any(|op| matches!(op, Op::Finish));
        // Released before answering: the tick thread writes at once only after the answer.
        let answer = worker.lock().run_group(group.drain(..));
        let failed = matches!(answer, Some(Answer::Failed(_)));
        if let Some(answer) = answer {
            // The tick loop takes answers while it waits for room or for the end, so this
            // never waits for ever; a tick loop that is gone has no use for them.
            let _ = answers.send(answer);
            waker.wake();
        }
        if finish || failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bytes::Bytes;

    use super::*;
    use crate::raft::{EntryKind, NodeId, Term};
    use crate::storage::{Identity, SimDisk};

    const DIR: &str = "/node/journal";

    fn open(disk: &SimDisk) -> (Persistence, Vec<Entry>) {
        let (persistence, restored) = Persistence::open_on(
            disk.clone(),
            Path::new(DIR),
            1 << 20,
            FsyncPolicy::Always,
            Identity::default(),
        )
        .expect("the journal opens");
        (persistence, restored.entries)
    }

    fn entry(index: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            kind: EntryKind::Command,
            data: Bytes::from(vec![index as u8; 10]),
        }
    }

    fn term_one() -> Option<HardState> {
        Some(HardState {
            term: Term(1),
            vote: Some(NodeId(1)),
            commit: LogIndex::ZERO,
        })
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.index.0).collect()
    }

    /// Everything handed over between two runs of the writer is made durable by one sync,
    /// answered once with the last sequence number; nothing is durable before.
    #[test]
    fn one_sync_covers_a_group() {
        let disk = SimDisk::new(1);
        let mut writer = Writer::inline(open(&disk).0);
        writer
            .save(None, term_one(), vec![entry(1)], Instant::ZERO)
            .expect("handed over");
        writer.step();
        assert!(matches!(
            writer.try_answer(),
            Some(Answer::Durable { seq: 1, .. })
        ));
        let syncs = disk.stats().file_syncs;
        for index in 2..=5 {
            let seq = writer
                .save(None, None, vec![entry(index)], Instant::ZERO)
                .expect("handed over");
            assert_eq!(seq, index);
        }
        assert!(writer.has_pending());
        assert!(
            writer.try_answer().is_none(),
            "nothing durable before a run"
        );
        writer.step();
        assert_eq!(disk.stats().file_syncs - syncs, 1, "one sync for the group");
        let answer = writer.try_answer();
        assert!(
            matches!(answer, Some(Answer::Durable { seq: 5, status, .. }) if status.entries == 5),
            "{answer:?}"
        );
        assert!(writer.try_answer().is_none());
        disk.crash();
        assert_eq!(indexes(&open(&disk).1), [1, 2, 3, 4, 5]);
    }

    /// A small write is offered to be made at once only while nothing handed over is in
    /// flight or unanswered; made at once, it is durable when `save_now` returns, numbered
    /// after what came before, and answered nowhere else.
    #[test]
    fn a_write_made_at_once_waits_for_nothing_in_flight() {
        let disk = SimDisk::new(5);
        let (woken, wakes) = crossbeam_channel::unbounded();
        let mut writer = Writer::spawn(open(&disk).0, Arc::new(Woken(woken))).expect("spawned");
        let few = [entry(1)];
        assert!(writer.may_save_now(false, &few), "idle at the start");
        assert!(!writer.may_save_now(true, &few), "never a log reset");
        let many: Vec<Entry> = (1..=SAVE_NOW_ENTRIES_MAX as u64 + 1).map(entry).collect();
        assert!(!writer.may_save_now(false, &many), "never many entries");
        let seq = writer
            .save(None, term_one(), vec![entry(1)], Instant::ZERO)
            .expect("handed over");
        assert!(
            !writer.may_save_now(false, &[entry(2)]),
            "not while a write is in flight"
        );
        wakes.recv().expect("the writer answers");
        let answer = writer.try_answer().expect("an answer came with the wake");
        assert!(matches!(answer, Answer::Durable { seq: s, .. } if s == seq));
        assert!(
            writer.may_save_now(false, &[entry(2)]),
            "idle once answered"
        );
        let syncs = disk.stats().file_syncs;
        let now = writer
            .save_now(None, vec![entry(2)], Instant::ZERO)
            .expect("written");
        assert_eq!(now, seq + 1);
        assert!(disk.stats().file_syncs > syncs, "synced before it returned");
        assert!(writer.try_answer().is_none(), "answered by its return only");
        writer.finish().expect("the last sync");
        disk.crash();
        assert_eq!(indexes(&open(&disk).1), [1, 2]);
    }

    /// Wakes the test through a channel.
    struct Woken(crossbeam_channel::Sender<()>);

    impl Wake for Woken {
        fn wake(&self) {
            let _ = self.0.send(());
        }
    }

    /// What was handed over but not yet written is lost in a crash, as unsynced writes are.
    #[test]
    fn a_crash_before_the_run_loses_the_group() {
        let disk = SimDisk::new(2);
        let mut writer = Writer::inline(open(&disk).0);
        writer
            .save(None, term_one(), vec![entry(1), entry(2)], Instant::ZERO)
            .expect("handed over");
        drop(writer);
        disk.crash();
        assert!(open(&disk).1.is_empty());
    }

    /// A failed write is answered once; the writer then takes nothing more and answers
    /// nothing more.
    #[test]
    fn a_failure_is_answered_once() {
        let disk = SimDisk::new(3);
        let mut writer = Writer::inline(open(&disk).0);
        disk.fail_after(0);
        writer
            .save(None, term_one(), vec![entry(1)], Instant::ZERO)
            .expect("handed over");
        writer.step();
        assert!(matches!(writer.try_answer(), Some(Answer::Failed(_))));
        writer
            .save(None, None, vec![entry(2)], Instant::ZERO)
            .expect("handed over");
        writer.step();
        assert!(writer.try_answer().is_none(), "no answer after a failure");
    }

    struct NoWake;

    impl Wake for NoWake {
        fn wake(&self) {}
    }

    /// The writer thread writes in order, more than its queue holds; stopping it makes
    /// everything handed over durable and joins it.
    #[test]
    fn the_thread_drains_and_syncs_when_it_stops() {
        let disk = SimDisk::new(4);
        let mut writer = Writer::spawn(open(&disk).0, Arc::new(NoWake)).expect("spawned");
        let count = QUEUED_OPS_MAX as u64 * 3;
        writer
            .save(None, term_one(), vec![entry(1)], Instant::ZERO)
            .expect("handed over");
        for index in 2..=count {
            writer
                .save(None, None, vec![entry(index)], Instant::ZERO)
                .expect("handed over");
        }
        writer.finish().expect("the last sync");
        assert!(writer.save(None, None, vec![], Instant::ZERO).is_err());
        disk.crash();
        assert_eq!(indexes(&open(&disk).1), (1..=count).collect::<Vec<_>>());
    }
}
