//! Finding the back in a scan: the four finder marks, the projective transform from back pixels to
//! scan pixels, and the scan's paper white and ink black.
//!
//! The marks are the only large, square, *neutral dark* shapes of a back: the data colours are
//! saturated (their brightest channel is at least ~180 even after a contrast change), the paper is
//! white, so "brightest channel below [`DARK_MAX`]" isolates the marks and the black text of the
//! certificate-id line. Connected components of that mask that are square, ring-like and read the
//! QR-style 7×7 module pattern are candidates; of every four candidates of similar size, ordered
//! clockwise, the one holding the orientation mark (single centre module) is the bottom-right
//! corner, which also fixes scans turned by 90° steps. A quadruple is accepted when the transform
//! it implies predicts the marks' observed size; of several, the largest wins (text glyphs that
//! happen to look like a mark lie inside the page, not at the corners of the back).
//!
//! Four point pairs determine a homography exactly, which covers scale, rotation, translation,
//! shear and the mild perspective of a phone photo. Mark centres are component centroids, precise
//! to a fraction of a scan pixel, and the marks span the whole back, so the transform's error in
//! the middle of the back stays well below a back pixel.

use crate::scramble::{BackLayout, FinderKind, FINDER_MODULE, FINDER_MODULES, RING};

use super::image_io::RgbImage;
use super::VerifyError;

/// A scan pixel is "dark" (mark or text ink) when its brightest channel is below this.
pub const DARK_MAX: u8 = 100;
/// Modules of the 7×7 pattern that must read right for a component to be a mark candidate.
const MIN_PATTERN_MATCH: u32 = 42;
/// Smallest mark side considered, in scan pixels (a mark is 28 back pixels, ~18 pt on paper:
/// about 25 px at 100 dpi).
const MIN_MARK_SIDE: u32 = 10;
/// At most this many candidates enter the quadruple search (ranked by pattern match).
const MAX_CANDIDATES: usize = 16;

/// A projective transform `(u, v) -> (x, y)`, computed in normalised coordinates for conditioning.
#[derive(Clone, Debug, PartialEq)]
pub struct Homography {
    h: [f64; 8],
    in_scale: f64,
    out_scale: f64,
}

impl Homography {
    /// The transform that maps each `from[i]` onto `to[i]`; `None` when the points are degenerate.
    pub fn from_points(from: &[(f64, f64); 4], to: &[(f64, f64); 4]) -> Option<Homography> {
        let in_scale = from
            .iter()
            .fold(1.0f64, |m, p| m.max(p.0.abs()).max(p.1.abs()));
        let out_scale = to
            .iter()
            .fold(1.0f64, |m, p| m.max(p.0.abs()).max(p.1.abs()));
        let mut a = [[0f64; 9]; 8];
        for i in 0..4 {
            let (u, v) = (from[i].0 / in_scale, from[i].1 / in_scale);
            let (x, y) = (to[i].0 / out_scale, to[i].1 / out_scale);
            a[2 * i] = [u, v, 1.0, 0.0, 0.0, 0.0, -u * x, -v * x, x];
            a[2 * i + 1] = [0.0, 0.0, 0.0, u, v, 1.0, -u * y, -v * y, y];
        }
        let h = solve8(a)?;
        Some(Homography {
            h,
            in_scale,
            out_scale,
        })
    }

    /// The map restricted to the line `v = const`, for reading a row of back pixels with one
    /// division each.
    pub fn row(&self, v: f64) -> RowMap {
        let (h, k) = (&self.h, 1.0 / self.in_scale);
        let v = v * k;
        RowMap {
            x: [h[0] * k, h[1] * v + h[2]],
            y: [h[3] * k, h[4] * v + h[5]],
            w: [h[6] * k, h[7] * v + 1.0],
            out_scale: self.out_scale,
        }
    }

