//! The segment file format: a header, two sync slots, then records, one per log entry.
//! Encoding, decoding, and the recovery scan that tells a torn tail from damage and from lost
//! synced records.
//!
//! A sync slot holds a claim: "the first `end` bytes of this segment were synced and hold the
//! records through `last`". A claim is written only right after an fsync of the segment, about
//! what that fsync made durable, and is not synced itself: the segment's next fsync makes it
//! durable, and a process that is killed leaves it to the operating system. So a claim on disk
//! never says more than was durable, in whatever order the disk wrote the pages, and it costs
//! no fsync. The two slots alternate (even sequence numbers in the first, odd in the second),
//! so between two fsyncs only one slot is ever written, and a torn slot write leaves the other.

use std::path::Path;

use bytes::Bytes;

use super::codec::{ChunkReader, to_usize, u32_at, u64_at};
use super::disk::DiskFile;
use super::error::{Corruption, StorageError};
use super::identity::{ClusterId, Identity};
use crate::raft::{Entry, EntryKind, LogIndex, NodeId, Term};

/// The first bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"SOBJLOG\0";
/// The segment format this code writes: with sync slots (since 2), entries whose commands
/// carry a cluster-time stamp in their header (3), and the identity of the node and cluster
/// after the slots (4). Segments of versions 1 and 2 hold commands with 8-byte headers, which
/// this code would misread: they are refused.
pub(crate) const SEGMENT_VERSION: u32 = 4;
/// The format before identities: records from byte 80, the same as version 4's. Still read,
/// as the node's own (nothing says otherwise), and written to until it fills up.
const SEGMENT_VERSION_3: u32 = 3;
/// Header: magic (8), version (4), first index (8), CRC32C of the previous 20 bytes (4).
pub(crate) const SEGMENT_HEADER_BYTES: u64 = 24;
/// Where the two sync slots start (right after the header).
pub(crate) const SYNC_SLOTS_AT: u64 = SEGMENT_HEADER_BYTES;
/// A sync slot: sequence number (8), synced end (8), last synced index (8), CRC32C (4).
const SYNC_SLOT_BYTES: u64 = 28;
/// Where a version-4 segment's identity starts: after the header and both slots. Node id (8),
/// cluster id (8), CRC32C of the segment's first index and those 16 bytes (4).
const IDENTITY_AT: u64 = SYNC_SLOTS_AT + 2 * SYNC_SLOT_BYTES;
const IDENTITY_BYTES: u64 = 20;
/// Where records start in a version-4 segment: after the header, both slots and the identity.
pub(crate) const RECORDS_AT: u64 = IDENTITY_AT + IDENTITY_BYTES;
/// Where records start in a version-3 segment: after the header and both slots.
const RECORDS_AT_3: u64 = IDENTITY_AT;
/// A record starts with its length (4) and its CRC32C (4).
const RECORD_PREFIX_BYTES: u64 = 8;
/// The fixed part of a record's body: index (8), term (8), kind (1).
const RECORD_BODY_MIN: u64 = 17;
/// The smallest record: prefix and fixed body, empty payload.
pub(crate) const RECORD_BYTES_MIN: u64 = RECORD_PREFIX_BYTES + RECORD_BODY_MIN;

/// The largest first index a segment header or the hard-state file may hold; it keeps index
/// arithmetic on data read from disk far from overflow.
pub(crate) const INDEX_MAX: u64 = u64::MAX / 2;

/// Where the header fields sit.
const HEADER_VERSION_AT: u64 = 8;
/// Where the header's first index sits, for errors about it.
pub(crate) const HEADER_FIRST_AT: u64 = 12;
const HEADER_CRC_AT: u64 = 20;

/// What a sync slot says: the first `end` bytes of the segment were synced and hold the
/// records through `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SyncClaim {
    /// Orders the claims: the valid slot with the higher one is current. Its parity names the
    /// slot (even: the first).
    pub(crate) seq: u64,
    /// The synced bytes; a record boundary, at least [`RECORDS_AT`].
    pub(crate) end: u64,
    /// The index of the last record before `end` (`first - 1` when there is none).
    pub(crate) last: LogIndex,
}

