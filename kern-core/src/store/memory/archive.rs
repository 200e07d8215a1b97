//! Where the memory store keeps what is settled (finished runs, their resolved rows and those
//! rows' chains of events): each record as its JSON, compressed against the first record of
//! its kind, which shares its keys and most of its shape. A settled cycle then takes about a
//! kilobyte instead of a dozen (a `serde_json` object is a B-tree node of ~600 bytes however
//! few its keys), and is decoded only when read. A row and its chain settle together and are
//! packed as one record: each record packed first hashes the whole dictionary.

use std::collections::HashMap;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::approval::{Approval, ApprovalStatus};
use crate::run::{RunRecord, RunStatus};
use crate::trail::TrailEvent;

/// What is settled, packed.
#[derive(Debug, Default)]
pub(super) struct Archive {
    /// Finished runs.
    pub(super) runs: PackedTable<RunRecord, RunSummary>,
    /// Settled rows, each with its chain of events.
    pub(super) rows: PackedTable<SettledRow, RowSummary>,
}

/// A settled row and its chain, packed as one record.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SettledRow {
    pub(super) row: Approval,
    pub(super) chain: Vec<TrailEvent>,
}

/// What scans of packed rows and chains filter on and count before they decode any.
#[derive(Debug, Clone, Copy)]
pub(super) struct RowSummary {
    pub(super) status: ApprovalStatus,
    pub(super) chain: ChainSummary,
}

impl RowSummary {
    pub(super) fn of(settled: &SettledRow) -> Self {
        Self { status: settled.row.status, chain: ChainSummary::of(&settled.chain) }
    }
}

/// What scans of runs sort and filter on before they decode any.
#[derive(Debug, Clone, Copy)]
pub(super) struct RunSummary {
    pub(super) status: RunStatus,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    /// Whether the run is no team member's.
    pub(super) top_level: bool,
}

impl RunSummary {
    pub(super) fn of(run: &RunRecord) -> Self {
        Self {
            status: run.status,
            created_at: run.created_at,
            updated_at: run.updated_at,
            top_level: run.parent_run_id.is_none(),
        }
    }
}

/// What scans of packed chains filter on and count.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChainSummary {
    /// The `seq` of the chain's last event.
    pub(super) last_seq: i64,
    /// How many events the chain holds.
    pub(super) events: u64,
}

impl ChainSummary {
    pub(super) fn of(chain: &[TrailEvent]) -> Self {
        Self { last_seq: chain.last().map_or(0, |event| event.seq), events: chain.len() as u64 }
    }
}

/// Whether a run of this status is over: nothing resumes it.
pub(super) fn is_finished(status: RunStatus) -> bool {
    match status {
        RunStatus::Completed | RunStatus::Error | RunStatus::Cancelled => true,
        RunStatus::Running | RunStatus::Paused => false,
    }
}

/// Whether `row` changes no more and packs as it is: resolved, its run finished, and its data
/// not JSON `null` (which its JSON could not tell from no data, as a database's column can).
pub(super) fn is_settled(row: &Approval) -> bool {
    row.status.is_resolved() && is_finished(row.run_status) && row.resolution_data != Some(serde_json::Value::Null)
}

/// The most of the first record that becomes the dictionary: its keys and shape, not a large
/// payload that every later record would be hashed against.
const DICTIONARY: usize = 4 * 1024;

/// The largest buffers a shelf keeps for its next record: a rare large record does not
/// hold its size for good.
const KEPT_BUFFER: usize = 64 * 1024;

/// Records of one kind, packed, each with a summary kept unpacked: what scans sort and
/// filter on before they decode anything.
#[derive(Debug)]
pub(super) struct PackedTable<T, S> {
    /// The JSON of the first record packed (its start): what every record is compressed
    /// against.
    dictionary: Box<[u8]>,
    items: HashMap<String, (S, Box<[u8]>)>,
    /// Where a record is encoded, then compressed: kept from one record to the next.
    json: Vec<u8>,
    compressed: Vec<u8>,
    kind: PhantomData<fn() -> T>,
}

