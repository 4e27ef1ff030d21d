//! How a node's objects become a snapshot payload and back: with serde (each object's state in
//! MessagePack), or through the user's [`SnapshotSerializer`] hooks, whose file is the payload.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::objects::ErasedObject;
use super::{SnapshotError, SnapshotHook};
use crate::conf::SyncObjConf;
use crate::serializer::{SerializerState, SnapshotSerializer};

/// The payload format this build writes and reads: 2 added the cluster time, and came with
/// commands whose headers carry a stamp (format 1 snapshots, of 8-byte headers, are refused).
const PAYLOAD_FORMAT: u32 = 2;

/// What syncobj keeps in a snapshot beside the objects (all of it with serde; with custom hooks,
/// the `data` they store for syncobj, without objects).
#[derive(Serialize, Deserialize)]
struct Payload {
    format: u32,
    code_version: u32,
    command_time: u64,
    objects: Vec<Bytes>,
}

/// What a snapshot carries for the node itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Carried {
    /// The enabled code version.
    pub(crate) code_version: u32,
    /// The cluster-time stamp of the last command the snapshot covers (0 if none).
    pub(crate) command_time: u64,
}

/// How snapshots are made.
#[derive(Clone)]
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

/// A decoded payload: what it carries for the node, and the states still to put in place (none
/// with custom hooks, which restored the state themselves).
pub(crate) struct Decoded {
    pub(crate) carried: Carried,
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

    /// Starts a payload of `objects`, carrying `carried`. Runs on a snapshot thread while the
    /// node applies nothing (the objects and whatever the hooks save stay at the snapshot's
    /// index); with serde, gives up soon after `abandon` is raised.
    pub(crate) fn encode(
        &self,
        carried: Carried,
        objects: &[Arc<dyn ErasedObject>],
        abandon: &AtomicBool,
    ) -> Result<Encoded, SnapshotError> {
        match self {
            Codec::Serde => {
                let objects = objects
                    .iter()
                    .map(|o| o.save(abandon))
                    .collect::<Result<Vec<Bytes>, SnapshotError>>()?;
                encode_payload(carried, objects).map(Encoded::Ready)
            }
            Codec::Custom(serializer) => {
                let data = encode_payload(carried, Vec::new())?;
                let path = scratch_file();
                serializer
                    .serialize(&path, &data)
                    .map_err(|source| SnapshotError::Hook {
                        hook: SnapshotHook::Save,
                        source,
                    })?;
                Ok(Encoded::Started(path))
            }
        }
    }

    /// Whether the hooks finished the file at `path`: `None` while they write it; the payload,
    /// or why there is none, once they are done. The file is removed then.
    pub(crate) fn poll(&self, path: &Path) -> Option<Result<Bytes, SnapshotError>> {
        let state = match self {
            Codec::Custom(serializer) => serializer.state(),
            // Only the hooks leave a file to finish later: with serde nothing is in progress.
            Codec::Serde => SerializerState::NotSerializing,
        };
        let outcome = match state {
            SerializerState::Serializing => return None,
            SerializerState::Failed => Err(SnapshotError::HookReportedFailure),
            SerializerState::NotSerializing | SerializerState::Success => std::fs::read(path)
                .map(Bytes::from)
                .map_err(|source| SnapshotError::HookFile {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                }),
        };
        let _ = std::fs::remove_file(path);
        Some(outcome)
    }

