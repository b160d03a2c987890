//! The anti-copy latent image of the back: a cherry-blossom (桜) pattern drawn as a fine line screen,
//! inside which a circle holding 「証」 is drawn with the *same* screen shifted by half a period.
//!
//! To the eye both regions have the same tone (same line frequency, angle and coverage), so the mark
//! is hidden. A decoding overlay, a transparent film printed with the background screen's gaps
//! opaque, hides the background's ink and shows the mark's: laid over the sheet, the mark appears
//! light on dark. A copy loses the mark because a scanner whose pixel spans a whole screen period
//! averages each line with its gap: a 150-dpi scan of the 150-lines-per-inch screen (8 px at
//! 1200 dpi) keeps the tone and loses the phase, so the reprint has no mark to reveal.
//!
//! Rendering is a pure function of size and parameters, so it is part of the reproducible back:
//! [`back_tile`] is the 1200-dpi tile printed at the foot of every back page since renderer
//! generation 2 (`render/pdf.rs`, as a 1-bit image mask in 桜 pink), and
//! [`back_tile_overlay_png`] is its decoding overlay, pixel for pixel (`docs/latent-overlay.png`).
//! The 証 glyph is a stroke-built stand-in, not a font rendering.

use super::GrayImage;

/// Parameters of the line screen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Screen {
    /// Resolution the latent image is rendered at.
    pub dpi: u32,
    /// Line period in pixels at that resolution, measured across the lines.
    pub period_px: f64,
    /// Line angle, degrees from the x axis.
    pub angle_deg: f64,
    /// Ink coverage inside blossoms and in the background between them.
    pub blossom_duty: f64,
    pub background_duty: f64,
}

impl Default for Screen {
    fn default() -> Screen {
        Screen { dpi: 1200, period_px: 8.0, angle_deg: 0.0, blossom_duty: 0.5, background_duty: 0.25 }
    }
}

impl Screen {
    /// Screen phase in periods at pixel `(x, y)` (pixel centre).
    fn phase(&self, x: u32, y: u32) -> f64 {
        let (s, c) = self.angle_deg.to_radians().sin_cos();
        let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
        (fx * c + fy * s) / self.period_px
    }
}

/// Where the hidden mark is: a disc of radius `r` centred at `(cx, cy)` holding a stylised 証
/// (the 言 radical on the left, 正 on the right) built from strokes, in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mark {
    pub cx: f64,
    pub cy: f64,
    pub r: f64,
}

impl Mark {
    /// Whether `(x, y)` lies in the mark: the disc's rim (an annulus) or a stroke of the character.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let (u, v) = ((x - self.cx) / self.r, (y - self.cy) / self.r);
        let d = (u * u + v * v).sqrt();
        if (0.85..=1.0).contains(&d) {
            return true;
        }
        let bar = |x0: f64, x1: f64, y0: f64, y1: f64| (x0..=x1).contains(&u) && (y0..=y1).contains(&v);
        // 言: a dot, four horizontal strokes and a small box.
        let gon = bar(-0.50, -0.40, -0.62, -0.50)
            || bar(-0.65, -0.22, -0.45, -0.38)
            || bar(-0.60, -0.28, -0.28, -0.22)
            || bar(-0.60, -0.28, -0.12, -0.06)
            || (bar(-0.60, -0.28, 0.05, 0.45) && !bar(-0.52, -0.36, 0.13, 0.37));
        // 正: top bar, vertical, short right bar, left short vertical, bottom bar.
        let sei = bar(-0.10, 0.62, -0.55, -0.47)
            || bar(0.22, 0.30, -0.55, 0.55)
            || bar(0.26, 0.55, -0.05, 0.03)
            || bar(-0.02, 0.06, -0.10, 0.55)
            || bar(-0.15, 0.68, 0.50, 0.58);
        gon || sei
    }
}

