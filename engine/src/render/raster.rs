//! Page → grayscale bitmap, from the same display list as the PDF.
//!
//! The raster is the input of the scrambled back image, which a verifier descrambles from a
//! scan and compares with the printed front. 100 dpi is the intended resolution
//! ([`BACK_IMAGE_DPI`]): body text of 9.5 pt is ~13 px high, enough for a human to compare the
//! two sides, while an A4 page stays under 1 Mpx so scrambling and embedding stay cheap.
//!
//! Output is deterministic: integer blending, glyph origins snapped to quarter pixels, no
//! floating-point accumulation across the page.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use ab_glyph_rasterizer::{point, Point, Rasterizer};
use skrifa::outline::{DrawSettings, OutlinePen};
use skrifa::prelude::{LocationRef, Size};
use skrifa::MetadataProvider;

use super::display_list::{Item, Page, TextRun};
use super::fonts::{FontRole, FontSet};

/// Resolution intended for the back image (see the module documentation).
pub const BACK_IMAGE_DPI: f32 = 100.0;

/// An 8-bit grayscale image, row-major, 0 = black, 255 = white.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayRaster {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

thread_local! {
    /// The pixels of a raster given back by [`GrayRaster::recycle`]: a back's raster is ~1 MB, drawn and
    /// dropped for every sheet, and a fresh buffer of that size is fresh pages from the kernel each time.
    static SPARE_PIXELS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl GrayRaster {
    pub fn white(width: u32, height: u32) -> GrayRaster {
        let len = width as usize * height as usize;
        let mut pixels = SPARE_PIXELS.with(|spare| std::mem::take(&mut *spare.borrow_mut()));
        pixels.clear();
        pixels.resize(len, 255);
        GrayRaster { width, height, pixels }
    }

    /// Gives the pixel buffer back for the next [`GrayRaster::white`] on this thread (rasters larger than a
    /// sheet at 150 dpi are simply dropped).
    pub fn recycle(self) {
        if self.pixels.capacity() <= 4 << 20 {
            SPARE_PIXELS.with(|spare| *spare.borrow_mut() = self.pixels);
        }
    }

    pub fn get(&self, x: u32, y: u32) -> u8 {
        self.pixels[y as usize * self.width as usize + x as usize]
    }

    /// Darkens pixel (x, y) by `coverage` (0..=255) of ink with darkness `ink` (0..=255).
    #[inline]
    fn darken(&mut self, x: i64, y: i64, coverage: u32, ink: u32) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 || coverage == 0 {
            return;
        }
        let i = y as usize * self.width as usize + x as usize;
        let a = (coverage * ink + 127) / 255;
        self.pixels[i] = blend_table()[a as usize][self.pixels[i] as usize];
    }
}

/// `BLEND[a][d]` = pixel value `d` darkened by ink alpha `a`, i.e. round(d·(255−a)/255). A table lookup
/// instead of two integer divisions per pixel: glyph blits and shaded cells are most of a page's cost.
fn blend_table() -> &'static [[u8; 256]; 256] {
    static TABLE: std::sync::OnceLock<Box<[[u8; 256]; 256]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([[0u8; 256]; 256]);
        for (a, row) in t.iter_mut().enumerate() {
            for (d, v) in row.iter_mut().enumerate() {
                *v = ((d as u32 * (255 - a as u32) + 127) / 255) as u8;
            }
        }
        t
    })
}

/// Quarter-pixel horizontal positions: fine enough that spacing looks even, coarse enough that
/// a glyph has at most four cached renderings per size.
const SUBPIXEL_STEPS: f32 = 4.0;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct GlyphKey {
    font: FontRole,
    glyph: u16,
    /// Pixel size in 1/16 px.
    size_16: u32,
    phase: u8,
}

/// A rendered glyph: coverage bitmap and its offset from the (snapped) pen position.
struct Coverage {
    left: i32,
    top: i32,
    width: u32,
    height: u32,
    alpha: Vec<u8>,
}