impl SyncClaim {
    /// The claim of a new segment (of the format this code writes), in its second slot (the
    /// first holds the same with sequence number 0): no record.
    pub(crate) fn empty(first: LogIndex) -> SyncClaim {
        SyncClaim {
            seq: 1,
            end: RECORDS_AT,
            last: first.prev(),
        }
    }

    /// The claim after this one, for `end` and `last`; it goes to the other slot.
    pub(crate) fn next(self, end: u64, last: LogIndex) -> SyncClaim {
        SyncClaim {
            seq: self.seq + 1,
            end,
            last,
        }
    }

    /// The offset of the slot this claim belongs in.
    pub(crate) fn slot_at(&self) -> u64 {
        SYNC_SLOTS_AT + (self.seq % 2) * SYNC_SLOT_BYTES
    }
}

/// The file name of the segment whose first entry is `first`. Twenty digits sort like numbers.
pub(crate) fn segment_file_name(first: LogIndex) -> String {
    format!("segment-{:020}.log", first.0)
}

/// The first index encoded in a segment file name, if `name` is one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<LogIndex> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse()
        .ok()
        .filter(|first| (1..=INDEX_MAX).contains(first))
        .map(LogIndex)
}

/// The start of a new segment whose first entry is `first`: the header, both sync slots
/// claiming no record, then `identity`.
pub(crate) fn encode_head(first: LogIndex, identity: &Identity) -> Vec<u8> {
    let mut head = Vec::with_capacity(to_usize(RECORDS_AT));
    head.extend_from_slice(&SEGMENT_MAGIC);
    head.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
    head.extend_from_slice(&first.0.to_le_bytes());
    let crc = crc32c::crc32c(&head);
    head.extend_from_slice(&crc.to_le_bytes());
    let empty = SyncClaim::empty(first);
    let before = SyncClaim { seq: 0, ..empty };
    head.extend_from_slice(&encode_slots(first, &before, &empty));
    let at = head.len();
    head.extend_from_slice(&identity.node.0.to_le_bytes());
    head.extend_from_slice(&identity.cluster.0.to_le_bytes());
    let crc = identity_crc(first, &head[at..]);
    head.extend_from_slice(&crc.to_le_bytes());
    head
}

/// The checksum of a segment's identity: of its first index and the identity's 16 bytes, so
/// that an identity copied from another segment fails.
fn identity_crc(first: LogIndex, fields: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&first.0.to_le_bytes()), fields)
}

/// The identity in the 20 bytes at [`IDENTITY_AT`] of the segment starting at `first`, if its
/// checksum holds.
fn decode_identity(first: LogIndex, bytes: &[u8]) -> Result<Identity, (u64, Corruption)> {
    let crc_at = to_usize(IDENTITY_BYTES) - 4;
    let fields = bytes.get(..crc_at);
    if fields.is_none() || u32_at(bytes, crc_at) != fields.map(|f| identity_crc(first, f)) {
        return Err((IDENTITY_AT + crc_at as u64, Corruption::HeaderChecksum));
    }
    Ok(Identity {
        node: NodeId(u64_at(bytes, 0).unwrap_or(0)),
        cluster: ClusterId(u64_at(bytes, 8).unwrap_or(0)),
    })
}

/// The first index a segment header names and the segment's format version, after checking
/// magic, version and checksum.
pub(crate) fn decode_header(header: &[u8]) -> Result<(LogIndex, u32), (u64, Corruption)> {
    if header.get(..8) != Some(&SEGMENT_MAGIC[..]) {
        return Err((
            0,
            Corruption::BadMagic {
                kind: "log segment",
            },
        ));
    }
    let version = u32_at(header, to_usize(HEADER_VERSION_AT)).unwrap_or(0);
    if version != SEGMENT_VERSION && version != SEGMENT_VERSION_3 {
        let problem = Corruption::UnsupportedVersion {
            found: version,
            supported: SEGMENT_VERSION,
        };
        return Err((HEADER_VERSION_AT, problem));
    }
    let crc = u32_at(header, to_usize(HEADER_CRC_AT));
    let computed = header.get(..to_usize(HEADER_CRC_AT)).map(crc32c::crc32c);
    if crc.is_none() || crc != computed {
        return Err((HEADER_CRC_AT, Corruption::HeaderChecksum));
    }
    let first = u64_at(header, to_usize(HEADER_FIRST_AT))
        .filter(|first| (1..=INDEX_MAX).contains(first))
        .map(LogIndex)
        .ok_or((
            HEADER_FIRST_AT,
            Corruption::InvalidField {
                field: "first index",
            },
        ))?;
    Ok((first, version))
}