    /// Decodes a payload for `objects`. With custom hooks the state is restored at once.
    pub(crate) fn decode(
        &self,
        payload: &[u8],
        objects: &[Arc<dyn ErasedObject>],
    ) -> Result<Decoded, SnapshotError> {
        match self {
            Codec::Serde => {
                let payload = decode_payload(payload)?;
                if payload.objects.len() != objects.len() {
                    return Err(SnapshotError::ObjectCount {
                        held: payload.objects.len(),
                        expected: objects.len(),
                    });
                }
                let states = objects
                    .iter()
                    .zip(&payload.objects)
                    .map(|(object, state)| object.decode(state))
                    .collect::<Result<_, _>>()?;
                Ok(Decoded {
                    carried: payload.carried(),
                    states: Some(states),
                })
            }
            Codec::Custom(serializer) => {
                let path = scratch_file();
                std::fs::write(&path, payload).map_err(|source| SnapshotError::HookFile {
                    action: "write",
                    path: path.clone(),
                    source,
                })?;
                let data = serializer.deserialize(&path);
                let _ = std::fs::remove_file(&path);
                let data = data.map_err(|source| SnapshotError::Hook {
                    hook: SnapshotHook::Load,
                    source,
                })?;
                Ok(Decoded {
                    carried: decode_payload(&data)?.carried(),
                    states: None,
                })
            }
        }
    }
}

impl Decoded {
    /// Puts the decoded states in place; returns what the snapshot carries for the node, and
    /// the states it replaced.
    pub(crate) fn apply(self, objects: &[Arc<dyn ErasedObject>]) -> (Carried, Replaced) {
        let states = self.states.into_iter().flatten();
        let replaced = objects
            .iter()
            .zip(states)
            .filter_map(|(object, state)| object.replace(state))
            .collect();
        (self.carried, replaced)
    }
}

/// The states a snapshot replaced, for the caller to free where it costs nothing: freeing a
/// large state takes about as long as building it did.
pub(crate) type Replaced = Vec<Box<dyn Any + Send>>;

impl Payload {
    fn carried(&self) -> Carried {
        Carried {
            code_version: self.code_version,
            command_time: self.command_time,
        }
    }
}

fn encode_payload(carried: Carried, objects: Vec<Bytes>) -> Result<Bytes, SnapshotError> {
    let payload = Payload {
        format: PAYLOAD_FORMAT,
        code_version: carried.code_version,
        command_time: carried.command_time,
        objects,
    };
    rmp_serde::to_vec(&payload)
        .map(Bytes::from)
        .map_err(SnapshotError::Encode)
}

fn decode_payload(bytes: &[u8]) -> Result<Payload, SnapshotError> {
    // The format first: another format may have other fields, and must be named as such.
    let FormatOf(format) = rmp_serde::from_slice(bytes).map_err(SnapshotError::Decode)?;
    if format != PAYLOAD_FORMAT {
        return Err(SnapshotError::Format {
            found: format,
            supported: PAYLOAD_FORMAT,
        });
    }
    rmp_serde::from_slice(bytes).map_err(SnapshotError::Decode)
}

/// The format of a payload of any format: the first field of its array, the rest skipped.
struct FormatOf(u32);

impl<'de> Deserialize<'de> for FormatOf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FormatOf, D::Error> {
        struct First;

        impl<'de> serde::de::Visitor<'de> for First {
            type Value = FormatOf;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a snapshot payload: an array starting with its format")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FormatOf, A::Error> {
                let format = seq
                    .next_element::<u32>()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(FormatOf(format))
            }
        }

        deserializer.deserialize_seq(First)
    }
}