/// Whether `(x, y)` lies in a blossom of the tiled 桜 pattern (five-petal flowers on a staggered
/// grid of `cell` pixels).
pub fn in_blossom(x: f64, y: f64, cell: f64) -> bool {
    let row = (y / cell).floor();
    let shift = if (row as i64).rem_euclid(2) == 1 { cell / 2.0 } else { 0.0 };
    let (cx, cy) = (((x - shift) / cell).floor() * cell + shift + cell / 2.0, row * cell + cell / 2.0);
    let (dx, dy) = (x - cx, y - cy);
    let rho = (dx * dx + dy * dy).sqrt() / (cell * 0.42);
    let theta = dy.atan2(dx) + std::f64::consts::FRAC_PI_2;
    // Five petals with the notch at each tip: radius 0.6 + 0.4 |cos(5θ/2)| minus a notch.
    let petal = (2.5 * theta).cos().abs();
    let notch = if petal > 0.97 { 0.12 } else { 0.0 };
    let edge = 0.55 + 0.45 * petal - notch;
    rho <= edge && rho >= 0.12
}

/// Renders the latent image: `width × height` pixels at `screen.dpi`, 0 = ink, 255 = paper.
/// `blossom_cell` must be a whole number of pixels.
pub fn render(width: u32, height: u32, screen: &Screen, mark: &Mark, blossom_cell: f64) -> GrayImage {
    // The blossom pattern repeats every cell across and every two cells down (odd rows are
    // shifted by half a cell): evaluate the petal curve over one period only.
    assert!(blossom_cell >= 2.0 && blossom_cell.fract() == 0.0, "blossom cell must be whole pixels");
    let (pw, ph) = (blossom_cell as usize, 2 * blossom_cell as usize);
    let period: Vec<bool> =
        (0..ph * pw).map(|i| in_blossom((i % pw) as f64 + 0.5, (i / pw) as f64 + 0.5, blossom_cell)).collect();
    // Where an edge of the mark runs along the lines, a half-period shift decided pixel by pixel
    // cuts lines: two lines merge or a line goes missing, and the eye and a copier both see the
    // mark's outline. So the mark is decided on half-period cells of the screen, [1/4, 3/4) and
    // [3/4, 5/4) in phase: a background line (centred on 1/2) and a mark line (centred on 0) each lie
    // wholly in one cell for coverage up to 1/2, and no line is ever cut. Lines are vertical.
    assert!(screen.angle_deg == 0.0, "the mark is decided per column of the screen: lines must be vertical");
    let cell_centre_x = |x: u32| {
        let cell = ((screen.phase(x, 0) - 0.25) * 2.0).floor();
        (cell / 2.0 + 0.5) * screen.period_px
    };
    let mut pixels = Vec::with_capacity(width as usize * height as usize);
    for y in 0..height {
        for x in 0..width {
            let fy = y as f64 + 0.5;
            let duty = if period[(y as usize % ph) * pw + x as usize % pw] {
                screen.blossom_duty
            } else {
                screen.background_duty
            };
            let shift = if mark.contains(cell_centre_x(x), fy) { 0.5 } else { 0.0 };
            // Lines centred on phase 1/2, the duty spread evenly around them.
            let ink = circular_distance(screen.phase(x, y) + shift, 0.5) < duty / 2.0;
            pixels.push(if ink { 0 } else { 255 });
        }
    }
    GrayImage { width, height, pixels }
}

/// Distance between two phases on the unit circle (in periods, `0..=0.5`).
fn circular_distance(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(1.0);
    d.min(1.0 - d)
}

/// The decoding overlay as RGBA (transparent film, opaque black where the background screen has
/// gaps), `width × height` at `screen.dpi`.
pub fn decoding_overlay(width: u32, height: u32, screen: &Screen) -> Vec<u8> {
    let mut rgba = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            // Opaque over the background screen's gaps: half a period centred on phase 0.
            let opaque = circular_distance(screen.phase(x, y), 0.0) < 0.25;
            rgba.extend_from_slice(&[0, 0, 0, if opaque { 255 } else { 0 }]);
        }
    }
    rgba
}