const SHARDS: usize = 16;
const SHARD_CAPACITY: usize = 8192;

/// Hashing for the glyph cache: a page looks up every glyph it draws (a thousand or so), and SipHash, the
/// standard maps' default, was a visible part of a raster's time. The keys are glyph ids, sizes and phases
/// of the engine's own fonts, a small bounded set, so a fast hash needs no protection against chosen keys.
type GlyphHashing = foldhash::fast::RandomState;

/// Glyph bitmaps shared by all rasterizations of a renderer. Sharded so concurrent issuances
/// rarely contend; a shard that grows past its capacity is emptied (the form's glyphs come back
/// on the next page).
pub struct GlyphCache {
    hashing: GlyphHashing,
    shards: Vec<Mutex<HashMap<GlyphKey, Arc<Coverage>, GlyphHashing>>>,
}

impl Default for GlyphCache {
    fn default() -> Self {
        let hashing = GlyphHashing::default();
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::with_hasher(hashing.clone()))).collect();
        GlyphCache { hashing, shards }
    }
}

impl GlyphCache {
    fn get_or_render(&self, fonts: &FontSet, key: GlyphKey) -> Arc<Coverage> {
        let shard = &self.shards[self.hashing.hash_one(key) as usize % SHARDS];
        if let Some(c) = shard.lock().expect("glyph cache poisoned").get(&key) {
            return c.clone();
        }
        let rendered = Arc::new(render_glyph(fonts, key));
        let mut map = shard.lock().expect("glyph cache poisoned");
        if map.len() >= SHARD_CAPACITY {
            map.clear();
        }
        map.entry(key).or_insert(rendered).clone()
    }
}

/// Collects an outline in pixel space (y up) so its bounds are known before rasterizing.
#[derive(Default)]
struct PathRecorder {
    segments: Vec<Segment>,
    start: (f32, f32),
    current: (f32, f32),
    dx: f32,
}

enum Segment {
    Line(Point, Point),
    Quad(Point, Point, Point),
    Cubic(Point, Point, Point, Point),
}

impl PathRecorder {
    fn p(&self, x: f32, y: f32) -> Point {
        point(x + self.dx, y)
    }
    fn close_contour(&mut self) {
        if self.current != self.start {
            let (a, b) = (self.p(self.current.0, self.current.1), self.p(self.start.0, self.start.1));
            self.segments.push(Segment::Line(a, b));
            self.current = self.start;
        }
    }
    fn points(&self) -> impl Iterator<Item = Point> + '_ {
        self.segments.iter().flat_map(|s| match *s {
            Segment::Line(a, b) => vec![a, b],
            Segment::Quad(a, b, c) => vec![a, b, c],
            Segment::Cubic(a, b, c, d) => vec![a, b, c, d],
        })
    }
}

impl OutlinePen for PathRecorder {
    fn move_to(&mut self, x: f32, y: f32) {
        self.close_contour();
        self.start = (x, y);
        self.current = (x, y);
    }
    fn line_to(&mut self, x: f32, y: f32) {
        let s = Segment::Line(self.p(self.current.0, self.current.1), self.p(x, y));
        self.segments.push(s);
        self.current = (x, y);
    }
    fn quad_to(&mut self, cx0: f32, cy0: f32, x: f32, y: f32) {
        let s = Segment::Quad(self.p(self.current.0, self.current.1), self.p(cx0, cy0), self.p(x, y));
        self.segments.push(s);
        self.current = (x, y);
    }
    fn curve_to(&mut self, cx0: f32, cy0: f32, cx1: f32, cy1: f32, x: f32, y: f32) {
        let s =
            Segment::Cubic(self.p(self.current.0, self.current.1), self.p(cx0, cy0), self.p(cx1, cy1), self.p(x, y));
        self.segments.push(s);
        self.current = (x, y);
    }
    fn close(&mut self) {
        self.close_contour();
    }
}