/// The bytes of `claim`'s slot in the segment starting at `first`: sequence number, end, last
/// index, then CRC32C of the segment's first index and those 24 bytes (so that a slot copied
/// from another segment fails).
pub(crate) fn encode_slot(first: LogIndex, claim: &SyncClaim) -> [u8; 28] {
    let mut slot = [0u8; 28];
    slot[..8].copy_from_slice(&claim.seq.to_le_bytes());
    slot[8..16].copy_from_slice(&claim.end.to_le_bytes());
    slot[16..24].copy_from_slice(&claim.last.0.to_le_bytes());
    let crc = slot_crc(first, &slot[..24]);
    slot[24..].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// Both slots as one write at [`SYNC_SLOTS_AT`], each claim in its own (their sequence numbers
/// differ in parity).
pub(crate) fn encode_slots(first: LogIndex, a: &SyncClaim, b: &SyncClaim) -> [u8; 56] {
    let mut slots = [0u8; 56];
    for claim in [a, b] {
        let at = to_usize(claim.slot_at() - SYNC_SLOTS_AT);
        slots[at..at + 28].copy_from_slice(&encode_slot(first, claim));
    }
    slots
}

fn slot_crc(first: LogIndex, fields: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&first.0.to_le_bytes()), fields)
}

/// The claim in slot number `slot` (0 or 1), if it passes its checks: checksum, parity, and
/// room for its records, which start at `records_at`.
fn decode_slot(first: LogIndex, records_at: u64, slot: u64, bytes: &[u8]) -> Option<SyncClaim> {
    let (seq, end, last) = (u64_at(bytes, 0)?, u64_at(bytes, 8)?, u64_at(bytes, 16)?);
    if u32_at(bytes, 24)? != slot_crc(first, bytes.get(..24)?) || seq % 2 != slot {
        return None;
    }
    let records = last.checked_sub(first.0 - 1)?;
    let room = end.checked_sub(records_at)?;
    let fits = end <= INDEX_MAX && records.checked_mul(RECORD_BYTES_MIN)? <= room;
    fits.then_some(SyncClaim {
        seq,
        end,
        last: LogIndex(last),
    })
}

/// The current claim of the two slots of a segment whose records start at `records_at`: the
/// valid one with the higher sequence number. A slot that fails its checks is taken for a torn
/// write of it and skipped.
pub(crate) fn best_claim(first: LogIndex, records_at: u64, slots: &[u8]) -> Option<SyncClaim> {
    valid_claims(first, records_at, slots).max_by_key(|claim| claim.seq)
}

/// The claims of the slots that pass their checks.
fn valid_claims(
    first: LogIndex,
    records_at: u64,
    slots: &[u8],
) -> impl Iterator<Item = SyncClaim> + '_ {
    (0..2u64).filter_map(move |slot| {
        let at = to_usize(slot * SYNC_SLOT_BYTES);
        let bytes = slots.get(at..at + to_usize(SYNC_SLOT_BYTES))?;
        decode_slot(first, records_at, slot, bytes)
    })
}

/// The size of `entry`'s record in bytes.
pub(crate) fn record_bytes(entry: &Entry) -> u64 {
    RECORD_BYTES_MIN + entry.data.len() as u64
}

