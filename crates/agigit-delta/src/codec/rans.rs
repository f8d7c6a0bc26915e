//! An order-0 static rANS coder for one byte plane: the plane's byte frequencies, quantized to
//! 2^14, code it within a fraction of a percent of its order-0 entropy (where a Huffman coder,
//! zstd's literals among them, needs a whole bit per byte at least and loses most on the skewed
//! exponent planes of a fine-tune's XOR delta).
//!
//! Format (all integers little-endian unless said):
//!
//! ```text
//! table: 32-byte bitmap of the symbols present (bit s of byte s/8)
//!        ‖ one u16 frequency per present symbol, in symbol order (each ≥ 1, summing to 2^14)
//! then, for each block of BLOCK symbols (the last one shorter): u32 length ‖ that many bytes
//! ```
//!
//! A block is coded with four interleaved 32-bit states (symbol `i` by state `i mod 4`),
//! renormalized 16 bits at a time (states in `[2^15, 2^31)`, little-endian words; the reciprocal
//! form of ryg_rans, so no division per symbol). Its bytes start with the four final states
//! (big-endian), and decoding must end with every state back at 2^15 and every byte read:
//! anything else is corrupt. Blocks are independent, so both ways run
//! in parallel.
//!
//! Sans-I/O: bytes in, bytes out, every length bounded by what the caller knows (the plane's
//! length comes from the tensor's shape, never from these bytes).

use rayon::prelude::*;

/// Frequencies sum to `1 << SCALE_BITS`.
const SCALE_BITS: u32 = 14;
const SCALE: u32 = 1 << SCALE_BITS;
/// The states' lower bound: states live in `[2^15, 2^31)` and are renormalized 16 bits at a
/// time, so a step reads at most one word and its renormalization can be branch-free. Below
/// 2^31 the encoder's reciprocal division is exact (ryg_rans's bound); at 2^31 and above it is
/// not, and a state would encode what does not decode.
const LOWER: u32 = 1 << 15;
/// Symbols per block (blocks are coded in parallel).
pub(crate) const BLOCK: usize = 1 << 20;
/// Interleaved states per block.
const LANES: usize = 4;

/// Why a rANS plane does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RansError(pub(crate) String);

fn corrupt(reason: impl Into<String>) -> RansError {
    RansError(reason.into())
}

/// Byte counts of `plane`.
pub(crate) fn histogram(plane: &[u8]) -> [u64; 256] {
    // Four sub-histograms break the store-to-load chain on runs of one byte.
    let mut h = [[0u64; 256]; 4];
    let mut chunks = plane.chunks_exact(4);
    for c in &mut chunks {
        h[0][usize::from(c[0])] += 1;
        h[1][usize::from(c[1])] += 1;
        h[2][usize::from(c[2])] += 1;
        h[3][usize::from(c[3])] += 1;
    }
    for &b in chunks.remainder() {
        h[0][usize::from(b)] += 1;
    }
    let mut out = [0u64; 256];
    for (s, o) in out.iter_mut().enumerate() {
        *o = h[0][s] + h[1][s] + h[2][s] + h[3][s];
    }
    out
}

/// Order-0 entropy of a histogram, in bits (the whole plane's, not per byte).
pub(crate) fn entropy_bits(counts: &[u64; 256]) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "an estimate")]
    let n = counts.iter().sum::<u64>() as f64;
    if n == 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            #[allow(clippy::cast_precision_loss, reason = "an estimate")]
            let c = c as f64;
            -c * (c / n).log2()
        })
        .sum()
}

/// Quantizes `counts` to frequencies summing to [`SCALE`], every present symbol at least 1.
fn normalize(counts: &[u64; 256]) -> [u32; 256] {
    let total: u64 = counts.iter().sum();
    let mut freq = [0u32; 256];
    if total == 0 {
        return freq;
    }
    let mut sum = 0u32;
    for (f, &c) in freq.iter_mut().zip(counts) {
        if c > 0 {
            // ≥ 1, and ≤ SCALE since c ≤ total.
            #[allow(clippy::cast_possible_truncation, reason = "at most SCALE")]
            let q = ((u128::from(c) * u128::from(SCALE)) / u128::from(total)) as u32;
            *f = q.max(1);
            sum += *f;
        }
    }
    // Settle the rounding on the symbols where it costs least: take from (or give to) the most
    // frequent ones, never below 1.
    let mut order: Vec<usize> = (0..256).filter(|&s| freq[s] > 0).collect();
    order.sort_by_key(|&s| std::cmp::Reverse(counts[s]));
    while sum != SCALE {
        let mut moved = false;
        for &s in &order {
            if sum > SCALE && freq[s] > 1 {
                freq[s] -= 1;
                sum -= 1;
                moved = true;
            } else if sum < SCALE {
                freq[s] += 1;
                sum += 1;
                moved = true;
            }
            if sum == SCALE {
                break;
            }
        }
        if !moved {
            break;
        }
    }
    freq
}