fn render_glyph(fonts: &FontSet, key: GlyphKey) -> Coverage {
    let empty = Coverage { left: 0, top: 0, width: 0, height: 0, alpha: Vec::new() };
    let font = fonts.font(key.font).font_ref();
    let Some(outline) = font.outline_glyphs().get(key.glyph.into()) else {
        return empty;
    };
    let mut pen = PathRecorder { dx: key.phase as f32 / SUBPIXEL_STEPS, ..Default::default() };
    let size = key.size_16 as f32 / 16.0;
    if outline.draw(DrawSettings::unhinted(Size::new(size), LocationRef::default()), &mut pen).is_err() {
        return empty;
    }
    pen.close_contour();
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in pen.points() {
        x0 = x0.min(p.x);
        y0 = y0.min(p.y);
        x1 = x1.max(p.x);
        y1 = y1.max(p.y);
    }
    if x0 > x1 {
        return empty; // no contours (e.g. a space)
    }
    let (left, bottom, right, top) = (x0.floor(), y0.floor(), x1.ceil(), y1.ceil());
    let (w, h) = ((right - left) as usize, (top - bottom) as usize);
    if w == 0 || h == 0 {
        return empty;
    }
    // Flip to y down with the bitmap's top-left at (left, top).
    let t = |p: Point| point(p.x - left, top - p.y);
    let mut r = Rasterizer::new(w, h);
    for s in &pen.segments {
        match *s {
            Segment::Line(a, b) => r.draw_line(t(a), t(b)),
            Segment::Quad(a, b, c) => r.draw_quad(t(a), t(b), t(c)),
            Segment::Cubic(a, b, c, d) => r.draw_cubic(t(a), t(b), t(c), t(d)),
        }
    }
    let mut alpha = vec![0u8; w * h];
    r.for_each_pixel(|i, a| alpha[i] = (a.clamp(0.0, 1.0) * 255.0).round() as u8);
    Coverage { left: left as i32, top: -(top as i32), width: w as u32, height: h as u32, alpha }
}

/// Draws `page` at `dpi` into a new white raster.
pub fn rasterize(fonts: &FontSet, cache: &GlyphCache, page: &Page, dpi: f32) -> GrayRaster {
    let s = dpi / 72.0;
    let mut out = GrayRaster::white((page.width * s).round() as u32, (page.height * s).round() as u32);
    for item in &page.items {
        match item {
            Item::Text(run) => draw_text(fonts, cache, &mut out, run, s),
            Item::Rect { x, y, w, h, fill, stroke } => {
                let (x, y, w, h) = (x * s, y * s, w * s, h * s);
                if let Some(g) = fill {
                    fill_box(&mut out, x, y, x + w, y + h, ink(*g));
                }
                if let Some(sw) = stroke {
                    let half = sw * s / 2.0;
                    fill_box(&mut out, x - half, y - half, x + w + half, y + half, 255);
                    fill_box(&mut out, x - half, y + h - half, x + w + half, y + h + half, 255);
                    fill_box(&mut out, x - half, y + half, x + half, y + h - half, 255);
                    fill_box(&mut out, x + w - half, y + half, x + w + half, y + h - half, 255);
                }
            }
            Item::Line { x1, y1, x2, y2, width } => {
                draw_line(&mut out, x1 * s, y1 * s, x2 * s, y2 * s, width * s);
            }
            Item::Image { x, y, w, h, bitmap } => draw_bitmap(&mut out, bitmap, x * s, y * s, w * s, h * s),
            // Paper security, not content: the back reproduces the content only.
            Item::Pantograph(_) => {}
        }
    }
    out
}

/// Ink darkness (0..=255) of a DeviceGray fill level.
fn ink(gray: f32) -> u32 {
    ((1.0 - gray.clamp(0.0, 1.0)) * 255.0).round() as u32
}