/// Appends `entry`'s record to `out`: length of the body (u32), CRC32C of the length and the
/// body (u32), then the body: index (u64), term (u64), kind (u8), payload. The caller has
/// checked that the record fits the size limit, so the length fits in 32 bits.
pub(crate) fn encode_record(entry: &Entry, out: &mut Vec<u8>) {
    let body_len = RECORD_BODY_MIN + entry.data.len() as u64;
    let length = u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes();
    let start = out.len();
    out.extend_from_slice(&length);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&entry.index.0.to_le_bytes());
    out.extend_from_slice(&entry.term.0.to_le_bytes());
    out.push(kind_code(entry.kind));
    out.extend_from_slice(&entry.data);
    let crc = record_crc(&length, &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn record_crc(length: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(length), body)
}

/// The byte that stands for `kind` on disk. Zero is never a kind, so zeroed space never
/// decodes; codes above 3 are free for future kinds.
fn kind_code(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Noop => 1,
        EntryKind::Command => 2,
        EntryKind::Membership => 3,
    }
}

fn kind_from_code(code: u8) -> Option<EntryKind> {
    match code {
        1 => Some(EntryKind::Noop),
        2 => Some(EntryKind::Command),
        3 => Some(EntryKind::Membership),
        _ => None,
    }
}

/// Decodes one whole record (prefix and body), checking its length field and checksum. On
/// failure, returns the offset within the record and the problem.
pub(crate) fn decode_record(record: &[u8]) -> Result<Entry, (u64, Corruption)> {
    let declared = u32_at(record, 0).map(|body| RECORD_PREFIX_BYTES + u64::from(body));
    if record.len() < to_usize(RECORD_BYTES_MIN) || declared != Some(record.len() as u64) {
        return Err((0, Corruption::Truncated));
    }
    let crc = u32_at(record, 4);
    if crc != Some(record_crc(&record[..4], &record[8..])) {
        return Err((4, Corruption::RecordChecksum));
    }
    decode_body(&record[8..]).map_err(|(at, problem)| (at + RECORD_PREFIX_BYTES, problem))
}

/// Decodes a checksummed body; offsets are within the body.
fn decode_body(body: &[u8]) -> Result<Entry, (u64, Corruption)> {
    let index = u64_at(body, 0).ok_or((0, Corruption::Truncated))?;
    let term = u64_at(body, 8).ok_or((8, Corruption::Truncated))?;
    let code = body.get(16).copied().ok_or((16, Corruption::Truncated))?;
    let kind = kind_from_code(code).ok_or((16, Corruption::UnknownKind(code)))?;
    Ok(Entry {
        index: LogIndex(index),
        term: Term(term),
        kind,
        data: Bytes::copy_from_slice(&body[to_usize(RECORD_BODY_MIN)..]),
    })
}

/// What a scan checks records against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanRules {
    /// The index the segment's first record must carry (and its header must name).
    pub(crate) first: LogIndex,
    /// The term of the entry before the segment; terms never go down.
    pub(crate) previous_term: Term,
    /// The saved current term; no entry may have a higher one.
    pub(crate) term_max: Term,
    /// The largest record accepted.
    pub(crate) record_bytes_max: u64,
    /// Whether this is the log's last segment, the only one that may end in a torn write.
    pub(crate) is_last: bool,
    /// The node and cluster the segment must belong to.
    pub(crate) identity: Identity,
}

/// The result of scanning one segment.
#[derive(Debug, Default)]
pub(crate) struct SegmentScan {
    /// The bytes up to the end of the last valid record.
    pub(crate) valid_len: u64,
    /// The file's length; more than `valid_len` when a torn tail was found.
    pub(crate) file_len: u64,
    /// The index after the last valid record.
    pub(crate) next_index: LogIndex,
    /// The term of the last valid record (or the previous term if there is none).
    pub(crate) last_term: Term,
    /// The file is the last segment and too short to hold its header and slots, or all zeros:
    /// an interrupted creation. It holds no entry.
    pub(crate) torn_header: bool,
    /// What its sync slots say (`None` only with a torn header).
    pub(crate) claim: Option<SyncClaim>,
    /// One of its sync slots fails its checks (a torn write of it, which the next claim
    /// repairs: it goes to that slot).
    pub(crate) torn_slot: bool,
    /// The segment records no identity (version 3, written before identities were).
    pub(crate) unstamped: bool,
}