/// One symbol's encoder constants (ryg_rans's reciprocal form: no division per symbol).
#[derive(Clone, Copy, Default)]
struct EncSymbol {
    x_max: u32,
    rcp_freq: u32,
    bias: u32,
    cmpl_freq: u32,
    rcp_shift: u32,
}

impl EncSymbol {
    fn new(start: u32, freq: u32) -> Self {
        // 2^31 for a symbol that is the whole plane (its state never moves).
        let x_max = u32::try_from(u64::from((LOWER >> SCALE_BITS) << 16) * u64::from(freq))
            .unwrap_or(u32::MAX);
        let cmpl_freq = SCALE - freq;
        if freq < 2 {
            EncSymbol {
                x_max,
                rcp_freq: u32::MAX,
                bias: start + SCALE - 1,
                cmpl_freq,
                rcp_shift: 0,
            }
        } else {
            let mut shift = 0;
            while freq > (1u32 << shift) {
                shift += 1;
            }
            #[allow(clippy::cast_possible_truncation, reason = "< 2^32 for freq ≥ 2")]
            let rcp_freq = (1u64 << (shift + 31)).div_ceil(u64::from(freq)) as u32;
            EncSymbol {
                x_max,
                rcp_freq,
                bias: start,
                cmpl_freq,
                rcp_shift: shift - 1,
            }
        }
    }

    /// Encodes this symbol into state `x`, writing its renormalization word (if any)
    /// backwards before `*pos` in `out` (`out` has room for one a symbol).
    #[inline(always)]
    fn put(&self, x: &mut u32, out: &mut [u8], pos: &mut usize) {
        if *x >= self.x_max {
            *pos -= 2;
            let w = x.to_le_bytes();
            out[*pos] = w[0];
            out[*pos + 1] = w[1];
            *x >>= 16;
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "the high half of a u64 product"
        )]
        let q = ((u64::from(*x) * u64::from(self.rcp_freq)) >> 32) as u32 >> self.rcp_shift;
        *x = x
            .wrapping_add(self.bias)
            .wrapping_add(q.wrapping_mul(self.cmpl_freq));
    }
}

/// Encodes `plane` (whose byte counts are `counts`) with its own table.
pub(crate) fn encode(plane: &[u8], counts: &[u64; 256]) -> Vec<u8> {
    let freq = normalize(counts);
    let mut out = Vec::with_capacity(32 + 512);
    let mut bitmap = [0u8; 32];
    for (s, &f) in freq.iter().enumerate() {
        if f > 0 {
            bitmap[s / 8] |= 1 << (s % 8);
        }
    }
    out.extend_from_slice(&bitmap);
    let mut syms = [EncSymbol::default(); 256];
    let mut start = 0u32;
    for (s, &f) in freq.iter().enumerate() {
        if f > 0 {
            #[allow(clippy::cast_possible_truncation, reason = "f ≤ 2^14")]
            out.extend_from_slice(&(f as u16).to_le_bytes());
            syms[s] = EncSymbol::new(start, f);
            start += f;
        }
    }
    // Each worker codes into one scratch buffer it keeps, and copies out only what was written.
    let blocks: Vec<Vec<u8>> = plane
        .par_chunks(BLOCK)
        .map_init(Vec::new, |scratch, block| {
            encode_block(block, &syms, scratch).to_vec()
        })
        .collect();
    out.reserve_exact(blocks.iter().map(|b| 4 + b.len()).sum());
    for b in blocks {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "a block's bytes fit in u32"
        )]
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&b);
    }
    out
}