fn draw_text(fonts: &FontSet, cache: &GlyphCache, out: &mut GrayRaster, run: &TextRun, s: f32) {
    let size_16 = (run.size * s * 16.0).round() as u32;
    let baseline = (run.baseline * s).round() as i64;
    for (x, glyph) in run.positions() {
        let q = (x * s * SUBPIXEL_STEPS).round() as i64;
        let (origin, phase) = (q.div_euclid(SUBPIXEL_STEPS as i64), q.rem_euclid(SUBPIXEL_STEPS as i64) as u8);
        let key = GlyphKey { font: run.font, glyph: glyph.id, size_16, phase };
        let cov = cache.get_or_render(fonts, key);
        blit(out, &cov, origin + cov.left as i64, baseline + cov.top as i64);
    }
}

/// Draws a glyph's coverage with its top-left at (left, top), clipped to the raster once per glyph
/// rather than per pixel.
fn blit(out: &mut GrayRaster, cov: &Coverage, left: i64, top: i64) {
    let (w, h) = (out.width as i64, out.height as i64);
    let (cw, ch) = (cov.width as i64, cov.height as i64);
    let (c0, c1) = ((-left).max(0), (w - left).min(cw));
    let (r0, r1) = ((-top).max(0), (h - top).min(ch));
    if c0 >= c1 || r0 >= r1 {
        return;
    }
    let table = blend_table();
    for row in r0..r1 {
        let src = &cov.alpha[(row * cw + c0) as usize..(row * cw + c1) as usize];
        let start = ((top + row) * w + left + c0) as usize;
        let dst = &mut out.pixels[start..start + src.len()];
        for (d, &a) in dst.iter_mut().zip(src) {
            *d = table[a as usize][*d as usize];
        }
    }
}

/// Pixels `first..last` touched by the interval [a, b), clipped to `0..limit`, with the fractional
/// coverage of pixel i being `min(b, i+1) - max(a, i)`: only the two end pixels can be partial.
fn span(a: f32, b: f32, limit: u32) -> (i64, i64) {
    ((a.floor().max(0.0)) as i64, (b.ceil() as i64).min(limit as i64))
}

fn coverage_at(a: f32, b: f32, i: i64) -> f32 {
    (b.min(i as f32 + 1.0) - a.max(i as f32)).clamp(0.0, 1.0)
}

/// Fills the box [x0, x1) × [y0, y1) (pixels, fractional) with exact area coverage. Shaded cells and
/// rules are a large part of a page, so fully covered pixels go through one table row per box instead
/// of per-pixel arithmetic.
fn fill_box(out: &mut GrayRaster, x0: f32, y0: f32, x1: f32, y1: f32, ink: u32) {
    if x1 <= x0 || y1 <= y0 || ink == 0 {
        return;
    }
    let (cx0, cx1) = span(x0, x1, out.width);
    let (ry0, ry1) = span(y0, y1, out.height);
    if cx0 >= cx1 || ry0 >= ry1 {
        return;
    }
    let table = blend_table();
    let full = &table[ink.min(255) as usize];
    let width = out.width as usize;
    // Columns covered completely: i >= x0 and i + 1 <= x1 (exactly where `coverage_at` is 1.0).
    let ix0 = (x0.ceil() as i64).clamp(cx0, cx1);
    let ix1 = (x1.floor() as i64).clamp(ix0, cx1);
    let partial = |p: &mut u8, cx: f32, cy: f32| {
        if cx > 0.0 {
            let c = (cx * cy * 255.0).round() as u32;
            let a = (c * ink + 127) / 255;
            *p = table[a as usize][*p as usize];
        }
    };
    // The end columns the box covers only in part: at most one on each side (`span` and the clamps above
    // keep them within one pixel of the edges). In a row the box covers fully, each takes the same ink alpha
    // in every row, so it is worked out once per box (as `partial` does with `cy` = 1.0, the same arithmetic)
    // rather than once per row: a vertical rule is all edge, one pixel per row for its whole height.
    assert!(ix0 - cx0 <= 1 && cx1 - ix1 <= 1, "a box has at most one partial column per side");
    let full_row_alpha = |x: i64| {
        let cx = coverage_at(x0, x1, x);
        (cx > 0.0).then(|| (x as usize, (((cx * 255.0).round() as u32 * ink + 127) / 255) as usize))
    };
    let edges =
        [(cx0 < ix0).then(|| full_row_alpha(cx0)).flatten(), (ix1 < cx1).then(|| full_row_alpha(ix1)).flatten()];
    for y in ry0..ry1 {
        let cy = coverage_at(y0, y1, y);
        if cy <= 0.0 {
            continue;
        }
        let row = &mut out.pixels[y as usize * width..(y as usize + 1) * width];
        if cy >= 1.0 {
            for &(x, a) in edges.iter().flatten() {
                row[x] = table[a][row[x] as usize];
            }
            blend_span(&mut row[ix0 as usize..ix1 as usize], full, ink);
        } else {
            // A row the box only partly covers (e.g. a hairline rule): its fully covered columns all get
            // `partial` with coverage 1.0 × cy, i.e. one ink alpha for the whole span.
            for x in (cx0..ix0).chain(ix1..cx1) {
                partial(&mut row[x as usize], coverage_at(x0, x1, x), cy);
            }
            let a = (((1.0 * cy * 255.0).round() as u32) * ink + 127) / 255;
            blend_span(&mut row[ix0 as usize..ix1 as usize], &table[a as usize], a);
        }
    }
}