/// The header of a segment that has one: its current sync claim, whether a slot failed its
/// checks, where its records start, and whether it records no identity.
struct Head {
    claim: SyncClaim,
    torn_slot: bool,
    records_at: u64,
    unstamped: bool,
}

/// Reads a segment from the start, handing each valid record (entry, offset, size) to
/// `visit`. A torn tail of the last segment is reported in the result, not as an error; but
/// only after the synced end its sync slots claim: before it, damage of any kind is lost synced
/// data ([`Corruption::SyncedRecordsLost`]).
///
/// # Errors
/// [`StorageError::Corrupt`] for damage that is not a torn tail, with `path` and the offset;
/// [`StorageError::Io`] if reading fails; whatever `visit` returns.
pub(crate) fn scan<F: DiskFile>(
    file: &mut F,
    path: &Path,
    rules: ScanRules,
    visit: impl FnMut(Entry, u64, u64) -> Result<(), StorageError>,
) -> Result<SegmentScan, StorageError> {
    let file_len = file
        .size()
        .map_err(|e| StorageError::io("measure", path, e))?;
    let mut reader = ChunkReader::new(file, file_len);
    let mut scan = SegmentScan {
        file_len,
        next_index: rules.first,
        last_term: rules.previous_term,
        ..SegmentScan::default()
    };
    let Some(head) = check_header(&mut reader, path, &rules, file_len)? else {
        scan.torn_header = true;
        return Ok(scan);
    };
    scan.claim = Some(head.claim);
    scan.torn_slot = head.torn_slot;
    scan.unstamped = head.unstamped;
    scan_records(&mut reader, path, &rules, head.records_at, &mut scan, visit)?;
    Ok(scan)
}

/// Scans the records after the header and slots into `scan`, checking them against the claim.
fn scan_records<F: DiskFile>(
    reader: &mut ChunkReader<'_, F>,
    path: &Path,
    rules: &ScanRules,
    records_at: u64,
    scan: &mut SegmentScan,
    mut visit: impl FnMut(Entry, u64, u64) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let read_err = |e| StorageError::io("read", path, e);
    let corrupt = |(offset, problem)| StorageError::corrupt(path, offset, problem);
    let synced_end = scan.claim.map_or(0, |claim| claim.end);
    let mut unconfirmed = scan.claim;
    let mut at = records_at;
    confirm_claim(&mut unconfirmed, at, rules.first.prev()).map_err(corrupt)?;
    while at < scan.file_len {
        let record = match locate_record(reader, rules, scan, at).map_err(read_err)? {
            Located::Record(len) => reader.bytes(at, to_usize(len)).map_err(read_err)?,
            Located::TornTail if at < synced_end => return Err(corrupt(lost(scan, at))),
            Located::TornTail => break,
            Located::Damaged(offset, problem) => return Err(corrupt((offset, problem))),
        };
        let entry = decode_record(record).map_err(|(offset, p)| corrupt((at + offset, p)))?;
        check_entry(&entry, rules, scan).map_err(|(offset, p)| corrupt((at + offset, p)))?;
        let len = record.len() as u64;
        scan.next_index = entry.index.next();
        scan.last_term = entry.term;
        let index = entry.index;
        visit(entry, at, len)?;
        at += len;
        confirm_claim(&mut unconfirmed, at, index).map_err(corrupt)?;
    }
    if at < synced_end {
        // The file ends on a record boundary before the synced end: records were cut off.
        return Err(corrupt(lost(scan, at)));
    }
    scan.valid_len = at;
    Ok(())
}

/// The damage at `at`, before the synced end of `scan`'s claim: synced records are lost.
fn lost(scan: &SegmentScan, at: u64) -> (u64, Corruption) {
    let claim = scan
        .claim
        .expect("only a claim makes a synced end beyond the records' start");
    let problem = Corruption::SyncedRecordsLost {
        synced: claim.last,
        synced_end: claim.end,
        intact: scan.next_index.prev(),
    };
    (at, problem)
}

