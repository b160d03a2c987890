//! The keyed colour palette of the back.
//!
//! The back is printed in colour so that it does not look like (and cannot be read as) a gray copy
//! of the front. The palette has [`PALETTE_SETS`] keyed *colour sets* of four colours each; every
//! row of blocks of the scrambled area (a "band") uses one set, chosen by the key, and inside a set
//! the key decides which colour stands for which level. White marks block padding and the quiet
//! frame, black the registration marks; neither is ever a data colour, so padding stays recognisable
//! without the key.
//!
//! The four colours of a set are 90° apart in hue at fixed saturation and value, from a keyed
//! starting hue: that keeps every pair of colours in a set (and each of them against white and
//! black) far apart in RGB, which is what nearest-colour classification of a scan needs. The colour
//! arithmetic is integer-only so that every platform computes the same palette.
//!
//! Palette layout (indices): set `s` occupies `4 s .. 4 s + 4`, then [`WHITE`], then [`BLACK`].

use super::key::ScrambleKey;
use super::levels::{LEVELS, PAD};

/// Number of keyed colour sets.
pub(crate) const PALETTE_SETS: usize = 3;
/// Palette index of white: quiet frame, reserved id strip, block padding.
pub(crate) const WHITE: u8 = (PALETTE_SETS * LEVELS as usize) as u8;
/// Palette index of black: registration marks.
pub(crate) const BLACK: u8 = WHITE + 1;
/// Number of palette entries; fits 4-bit indices.
pub(crate) const PALETTE_LEN: usize = BLACK as usize + 1;

/// Hue circle in integer units: six sectors of 256.
const HUE_CIRCLE: u32 = 6 * 256;
const SATURATION: u32 = 200;
const VALUE: u32 = 210;

/// The palette and the band-to-set assignment derived from one key.
pub(crate) struct KeyedPalette {
    /// RGB colour of each palette index.
    pub colours: [[u8; 3]; PALETTE_LEN],
    /// `index_of[set][level]`: the palette index that shows `level` in colour set `set`.
    pub index_of: [[u8; LEVELS as usize]; PALETTE_SETS],
    /// Colour set of each row of blocks, top to bottom.
    pub band_set: Vec<u8>,
}

impl KeyedPalette {
    pub(crate) fn new(key: &ScrambleKey, bands: usize) -> KeyedPalette {
        let mut colours = [[0u8; 3]; PALETTE_LEN];
        let mut index_of = [[0u8; LEVELS as usize]; PALETTE_SETS];
        let mut hues = key.stream("palette/hues");
        let mut assign = key.stream("palette/levels");
        for set in 0..PALETTE_SETS {
            let start = hues.below(HUE_CIRCLE);
            for k in 0..LEVELS as usize {
                let hue = (start + k as u32 * HUE_CIRCLE / LEVELS as u32) % HUE_CIRCLE;
                colours[set * LEVELS as usize + k] = hsv_to_rgb(hue, SATURATION, VALUE);
            }
            let order = assign.permutation(LEVELS as u32);
            for (level, &k) in order.iter().enumerate() {
                index_of[set][level] = (set * LEVELS as usize) as u8 + k as u8;
            }
        }
        colours[WHITE as usize] = [255, 255, 255];
        colours[BLACK as usize] = [0, 0, 0];
        let mut bands_stream = key.stream("palette/bands");
        let band_set = (0..bands)
            .map(|_| bands_stream.below(PALETTE_SETS as u32) as u8)
            .collect();
        KeyedPalette {
            colours,
            index_of,
            band_set,
        }
    }

    /// The class (level `0..4`, or [`PAD`] for white) of an observed colour in a band that uses
    /// colour set `set`: the nearest of the set's four colours and white. Black is not a candidate:
    /// it never occurs inside the scrambled area.
    pub(crate) fn classify(&self, set: usize, rgb: [u8; 3]) -> u8 {
        let mut best = (distance2(rgb, self.colours[WHITE as usize]), PAD);
        for (level, &idx) in self.index_of[set].iter().enumerate() {
            let d = distance2(rgb, self.colours[idx as usize]);
            if d < best.0 {
                best = (d, level as u8);
            }
        }
        best.1
    }