/// `*p = full[*p]` over a fully covered span. Black ink leaves black whatever was there, and paper
/// (runs of 255) takes one value: the two common cases, done a row or 16 pixels at a time.
fn blend_span(span: &mut [u8], full: &[u8; 256], ink: u32) {
    if ink >= 255 {
        debug_assert!(full.iter().all(|&v| v == 0));
        span.fill(0);
        return;
    }
    let on_white = full[255];
    let mut chunks = span.chunks_exact_mut(16);
    for c in &mut chunks {
        if u128::from_ne_bytes((&*c).try_into().expect("16 pixels")) == u128::MAX {
            c.fill(on_white);
        } else {
            for p in c.iter_mut() {
                *p = full[*p as usize];
            }
        }
    }
    for p in chunks.into_remainder() {
        *p = full[*p as usize];
    }
}

fn draw_line(out: &mut GrayRaster, x1: f32, y1: f32, x2: f32, y2: f32, width: f32) {
    let half = width / 2.0;
    if y1 == y2 {
        fill_box(out, x1.min(x2), y1 - half, x1.max(x2), y1 + half, 255);
        return;
    }
    if x1 == x2 {
        fill_box(out, x1 - half, y1.min(y2), x1 + half, y1.max(y2), 255);
        return;
    }
    // A slanted stroke: rasterize its quadrilateral in its bounding box.
    let (dx, dy) = (x2 - x1, y2 - y1);
    let len = (dx * dx + dy * dy).sqrt();
    let (nx, ny) = (-dy / len * half, dx / len * half);
    let corners = [(x1 + nx, y1 + ny), (x2 + nx, y2 + ny), (x2 - nx, y2 - ny), (x1 - nx, y1 - ny)];
    let left = corners.iter().map(|c| c.0).fold(f32::MAX, f32::min).floor();
    let top = corners.iter().map(|c| c.1).fold(f32::MAX, f32::min).floor();
    let right = corners.iter().map(|c| c.0).fold(f32::MIN, f32::max).ceil();
    let bottom = corners.iter().map(|c| c.1).fold(f32::MIN, f32::max).ceil();
    let (w, h) = ((right - left) as usize, (bottom - top) as usize);
    let mut r = Rasterizer::new(w.max(1), h.max(1));
    for i in 0..4 {
        let (a, b) = (corners[i], corners[(i + 1) % 4]);
        r.draw_line(point(a.0 - left, a.1 - top), point(b.0 - left, b.1 - top));
    }
    r.for_each_pixel_2d(|x, y, a| {
        let c = (a.clamp(0.0, 1.0) * 255.0).round() as u32;
        out.darken(left as i64 + x as i64, top as i64 + y as i64, c, 255);
    });
}