/// Codes `block` into the end of `out` (resized to the worst case) and returns the bytes written.
fn encode_block<'a>(block: &[u8], syms: &[EncSymbol; 256], out: &'a mut Vec<u8>) -> &'a [u8] {
    // Written backwards from the end, so that decoding reads forwards: at most one word a
    // symbol, then the four states.
    out.resize(2 * block.len() + 4 * LANES, 0);
    let mut pos = out.len();
    let [mut x0, mut x1, mut x2, mut x3] = [LOWER; LANES];
    // First the tail that does not fill a group of four, then whole groups, symbol `i` by state
    // `i mod 4`, last to first.
    let whole = block.len() / LANES * LANES;
    for i in (whole..block.len()).rev() {
        let x = match i % LANES {
            0 => &mut x0,
            1 => &mut x1,
            2 => &mut x2,
            _ => &mut x3,
        };
        syms[usize::from(block[i])].put(x, out, &mut pos);
    }
    for group in block[..whole].chunks_exact(LANES).rev() {
        syms[usize::from(group[3])].put(&mut x3, out, &mut pos);
        syms[usize::from(group[2])].put(&mut x2, out, &mut pos);
        syms[usize::from(group[1])].put(&mut x1, out, &mut pos);
        syms[usize::from(group[0])].put(&mut x0, out, &mut pos);
    }
    for x in [x3, x2, x1, x0] {
        pos -= 4;
        out[pos..pos + 4].copy_from_slice(&x.to_be_bytes());
    }
    &out[pos..]
}

/// The decoding tables: each slot's symbol (`x mod 2^14`), and each symbol's frequency (low 16
/// bits) and start (high 16 bits) — 17 KiB in all, so both stay in the L1 cache.
struct DecTable {
    slot: Vec<u8>,
    symbol: [u32; 256],
}

/// A plane's coded bytes, its table read and its blocks found (every length checked), ready to
/// decode block by block: block `i` holds symbols `i × BLOCK ..`, so a caller can decode the
/// planes of a tensor in step, a block of each at a time, while the result is still in cache.
pub(crate) struct Coded<'a> {
    table: DecTable,
    blocks: Vec<&'a [u8]>,
}

impl<'a> Coded<'a> {
    /// Reads the table and the block lengths of a plane of `len` symbols.
    ///
    /// # Errors
    /// [`RansError`] for a bad table, a block of the wrong length, or bytes missing or left over.
    pub(crate) fn parse(src: &'a [u8], len: usize) -> Result<Self, RansError> {
        let (table, mut rest) = read_table(src, len)?;
        let count = len.div_ceil(BLOCK);
        // At least four bytes a block: `count` is bounded by what `src` holds, not only by `len`.
        if rest.len() / 4 < count {
            return Err(corrupt(format!(
                "{count} blocks cannot fit in {} bytes",
                rest.len()
            )));
        }
        let mut blocks = Vec::with_capacity(count);
        for i in 0..count {
            if rest.len() < 4 {
                return Err(corrupt(format!("block {i}'s length is missing")));
            }
            let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if rest.len() < n {
                return Err(corrupt(format!(
                    "block {i} says {n} bytes, {} are left",
                    rest.len()
                )));
            }
            blocks.push(&rest[..n]);
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            return Err(corrupt(format!(
                "{} bytes after the last block",
                rest.len()
            )));
        }
        Ok(Coded { table, blocks })
    }

    /// Decodes block `i` into `dst`, which holds exactly that block's symbols.
    ///
    /// # Errors
    /// [`RansError`] for bytes missing or left over, or states that do not end where encoding
    /// began.
    pub(crate) fn block(&self, i: usize, dst: &mut [u8]) -> Result<(), RansError> {
        let bytes = self
            .blocks
            .get(i)
            .ok_or_else(|| corrupt(format!("no block {i}")))?;
        decode_block(&self.table, bytes, dst).map_err(|e| corrupt(format!("block {i}: {}", e.0)))
    }
}

/// Decodes a plane of `len` symbols from `src`, its blocks in parallel.
///
/// # Errors
/// [`RansError`] as [`Coded::parse`] and [`Coded::block`] say.
#[cfg(test)]
pub(crate) fn decode(src: &[u8], len: usize) -> Result<Vec<u8>, RansError> {
    let coded = Coded::parse(src, len)?;
    let mut out = vec![0u8; len];
    out.par_chunks_mut(BLOCK)
        .enumerate()
        .try_for_each(|(i, dst)| coded.block(i, dst))?;
    Ok(out)
}

fn read_table(src: &[u8], len: usize) -> Result<(DecTable, &[u8]), RansError> {
    let bitmap = src
        .get(..32)
        .ok_or_else(|| corrupt("the table is truncated"))?;
    let present: Vec<usize> = (0..256)
        .filter(|&s| bitmap[s / 8] & (1 << (s % 8)) != 0)
        .collect();
    let mut at = 32;
    let mut freq = [0u32; 256];
    let mut start = [0u32; 256];
    let mut sum = 0u32;
    for &s in &present {
        let f = src
            .get(at..at + 2)
            .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
            .ok_or_else(|| corrupt("the table is truncated"))?;
        at += 2;
        if f == 0 || sum + f > SCALE {
            return Err(corrupt("the frequencies do not sum to 2^14"));
        }
        freq[s] = f;
        start[s] = sum;
        sum += f;
    }
    // An empty plane has an empty table.
    if sum != SCALE && !(sum == 0 && len == 0) {
        return Err(corrupt("the frequencies do not sum to 2^14"));
    }
    let mut slot = vec![0u8; SCALE as usize];
    let mut symbol = [0u32; 256];
    for &s in &present {
        let range = start[s] as usize..(start[s] + freq[s]) as usize;
        #[allow(clippy::cast_possible_truncation, reason = "s < 256")]
        slot[range].fill(s as u8);
        // freq ≤ 2^14 and start < 2^14: both fit in 16 bits.
        symbol[s] = freq[s] | (start[s] << 16);
    }
    Ok((DecTable { slot, symbol }, &src[at..]))
}