/// Once the scan reaches the claim's end (`at`, after the record of `last`), checks that a
/// record boundary is there, after the record the claim names; then forgets the claim.
fn confirm_claim(
    unconfirmed: &mut Option<SyncClaim>,
    at: u64,
    last: LogIndex,
) -> Result<(), (u64, Corruption)> {
    let Some(claim) = *unconfirmed else {
        return Ok(());
    };
    if at < claim.end {
        return Ok(());
    }
    *unconfirmed = None;
    if at == claim.end && last == claim.last {
        return Ok(());
    }
    let problem = Corruption::SyncSlotMismatch {
        end: claim.end,
        last: claim.last,
    };
    Err((claim.slot_at(), problem))
}

/// Checks the header and the identity, and reads the slots; `Ok(None)` for a torn header
/// (allowed only in the last segment).
fn check_header<F: DiskFile>(
    reader: &mut ChunkReader<'_, F>,
    path: &Path,
    rules: &ScanRules,
    file_len: u64,
) -> Result<Option<Head>, StorageError> {
    let read_err = |e| StorageError::io("read", path, e);
    let corrupt = |(offset, problem)| StorageError::corrupt(path, offset, problem);
    if rules.is_last
        && (file_len < SEGMENT_HEADER_BYTES || reader.all_zero_from(0).map_err(read_err)?)
    {
        return Ok(None);
    }
    let too_short = |expected| Corruption::WrongLength {
        found: file_len,
        expected,
    };
    if file_len < SEGMENT_HEADER_BYTES {
        return Err(corrupt((0, too_short(SEGMENT_HEADER_BYTES))));
    }
    let header = reader
        .bytes(0, to_usize(SEGMENT_HEADER_BYTES))
        .map_err(read_err)?;
    let (first, version) = decode_header(header).map_err(corrupt)?;
    if first != rules.first {
        let problem = Corruption::IndexMismatch {
            expected: rules.first,
            found: first,
        };
        return Err(corrupt((HEADER_FIRST_AT, problem)));
    }
    let unstamped = version == SEGMENT_VERSION_3;
    let records_at = if unstamped { RECORDS_AT_3 } else { RECORDS_AT };
    if file_len < records_at {
        // The creation wrote the header, slots and identity as one; only its last segment may
        // be torn.
        return match rules.is_last {
            true => Ok(None),
            false => Err(corrupt((file_len, too_short(records_at)))),
        };
    }
    if !unstamped {
        let bytes = reader
            .bytes(IDENTITY_AT, to_usize(IDENTITY_BYTES))
            .map_err(read_err)?;
        let found = decode_identity(first, bytes).map_err(corrupt)?;
        StorageError::check_identity(path, found, rules.identity)?;
    }
    let slots = reader
        .bytes(SYNC_SLOTS_AT, to_usize(IDENTITY_AT - SYNC_SLOTS_AT))
        .map_err(read_err)?;
    let torn_slot = valid_claims(first, records_at, slots).count() < 2;
    let claim = best_claim(first, records_at, slots).ok_or((SYNC_SLOTS_AT, Corruption::SyncSlots));
    Ok(Some(Head {
        claim: claim.map_err(corrupt)?,
        torn_slot,
        records_at,
        unstamped,
    }))
}

/// What sits at a record boundary.
enum Located {
    /// A record of this many bytes whose checksum can be checked.
    Record(u64),
    /// The rest of the file is a torn final write.
    TornTail,
    /// Damage at this offset.
    Damaged(u64, Corruption),
}