/// The overlay as a PNG file (RGBA), for printing on transparent film.
pub fn decoding_overlay_png(width: u32, height: u32, screen: &Screen) -> Result<Vec<u8>, super::ScrambleError> {
    let rgba = decoding_overlay(width, height, screen);
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|_| super::ScrambleError::PngEncode)?;
    w.write_image_data(&rgba).map_err(|_| super::ScrambleError::PngEncode)?;
    w.finish().map_err(|_| super::ScrambleError::PngEncode)?;
    Ok(out)
}

/// The tile printed at the foot of the back page: 4200 × 720 pixels at 1200 dpi (88.9 × 15.2 mm),
/// blossoms on a 4-mm cell, the mark a 12.7-mm circle in the middle.
pub const BACK_TILE_WIDTH: u32 = 4200;
pub const BACK_TILE_HEIGHT: u32 = 720;
pub const BACK_TILE_BLOSSOM_CELL: f64 = 192.0;

/// Where the hidden mark lies in the back tile, in tile pixels.
pub fn back_tile_mark() -> Mark {
    Mark { cx: BACK_TILE_WIDTH as f64 / 2.0, cy: BACK_TILE_HEIGHT as f64 / 2.0, r: 300.0 }
}

/// The back tile (0 = ink), rendered once per process: it is the same on every certificate.
pub fn back_tile() -> &'static GrayImage {
    static TILE: std::sync::OnceLock<GrayImage> = std::sync::OnceLock::new();
    TILE.get_or_init(|| {
        render(BACK_TILE_WIDTH, BACK_TILE_HEIGHT, &Screen::default(), &back_tile_mark(), BACK_TILE_BLOSSOM_CELL)
    })
}

/// The back tile as a 1-bit image mask, rows MSB-first padded to a byte, bit 0 where ink is
/// painted (PDF `/ImageMask` with the default decode), zlib-compressed: computed once per process.
pub fn back_tile_mask_deflated() -> &'static [u8] {
    static MASK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    MASK.get_or_init(|| {
        let tile = back_tile();
        let row = (tile.width as usize).div_ceil(8);
        let mut bits = vec![0u8; row * tile.height as usize];
        for (y, line) in tile.pixels.chunks_exact(tile.width as usize).enumerate() {
            for (x, &v) in line.iter().enumerate() {
                if v != 0 {
                    bits[y * row + x / 8] |= 0x80 >> (x % 8);
                }
            }
        }
        // Level 9 once: the mask is mostly repeated bytes and is written into every certificate.
        miniz_oxide::deflate::compress_to_vec_zlib(&bits, 9)
    })
}

/// The decoding overlay of the back tile, pixel for pixel (print it at 1200 dpi on transparent
/// film and lay it over the tile).
pub fn back_tile_overlay_png() -> Result<Vec<u8>, super::ScrambleError> {
    decoding_overlay_png(BACK_TILE_WIDTH, BACK_TILE_HEIGHT, &Screen::default())
}

