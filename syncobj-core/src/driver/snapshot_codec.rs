//! How a node's objects become a snapshot payload and back: with serde (each object's state in
//! MessagePack), or through the user's [`SnapshotSerializer`] hooks, whose file is the payload.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::objects::ErasedObject;
use crate::conf::SyncObjConf;
use crate::serializer::{SerializerState, SnapshotSerializer};

/// The payload format this build writes and reads.
const PAYLOAD_FORMAT: u32 = 1;

/// What syncobj keeps in a snapshot beside the objects (all of it with serde; with custom hooks,
/// the `data` they store for syncobj, without objects).
#[derive(Serialize, Deserialize)]
struct Payload {
    format: u32,
    code_version: u32,
    objects: Vec<Bytes>,
}

/// How snapshots are made.
pub(crate) enum Codec {
    /// syncobj serializes every object with serde.
    Serde,
    /// The user's hooks write and read the snapshot file.
    Custom(Arc<dyn SnapshotSerializer>),
}

/// A payload on its way.
pub(crate) enum Encoded {
    /// Complete.
    Ready(Bytes),
    /// Being written by the user's hooks into this file.
    Started(PathBuf),
}

/// A decoded payload: its code version, and the states still to put in place (none with custom
/// hooks, which restored the state themselves).
pub(crate) struct Decoded {
    pub(crate) code_version: u32,
    states: Option<Vec<Box<dyn Any + Send>>>,
}

impl Codec {
    /// The codec `conf` asks for.
    pub(crate) fn new(conf: &SyncObjConf) -> Codec {
        match &conf.serializer {
            Some(serializer) => Codec::Custom(Arc::clone(serializer)),
            None => Codec::Serde,
        }
    }

    /// Starts a payload of `objects` at `code_version`.
    pub(crate) fn encode(
        &self,
        code_version: u32,
        objects: &[Arc<dyn ErasedObject>],
    ) -> Result<Encoded, String> {
        match self {
            Codec::Serde => {
                let objects = objects
                    .iter()
                    .map(|o| o.save())
                    .collect::<Result<Vec<Bytes>, String>>()?;
                encode_payload(code_version, objects).map(Encoded::Ready)
            }
            Codec::Custom(serializer) => {
                let data = encode_payload(code_version, Vec::new())?;
                let path = scratch_file();
                serializer
                    .serialize(&path, &data)
                    .map_err(|e| format!("the custom serializer failed: {e}"))?;
                Ok(Encoded::Started(path))
            }
        }
    }

    /// Whether the hooks finished the file at `path`: `None` while they write it; the payload,
    /// or why there is none, once they are done. The file is removed then.
    pub(crate) fn poll(&self, path: &PathBuf) -> Option<Result<Bytes, String>> {
        let Codec::Custom(serializer) = self else {
            return Some(Err("no custom serializer".into()));
        };
        let outcome = match serializer.state() {
            SerializerState::Serializing => return None,
            SerializerState::Failed => Err("the custom serializer reported a failure".into()),
            SerializerState::NotSerializing | SerializerState::Success => std::fs::read(path)
                .map(Bytes::from)
                .map_err(|e| format!("cannot read the custom snapshot {}: {e}", path.display())),
        };
        let _ = std::fs::remove_file(path);
        Some(outcome)
    }

    /// Decodes a payload for `objects`. With custom hooks the state is restored at once.
    pub(crate) fn decode(
        &self,
        payload: &[u8],
        objects: &[Arc<dyn ErasedObject>],
    ) -> Result<Decoded, String> {
        match self {
            Codec::Serde => {
                let payload = decode_payload(payload)?;
                if payload.objects.len() != objects.len() {
                    return Err(format!(
                        "the snapshot holds {} objects, this node has {}",
                        payload.objects.len(),
                        objects.len()
                    ));
                }
                let states = objects
                    .iter()
                    .zip(&payload.objects)
                    .map(|(object, state)| object.decode(state))
                    .collect::<Result<_, _>>()?;
                Ok(Decoded {
                    code_version: payload.code_version,
                    states: Some(states),
                })
            }
            Codec::Custom(serializer) => {
                let path = scratch_file();
                std::fs::write(&path, payload)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                let data = serializer.deserialize(&path);
                let _ = std::fs::remove_file(&path);
                let data = data.map_err(|e| format!("the custom deserializer failed: {e}"))?;
                Ok(Decoded {
                    code_version: decode_payload(&data)?.code_version,
                    states: None,
                })
            }
        }
    }
}

impl Decoded {
    /// Puts the decoded states in place; returns the code version.
    pub(crate) fn apply(self, objects: &[Arc<dyn ErasedObject>]) -> u32 {
        for (object, state) in objects.iter().zip(self.states.into_iter().flatten()) {
            object.replace(state);
        }
        self.code_version
    }
}

fn encode_payload(code_version: u32, objects: Vec<Bytes>) -> Result<Bytes, String> {
    let payload = Payload {
        format: PAYLOAD_FORMAT,
        code_version,
        objects,
    };
    rmp_serde::to_vec(&payload)
        .map(Bytes::from)
        .map_err(|e| format!("cannot encode the snapshot: {e}"))
}

fn decode_payload(bytes: &[u8]) -> Result<Payload, String> {
    let payload: Payload =
        rmp_serde::from_slice(bytes).map_err(|e| format!("undecodable snapshot: {e}"))?;
    if payload.format != PAYLOAD_FORMAT {
        return Err(format!(
            "snapshot payload format {} (this build reads {PAYLOAD_FORMAT})",
            payload.format
        ));
    }
    Ok(payload)
}

/// A fresh path for a custom snapshot file on its way in or out.
fn scratch_file() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("syncobj-snapshot-{}-{number}", std::process::id()))
}
