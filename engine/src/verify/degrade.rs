//! Deterministic print-and-scan simulation for the verification tests: place a back on an A4 page
//! exactly where the PDF puts it, "scan" it at some resolution with a small scale, rotation and
//! shift, then apply blur, noise, JPEG, brightness/contrast and cropping.

use super::image_io::RgbImage;

/// A4 in PostScript points and the caption band the PDF leaves under the back (render/pdf.rs).
const A4_W: f64 = 595.0;
const A4_H: f64 = 842.0;
const BACK_BAND: f64 = 22.0;

/// Geometry of one simulated scan.
#[derive(Clone, Copy, Debug)]
pub struct Scan {
    pub dpi: f64,
    /// Extra scale about the page centre (e.g. 0.97–1.03).
    pub scale: f64,
    /// Rotation about the page centre, degrees.
    pub rotation_deg: f64,
    /// Translation in scan pixels.
    pub tx: f64,
    pub ty: f64,
}

impl Scan {
    pub fn at(dpi: f64) -> Scan {
        Scan {
            dpi,
            scale: 1.0,
            rotation_deg: 0.0,
            tx: 0.0,
            ty: 0.0,
        }
    }

    fn page_px(&self) -> (u32, u32) {
        (
            (A4_W / 72.0 * self.dpi).round() as u32,
            (A4_H / 72.0 * self.dpi).round() as u32,
        )
    }

    /// Points per back pixel and the back's top-left corner on the page, in points (pdf.rs).
    fn placement(back_w: u32, back_h: u32) -> (f64, f64, f64) {
        let room_h = A4_H - BACK_BAND;
        let s = (A4_W / back_w as f64).min(room_h / back_h as f64);
        let (w, h) = (back_w as f64 * s, back_h as f64 * s);
        (s, (A4_W - w) / 2.0, (room_h - h) / 2.0)
    }

    /// Scan coordinates (continuous) of back coordinates (continuous).
    pub fn back_to_scan(&self, back_w: u32, back_h: u32, u: f64, v: f64) -> (f64, f64) {
        let (s, x0, y0) = Self::placement(back_w, back_h);
        let k = self.dpi / 72.0;
        let (px, py) = ((x0 + u * s) * k, (y0 + v * s) * k);
        let (pw, ph) = self.page_px();
        let (cx, cy) = (pw as f64 / 2.0, ph as f64 / 2.0);
        let (c, sn) = (
            self.rotation_deg.to_radians().cos(),
            self.rotation_deg.to_radians().sin(),
        );
        let (dx, dy) = (px - cx, py - cy);
        (
            cx + self.scale * (c * dx - sn * dy) + self.tx,
            cy + self.scale * (sn * dx + c * dy) + self.ty,
        )
    }

    /// Prints `colour_at(u, v)` (a back-sized image) and scans the page: each scan pixel averages
    /// 2×2 point samples, as a scanner's sensor integrates over its area. `caption` adds a black
    /// text-like line (with a glyph shaped like a small finder mark) in the band under the back.
    pub fn print(
        &self,
        back_w: u32,
        back_h: u32,
        colour_at: &dyn Fn(u32, u32) -> [u8; 3],
        caption: bool,
    ) -> RgbImage {
        let (s, x0, y0) = Self::placement(back_w, back_h);
        let k = self.dpi / 72.0;
        let (pw, ph) = self.page_px();
        let (cx, cy) = (pw as f64 / 2.0, ph as f64 / 2.0);
        let (c, sn) = (
            self.rotation_deg.to_radians().cos(),
            self.rotation_deg.to_radians().sin(),
        );
        let page_colour = |xp: f64, yp: f64| -> [u8; 3] {
            // Page points → back pixel, or caption glyphs, or paper.
            let (xpt, ypt) = (xp / k, yp / k);
            let (u, v) = ((xpt - x0) / s, (ypt - y0) / s);
            if u >= 0.0 && v >= 0.0 && u < back_w as f64 && v < back_h as f64 {
                return colour_at(u as u32, v as u32);
            }
            if caption && glyph_ink(xpt, ypt) {
                return [0; 3];
            }
            [255; 3]
        };
        let mut pixels = Vec::with_capacity(pw as usize * ph as usize * 3);
        for y in 0..ph {
            for x in 0..pw {
                let mut acc = [0u32; 3];
                for sy in 0..2u32 {
                    for sx in 0..2u32 {
                        // Stratified, jittered sample positions (a fixed hash of the position), so
                        // that edges do not snap to a half-pixel grid as with fixed positions.
                        let (jx, jy) = jitter(x, y, sx + 2 * sy);
                        let (xs, ys) = (
                            x as f64 + (sx as f64 + jx) / 2.0,
                            y as f64 + (sy as f64 + jy) / 2.0,
                        );
                        // Inverse of back_to_scan's page → scan map.
                        let (dx, dy) = (
                            (xs - self.tx - cx) / self.scale,
                            (ys - self.ty - cy) / self.scale,
                        );
                        let (px, py) = (cx + c * dx + sn * dy, cy - sn * dx + c * dy);
                        let p = page_colour(px, py);
                        for ch in 0..3 {
                            acc[ch] += p[ch] as u32;
                        }
                    }
                }
                pixels.extend(acc.map(|a| ((a + 2) / 4) as u8));
            }
        }
        RgbImage {
            width: pw,
            height: ph,
            pixels,
        }
    }
}

