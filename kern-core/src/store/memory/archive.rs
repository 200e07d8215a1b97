//! Where the memory store keeps what is settled (finished runs, their resolved rows and those
//! rows' chains of events): each record as its JSON, compressed in blocks of records of its
//! kind, against the first record of that kind, which shares their keys and most of their
//! shape. A settled cycle then takes about a kilobyte instead of a dozen (a `serde_json`
//! object is a B-tree node of ~600 bytes however few its keys), and is decoded only when read.
//! A row and its chain settle together and are packed as one record.

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

/// How many records a block holds, at most. Records are compressed a block at a time: the
/// compressor's set-up (its table, and the dictionary hashed into it, which costs more than
/// compressing a record) is paid once a block, and each record is also matched against those
/// before it. Reading a record decompresses its block.
const BLOCK_RECORDS: usize = 16;

/// The JSON a block holds before it is sealed, at most (a block may end early for a large
/// record).
const BLOCK_BYTES: usize = 64 * 1024;

/// Records of one kind, packed, each with a summary kept unpacked: what scans sort and
/// filter on before they decode anything.
#[derive(Debug)]
pub(super) struct PackedTable<T, S> {
    /// The JSON of the first record packed (its start): what every block is compressed
    /// against.
    dictionary: Box<[u8]>,
    items: HashMap<String, (S, Slot)>,
    /// The sealed blocks, by number; a block goes once no record in it is left.
    blocks: HashMap<u64, Block>,
    /// The number of the next block sealed.
    next_block: u64,
    /// The JSON of the records put since the last block was sealed, one after another, and
    /// their ids: the block being filled.
    open: Vec<u8>,
    open_ids: Vec<String>,
    kind: PhantomData<fn() -> T>,
}

/// Where a record's JSON is: its block (`None` for the block being filled) and its bytes in
/// the block's JSON.
#[derive(Debug, Clone, Copy)]
struct Slot {
    block: Option<u64>,
    start: u32,
    len: u32,
}

/// Records compressed together.
#[derive(Debug)]
struct Block {
    /// The block's JSON, compressed against the dictionary.
    packed: Box<[u8]>,
    /// The length of the block's JSON.
    json_len: usize,
    /// How many of its records are still in the table.
    live: usize,
}

