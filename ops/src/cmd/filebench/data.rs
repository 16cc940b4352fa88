//! The bench's file contents: one random buffer, stamped per file and
//! block so that no two blocks of any two files are alike.

/// Every file differs from every other in each block of this size.
pub(super) const STAMP_BLOCK: usize = 64 * 1024;
pub(super) const STAMP_MAGIC: &[u8; 8] = b"ENCLBNCH";

/// Random bytes (xorshift64*, seeded), the body every file is cut from.
pub(super) fn random_buffer(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Bytes `[start, end)` of file `file` of run `run`: `base` with a stamp
/// (magic, run, file, block) at the start of every 64 KiB block.
pub(super) fn piece(base: &[u8], run: u64, file: u64, start: usize, end: usize) -> Vec<u8> {
    let mut out = base[start..end].to_vec();
    // From the block `start` is in: its stamp may reach past `start`.
    let mut block = start / STAMP_BLOCK;
    while block * STAMP_BLOCK < end {
        let mut stamp = [0u8; 32];
        stamp[..8].copy_from_slice(STAMP_MAGIC);
        stamp[8..16].copy_from_slice(&run.to_le_bytes());
        stamp[16..24].copy_from_slice(&file.to_le_bytes());
        stamp[24..].copy_from_slice(&(block as u64).to_le_bytes());
        let at = block * STAMP_BLOCK;
        for (k, b) in stamp.iter().enumerate() {
            if at + k >= start && at + k < end {
                out[at + k - start] = *b;
            }
        }
        block += 1;
    }
    out
}