/// Lays the overlay (RGBA) over a gray print: opaque film pixels are black, transparent ones show
/// the print.
pub fn apply_overlay(print: &GrayImage, overlay_rgba: &[u8]) -> GrayImage {
    let pixels = print
        .pixels
        .iter()
        .zip(overlay_rgba.chunks_exact(4))
        .map(|(&p, o)| (p as u32 * (255 - o[3] as u32) / 255) as u8)
        .collect();
    GrayImage { pixels, ..print.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u32 = 960;
    const CELL: f64 = 192.0;

    fn mark() -> Mark {
        Mark { cx: 480.0, cy: 480.0, r: 300.0 }
    }

    /// Mean gray inside the mark and outside it (outside: beyond the disc, inside: the strokes and
    /// rim), over pixels whose blossom class is `blossom`.
    fn means(img: &GrayImage, blossom: bool) -> (f64, f64) {
        let m = mark();
        let (mut si, mut ni, mut so, mut no) = (0f64, 0f64, 0f64, 0f64);
        for y in 0..img.height {
            for x in 0..img.width {
                let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
                if in_blossom(fx, fy, CELL) != blossom {
                    continue;
                }
                let v = img.pixels[(y * img.width + x) as usize] as f64;
                let d = ((fx - m.cx).powi(2) + (fy - m.cy).powi(2)).sqrt();
                if m.contains(fx, fy) {
                    si += v;
                    ni += 1.0;
                } else if d > m.r + 4.0 {
                    so += v;
                    no += 1.0;
                }
            }
        }
        (si / ni, so / no)
    }

    /// A 150-dpi scan of the 1200-dpi print (each scan pixel averages 8×8, at an offset that is not
    /// aligned with the screen), reprinted at 1200 dpi by a binary printer (pixel replication and
    /// an ordered 4×4 dither).
    fn copy_at_150_dpi(img: &GrayImage) -> GrayImage {
        const F: u32 = 8;
        const OFFSET: u32 = 3;
        let (w, h) = ((img.width - OFFSET) / F, (img.height - OFFSET) / F);
        let scan: Vec<f64> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| {
                let mut s = 0u32;
                for dy in 0..F {
                    for dx in 0..F {
                        let (px, py) = (OFFSET + F * x + dx, OFFSET + F * y + dy);
                        s += img.pixels[(py * img.width + px) as usize] as u32;
                    }
                }
                s as f64 / (F * F) as f64
            })
            .collect();
        const BAYER: [u8; 16] = [0, 8, 2, 10, 12, 4, 14, 6, 3, 11, 1, 9, 15, 7, 13, 5];
        let pixels = (0..img.height)
            .flat_map(|y| (0..img.width).map(move |x| (x, y)))
            .map(|(x, y)| {
                let (sx, sy) = ((x / F).min(w - 1), (y / F).min(h - 1));
                let v = scan[(sy * w + sx) as usize];
                let t = (BAYER[((y % 4) * 4 + x % 4) as usize] as f64 + 0.5) * 16.0;
                if v > t {
                    255
                } else {
                    0
                }
            })
            .collect();
        GrayImage { pixels, ..img.clone() }
    }

    #[test]
    fn the_mark_is_hidden_revealed_by_the_overlay_and_lost_in_a_copy() {
        let screen = Screen::default();
        let print = render(SIZE, SIZE, &screen, &mark(), CELL);
        let overlay = decoding_overlay(SIZE, SIZE, &screen);
        for blossom in [false, true] {
            // Hidden: same tone inside and outside (within 3 % of full scale).
            let (i, o) = means(&print, blossom);
            assert!((i - o).abs() < 0.03 * 255.0, "visible without overlay: {i:.1} vs {o:.1}");
            // Revealed: the overlay covers the mark's ink and shows the background's, so the mark
            // shows light on dark.
            let (i, o) = means(&apply_overlay(&print, &overlay), blossom);
            assert!(i - o > 0.15 * 255.0, "overlay does not reveal (blossom {blossom}): {i:.1} vs {o:.1}");
            // A 150-dpi copy keeps the tone but not the mark.
            let copy = copy_at_150_dpi(&print);
            let (ci, co) = means(&apply_overlay(&copy, &overlay), blossom);
            let (hi, ho) = means(&print, blossom);
            println!(
                "blossom {blossom}: no overlay {hi:.1}/{ho:.1}, overlay {i:.1}/{o:.1}, \
                 150-dpi copy + overlay {ci:.1}/{co:.1} (mean gray inside/outside the mark)"
            );
            assert!(
                (ci - co).abs() < 0.25 * (i - o),
                "copy still reveals (blossom {blossom}): {ci:.1} vs {co:.1}, original {i:.1} vs {o:.1}"
            );
        }
        // The blossoms are visible: their tone differs from the background's.
        let (_, blossom_tone) = means(&print, true);
        let (_, background_tone) = means(&print, false);
        assert!(background_tone - blossom_tone > 0.2 * 255.0);
    }

    #[test]
    fn overlay_png_is_transparent_film() {
        let png = decoding_overlay_png(64, 64, &Screen::default()).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgba);
        let alphas: Vec<u8> = buf.chunks_exact(4).map(|p| p[3]).collect();
        let opaque = alphas.iter().filter(|&&a| a == 255).count();
        assert!(alphas.iter().all(|&a| a == 0 || a == 255));
        assert!((opaque as f64 / alphas.len() as f64 - 0.5).abs() < 0.05);
    }
}
