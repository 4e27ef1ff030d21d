//! Serving `syncobj-admin` ([`syncobj_net::admin`]): the transport hands the engine an
//! administrator's request; the engine passes it to the node's handle, which runs it through
//! the public API's own paths (`status`, `add_node_to_cluster`, `remove_node_from_cluster`,
//! `set_code_version`, `transfer_leadership`) without ever blocking the loop; the answers
//! come back here as the calls settle, and the engine sends them at the end of its iteration.

use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use syncobj_net::Wake;
use syncobj_net::admin::{AdminReply, AdminRequest};

/// Hands an answer back, from whichever thread completes the request (the tick thread, in
/// practice).
pub(crate) type Answer = Box<dyn FnOnce(AdminReply) + Send>;

/// What serves administrators' requests: the node's handle, which owns the public API.
pub(crate) trait AdminService: Send + Sync {
    /// Starts serving `request`; `answer` is called once, at once or when its call settles.
    /// Never blocks.
    fn serve(&self, request: AdminRequest, answer: Answer);
}

/// The meeting point of the engine and the handle: the service, once the handle exists, and
/// the answers not sent yet (at most one per administrator's connection the transport holds).
#[derive(Default)]
pub(crate) struct AdminDesk {
    service: OnceLock<Weak<dyn AdminService>>,
    answered: Arc<Mutex<Vec<(u64, AdminReply)>>>,
}

impl AdminDesk {
    /// Installs the service; later calls are ignored.
    pub(crate) fn install(&self, service: Weak<dyn AdminService>) {
        let _ = self.service.set(service);
    }

    /// Takes the request numbered `id` off the wire and starts serving it; `waker` wakes the
    /// loop when an answer comes from another thread. An undecodable request, or one that
    /// comes while the node has no handle (starting, or stopping), is answered at once with
    /// a failure.
    pub(crate) fn take(&self, id: u64, request: &[u8], waker: Arc<dyn Wake>) {
        let request = match AdminRequest::decode(request) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "administration request dropped");
                self.answered
                    .lock()
                    .push((id, AdminReply::Failed(error.to_string())));
                return;
            }
        };
        let Some(service) = self.service.get().and_then(Weak::upgrade) else {
            let reply = AdminReply::Failed("the node is not serving requests now".into());
            self.answered.lock().push((id, reply));
            return;
        };
        tracing::info!(?request, "administration request");
        let answered = Arc::clone(&self.answered);
        service.serve(
            request,
            Box::new(move |reply| {
                answered.lock().push((id, reply));
                waker.wake();
            }),
        );
    }

    /// The answers ready to send, oldest first.
    pub(crate) fn answers(&self) -> Vec<(u64, AdminReply)> {
        std::mem::take(&mut *self.answered.lock())
    }
}