/// Draws a bitmap into the box by nearest-neighbour sampling of pixel centres (integer arithmetic, so the
/// back image is reproducible), darkening the page by the bitmap's ink.
fn draw_bitmap(out: &mut GrayRaster, bitmap: &super::bitmap::Bitmap, x: f32, y: f32, w: f32, h: f32) {
    if bitmap.width == 0 || bitmap.height == 0 || w <= 0.0 || h <= 0.0 {
        return;
    }
    let (x0, y0) = (x.round() as i64, y.round() as i64);
    let (pw, ph) = ((w.round() as i64).max(1), (h.round() as i64).max(1));
    let (bw, bh) = (bitmap.width as i64, bitmap.height as i64);
    for ty in 0..ph {
        let sy = ((2 * ty + 1) * bh / (2 * ph)).min(bh - 1);
        for tx in 0..pw {
            let sx = ((2 * tx + 1) * bw / (2 * pw)).min(bw - 1);
            let ink = 255 - bitmap.pixels[(sy * bw + sx) as usize] as u32;
            out.darken(x0 + tx, y0 + ty, 255, ink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`fill_box`] as it was before the end columns' alphas were hoisted out of the row loop: every pixel
    /// its own `partial`. The reference the faster version must match pixel for pixel.
    fn fill_box_per_pixel(out: &mut GrayRaster, x0: f32, y0: f32, x1: f32, y1: f32, ink: u32) {
        if x1 <= x0 || y1 <= y0 || ink == 0 {
            return;
        }
        let ((cx0, cx1), (ry0, ry1)) = (span(x0, x1, out.width), span(y0, y1, out.height));
        let table = blend_table();
        let width = out.width as usize;
        for y in ry0.max(0)..ry1 {
            let cy = coverage_at(y0, y1, y);
            for x in cx0..cx1 {
                let cx = coverage_at(x0, x1, x);
                if cx > 0.0 && cy > 0.0 {
                    let full = cx >= 1.0 && cy >= 1.0;
                    let c = if full { 255 } else { (cx * cy * 255.0).round() as u32 };
                    let a = if full { ink.min(255) } else { (c * ink + 127) / 255 };
                    let p = &mut out.pixels[y as usize * width + x as usize];
                    *p = table[a as usize][*p as usize];
                }
            }
        }
    }

    #[test]
    fn boxes_match_the_per_pixel_reference() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut fast, mut reference) = (GrayRaster::white(97, 61), GrayRaster::white(97, 61));
        for i in 0..4000 {
            // Hairlines, thin rules, cells and boxes reaching past every edge, at quarter- and odd fractions.
            let frac = |n: u64| (n % 1000) as f32 / 1000.0;
            let (x0, y0) = ((next() % 110) as f32 - 6.0 + frac(next()), (next() % 74) as f32 - 6.0 + frac(next()));
            let (w, h) = match i % 3 {
                0 => (frac(next()) * 1.5, (next() % 40) as f32 + frac(next())),
                1 => ((next() % 40) as f32 + frac(next()), frac(next()) * 1.5),
                _ => ((next() % 30) as f32 + frac(next()), (next() % 30) as f32 + frac(next())),
            };
            let ink = [255, 128, 26, 0][(next() % 4) as usize];
            fill_box(&mut fast, x0, y0, x0 + w, y0 + h, ink);
            fill_box_per_pixel(&mut reference, x0, y0, x0 + w, y0 + h, ink);
            assert_eq!(fast, reference, "box {i}: ({x0}, {y0}) {w}×{h}, ink {ink}");
            if i % 50 == 49 {
                (fast, reference) = (GrayRaster::white(97, 61), GrayRaster::white(97, 61));
            }
        }
    }
}
