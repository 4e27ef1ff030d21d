//! Applying committed entries: each command runs on the object it names, under that object's
//! write lock taken once per run of commands, with its cluster-time stamp readable through
//! `command_time`; system commands (code versions) run here; a command this code cannot run
//! stops applying for good rather than diverge.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Callbacks, Deferred, Engine};
use crate::driver::life::Signals;
use crate::driver::objects::{ErasedObject, ObjectWriter, SET_CODE_VERSION, SYSTEM_OBJECT};
use crate::driver::observed::Stalled;
use crate::object::{CommandHeader, FailReason};
use crate::raft::{Entry, EntryKind};

/// Why a node stopped applying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stall {
    /// The cluster enabled a code version this code lacks.
    CodeVersion(u32),
    /// A command this code does not know (unknown object or method, other signature).
    UnknownCommand(String),
}

impl Stall {
    /// How the status shows it.
    pub(crate) fn view(&self) -> Stalled {
        Stalled {
            code_version: match self {
                Stall::CodeVersion(version) => Some(*version),
                Stall::UnknownCommand(_) => None,
            },
            reason: self.to_string(),
        }
    }
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stall::CodeVersion(version) => write!(
                f,
                "code version {version} is enabled but this code lacks it"
            ),
            Stall::UnknownCommand(reason) => write!(f, "unknown command: {reason}"),
        }
    }
}

/// What one entry asks of the node.
enum Step {
    /// Settle the entry's call with this outcome.
    Done(Result<Vec<u8>, FailReason>),
    /// Enable a code version.
    SetCodeVersion(u32),
    /// Stop applying here.
    Stall(Stall),
}

/// The write lock of the object the current run of commands addresses.
struct Locked<'a> {
    object: u16,
    writer: Box<dyn ObjectWriter + 'a>,
}

impl Engine {
    /// Applies committed entries in order, settling the calls that wait on them.
    pub(super) fn apply(&mut self, entries: Vec<Entry>) {
        let objects = &self.objects;
        let own = self.self_code_version;
        let mut locked: Option<Locked<'_>> = None;
        for entry in entries {
            if self.stalled.is_some() {
                return;
            }
            let step = match entry.kind {
                EntryKind::Command => match CommandHeader::decode(&entry.data) {
                    Ok((header, args)) => {
                        self.clock.applied(header.stamp);
                        let enabled = self.signals.code_version.load(Ordering::Acquire);
                        run_command(objects, &mut locked, (header, args), (own, enabled))
                    }
                    Err(error) => Step::Done(Err(FailReason::BadArguments(error.to_string()))),
                },
                // A configuration entry settles the membership change placed at its position.
                EntryKind::Membership => {
                    Step::Done(Ok(rmp_serde::to_vec(&()).expect("unit encodes")))
                }
                EntryKind::Noop => Step::Done(Err(FailReason::Discarded)),
            };
            let outcome = match step {
                Step::Done(outcome) => outcome,
                Step::SetCodeVersion(version) => {
                    enable_code_version(&self.signals, &self.callbacks, &mut self.deferred, version)
                }
                Step::Stall(stall) => {
                    drop(locked.take());
                    tracing::error!(%stall, "this node stops applying until its code is upgraded");
                    self.stalled = Some(stall);
                    self.raft.hold_applying();
                    return;
                }
            };
            self.calls.applied(entry.index, entry.term, outcome);
        }
    }

    /// The highest method version any object of this node knows (PySyncObj `self_code_version`).
    pub(crate) fn self_code_version(&self) -> u32 {
        self.self_code_version
    }
}

/// Enables code `version`, which this code has and which is not below the enabled one.
fn enable_code_version(
    signals: &Signals,
    callbacks: &Callbacks,
    deferred: &mut Vec<Deferred>,
    version: u32,
) -> Result<Vec<u8>, FailReason> {
    let enabled = signals.code_version.swap(version, Ordering::AcqRel);
    if version != enabled
        && let Some(callback) = callbacks.on_code_version_changed.clone()
    {
        deferred.push((
            "on_code_version_changed",
            Box::new(move || callback(enabled, version)),
        ));
    }
    Ok(rmp_serde::to_vec(&()).expect("unit encodes"))
}

/// Runs one command on the object it names, keeping that object locked for the commands
/// after it. A command this code cannot run (unknown object or method, another signature)
/// stalls the node the same way on every node with that code.
fn run_command<'a>(
    objects: &'a [Arc<dyn ErasedObject>],
    locked: &mut Option<Locked<'a>>,
    (header, args): (CommandHeader, &[u8]),
    versions: (u32, u32),
) -> Step {
    if header.object == SYSTEM_OBJECT {
        return system_command(header, args, versions);
    }
    let Some(object) = objects.get(usize::from(header.object)) else {
        return Step::Stall(Stall::UnknownCommand(format!(
            "no replicated object number {}",
            header.object
        )));
    };
    if let Err(reason) = object.check(header) {
        return Step::Stall(Stall::UnknownCommand(reason));
    }
    if locked.as_ref().is_none_or(|l| l.object != header.object) {
        // One lock at a time: the previous object's readers go on first.
        drop(locked.take());
        *locked = Some(Locked {
            object: header.object,
            writer: object.writer(),
        });
    }
    let writer = &mut locked.as_mut().expect("locked just above").writer;
    Step::Done(writer.apply(header, args))
}

/// The node's own commands: enabling a code version, given this code's own version and the
/// enabled one.
fn system_command(header: CommandHeader, args: &[u8], (own, enabled): (u32, u32)) -> Step {
    if header.method != SET_CODE_VERSION {
        return Step::Done(Err(FailReason::BadArguments(format!(
            "no system command {}",
            header.method
        ))));
    }
    let version = match rmp_serde::from_slice::<(u32,)>(args) {
        Ok((version,)) => version,
        Err(error) => return Step::Done(Err(FailReason::BadArguments(error.to_string()))),
    };
    if version < enabled {
        return Step::Done(Err(FailReason::RequestDenied));
    }
    if version > own {
        return Step::Stall(Stall::CodeVersion(version));
    }
    Step::SetCodeVersion(version)
}