/// Classifies the bytes at `at`: a complete record, a torn tail (last segment only), or damage.
fn locate_record<F: DiskFile>(
    reader: &mut ChunkReader<'_, F>,
    rules: &ScanRules,
    scan: &SegmentScan,
    at: u64,
) -> std::io::Result<Located> {
    let file_len = scan.file_len;
    let rest = file_len - at;
    if rest < RECORD_PREFIX_BYTES {
        return Ok(tail_or(rules, at, Corruption::Truncated));
    }
    let prefix = reader.bytes(at, to_usize(RECORD_PREFIX_BYTES))?;
    let body_len = u32_at(prefix, 0).map_or(0, u64::from);
    let body_max = rules.record_bytes_max.saturating_sub(RECORD_PREFIX_BYTES);
    if !(RECORD_BODY_MIN..=body_max).contains(&body_len) {
        if rules.is_last && reader.all_zero_from(at)? {
            return Ok(Located::TornTail);
        }
        let problem = Corruption::RecordLength {
            length: body_len,
            min: RECORD_BODY_MIN,
            max: body_max,
        };
        return Ok(Located::Damaged(at, problem));
    }
    let len = RECORD_PREFIX_BYTES + body_len;
    if len > rest {
        if rules.is_last && !valid_record_follows(reader, at, scan.next_index.next(), rules)? {
            return Ok(Located::TornTail);
        }
        return Ok(Located::Damaged(at, Corruption::Truncated));
    }
    let record = reader.bytes(at, to_usize(len))?;
    if u32_at(record, 4) == Some(record_crc(&record[..4], &record[8..])) {
        return Ok(Located::Record(len));
    }
    // A failed checksum is a torn write if nothing but zeros (space the file system extended
    // without the data reaching it) follows the record.
    if rules.is_last && reader.all_zero_from(at + len)? {
        return Ok(Located::TornTail);
    }
    Ok(Located::Damaged(at, Corruption::RecordChecksum))
}

fn tail_or(rules: &ScanRules, at: u64, problem: Corruption) -> Located {
    if rules.is_last {
        Located::TornTail
    } else {
        Located::Damaged(at, problem)
    }
}

/// Whether a complete, checksummed record for `next` starts anywhere after `at`. A record
/// whose length runs past the end of the file is a torn write only if nothing valid follows;
/// otherwise its length field is damaged. The bytes searched are fewer than one maximal record.
fn valid_record_follows<F: DiskFile>(
    reader: &mut ChunkReader<'_, F>,
    at: u64,
    next: LogIndex,
    rules: &ScanRules,
) -> std::io::Result<bool> {
    let file_len = reader.file_len();
    let rest = reader.bytes(at, to_usize(file_len - at))?;
    let needle = next.0.to_le_bytes();
    let min = to_usize(RECORD_BYTES_MIN);
    let found = (1..rest.len().saturating_sub(min - 1)).any(|start| {
        let candidate = &rest[start..];
        candidate.get(8..16) == Some(&needle[..])
            && u32_at(candidate, 0)
                .map(|body| RECORD_PREFIX_BYTES + u64::from(body))
                .filter(|&len| len <= rules.record_bytes_max)
                .and_then(|len| candidate.get(..to_usize(len)))
                .is_some_and(|record| decode_record(record).is_ok())
    });
    Ok(found)
}

