//! Bytes eight at a time: which bytes of a word are below a bound, or equal to a byte — the
//! test behind the member scanner's runs of plain string content and the check of header
//! values.

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// The word of eight bytes, the first one lowest (so that `trailing_zeros() / 8` of a mask
/// below is the place of the first byte it marks).
#[inline]
pub fn load(bytes: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*bytes)
}

/// The high bit of each byte of `w` below `b` (`b` at most 0x80; bytes of 0x80 and above
/// are never below). Nonzero exactly when some byte is below; each mark is exact from the
/// lowest byte up to the first one below (a borrow may mark bytes above it).
#[inline]
pub fn below(w: u64, b: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(b)) & !w & HIGHS
}

/// The high bit of each byte of `w` equal to `b`, as exact as [`below`].
#[inline]
pub fn equal(w: u64, b: u8) -> u64 {
    below(w ^ (ONES * u64::from(b)), 1)
}