    /// The image of `(u, v)`.
    #[inline]
    pub fn apply(&self, u: f64, v: f64) -> (f64, f64) {
        let (u, v) = (u / self.in_scale, v / self.in_scale);
        let h = &self.h;
        let w = h[6] * u + h[7] * v + 1.0;
        (
            (h[0] * u + h[1] * v + h[2]) / w * self.out_scale,
            (h[3] * u + h[4] * v + h[5]) / w * self.out_scale,
        )
    }
}

/// A [`Homography`] on one line `v = const`: `u -> ((a u + b) / (c u + d))` per coordinate.
#[derive(Clone, Copy, Debug)]
pub struct RowMap {
    x: [f64; 2],
    y: [f64; 2],
    w: [f64; 2],
    out_scale: f64,
}

impl RowMap {
    #[inline]
    pub fn at(&self, u: f64) -> (f64, f64) {
        let s = self.out_scale / (self.w[0] * u + self.w[1]);
        (
            (self.x[0] * u + self.x[1]) * s,
            (self.y[0] * u + self.y[1]) * s,
        )
    }
}

/// Gaussian elimination with partial pivoting on an 8×8 system given as an augmented matrix.
fn solve8(mut a: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col];
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut x = [0f64; 8];
    for i in 0..8 {
        x[i] = a[i][8] / a[i][i];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Per-channel linear map taking the scan's paper to white and its mark ink to black.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalise {
    lut: [[u8; 256]; 3],
}

impl Normalise {
    fn new(white: [u8; 3], black: [u8; 3]) -> Normalise {
        let mut lut = [[0u8; 256]; 3];
        for c in 0..3 {
            let (b, w) = (black[c] as i32, (white[c] as i32).max(black[c] as i32 + 1));
            for (v, out) in lut[c].iter_mut().enumerate() {
                *out = ((v as i32 - b) * 255 / (w - b)).clamp(0, 255) as u8;
            }
        }
        Normalise { lut }
    }

    #[inline]
    pub fn apply(&self, rgb: [u8; 3]) -> [u8; 3] {
        [
            self.lut[0][rgb[0] as usize],
            self.lut[1][rgb[1] as usize],
            self.lut[2][rgb[2] as usize],
        ]
    }
}

/// Where a back lies in a scan.
#[derive(Clone, Debug)]
pub struct BackLocation {
    /// The layout of the expected back.
    pub layout: BackLayout,
    /// Back pixel coordinates (continuous, `(0, 0)` = top-left corner of the back) to scan
    /// coordinates (continuous, `(0, 0)` = top-left corner of the scan).
    pub to_scan: Homography,
    /// Maps scan colours to nominal colours (paper → white, mark ink → black).
    pub normalise: Normalise,
    /// Mark centres in the scan: top-left, top-right, bottom-right, bottom-left of the back.
    pub marks: [(f64, f64); 4],
    /// Scan pixels per back pixel (mean over the back's top edge), e.g. ~1.3 for a 150-dpi scan.
    pub scale: f64,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    cx: f64,
    cy: f64,
    side: f64,
    kind: FinderKind,
    matched: u32,
}

/// Finds the back laid out as `layout` in `scan`.
pub fn locate_back(scan: &RgbImage, layout: &BackLayout) -> Result<BackLocation, VerifyError> {
    let candidates = mark_candidates(scan);
    if candidates.len() < 4 {
        return Err(VerifyError::BackNotFound("fewer than four finder marks"));
    }
    // Back coordinates of the mark centres, clockwise from top-left.
    let centre = |r: crate::scramble::Rect| {
        (
            r.x as f64 + r.width as f64 / 2.0,
            r.y as f64 + r.height as f64 / 2.0,
        )
    };
    let f = &layout.finders;
    let back_pts = [
        centre(f[0].0),
        centre(f[1].0),
        centre(f[3].0),
        centre(f[2].0),
    ];
    let mark_side = f[0].0.width as f64;

    let n = candidates.len();
    // (area, transform, mark centres) of the best quadruple so far.
    type Fit = (f64, Homography, [(f64, f64); 4]);
    let mut best: Option<Fit> = None;
    for a in 0..n {
        for b in a + 1..n {
            for c in b + 1..n {
                for d in c + 1..n {
                    let quad = [candidates[a], candidates[b], candidates[c], candidates[d]];
                    let Some((pts, h)) = fit_quad(quad, &back_pts, mark_side) else {
                        continue;
                    };
                    let area = polygon_area(&pts);
                    if best.as_ref().is_none_or(|(a0, _, _)| area > *a0) {
                        best = Some((area, h, pts));
                    }
                }
            }
        }
    }
    let (_, to_scan, marks) = best.ok_or(VerifyError::BackNotFound(
        "no four marks form a certificate back",
    ))?;
    let scale = {
        let (x0, y0) = to_scan.apply(back_pts[0].0, back_pts[0].1);
        let (x1, y1) = to_scan.apply(back_pts[1].0, back_pts[1].1);
        ((x1 - x0).hypot(y1 - y0)) / (back_pts[1].0 - back_pts[0].0)
    };
    let normalise = estimate_levels(scan, layout, &to_scan)?;
    Ok(BackLocation {
        layout: layout.clone(),
        to_scan,
        normalise,
        marks,
        scale,
    })
}

