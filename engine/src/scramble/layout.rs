//! The fixed geometry of the back: quiet margin, scrambled area, finder ring and id strip.
//!
//! ```text
//!  +--------------------------- MARGIN (white) ----------------------------+
//!  |  +--RING--+-------- scrambled area width --------+--RING--+           |
//!  |  | [TL]   |                                      |   [TR] |  RING rows: white, finder
//!  |  +--------+--------------------------------------+--------+  marks in the corner cells
//!  |  |        |                                      |        |           |
//!  |  | white  |   blocks_x * 16  by  blocks_y * 16    | white  |           |
//!  |  |        |   (the scrambled front)              |        |           |
//!  |  +--------+--------------------------------------+--------+           |
//!  |  | [BL]   |                                      |   [BR] |           |
//!  |  +--------+--------------------------------------+--------+           |
//!  |  id strip (ID_STRIP_HEIGHT rows, white: reserved for the id line)     |
//!  +-----------------------------------------------------------------------+
//! ```
//!
//! Back pixels are front pixels one to one (no scaling), so the back of an A4 front at 100 dpi is
//! `2 * (MARGIN + RING) + 832` by `2 * (MARGIN + RING) + 1184 + ID_STRIP_HEIGHT`; the renderer
//! scales it onto the page. The geometry is a pure function of the front size, and the front
//! size's block grid is a pure function of the back size, so a descrambler needs nothing but the
//! image and the key.
//!
//! The quiet [`MARGIN`] exists because the renderer scales the back to the width of the sheet and
//! printers cannot print to the edge (typically 3–5 mm): without it the finder marks would be
//! clipped. 40 back pixels are about 8 mm on paper.
//!
//! The finder marks are QR-style 7×7-module squares (module = 4 px) centred in the corner cells of
//! the ring: a dark ring, a light ring and a dark 3×3 centre; the bottom-right one has a single dark
//! centre module instead, so that a scanner can tell the orientation of a rotated scan
//! (`verify::locate`). The exact descrambler only checks that the marks are where they belong,
//! which rejects images that are not a back (e.g. the front, or a cropped extract).

use super::blocks::BLOCK;
use super::DescrambleError;

/// Width of the white frame around the scrambled area, which holds the finder marks.
pub const RING: u32 = 40;
/// Width of the blank margin around the ring and the id strip.
pub const MARGIN: u32 = 40;
/// Height of the white strip under the frame reserved for the human-readable certificate id.
pub const ID_STRIP_HEIGHT: u32 = 32;
/// Side of one finder-mark module in pixels.
pub const FINDER_MODULE: u32 = 4;
/// Finder marks are `FINDER_MODULES × FINDER_MODULES` modules.
pub const FINDER_MODULES: u32 = 7;
const FINDER_SIDE: u32 = FINDER_MODULE * FINDER_MODULES;
const FINDER_INSET: u32 = (RING - FINDER_SIDE) / 2;
/// A finder mark counts as present when at least this many of its 49 modules read right, which
/// leaves room for a few damaged modules once scans arrive.
const FINDER_MIN_MATCHING_MODULES: u32 = 45;

/// An axis-aligned rectangle in back pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Which finder pattern a corner carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinderKind {
    /// Dark ring, light ring, dark 3×3 centre (top-left, top-right, bottom-left).
    Standard,
    /// Dark ring, light ring, single dark centre module (bottom-right): marks the orientation.
    Orientation,
}

/// Where everything sits on a back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackLayout {
    /// Size of the whole back image.
    pub width: u32,
    pub height: u32,
    /// The scrambled blocks; origin of block (0, 0).
    pub scramble_area: Rect,
    /// Blocks per row and per column of the scrambled area.
    pub blocks_x: u32,
    pub blocks_y: u32,
    /// The blank strip the renderer fills with the certificate id line.
    pub id_strip: Rect,
    /// Finder marks: top-left, top-right, bottom-left, bottom-right.
    pub finders: [(Rect, FinderKind); 4],
}