impl<T, S> Default for PackedTable<T, S> {
    fn default() -> Self {
        Self {
            dictionary: Box::default(),
            items: HashMap::new(),
            json: Vec::new(),
            compressed: Vec::new(),
            kind: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned, S: Copy> PackedTable<T, S> {
    /// Packs `value` under `id`, in place of what was there.
    pub(super) fn put(&mut self, id: String, value: &T, summary: S) {
        self.json.clear();
        // Records are plain data with string keys: their encoding cannot fail.
        serde_json::to_writer(&mut self.json, value).expect("a stored record encodes to JSON");
        if self.dictionary.is_empty() {
            self.dictionary = self.json[..self.json.len().min(DICTIONARY)].into();
        }
        // The layout of `compress_prepend_size_with_dict`: the JSON's length, then the block.
        let length = u32::try_from(self.json.len()).expect("a stored record is under 4 GiB");
        let bound = 4 + lz4_flex::block::get_maximum_output_size(self.json.len());
        if self.compressed.len() < bound {
            self.compressed.resize(bound, 0);
        }
        self.compressed[..4].copy_from_slice(&length.to_le_bytes());
        let written = lz4_flex::block::compress_into_with_dict(&self.json, &mut self.compressed[4..], &self.dictionary)
            .expect("the buffer holds the largest block");
        self.items.insert(id, (summary, self.compressed[..4 + written].into()));
        if self.json.capacity() > KEPT_BUFFER {
            (self.json, self.compressed) = (Vec::new(), Vec::new());
        }
    }

    /// The record of `id`, decoded.
    pub(super) fn get(&self, id: &str) -> Option<T> {
        self.items.get(id).map(|(_, packed)| self.unpack(packed))
    }

    /// Removes the record of `id` and returns it decoded.
    pub(super) fn take(&mut self, id: &str) -> Option<T> {
        let (_, packed) = self.items.remove(id)?;
        Some(self.unpack(&packed))
    }

    /// Whether a record of `id` is packed here.
    pub(super) fn contains(&self, id: &str) -> bool {
        self.items.contains_key(id)
    }

    /// The summary of the record of `id`.
    pub(super) fn summary(&self, id: &str) -> Option<S> {
        self.items.get(id).map(|(summary, _)| *summary)
    }

    /// The ids and summaries of every record, in no order.
    pub(super) fn summaries(&self) -> impl Iterator<Item = (&String, S)> {
        self.items.iter().map(|(id, (summary, _))| (id, *summary))
    }

    /// Every record whose summary passes `keep`, with its id, decoded, in no order.
    pub(super) fn decode_where(&self, keep: impl Fn(S) -> bool) -> impl Iterator<Item = (&String, T)> {
        let kept = self.items.iter().filter(move |(_, (summary, _))| keep(*summary));
        kept.map(|(id, (_, packed))| (id, self.unpack(packed)))
    }

    fn unpack(&self, packed: &[u8]) -> T {
        // The bytes were written by `put` from a record of this type, in this process.
        let json = lz4_flex::block::decompress_size_prepended_with_dict(packed, &self.dictionary)
            .expect("a packed record decompresses");
        serde_json::from_slice(&json).expect("a packed record decodes to what was packed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn records_come_back_as_they_were_packed_and_smaller_than_their_json() {
        let mut table: PackedTable<Value, u32> = PackedTable::default();
        let record = |n: u32| {
            json!({"id": format!("row-{n}"), "status": "approved", "tool_args": {"count": n, "ratio": 0.1},
                   "note": "the same long sentence in every record, as keys and shapes are", "n": n})
        };
        for n in 0..100 {
            table.put(format!("row-{n}"), &record(n), n);
        }
        table.put("row-7".to_owned(), &record(700), 7);
        assert_eq!(table.summaries().count(), 100);
        assert_eq!(table.summary("row-7"), Some(7));
        assert_eq!(table.get("row-42"), Some(record(42)));
        assert_eq!(table.get("row-7"), Some(record(700)));
        assert_eq!(table.get("row-100"), None);
        assert!(table.contains("row-1"));
        let late: Vec<Value> = table.decode_where(|n| n >= 98).map(|(_, record)| record).collect();
        assert_eq!(late.len(), 2);
        assert!(late.contains(&record(98)) && late.contains(&record(99)));
        assert_eq!(table.take("row-3"), Some(record(3)));
        assert!(!table.contains("row-3"));
        let packed = table.items["row-50"].1.len();
        let json = serde_json::to_vec(&record(50)).unwrap().len();
        assert!(packed * 3 < json, "{packed} bytes packed for {json} of JSON");
    }
}