/// Orders four candidates clockwise, rotates them so the orientation mark is bottom-right, fits
/// the transform and checks that it predicts the marks' size.
fn fit_quad(
    mut quad: [Candidate; 4],
    back_pts: &[(f64, f64); 4],
    mark_side: f64,
) -> Option<([(f64, f64); 4], Homography)> {
    let mean_side = quad.iter().map(|c| c.side).sum::<f64>() / 4.0;
    if quad.iter().any(|c| (c.side / mean_side - 1.0).abs() > 0.25) {
        return None;
    }
    let orientation: Vec<usize> = (0..4)
        .filter(|&i| quad[i].kind == FinderKind::Orientation)
        .collect();
    if orientation.len() != 1 {
        return None;
    }
    let (mx, my) = (
        quad.iter().map(|c| c.cx).sum::<f64>() / 4.0,
        quad.iter().map(|c| c.cy).sum::<f64>() / 4.0,
    );
    quad.sort_by(|p, q| {
        let ap = (p.cy - my).atan2(p.cx - mx);
        let aq = (q.cy - my).atan2(q.cx - mx);
        ap.total_cmp(&aq)
    });
    let o = quad
        .iter()
        .position(|c| c.kind == FinderKind::Orientation)?;
    // Clockwise order in image coordinates (y down): rotate so the orientation mark is index 2.
    let pts: [(f64, f64); 4] = std::array::from_fn(|i| {
        let c = quad[(o + 2 + i) % 4];
        (c.cx, c.cy)
    });
    let h = Homography::from_points(back_pts, &pts)?;
    for (i, &(u, v)) in back_pts.iter().enumerate() {
        let (x0, y0) = h.apply(u - mark_side / 2.0, v);
        let (x1, y1) = h.apply(u + mark_side / 2.0, v);
        let predicted = (x1 - x0).hypot(y1 - y0);
        let observed = quad[(o + 2 + i) % 4].side;
        if !(0.75..=1.33).contains(&(observed / predicted)) {
            return None;
        }
    }
    // The quadrilateral must keep its orientation (no mirror image, no fold).
    let cross = |a: (f64, f64), b: (f64, f64), c: (f64, f64)| {
        (b.0 - a.0) * (c.1 - b.1) - (b.1 - a.1) * (c.0 - b.0)
    };
    if (0..4).any(|i| cross(pts[i], pts[(i + 1) % 4], pts[(i + 2) % 4]) <= 0.0) {
        return None;
    }
    Some((pts, h))
}