impl BackLayout {
    /// The layout of the back of a `front_width × front_height` front (both non-zero).
    pub fn for_front(front_width: u32, front_height: u32) -> BackLayout {
        let bs = BLOCK as u32;
        BackLayout::for_blocks(front_width.div_ceil(bs), front_height.div_ceil(bs))
    }

    fn for_blocks(blocks_x: u32, blocks_y: u32) -> BackLayout {
        let bs = BLOCK as u32;
        let area = Rect {
            x: MARGIN + RING,
            y: MARGIN + RING,
            width: blocks_x * bs,
            height: blocks_y * bs,
        };
        let width = area.width + 2 * (RING + MARGIN);
        // Bottom edge of the ring.
        let framed_bottom = MARGIN + area.height + 2 * RING;
        let corner = |x: u32, y: u32| Rect {
            x: x + FINDER_INSET,
            y: y + FINDER_INSET,
            width: FINDER_SIDE,
            height: FINDER_SIDE,
        };
        let (left, top) = (MARGIN, MARGIN);
        let (right, bottom) = (width - MARGIN - RING, framed_bottom - RING);
        BackLayout {
            width,
            height: framed_bottom + ID_STRIP_HEIGHT + MARGIN,
            scramble_area: area,
            blocks_x,
            blocks_y,
            id_strip: Rect {
                x: MARGIN,
                y: framed_bottom,
                width: width - 2 * MARGIN,
                height: ID_STRIP_HEIGHT,
            },
            finders: [
                (corner(left, top), FinderKind::Standard),
                (corner(right, top), FinderKind::Standard),
                (corner(left, bottom), FinderKind::Standard),
                (corner(right, bottom), FinderKind::Orientation),
            ],
        }
    }

    /// Recovers the layout from the size of a back image, refusing sizes no front produces.
    pub fn from_back_size(width: u32, height: u32) -> Result<BackLayout, DescrambleError> {
        let bs = BLOCK as u32;
        let frame_w = 2 * (RING + MARGIN);
        let frame_h = frame_w + ID_STRIP_HEIGHT;
        let fits = |total: u32, frame: u32| total > frame && (total - frame).is_multiple_of(bs);
        if !fits(width, frame_w) || !fits(height, frame_h) {
            return Err(DescrambleError::NotABackSize { width, height });
        }
        Ok(BackLayout::for_blocks(
            (width - frame_w) / bs,
            (height - frame_h) / bs,
        ))
    }

    /// Calls `paint(x, y)` for every dark pixel of the finder marks.
    pub(crate) fn for_each_dark_mark_pixel(&self, mut paint: impl FnMut(u32, u32)) {
        for (rect, kind) in self.finders {
            for y in 0..rect.height {
                for x in 0..rect.width {
                    if finder_module_dark(kind, x / FINDER_MODULE, y / FINDER_MODULE) {
                        paint(rect.x + x, rect.y + y);
                    }
                }
            }
        }
    }

    /// Checks that every finder mark is present: each module's centre pixel must read dark or
    /// light as the pattern says, for all but a few modules.
    pub(crate) fn check_finders(
        &self,
        is_dark: impl Fn(u32, u32) -> bool,
    ) -> Result<(), DescrambleError> {
        for (corner, (rect, kind)) in self.finders.iter().enumerate() {
            let mut matching = 0;
            for my in 0..FINDER_MODULES {
                for mx in 0..FINDER_MODULES {
                    let (x, y) = (
                        rect.x + mx * FINDER_MODULE + FINDER_MODULE / 2,
                        rect.y + my * FINDER_MODULE + FINDER_MODULE / 2,
                    );
                    if is_dark(x, y) == finder_module_dark(*kind, mx, my) {
                        matching += 1;
                    }
                }
            }
            if matching < FINDER_MIN_MATCHING_MODULES {
                return Err(DescrambleError::FinderMarkMissing {
                    corner: CORNER_NAMES[corner],
                });
            }
        }
        Ok(())
    }
}

