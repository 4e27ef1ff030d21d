//! The callbacks: user code the tick thread runs on a change of state, when the node is first
//! ready, and when the cluster enables a new code version.

use std::sync::Arc;

use super::{SyncObjConf, SyncObjConfBuilder};
use crate::status::RaftState;

/// Called with the old and the new state on every Raft state change, on the tick thread.
pub type OnStateChanged = Arc<dyn Fn(RaftState, RaftState) + Send + Sync>;

/// Called once, on the tick thread, when the node has first caught up with the leader's commit
/// index.
pub type OnReady = Arc<dyn Fn() + Send + Sync>;

/// Called with the old and the new enabled code version when a version entry is applied, on the
/// tick thread.
pub type OnCodeVersionChanged = Arc<dyn Fn(u32, u32) + Send + Sync>;

impl SyncObjConfBuilder {
    /// Sets the callback run on every Raft state change with the old and new state, on the
    /// tick thread; keep it short (PySyncObj `onStateChanged`, which passes the integer codes
    /// of [`RaftState::code`]). A panic in it is logged and contained. Default: none.
    pub fn on_state_changed(
        mut self,
        callback: impl Fn(RaftState, RaftState) + Send + Sync + 'static,
    ) -> Self {
        self.conf.on_state_changed = Some(Arc::new(callback));
        self
    }

    /// Sets the callback run once, on the tick thread, when the node has first applied
    /// everything the leader had committed (PySyncObj `onReady`). Default: none.
    pub fn on_ready(mut self, callback: impl Fn() + Send + Sync + 'static) -> Self {
        self.conf.on_ready = Some(Arc::new(callback));
        self
    }

    /// Sets the callback run with the old and new version when a code version entry is
    /// applied, on the tick thread (PySyncObj `onCodeVersionChanged`). Default: none.
    pub fn on_code_version_changed(
        mut self,
        callback: impl Fn(u32, u32) + Send + Sync + 'static,
    ) -> Self {
        self.conf.on_code_version_changed = Some(Arc::new(callback));
        self
    }
}

impl SyncObjConf {
    /// The `on_state_changed` callback, if set; see [`SyncObjConfBuilder::on_state_changed`].
    pub fn on_state_changed(&self) -> Option<&OnStateChanged> {
        self.on_state_changed.as_ref()
    }

    /// The `on_ready` callback, if set; see [`SyncObjConfBuilder::on_ready`].
    pub fn on_ready(&self) -> Option<&OnReady> {
        self.on_ready.as_ref()
    }

    /// The `on_code_version_changed` callback, if set; see
    /// [`SyncObjConfBuilder::on_code_version_changed`].
    pub fn on_code_version_changed(&self) -> Option<&OnCodeVersionChanged> {
        self.on_code_version_changed.as_ref()
    }
}
