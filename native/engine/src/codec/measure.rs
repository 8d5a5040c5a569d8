//! Measurement support, for `examples/codec_measure.rs` only (FORMAT-chunk.md, section
//! "Measurements").
//!
//! Thin public wrappers over codec internals, so the benchmark can compare encodings that
//! [`encode`](super::encode) would not choose and size single columns. The engine does not use
//! this module; it is not a stable API and nothing in it affects the chunk format.

use super::decimal::{choose_scale, to_decimal};
use super::pcodec::pco_compress_cfg;
use pco::data_types::Number;
use pco::ChunkConfig;

/// [`encode`](super::encode) with an explicit timestamp encoding (`TS_*`) and value encoding
/// (`VAL_*`). Falls back to raw exactly as `encode` does; the returned codec id says which.
pub fn encode_with(ts: &[i64], vals: &[f64], ts_enc: u8, val_enc: u8) -> (u8, Vec<u8>) {
    super::encode_with(ts, vals, ts_enc, val_enc)
}

/// The timestamp section that `ts_enc` (`TS_DOD_BITS` or `TS_PCO`) writes for `ts`, without
/// its length prefix. `ts` must not be empty. `None` for an unknown encoding.
pub fn ts_column(ts: &[i64], ts_enc: u8) -> Option<Vec<u8>> {
    super::encode_ts_column(ts, ts_enc)
}

/// A pco "wrapped" file of `nums` (header, chunk meta, one page) with an explicit config, as
/// the codec writes its pco columns; for comparing pco settings.
pub fn pco_column<T: Number>(nums: &[T], config: ChunkConfig) -> Option<Vec<u8>> {
    pco_compress_cfg(nums, config)
}

/// Decode a column written by [`pco_column`] (panics on error: measurement only).
pub fn pco_decode_i64(src: &[u8], n: usize) -> Vec<i64> {
    super::pcodec::pco_decompress::<i64>(src, n, "measure").unwrap()
}

/// Values split as the decimal value encodings split them.
pub struct DecimalColumn {
    /// The chunk's common scale: value = mantissa / 10^scale.
    pub scale: u8,
    /// One mantissa per value; an exception repeats the previous mantissa.
    pub mantissas: Vec<i64>,
    /// Number of values that are not decimals at `scale` (stored raw, 8 bytes each).
    pub exceptions: usize,
}

/// Choose the scale for `vals` and split them into mantissas and exceptions.
pub fn decimal_column(vals: &[f64]) -> DecimalColumn {
    let dec = to_decimal(vals, choose_scale(vals));
    DecimalColumn { scale: dec.scale, mantissas: dec.mantissas, exceptions: dec.exceptions.len() }
}