const CORNER_NAMES: [&str; 4] = ["top-left", "top-right", "bottom-left", "bottom-right"];

fn finder_module_dark(kind: FinderKind, mx: u32, my: u32) -> bool {
    let last = FINDER_MODULES - 1;
    let outer = mx == 0 || my == 0 || mx == last || my == last;
    let centre = match kind {
        FinderKind::Standard => (2..=4).contains(&mx) && (2..=4).contains(&my),
        FinderKind::Orientation => mx == 3 && my == 3,
    };
    outer || centre
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a4_front_layout() {
        let l = BackLayout::for_front(827, 1169);
        assert_eq!((l.blocks_x, l.blocks_y), (52, 74));
        assert_eq!(
            l.scramble_area,
            Rect {
                x: MARGIN + RING,
                y: MARGIN + RING,
                width: 832,
                height: 1184
            }
        );
        assert_eq!(
            (l.width, l.height),
            (
                832 + 2 * (RING + MARGIN),
                1184 + 2 * (RING + MARGIN) + ID_STRIP_HEIGHT
            )
        );
        assert_eq!(l.id_strip.y + l.id_strip.height + MARGIN, l.height);
        // The marks sit in the ring, a margin away from every edge.
        for (r, _) in l.finders {
            assert!(r.x >= MARGIN && r.y >= MARGIN);
            assert!(r.x + r.width <= l.width - MARGIN && r.y + r.height <= l.id_strip.y);
        }
    }

    #[test]
    fn back_size_round_trips_to_the_same_layout() {
        for (w, h) in [(1, 1), (16, 16), (17, 15), (827, 1169), (100, 3)] {
            let l = BackLayout::for_front(w, h);
            assert_eq!(BackLayout::from_back_size(l.width, l.height).unwrap(), l);
        }
    }

    #[test]
    fn sizes_no_front_produces_are_refused() {
        let l = BackLayout::for_front(50, 50);
        for (w, h) in [
            (l.width + 1, l.height),
            (l.width, l.height - 3),
            (2 * (RING + MARGIN), l.height),
            (10, 10),
        ] {
            assert!(matches!(
                BackLayout::from_back_size(w, h),
                Err(DescrambleError::NotABackSize { .. })
            ));
        }
    }

    #[test]
    fn marks_stay_in_the_frame_and_outside_the_scrambled_area() {
        let l = BackLayout::for_front(33, 20);
        let a = l.scramble_area;
        l.for_each_dark_mark_pixel(|x, y| {
            assert!(x < l.width && y < l.id_strip.y);
            assert!(!(a.x..a.x + a.width).contains(&x) || !(a.y..a.y + a.height).contains(&y));
        });
    }

    #[test]
    fn orientation_mark_differs_from_the_standard_one() {
        let l = BackLayout::for_front(64, 64);
        let mut dark = std::collections::HashSet::new();
        l.for_each_dark_mark_pixel(|x, y| {
            dark.insert((x, y));
        });
        assert!(l.check_finders(|x, y| dark.contains(&(x, y))).is_ok());
        // Swapping the bottom-right mark for a standard one must be noticed.
        let (br, _) = l.finders[3];
        let fake = |x: u32, y: u32| {
            if (br.x..br.x + br.width).contains(&x) && (br.y..br.y + br.height).contains(&y) {
                finder_module_dark(
                    FinderKind::Standard,
                    (x - br.x) / FINDER_MODULE,
                    (y - br.y) / FINDER_MODULE,
                )
            } else {
                dark.contains(&(x, y))
            }
        };
        // The two patterns differ in 8 modules: more than the tolerance allows.
        assert!(l.check_finders(fake).is_err());
        assert!(l.check_finders(|_, _| false).is_err());
    }
}