fn decode_block(t: &DecTable, src: &[u8], dst: &mut [u8]) -> Result<(), RansError> {
    let head = src
        .get(..4 * LANES)
        .ok_or_else(|| corrupt("the states are truncated"))?;
    let state = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let [mut x0, mut x1, mut x2, mut x3] = [state(0), state(4), state(8), state(12)];
    if [x0, x1, x2, x3].iter().any(|&x| x < LOWER) {
        return Err(corrupt("a state below the lower bound"));
    }
    let mut pos = 4 * LANES;
    let mask = SCALE - 1;
    // One symbol: look up, advance the state (the renormalization follows: at most one word a
    // symbol, since after a step the state is at least 2^(15 − 14)).
    macro_rules! advance {
        ($x:ident, $out:expr) => {{
            let at = $x & mask;
            let s = t.slot[at as usize];
            let e = t.symbol[usize::from(s)];
            *$out = s;
            $x = (e & 0xffff) * ($x >> SCALE_BITS) + at - (e >> 16);
        }};
    }
    macro_rules! step {
        ($x:ident, $out:expr) => {{
            advance!($x, $out);
            if $x < LOWER {
                let w = src
                    .get(pos..pos + 2)
                    .ok_or_else(|| corrupt("bytes missing"))?;
                $x = ($x << 16) | u32::from(u16::from_le_bytes([w[0], w[1]]));
                pos += 2;
            }
        }};
    }
    // On the fast path the four states advance first, independently; then the next eight bytes
    // are read as one word, and each state that needs it takes the next 16 bits, without a
    // branch.
    macro_rules! renormalize {
        ($x:ident, $words:ident, $taken:ident) => {{
            let need = $x < LOWER;
            #[allow(clippy::cast_possible_truncation, reason = "16 bits")]
            let w = ($words >> (16 * $taken)) as u32 & 0xffff;
            $x = if need { ($x << 16) | w } else { $x };
            $taken += u32::from(need);
        }};
    }
    let whole = dst.len() / LANES * LANES;
    let (groups, tail) = dst.split_at_mut(whole);
    for g in groups.chunks_exact_mut(LANES) {
        let [o0, o1, o2, o3] = g else {
            unreachable!("chunks of four")
        };
        // Four symbols read at most four words: with eight bytes left, no read can run out.
        if let Some(ahead) = src.get(pos..pos + 2 * LANES) {
            advance!(x0, o0);
            advance!(x1, o1);
            advance!(x2, o2);
            advance!(x3, o3);
            let mut word = [0u8; 8];
            word.copy_from_slice(ahead);
            let words = u64::from_le_bytes(word);
            let mut taken = 0u32;
            renormalize!(x0, words, taken);
            renormalize!(x1, words, taken);
            renormalize!(x2, words, taken);
            renormalize!(x3, words, taken);
            pos += 2 * taken as usize;
        } else {
            step!(x0, o0);
            step!(x1, o1);
            step!(x2, o2);
            step!(x3, o3);
        }
    }
    for (i, o) in tail.iter_mut().enumerate() {
        match i {
            0 => step!(x0, o),
            1 => step!(x1, o),
            _ => step!(x2, o),
        }
    }
    if pos != src.len() {
        return Err(corrupt(format!("{} bytes left over", src.len() - pos)));
    }
    if [x0, x1, x2, x3].iter().any(|&x| x != LOWER) {
        return Err(corrupt("the states do not end where encoding began"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(plane: &[u8]) -> Vec<u8> {
        let coded = encode(plane, &histogram(plane));
        let back = decode(&coded, plane.len()).expect("decodes");
        assert_eq!(back, plane);
        coded
    }

    #[test]
    fn skewed_planes_code_near_their_entropy() {
        // An exponent-like plane: a few values, very unequal.
        let mut r = crate::synth::Rng::new(7);
        let plane: Vec<u8> = (0..3 * BLOCK + 12_345)
            .map(|_| {
                let u = r.uniform();
                if u < 0.6 {
                    0
                } else if u < 0.85 {
                    1
                } else if u < 0.97 {
                    2
                } else {
                    #[allow(clippy::cast_possible_truncation, reason = "a byte")]
                    let b = (r.next_u64() % 256) as u8;
                    b
                }
            })
            .collect();
        let coded = round_trip(&plane);
        let bound = entropy_bits(&histogram(&plane)) / 8.0;
        #[allow(clippy::cast_precision_loss, reason = "a ratio")]
        let efficiency = bound / coded.len() as f64;
        assert!(efficiency > 0.99, "{efficiency}");
    }

    #[test]
    fn edge_planes_round_trip() {
        round_trip(&[]);
        round_trip(&[9]);
        round_trip(&[0; 1000]);
        round_trip(&[255; BLOCK + 1]);
        let all: Vec<u8> = (0..=255).cycle().take(70_000).collect();
        round_trip(&all);
    }

    #[test]
    fn corruption_is_an_error_never_a_panic() {
        let plane: Vec<u8> = (0..50_000u32).map(|i| (i % 7 * i % 5) as u8).collect();
        let coded = encode(&plane, &histogram(&plane));
        for cut in [0, 10, 31, 33, coded.len() - 1] {
            assert!(decode(&coded[..cut], plane.len()).is_err(), "cut {cut}");
        }
        let mut extra = coded.clone();
        extra.push(0);
        assert!(decode(&extra, plane.len()).is_err());
        assert!(decode(&coded, plane.len() + 1).is_err());
        for at in [5, 40, coded.len() / 2, coded.len() - 3] {
            let mut bad = coded.clone();
            bad[at] ^= 0x5a;
            // A flipped byte may still decode (to other bytes): never panics, and the payload's
            // digest catches what the coder cannot.
            if let Ok(out) = decode(&bad, plane.len()) {
                assert_eq!(out.len(), plane.len());
            }
        }
    }

    #[test]
    fn the_reciprocal_step_is_exact_for_every_frequency_and_state() {
        // What `put` computes, against the definition, at the edges of every state range.
        let mut r = crate::synth::Rng::new(11);
        for freq in 1..=SCALE {
            let start = SCALE - freq;
            let sym = EncSymbol::new(start, freq);
            let x_max = sym.x_max.min(1 << 31);
            let mut states = vec![LOWER, LOWER + 1, x_max - 1, x_max.saturating_sub(freq)];
            #[allow(clippy::cast_possible_truncation, reason = "below 2^31")]
            states.extend((0..8).map(|_| LOWER + (r.next_u64() % u64::from(x_max - LOWER)) as u32));
            for x in states {
                let mut y = x;
                let mut out = [0u8; 2];
                let mut pos = 2;
                sym.put(&mut y, &mut out, &mut pos);
                assert_eq!(pos, 2, "no renormalization below x_max");
                let want = ((x / freq) << SCALE_BITS) + x % freq + start;
                assert_eq!(y, want, "freq {freq}, x {x}");
                assert!((LOWER..1 << 31).contains(&y), "freq {freq}, x {x} → {y}");
            }
        }
    }

    proptest! {
        #[test]
        fn skewed_planes_of_any_shape_round_trip(
            weights in proptest::collection::vec(0u32..1000, 1..40),
            len in 0usize..200_000,
            seed in any::<u64>(),
        ) {
            // A plane drawn from an arbitrary, often very skewed, distribution.
            let total: u64 = weights.iter().map(|&w| u64::from(w) + 1).sum();
            let mut r = crate::synth::Rng::new(seed);
            let plane: Vec<u8> = (0..len)
                .map(|_| {
                    let mut pick = r.next_u64() % total;
                    for (s, &w) in weights.iter().enumerate() {
                        let w = u64::from(w) + 1;
                        if pick < w {
                            #[allow(clippy::cast_possible_truncation, reason = "< 40")]
                            return (s * 6) as u8;
                        }
                        pick -= w;
                    }
                    0
                })
                .collect();
            let coded = encode(&plane, &histogram(&plane));
            prop_assert_eq!(decode(&coded, plane.len()).expect("decodes"), plane);
        }

        #[test]
        fn any_plane_round_trips(plane in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let coded = encode(&plane, &histogram(&plane));
            prop_assert_eq!(decode(&coded, plane.len()).expect("decodes"), plane);
        }

        #[test]
        fn any_bytes_decode_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..600), len in 0usize..3000) {
            if let Ok(out) = decode(&bytes, len) {
                prop_assert_eq!(out.len(), len);
            }
        }
    }
}
