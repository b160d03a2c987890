//! Quantisation of the front to the few gray levels the back carries.
//!
//! The front is black text and rules on white, anti-aliased. Two bits (four levels) keep the
//! anti-aliased glyph edges, so the restored front stays legible at 100 dpi, while the back's
//! palette stays small enough for 4-bit indices (three keyed colour sets of four colours plus white
//! and black fit in 16 entries). One bit would make small kanji strokes blotchy; three bits would
//! double the palette and gain nothing a human comparing two sheets could see.
//!
//! The quantisation is exact and public so that "descramble(back) == quantise(front)" is a
//! byte-for-byte check: a gray value `v` becomes level `(v + 42) / 85` (integer division), i.e. the
//! nearest of the representative grays 0, 85, 170, 255 (85 is odd, so there are no ties), and the
//! quantised front shows level `l` as gray `85 * l`. Representative grays quantise to themselves.

/// Number of gray levels on the back.
pub const LEVELS: u8 = 4;

/// The gray value shown for each level in a quantised or descrambled front.
pub const LEVEL_GRAY: [u8; LEVELS as usize] = [0, 85, 170, 255];

/// Class of a pixel of the scrambled area that belongs to no front pixel (block padding).
pub(crate) const PAD: u8 = LEVELS;

/// The level of gray value `v`: the nearest representative gray.
#[inline]
pub const fn level_of(v: u8) -> u8 {
    ((v as u16 + 42) / 85) as u8
}

/// `v` quantised: the representative gray nearest to `v`.
#[inline]
pub const fn quantise_gray(v: u8) -> u8 {
    LEVEL_GRAY[level_of(v) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_is_the_nearest_representative() {
        for v in 0..=255u8 {
            let l = level_of(v) as usize;
            let d = |g: u8| (g as i32 - v as i32).abs();
            assert!(
                LEVEL_GRAY
                    .iter()
                    .all(|&g| d(LEVEL_GRAY[l]) < d(g) || g == LEVEL_GRAY[l]),
                "v={v}"
            );
        }
    }

    #[test]
    fn quantisation_is_idempotent_and_monotone() {
        for v in 0..=255u8 {
            assert_eq!(quantise_gray(quantise_gray(v)), quantise_gray(v));
            if v > 0 {
                assert!(level_of(v) >= level_of(v - 1));
            }
        }
        assert_eq!(level_of(0), 0);
        assert_eq!(level_of(255), LEVELS - 1);
    }
}