/// A fresh path for a custom snapshot file on its way in or out.
fn scratch_file() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("syncobj-snapshot-{}-{number}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use std::error::Error;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use bytes::Bytes;
    use parking_lot::RwLock;
    use serde::{Deserialize, Serialize, Serializer};

    use super::{Carried, Codec, Decoded, Encoded, Payload, decode_payload, encode_payload};
    use crate::driver::objects::{ErasedObject, ObjectCell};
    use crate::driver::{SnapshotError, SnapshotHook};
    use crate::object::{ApplyError, Caller, MethodSpec, ReplicatedMethods, ReplicatedState};
    use crate::serializer::{SerializerState, SnapshotSerializer};

    /// A replicated type with no methods, to snapshot.
    #[derive(Default, Serialize, Deserialize)]
    struct Gauge {
        level: u8,
    }

    impl ReplicatedState for Gauge {
        const NAME: &'static str = "Gauge";
    }

    impl ReplicatedMethods for Gauge {
        const METHODS: &'static [MethodSpec] = &[];
        type Calls = Caller;

        fn apply(&mut self, id: u16, _args: &[u8]) -> Result<Vec<u8>, ApplyError> {
            Err(ApplyError::UnknownMethod(id))
        }
    }

    /// A replicated type whose state never serializes.
    #[derive(Default, Deserialize)]
    struct Unsavable;

    impl Serialize for Unsavable {
        fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("this state cannot be saved"))
        }
    }

    impl ReplicatedState for Unsavable {
        const NAME: &'static str = "Unsavable";
    }

    impl ReplicatedMethods for Unsavable {
        const METHODS: &'static [MethodSpec] = &[];
        type Calls = Caller;

        fn apply(&mut self, id: u16, _args: &[u8]) -> Result<Vec<u8>, ApplyError> {
            Err(ApplyError::UnknownMethod(id))
        }
    }

    /// Hooks that fail: `serialize` with a message, `deserialize` with an I/O error, and
    /// `state` says the last `serialize` failed.
    struct FailingHooks;

    impl SnapshotSerializer for FailingHooks {
        fn serialize(
            &self,
            _path: &Path,
            _data: &[u8],
        ) -> Result<(), Box<dyn Error + Send + Sync>> {
            Err("the disk is full".into())
        }

        fn deserialize(&self, _path: &Path) -> Result<Vec<u8>, Box<dyn Error + Send + Sync>> {
            Err(std::io::Error::other("the file is damaged").into())
        }

        fn state(&self) -> SerializerState {
            SerializerState::Failed
        }
    }

    fn object<T: Default + crate::object::Replicated>() -> Arc<dyn ErasedObject> {
        Arc::new(ObjectCell {
            state: RwLock::new(T::default()),
        })
    }

    /// The error of `decoded`, which must have failed.
    fn decode_error(decoded: Result<Decoded, SnapshotError>) -> SnapshotError {
        match decoded {
            Ok(_) => panic!("the payload must be refused"),
            Err(error) => error,
        }
    }

    /// Bytes that are no snapshot, another format, and another number of objects are each
    /// refused with their own error; a matching payload decodes.
    #[test]
    fn foreign_payloads_are_refused_by_kind() {
        let codec = Codec::Serde;
        let error = decode_error(codec.decode(b"\xc1", &[]));
        assert!(matches!(error, SnapshotError::Decode(_)), "{error:?}");
        assert!(error.to_string().starts_with("undecodable snapshot: "));
        let other_format = Payload {
            format: 9,
            code_version: 0,
            command_time: 0,
            objects: Vec::new(),
        };
        let bytes = rmp_serde::to_vec(&other_format).expect("a payload encodes");
        let error = decode_error(codec.decode(&bytes, &[]));
        assert_eq!(
            error.to_string(),
            "snapshot payload format 9 (this build reads 2)"
        );
        // Format 1 had no cluster time (its commands had 8-byte headers): named, not misread.
        let format_1 = (1_u32, 3_u32, Vec::<Bytes>::new());
        let bytes = rmp_serde::to_vec(&format_1).expect("a payload encodes");
        let error = decode_error(codec.decode(&bytes, &[]));
        assert!(
            matches!(
                error,
                SnapshotError::Format {
                    found: 1,
                    supported: 2
                }
            ),
            "{error:?}"
        );
        let carried = |code_version| Carried {
            code_version,
            command_time: 0,
        };
        let one_object = encode_payload(carried(3), vec![Bytes::new()]).expect("encodes");
        let error = decode_error(codec.decode(&one_object, &[]));
        assert!(matches!(
            error,
            SnapshotError::ObjectCount {
                held: 1,
                expected: 0
            }
        ));
        let empty = encode_payload(carried(3), Vec::new()).expect("encodes");
        assert_eq!(decode_payload(&empty).map(|p| p.code_version).ok(), Some(3));
    }

    /// The code version and the cluster time travel with the objects' states, with serde and
    /// with custom hooks alike.
    #[test]
    fn snapshots_carry_code_version_and_cluster_time() {
        let carried = Carried {
            code_version: 4,
            command_time: 123_456_789,
        };
        let gauge = object::<Gauge>();
        let Ok(Encoded::Ready(payload)) =
            Codec::Serde.encode(carried, &[Arc::clone(&gauge)], &AtomicBool::new(false))
        else {
            panic!("a serde snapshot is ready at once");
        };
        let decoded = Codec::Serde.decode(&payload, &[Arc::clone(&gauge)]);
        let decoded = decoded.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(decoded.apply(&[gauge]).0, carried);
        let data = encode_payload(carried, Vec::new()).expect("encodes");
        let payload = decode_payload(&data).expect("decodes");
        assert_eq!(payload.carried(), carried);
    }

    /// A serialization whose snapshot was abandoned gives up instead of finishing.
    #[test]
    fn an_abandoned_serialization_gives_up() {
        let abandoned = AtomicBool::new(true);
        let encoded = Codec::Serde.encode(Carried::default(), &[object::<Gauge>()], &abandoned);
        assert!(encoded.is_err(), "the serializer gave up");
        let going_on = AtomicBool::new(false);
        let encoded = Codec::Serde.encode(Carried::default(), &[object::<Gauge>()], &going_on);
        assert!(matches!(encoded, Ok(Encoded::Ready(_))));
    }

    /// An object's state that does not encode or decode is named by its type.
    #[test]
    fn object_state_errors_name_the_type() {
        let error = match Codec::Serde.encode(
            Carried::default(),
            &[object::<Unsavable>()],
            &AtomicBool::new(false),
        ) {
            Ok(_) => panic!("the state cannot be saved"),
            Err(error) => error,
        };
        assert!(
            matches!(
                error,
                SnapshotError::EncodeObject {
                    object: "Unsavable",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("cannot serialize Unsavable: ")
        );
        let not_a_gauge = rmp_serde::to_vec("not a gauge").expect("a string encodes");
        let payload =
            encode_payload(Carried::default(), vec![Bytes::from(not_a_gauge)]).expect("encodes");
        let error = decode_error(Codec::Serde.decode(&payload, &[object::<Gauge>()]));
        assert!(
            error
                .to_string()
                .starts_with("cannot decode Gauge from the snapshot: "),
            "{error}"
        );
    }

    /// A hook's error is kept whole as the source, under the name of the hook that failed; a
    /// failure reported through `state` has its own variant.
    #[test]
    fn hook_errors_keep_their_source() {
        let codec = Codec::Custom(Arc::new(FailingHooks));
        let error = match codec.encode(Carried::default(), &[], &AtomicBool::new(false)) {
            Ok(Encoded::Ready(_) | Encoded::Started(_)) => panic!("the hook fails"),
            Err(error) => error,
        };
        assert!(matches!(
            error,
            SnapshotError::Hook {
                hook: SnapshotHook::Save,
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            "the custom serializer failed: the disk is full"
        );
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("the disk is full")
        );
        let error = decode_error(codec.decode(b"a snapshot", &[]));
        let source = error.source().expect("the hook's error is the source");
        assert!(
            source.downcast_ref::<std::io::Error>().is_some(),
            "{source:?}"
        );
        assert_eq!(
            error.to_string(),
            "the custom deserializer failed: the file is damaged"
        );
        let polled = codec.poll(Path::new("no-such-snapshot"));
        assert!(
            matches!(polled, Some(Err(SnapshotError::HookReportedFailure))),
            "{polled:?}"
        );
    }
}