/// Checks a decoded entry against the log's order; offsets are within the record.
fn check_entry(
    entry: &Entry,
    rules: &ScanRules,
    scan: &SegmentScan,
) -> Result<(), (u64, Corruption)> {
    if entry.index != scan.next_index {
        let problem = Corruption::IndexMismatch {
            expected: scan.next_index,
            found: entry.index,
        };
        return Err((RECORD_PREFIX_BYTES, problem));
    }
    if entry.term < scan.last_term {
        let problem = Corruption::TermBackwards {
            previous: scan.last_term,
            term: entry.term,
        };
        return Err((RECORD_PREFIX_BYTES + 8, problem));
    }
    if entry.term > rules.term_max {
        let problem = Corruption::TermAboveHardState {
            term: entry.term,
            current: rules.term_max,
        };
        return Err((RECORD_PREFIX_BYTES + 8, problem));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            kind: EntryKind::Command,
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn record_round_trips() {
        let original = entry(7, 3, b"payload");
        let mut bytes = Vec::new();
        encode_record(&original, &mut bytes);
        assert_eq!(bytes.len() as u64, record_bytes(&original));
        assert_eq!(decode_record(&bytes), Ok(original));
    }

    #[test]
    fn every_flipped_byte_of_a_record_is_caught() {
        let mut bytes = Vec::new();
        encode_record(&entry(7, 3, b"payload"), &mut bytes);
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0xff;
            assert!(decode_record(&damaged).is_err(), "flip at {at} not caught");
        }
    }

    #[test]
    fn unknown_kinds_are_rejected() {
        let mut bytes = Vec::new();
        encode_record(&entry(1, 1, b""), &mut bytes);
        bytes[24] = 9;
        let crc = record_crc(&bytes[..4], &bytes[8..]);
        bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_record(&bytes), Err((24, Corruption::UnknownKind(9))));
    }

    fn identity() -> Identity {
        Identity {
            node: NodeId(9),
            cluster: ClusterId::from_name("test"),
        }
    }

    #[test]
    fn header_round_trips_and_names_parse() {
        let head = encode_head(LogIndex(42), &identity());
        assert_eq!(head.len() as u64, RECORDS_AT);
        assert_eq!(decode_header(&head), Ok((LogIndex(42), SEGMENT_VERSION)));
        let at = to_usize(IDENTITY_AT);
        assert_eq!(decode_identity(LogIndex(42), &head[at..]), Ok(identity()));
        // The identity is bound to its segment.
        assert!(decode_identity(LogIndex(43), &head[at..]).is_err());
        let name = segment_file_name(LogIndex(42));
        assert_eq!(parse_segment_file_name(&name), Some(LogIndex(42)));
        assert_eq!(parse_segment_file_name("segment-42.log"), None);
        assert_eq!(parse_segment_file_name("other"), None);
        assert_eq!(
            parse_segment_file_name("segment-18446744073709551615.log"),
            None
        );
        assert!(decode_header(&encode_head(LogIndex(u64::MAX), &identity())).is_err());
        assert!(decode_header(&encode_head(LogIndex(1), &identity())[..16]).is_err());
    }

    /// Segments of versions 1 and 2 (commands with 8-byte headers) are refused by their version,
    /// before anything in them is read as an entry.
    #[test]
    fn older_versions_are_refused() {
        for version in [1_u32, 2] {
            let mut head = encode_head(LogIndex(1), &identity());
            head[8..12].copy_from_slice(&version.to_le_bytes());
            let crc = crc32c::crc32c(&head[..20]);
            head[20..24].copy_from_slice(&crc.to_le_bytes());
            let problem = Corruption::UnsupportedVersion {
                found: version,
                supported: 4,
            };
            assert_eq!(decode_header(&head), Err((8, problem)));
        }
    }

    #[test]
    fn a_new_segment_claims_no_record() {
        let head = encode_head(LogIndex(42), &identity());
        let slots = &head[to_usize(SYNC_SLOTS_AT)..to_usize(IDENTITY_AT)];
        assert_eq!(
            best_claim(LogIndex(42), RECORDS_AT, slots),
            Some(SyncClaim::empty(LogIndex(42)))
        );
        // The slots are bound to their segment.
        assert_eq!(best_claim(LogIndex(43), RECORDS_AT, slots), None);
    }

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_one_is_skipped() {
        let first = LogIndex(10);
        let older = SyncClaim::empty(first).next(RECORDS_AT + 50, LogIndex(11));
        let newer = older.next(RECORDS_AT + 100, LogIndex(13));
        let mut slots = encode_slots(first, &older, &newer);
        assert_eq!(best_claim(first, RECORDS_AT, &slots), Some(newer));
        let at = to_usize(newer.slot_at() - SYNC_SLOTS_AT);
        for byte in at..at + 28 {
            let mut torn = slots;
            torn[byte] ^= 0x01;
            assert_eq!(
                best_claim(first, RECORDS_AT, &torn),
                Some(older),
                "byte {byte}"
            );
        }
        // A claim in the slot of the other parity, or with no room for its records, is refused.
        slots[..28].copy_from_slice(&encode_slot(first, &newer));
        slots[28..].copy_from_slice(&encode_slot(first, &older));
        assert_eq!(best_claim(first, RECORDS_AT, &slots), None);
        let crowded = older.next(RECORDS_AT + 24, LogIndex(10));
        let slots = encode_slots(first, &older, &crowded);
        assert_eq!(best_claim(first, RECORDS_AT, &slots), Some(older));
    }
}