impl<T, S> Default for PackedTable<T, S> {
    fn default() -> Self {
        Self {
            dictionary: Box::default(),
            items: HashMap::new(),
            blocks: HashMap::new(),
            next_block: 0,
            open: Vec::new(),
            open_ids: Vec::new(),
            kind: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned, S: Copy> PackedTable<T, S> {
    /// Packs `value` under `id`, in place of what was there.
    pub(super) fn put(&mut self, id: String, value: &T, summary: S) {
        if let Some((_, slot)) = self.items.remove(&id) {
            self.release(slot);
        }
        let start = self.open.len();
        // Records are plain data with string keys: their encoding cannot fail.
        serde_json::to_writer(&mut self.open, value).expect("a stored record encodes to JSON");
        if self.dictionary.is_empty() {
            self.dictionary = self.open[..self.open.len().min(DICTIONARY)].into();
        }
        let (start, len) = (offset(start), offset(self.open.len() - start));
        self.items.insert(id.clone(), (summary, Slot { block: None, start, len }));
        self.open_ids.push(id);
        if self.open_ids.len() >= BLOCK_RECORDS || self.open.len() >= BLOCK_BYTES {
            self.seal();
        }
    }

    /// Compresses the block being filled, and points its records at it.
    fn seal(&mut self) {
        let number = self.next_block;
        self.next_block += 1;
        let mut live = 0;
        for id in self.open_ids.drain(..) {
            // An id put twice in the block, or taken since, is counted once, or not at all.
            if let Some((_, slot)) = self.items.get_mut(&id).filter(|(_, slot)| slot.block.is_none()) {
                slot.block = Some(number);
                live += 1;
            }
        }
        if live > 0 {
            let packed = lz4_flex::block::compress_with_dict(&self.open, &self.dictionary).into_boxed_slice();
            self.blocks.insert(number, Block { packed, json_len: self.open.len(), live });
        }
        self.open.clear();
        if self.open.capacity() > 2 * BLOCK_BYTES {
            self.open = Vec::new();
        }
    }

    /// Forgets the record at `slot`: its block goes with its last record.
    fn release(&mut self, slot: Slot) {
        let Some(number) = slot.block else { return };
        let block = self.blocks.get_mut(&number).expect("a record's block is kept while it has records");
        block.live -= 1;
        if block.live == 0 {
            self.blocks.remove(&number);
        }
    }

    /// The record of `id`, decoded.
    pub(super) fn get(&self, id: &str) -> Option<T> {
        let (_, slot) = self.items.get(id)?;
        Some(self.decode(*slot, &mut None))
    }

    /// Removes the record of `id` and returns it decoded.
    pub(super) fn take(&mut self, id: &str) -> Option<T> {
        let (_, slot) = self.items.remove(id)?;
        let record = self.decode(slot, &mut None);
        self.release(slot);
        Some(record)
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

    /// Every record whose summary passes `keep`, with its id, decoded, in no order. Each block
    /// is decompressed once.
    pub(super) fn decode_where(&self, keep: impl Fn(S) -> bool) -> impl Iterator<Item = (&String, T)> {
        let mut kept: Vec<(&String, Slot)> =
            self.items.iter().filter(|(_, (summary, _))| keep(*summary)).map(|(id, (_, slot))| (id, *slot)).collect();
        kept.sort_unstable_by_key(|(_, slot)| slot.block);
        let mut unpacked = None;
        kept.into_iter().map(move |(id, slot)| (id, self.decode(slot, &mut unpacked)))
    }

    /// The record at `slot`, decoded. `unpacked` keeps the last block decompressed, for the
    /// next record read from it.
    fn decode(&self, slot: Slot, unpacked: &mut Option<(u64, Vec<u8>)>) -> T {
        let json = match slot.block {
            None => &self.open,
            Some(number) => {
                if unpacked.as_ref().is_none_or(|(held, _)| *held != number) {
                    let block = &self.blocks[&number];
                    // The bytes were written by `seal` from records of this type, in this process.
                    let json = lz4_flex::block::decompress_with_dict(&block.packed, block.json_len, &self.dictionary)
                        .expect("a packed block decompresses");
                    *unpacked = Some((number, json));
                }
                &unpacked.as_ref().expect("unpacked above").1
            }
        };
        let record = &json[slot.start as usize..(slot.start + slot.len) as usize];
        serde_json::from_slice(record).expect("a packed record decodes to what was packed")
    }
}

/// A place in a block's JSON, which stays under 4 GiB: `BLOCK_BYTES` and one record.
fn offset(at: usize) -> u32 {
    u32::try_from(at).expect("a block's JSON is under 4 GiB")
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
        // 101 records put: each run of `BLOCK_RECORDS` sealed a block.
        let sealed = 101 / BLOCK_RECORDS;
        assert_eq!(table.blocks.len(), sealed);
        let packed: usize = table.blocks.values().map(|block| block.packed.len()).sum();
        let json: usize =
            (0..sealed * BLOCK_RECORDS).map(|n| serde_json::to_vec(&record(n as u32)).unwrap().len()).sum();
        assert!(packed * 3 < json, "{packed} bytes packed for {json} of JSON");
    }

    #[test]
    fn a_block_goes_with_its_last_record() {
        let mut table: PackedTable<Value, u32> = PackedTable::default();
        for n in 0..BLOCK_RECORDS as u32 + 1 {
            table.put(format!("row-{n}"), &json!({ "n": n }), n);
        }
        assert_eq!(table.blocks.len(), 1);
        // Replaced, taken, or read from the block being filled: the sealed block stays while it
        // holds a record.
        table.put("row-0".to_owned(), &json!({ "n": "again" }), 0);
        assert_eq!(table.get("row-0"), Some(json!({ "n": "again" })));
        for n in 1..BLOCK_RECORDS as u32 - 1 {
            assert_eq!(table.take(&format!("row-{n}")), Some(json!({ "n": n })));
        }
        assert_eq!(table.blocks.len(), 1);
        let last = BLOCK_RECORDS as u32 - 1;
        assert_eq!(table.take(&format!("row-{last}")), Some(json!({ "n": last })));
        assert!(table.blocks.is_empty(), "no record is left in the block");
        // Records put and taken before their block is sealed are not counted in it: the block
        // sealed now holds the two left from before.
        for n in 0..BLOCK_RECORDS as u32 {
            table.put(format!("late-{n}"), &json!({ "n": n }), n);
            assert_eq!(table.take(&format!("late-{n}")), Some(json!({ "n": n })));
        }
        let lives: Vec<usize> = table.blocks.values().map(|block| block.live).collect();
        assert_eq!(lives, [2]);
        let mut left: Vec<Value> = table.decode_where(|_| true).map(|(_, record)| record).collect();
        left.sort_by_key(|record| record["n"].to_string());
        assert_eq!(left, [json!({ "n": "again" }), json!({ "n": BLOCK_RECORDS })]);
    }

    #[test]
    fn a_scan_decodes_records_across_blocks_and_the_block_being_filled() {
        let mut table: PackedTable<Value, u32> = PackedTable::default();
        for n in 0..3 * BLOCK_RECORDS as u32 + 5 {
            table.put(format!("row-{n}"), &json!({ "n": n, "odd": n % 2 == 1 }), n);
        }
        let mut odd: Vec<u32> =
            table.decode_where(|n| n % 2 == 1).map(|(_, record)| record["n"].as_u64().unwrap() as u32).collect();
        odd.sort_unstable();
        assert_eq!(odd, (0..3 * BLOCK_RECORDS as u32 + 5).filter(|n| n % 2 == 1).collect::<Vec<_>>());
        assert!(table.decode_where(|_| true).all(|(id, record)| *id == format!("row-{}", record["n"])));
    }
}