/// Two values in `[0, 1)` from a fixed hash of a sample's position.
fn jitter(x: u32, y: u32, k: u32) -> (f64, f64) {
    let mut h = (x as u64) << 34 ^ (y as u64) << 4 ^ k as u64;
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    (
        (h & 0xffff) as f64 / 65536.0,
        ((h >> 16) & 0xffff) as f64 / 65536.0,
    )
}

/// The fake certificate-id line: 5×7-pt bars, and at its right end an 8-pt square ring with a
/// centre dot (a glyph like 回 that a careless mark detector would take for a mark).
fn glyph_ink(xpt: f64, ypt: f64) -> bool {
    let (top, bottom) = (A4_H - 17.0, A4_H - 9.0);
    if !(top..bottom).contains(&ypt) {
        return false;
    }
    if (60.0..400.0).contains(&xpt) {
        let cell = (xpt - 60.0) % 8.0;
        return cell < 5.0 && ypt > top + 1.0;
    }
    if (410.0..418.0).contains(&xpt) {
        let (gx, gy) = (xpt - 410.0, ypt - top);
        let ring = !(1.2..=6.8).contains(&gx) || !(1.2..=6.8).contains(&gy);
        let dot = (3.0..5.0).contains(&gx) && (3.0..5.0).contains(&gy);
        return ring || dot;
    }
    false
}

/// Separable Gaussian blur, σ in pixels (edges clamp).
pub fn blur(img: &RgbImage, sigma: f64) -> RgbImage {
    let r = (3.0 * sigma).ceil() as i64;
    let kernel: Vec<f64> = (-r..=r)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / sum).collect();
    let (w, h) = (img.width as i64, img.height as i64);
    let pass = |src: &[u8], horizontal: bool| -> Vec<u8> {
        let mut out = vec![0u8; src.len()];
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0f64; 3];
                for (k, &kv) in kernel.iter().enumerate() {
                    let o = k as i64 - r;
                    let (sx, sy) = if horizontal {
                        ((x + o).clamp(0, w - 1), y)
                    } else {
                        (x, (y + o).clamp(0, h - 1))
                    };
                    let i = ((sy * w + sx) * 3) as usize;
                    for c in 0..3 {
                        acc[c] += kv * src[i + c] as f64;
                    }
                }
                let i = ((y * w + x) * 3) as usize;
                for c in 0..3 {
                    out[i + c] = acc[c].round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        out
    };
    let h1 = pass(&img.pixels, true);
    RgbImage {
        width: img.width,
        height: img.height,
        pixels: pass(&h1, false),
    }
}

/// Additive Gaussian noise of standard deviation `sigma` (of 255), from a fixed seed.
pub fn noise(img: &RgbImage, sigma: f64, seed: u64) -> RgbImage {
    let mut s = seed | 1;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let pixels = img
        .pixels
        .iter()
        .map(|&v| {
            // Box–Muller.
            let g = (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
            (v as f64 + sigma * g).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    RgbImage {
        pixels,
        ..img.clone()
    }
}

/// JPEG round trip at `quality` through the `image` crate (4:2:0 chroma subsampling).
pub fn jpeg(img: &RgbImage, quality: u8) -> RgbImage {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode(
            &img.pixels,
            img.width,
            img.height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("JPEG encodes");
    super::decode_scan(&bytes).expect("JPEG decodes")
}

/// `v' = contrast · (v − 128) + 128 + brightness`.
pub fn brightness_contrast(img: &RgbImage, brightness: f64, contrast: f64) -> RgbImage {
    let pixels = img
        .pixels
        .iter()
        .map(|&v| {
            (contrast * (v as f64 - 128.0) + 128.0 + brightness)
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect();
    RgbImage {
        pixels,
        ..img.clone()
    }
}

/// The sub-image `[x, x + w) × [y, y + h)`, clipped to the image.
pub fn crop(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> RgbImage {
    let (w, h) = (w.min(img.width - x), h.min(img.height - y));
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    for row in y..y + h {
        let start = ((row * img.width + x) * 3) as usize;
        pixels.extend_from_slice(&img.pixels[start..start + (w * 3) as usize]);
    }
    RgbImage {
        width: w,
        height: h,
        pixels,
    }
}

/// Luma of every pixel, repeated on three channels: a black-and-white photocopy.
pub fn grayscale(img: &RgbImage) -> RgbImage {
    let pixels = img
        .pixels
        .chunks_exact(3)
        .flat_map(|p| {
            let l = ((299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32) / 1000) as u8;
            [l; 3]
        })
        .collect();
    RgbImage {
        pixels,
        ..img.clone()
    }
}