fn polygon_area(p: &[(f64, f64); 4]) -> f64 {
    (0..4)
        .map(|i| {
            let (a, b) = (p[i], p[(i + 1) % 4]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum::<f64>()
        .abs()
        / 2.0
}

/// Connected components of dark pixels that look like a finder mark.
fn mark_candidates(scan: &RgbImage) -> Vec<Candidate> {
    let (w, h) = (scan.width as usize, scan.height as usize);
    let dark: Vec<bool> = scan
        .pixels
        .chunks_exact(3)
        .map(|p| p[0].max(p[1]).max(p[2]) < DARK_MAX)
        .collect();
    let is_dark = |x: i64, y: i64| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && dark[y as usize * w + x as usize]
    };
    let mut seen = vec![false; w * h];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    for start in 0..w * h {
        if !dark[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        let mut count = 0u64;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            count += 1;
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
            for (dx, dy) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)] {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if is_dark(nx, ny) {
                    let j = ny as usize * w + nx as usize;
                    if !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        let (bw, bh) = ((x1 - x0 + 1) as u32, (y1 - y0 + 1) as u32);
        if bw < MIN_MARK_SIDE || bh < MIN_MARK_SIDE {
            continue;
        }
        let aspect = bw as f64 / bh as f64;
        let fill = count as f64 / (bw as f64 * bh as f64);
        if !(0.75..=1.33).contains(&aspect) || !(0.25..=0.85).contains(&fill) {
            continue;
        }
        // Read the 7×7 module pattern at the module centres of the bounding box.
        let modules = FINDER_MODULES;
        let (mut standard, mut orientation) = (0, 0);
        for my in 0..modules {
            for mx in 0..modules {
                let px = x0 as f64 + (mx as f64 + 0.5) * bw as f64 / modules as f64;
                let py = y0 as f64 + (my as f64 + 0.5) * bh as f64 / modules as f64;
                let d = is_dark(px as i64, py as i64);
                standard += u32::from(d == module_dark(FinderKind::Standard, mx, my));
                orientation += u32::from(d == module_dark(FinderKind::Orientation, mx, my));
            }
        }
        let (kind, matched) = if standard >= orientation {
            (FinderKind::Standard, standard)
        } else {
            (FinderKind::Orientation, orientation)
        };
        if matched < MIN_PATTERN_MATCH {
            continue;
        }
        let (cx, cy) = weighted_centre(scan, x0, y0, x1, y1);
        out.push(Candidate {
            cx,
            cy,
            side: (bw + bh) as f64 / 2.0,
            kind,
            matched,
        });
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.matched));
    out.truncate(MAX_CANDIDATES);
    out
}

/// The darkness-weighted centre of a mark whose dark pixels span `[x0, x1] × [y0, y1]`, in
/// continuous scan coordinates.
///
/// The centroid of the thresholded pixels is biased by up to a pixel: whether an edge pixel half
/// covered by ink passes the threshold depends on where the pixel grid happens to cut the edge,
/// and an unrotated scan cuts all of an edge the same way. Weighting every pixel of the box (grown
/// by two pixels) by its darkness makes edge pixels count by their coverage, which is symmetric.
fn weighted_centre(scan: &RgbImage, x0: usize, y0: usize, x1: usize, y1: usize) -> (f64, f64) {
    let (gx0, gy0) = (x0.saturating_sub(2), y0.saturating_sub(2));
    let gx1 = (x1 + 2).min(scan.width as usize - 1);
    let gy1 = (y1 + 2).min(scan.height as usize - 1);
    let (mut sw, mut sx, mut sy) = (0f64, 0f64, 0f64);
    for y in gy0..=gy1 {
        for x in gx0..=gx1 {
            let p = scan.at(x as u32, y as u32);
            let m = p[0].max(p[1]).max(p[2]) as f64;
            // Paper (≥ 230) weighs nothing, ink (≤ 30) fully, linear in between.
            let w = ((230.0 - m) / 200.0).clamp(0.0, 1.0);
            sw += w;
            sx += w * (x as f64 + 0.5);
            sy += w * (y as f64 + 0.5);
        }
    }
    (sx / sw, sy / sw)
}

/// The module pattern of the marks (same as the renderer's; `layout.rs` is the reference).
fn module_dark(kind: FinderKind, mx: u32, my: u32) -> bool {
    let last = FINDER_MODULES - 1;
    let outer = mx == 0 || my == 0 || mx == last || my == last;
    let centre = match kind {
        FinderKind::Standard => (2..=4).contains(&mx) && (2..=4).contains(&my),
        FinderKind::Orientation => mx == 3 && my == 3,
    };
    outer || centre
}

/// Paper white from the quiet ring between the marks, ink black from the marks' outer modules;
/// per-channel medians, so a few specks or a stray line do not move them.
fn estimate_levels(
    scan: &RgbImage,
    layout: &BackLayout,
    to_scan: &Homography,
) -> Result<Normalise, VerifyError> {
    let sample = |u: f64, v: f64| {
        let (x, y) = to_scan.apply(u, v);
        scan.sample_bilinear(x - 0.5, y - 0.5)
    };
    let mut paper = Vec::new();
    // The middle of the ring's top row and left column, between the marks.
    let area = layout.scramble_area;
    let (ring_x, ring_y) = ((area.x - RING / 2) as f64, (area.y - RING / 2) as f64);
    let mut u = area.x as f64 + 4.0;
    while u < (area.x + area.width) as f64 - 4.0 {
        paper.push(sample(u, ring_y));
        u += 4.0;
    }
    let mut v = area.y as f64 + 4.0;
    while v < (area.y + area.height) as f64 - 4.0 {
        paper.push(sample(ring_x, v));
        v += 4.0;
    }
    let mut ink = Vec::new();
    let m = FINDER_MODULE as f64;
    for (rect, _) in &layout.finders {
        let (x0, y0) = (rect.x as f64, rect.y as f64);
        for k in 1..FINDER_MODULES - 1 {
            let along = (k as f64 + 0.5) * m;
            ink.push(sample(x0 + along, y0 + m / 2.0));
            ink.push(sample(x0 + m / 2.0, y0 + along));
        }
    }
    let white = channel_medians(&mut paper);
    let black = channel_medians(&mut ink);
    if (0..3).any(|c| (white[c] as i32) - (black[c] as i32) < 60) {
        return Err(VerifyError::BackNotFound(
            "too little contrast between paper and marks",
        ));
    }
    Ok(Normalise::new(white, black))
}

fn channel_medians(samples: &mut [[u8; 3]]) -> [u8; 3] {
    std::array::from_fn(|c| {
        let mut v: Vec<u8> = samples.iter().map(|s| s[c]).collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homography_maps_the_four_points_and_inverts_an_affine_map() {
        let from = [(0.0, 0.0), (100.0, 0.0), (100.0, 200.0), (0.0, 200.0)];
        let (c, s) = (0.03f64.cos(), 0.03f64.sin());
        let map = |(u, v): (f64, f64)| (1.3 * (c * u - s * v) + 17.0, 1.3 * (s * u + c * v) - 4.0);
        let to = from.map(map);
        let h = Homography::from_points(&from, &to).unwrap();
        for p in [(50.0, 50.0), (3.0, 190.0), (77.7, 12.5)] {
            let (x, y) = h.apply(p.0, p.1);
            let (ex, ey) = map(p);
            assert!((x - ex).abs() < 1e-6 && (y - ey).abs() < 1e-6);
        }
        assert!(Homography::from_points(&from, &[(1.0, 1.0); 4]).is_none());
        // A perspective map: the row restriction agrees with the full map.
        let to = [(3.0, 4.0), (110.0, 9.0), (104.0, 230.0), (-2.0, 205.0)];
        let h = Homography::from_points(&from, &to).unwrap();
        for v in [0.5, 77.25, 199.5] {
            let row = h.row(v);
            for u in [0.5, 50.0, 99.5] {
                let (a, b) = (h.apply(u, v), row.at(u));
                assert!((a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn normalise_maps_paper_to_white_and_ink_to_black() {
        let n = Normalise::new([230, 225, 220], [30, 35, 40]);
        assert_eq!(n.apply([230, 225, 220]), [255, 255, 255]);
        assert_eq!(n.apply([30, 35, 40]), [0, 0, 0]);
        assert_eq!(n.apply([130, 130, 130])[0], 127);
    }
}
