//! pco (pcodec) wrappers: one "wrapped" file per column (format header, chunk meta, one page),
//! the point count is kept by the caller. Used by [`TS_PCO`](super::TS_PCO),
//! [`VAL_DEC_PCO`](super::VAL_DEC_PCO) and [`VAL_PCO_F64`](super::VAL_PCO_F64).
//!
//! (Named `pcodec` so it does not shadow the `pco` crate inside `codec`.)

use super::PCO_LEVEL;
use crate::error::{Error, Result};
use pco::wrapped::{FileCompressor, FileDecompressor};
use pco::{ChunkConfig, DeltaSpec};

/// pco settings per column. Fixing the delta order (instead of `DeltaSpec::Auto`) made
/// encoding 1.5-3x faster at equal or near-equal size (FORMAT-chunk.md); pco still falls
/// back to no delta when the given order is clearly bad.
pub(super) fn pco_config(delta: DeltaSpec) -> ChunkConfig {
    ChunkConfig::default().with_compression_level(PCO_LEVEL).with_delta_spec(delta)
}

/// One pco "wrapped" file: format header, chunk meta, one page. The count is kept by us.
pub(super) fn pco_compress<T: pco::data_types::Number>(nums: &[T], delta: DeltaSpec) -> Option<Vec<u8>> {
    pco_compress_cfg(nums, pco_config(delta))
}

pub(super) fn pco_compress_cfg<T: pco::data_types::Number>(nums: &[T], config: ChunkConfig) -> Option<Vec<u8>> {
    let fc = FileCompressor::default();
    let mut out = Vec::new();
    fc.write_header(&mut out).ok()?;
    let config = config.with_paging_spec(pco::PagingSpec::Exact(vec![nums.len()]));
    let mut cc = fc.chunk_compressor(nums, &config).ok()?;
    cc.write_meta(&mut out).ok()?;
    cc.write_page(0, &mut out).ok()?;
    Some(out)
}

pub(super) fn pco_decompress<T: pco::data_types::Number>(src: &[u8], n: usize, what: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    pco_decompress_into(src, n, what, &mut out)?;
    Ok(out)
}

/// Decodes `n` numbers into `out`, which ends up holding exactly them (a scratch buffer:
/// its old contents are overwritten, not zeroed first).
pub(super) fn pco_decompress_scratch<T: pco::data_types::Number>(
    src: &[u8],
    n: usize,
    what: &str,
    out: &mut Vec<T>,
) -> Result<()> {
    if out.len() < n {
        out.resize(n, T::default());
    }
    out.truncate(n);
    let res = pco_decompress_slice(src, n, what, out);
    if res.is_err() {
        out.clear();
    }
    res
}

/// Decodes `n` numbers onto the end of `out` (no intermediate buffer); on error `out` is
/// left as it was.
pub(super) fn pco_decompress_into<T: pco::data_types::Number>(
    src: &[u8],
    n: usize,
    what: &str,
    out: &mut Vec<T>,
) -> Result<()> {
    let start = out.len();
    out.resize(start + n, T::default());
    let res = pco_decompress_slice(src, n, what, &mut out[start..]);
    if res.is_err() {
        out.truncate(start);
    }
    res
}

/// Decodes `n` numbers into `dst` (`n` long).
fn pco_decompress_slice<T: pco::data_types::Number>(src: &[u8], n: usize, what: &str, dst: &mut [T]) -> Result<()> {
    let corrupt = |e: String| Error::corrupt(format!("codec: {what}: pco: {e}"));
    // pco reports malformed input as errors; the unwind guard is a second line of defence
    // so a bug in a dependency cannot take the VM down with it.
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> std::result::Result<(), String> {
        let (fd, rest) = FileDecompressor::new(src).map_err(|e| e.to_string())?;
        let (mut cd, rest) = fd.chunk_decompressor::<T, _>(rest).map_err(|e| e.to_string())?;
        let mut pd = cd.page_decompressor(rest, n).map_err(|e| e.to_string())?;
        let progress = pd.read(dst).map_err(|e| e.to_string())?;
        if progress.n_processed != n {
            return Err(format!("decoded {} of {} numbers", progress.n_processed, n));
        }
        Ok(())
    }));
    match res {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(corrupt(e)),
        Err(_) => Err(corrupt("decoder panicked on malformed input".to_string())),
    }
}
