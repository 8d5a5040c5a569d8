//! What readers see besides the head: chunk files, chunk metadata per series,
//! and frozen runs on their way into chunk files.

use std::collections::HashMap;
use std::sync::Arc;

use crate::chunk::{ChunkFile, ChunkMeta};
use crate::{SeriesId, Timestamp};

#[derive(Clone, Copy, Debug)]
pub(super) struct ChunkRef {
    pub file_id: u64,
    pub meta: ChunkMeta,
}

/// A cut of the head on its way to chunk files; readers still see it.
pub(super) struct Frozen {
    pub seq: u64,
    pub series: HashMap<SeriesId, (Vec<Timestamp>, Vec<f64>)>,
}

#[derive(Default)]
pub(super) struct View {
    pub files: HashMap<u64, Arc<ChunkFile>>,
    /// Indexed by series id.
    pub chunks: Vec<Vec<ChunkRef>>,
    pub frozen: Vec<Arc<Frozen>>,
}

impl View {
    /// The chunks of a series overlapping `[from, to]`, each with its file.
    pub fn chunks_of(&self, id: SeriesId, from: Timestamp, to: Timestamp) -> Vec<(ChunkRef, Arc<ChunkFile>)> {
        let Some(refs) = self.chunks.get(id as usize) else { return Vec::new() };
        refs.iter()
            .filter(|r| r.meta.min_ts <= to && r.meta.max_ts >= from)
            .filter_map(|r| self.files.get(&r.file_id).map(|f| (*r, f.clone())))
            .collect()
    }

    /// Make room for `counts[id]` more chunks of each series `id` (recovery knows
    /// them all up front: one allocation per series instead of repeated growth).
    pub fn reserve_chunks(&mut self, counts: &[u32]) {
        if self.chunks.len() < counts.len() {
            self.chunks.resize_with(counts.len(), Vec::new);
        }
        for (refs, &n) in self.chunks.iter_mut().zip(counts) {
            if n > 0 {
                refs.reserve_exact(n as usize);
            }
        }
    }

    pub fn add_chunk(&mut self, file_id: u64, meta: ChunkMeta) {
        let id = meta.series_id as usize;
        if self.chunks.len() <= id {
            self.chunks.resize_with(id + 1, Vec::new);
        }
        self.chunks[id].push(ChunkRef { file_id, meta });
    }
}