    /// The palette as the flat list the back image carries.
    pub(crate) fn to_vec(&self) -> Vec<[u8; 3]> {
        self.colours.to_vec()
    }
}

fn distance2(a: [u8; 3], b: [u8; 3]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(&x, y)| (x as i32 - y as i32).pow(2) as u32)
        .sum()
}

/// Integer HSV to RGB; `hue` in `0..1536` (six sectors of 256), saturation and value in `0..=255`.
fn hsv_to_rgb(hue: u32, s: u32, v: u32) -> [u8; 3] {
    let sector = hue / 256;
    let f = hue % 256;
    let p = v * (255 - s) / 255;
    let q = v * (255 - s * f / 255) / 255;
    let t = v * (255 - s * (255 - f) / 255) / 255;
    let (r, g, b) = match sector {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [r as u8, g as u8, b as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worst-case separation we rely on for nearest-colour classification of scans.
    const MIN_SEPARATION2: u32 = 100 * 100;

    #[test]
    fn colours_in_a_set_are_far_from_each_other_and_from_white_and_black() {
        for seed in 0..64u8 {
            let p = KeyedPalette::new(&ScrambleKey::from_bytes([seed; 32]), 10);
            for set in 0..PALETTE_SETS {
                let cs: Vec<[u8; 3]> = p.index_of[set]
                    .iter()
                    .map(|&i| p.colours[i as usize])
                    .collect();
                for (i, a) in cs.iter().enumerate() {
                    assert!(
                        distance2(*a, [255; 3]) >= MIN_SEPARATION2,
                        "seed {seed}: {a:?} near white"
                    );
                    assert!(
                        distance2(*a, [0; 3]) >= MIN_SEPARATION2,
                        "seed {seed}: {a:?} near black"
                    );
                    for b in &cs[i + 1..] {
                        assert!(
                            distance2(*a, *b) >= MIN_SEPARATION2,
                            "seed {seed}: {a:?} near {b:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn each_set_maps_levels_to_distinct_indices_of_that_set() {
        let p = KeyedPalette::new(&ScrambleKey::from_bytes([9; 32]), 4);
        for set in 0..PALETTE_SETS {
            let mut idx = p.index_of[set].to_vec();
            idx.sort_unstable();
            let base = (set * LEVELS as usize) as u8;
            assert_eq!(idx, (base..base + LEVELS).collect::<Vec<_>>());
        }
    }

    #[test]
    fn classify_inverts_the_palette_exactly() {
        let p = KeyedPalette::new(&ScrambleKey::from_bytes([3; 32]), 4);
        for set in 0..PALETTE_SETS {
            for level in 0..LEVELS {
                let c = p.colours[p.index_of[set][level as usize] as usize];
                assert_eq!(p.classify(set, c), level);
                // A slightly off colour, as a re-encoding may produce, still classifies.
                let off = [
                    c[0].saturating_add(6),
                    c[1].saturating_sub(5),
                    c[2].saturating_add(4),
                ];
                assert_eq!(p.classify(set, off), level);
            }
            assert_eq!(p.classify(set, [255; 3]), PAD);
            assert_eq!(p.classify(set, [250, 248, 252]), PAD);
        }
    }

    #[test]
    fn palette_depends_on_the_key() {
        let a = KeyedPalette::new(&ScrambleKey::from_bytes([1; 32]), 40);
        let b = KeyedPalette::new(&ScrambleKey::from_bytes([2; 32]), 40);
        assert!(a.colours != b.colours || a.index_of != b.index_of || a.band_set != b.band_set);
        assert!(a.band_set.iter().all(|&s| (s as usize) < PALETTE_SETS));
    }
}
