//! Bounded decoding of an uploaded scan into 8-bit RGB.
//!
//! A scan comes from anyone, so decoding is bounded before any pixel memory is committed: the byte
//! size of the upload, the declared width and height (read from the header alone), and the
//! decoder's total allocation. A small file that declares a huge image (a decompression bomb) is
//! refused from its header. Only PNG and JPEG are accepted: what scanners and phones produce.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

use super::VerifyError;

/// Largest accepted upload.
pub const MAX_SCAN_BYTES: usize = 40 << 20;
/// Largest accepted side: an A4 page at 600 dpi is 4961 × 7016.
pub const MAX_SCAN_SIDE: u32 = 8_000;
/// Largest accepted pixel count (A4 at 600 dpi with room to spare).
pub const MAX_SCAN_PIXELS: u64 = 40_000_000;
/// Largest allocation the decoder may make (RGBA of the largest image plus its working buffers).
const MAX_DECODER_ALLOC: u64 = 512 << 20;

/// An 8-bit RGB raster, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// The pixel at `(x, y)`, which must lie inside.
    #[inline]
    pub fn at(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Bilinear sample at pixel-index coordinates (`(0, 0)` is the centre of the first pixel);
    /// outside the image reads as white paper.
    #[inline]
    pub fn sample_bilinear(&self, x: f64, y: f64) -> [u8; 3] {
        if x >= 0.0 && y >= 0.0 {
            // Truncation is the floor here, and cheaper than `floor()` without SSE4.1.
            let (x0, y0) = (x as usize, y as usize);
            if x0 + 1 < self.width as usize && y0 + 1 < self.height as usize {
                // Inside: fixed-point weights (8 bits each), no bounds decisions per tap.
                let wx = ((x - x0 as f64) * 256.0) as u32;
                let wy = ((y - y0 as f64) * 256.0) as u32;
                let stride = self.width as usize * 3;
                let i = y0 * stride + x0 * 3;
                let p = &self.pixels[i..i + stride + 6];
                let mut out = [0u8; 3];
                for (k, o) in out.iter_mut().enumerate() {
                    let top = p[k] as u32 * (256 - wx) + p[3 + k] as u32 * wx;
                    let bottom = p[stride + k] as u32 * (256 - wx) + p[stride + 3 + k] as u32 * wx;
                    *o = ((top * (256 - wy) + bottom * wy + (1 << 15)) >> 16) as u8;
                }
                return out;
            }
        }
        self.sample_edge(x, y)
    }

    /// [`Self::sample_bilinear`] near and beyond the image's edges, where taps may fall outside.
    fn sample_edge(&self, x: f64, y: f64) -> [u8; 3] {
        let (w, h) = (self.width as f64, self.height as f64);
        if !(x > -1.0 && y > -1.0 && x < w && y < h) {
            return [255; 3];
        }
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let get = |xi: i64, yi: i64| -> [u8; 3] {
            if xi < 0 || yi < 0 || xi >= self.width as i64 || yi >= self.height as i64 {
                [255; 3]
            } else {
                self.at(xi as u32, yi as u32)
            }
        };
        let (a, b, c, d) = (
            get(x0, y0),
            get(x0 + 1, y0),
            get(x0, y0 + 1),
            get(x0 + 1, y0 + 1),
        );
        let mut out = [0u8; 3];
        for k in 0..3 {
            let top = a[k] as f64 * (1.0 - fx) + b[k] as f64 * fx;
            let bottom = c[k] as f64 * (1.0 - fx) + d[k] as f64 * fx;
            out[k] = (top * (1.0 - fy) + bottom * fy).round() as u8;
        }
        out
    }
}

/// Decodes an uploaded PNG or JPEG scan, refusing oversized uploads and images before decoding
/// their pixels.
pub fn decode_scan(bytes: &[u8]) -> Result<RgbImage, VerifyError> {
    if bytes.len() > MAX_SCAN_BYTES {
        return Err(VerifyError::TooLarge);
    }
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>, VerifyError> {
        let mut r = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|_| VerifyError::Undecodable)?;
        if !matches!(r.format(), Some(ImageFormat::Png | ImageFormat::Jpeg)) {
            return Err(VerifyError::Undecodable);
        }
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_SCAN_SIDE);
        limits.max_image_height = Some(MAX_SCAN_SIDE);
        limits.max_alloc = Some(MAX_DECODER_ALLOC);
        r.limits(limits);
        Ok(r)
    };
    // The header alone gives the size: refuse a bomb before allocating for it.
    let (width, height) = match reader()?.into_dimensions() {
        Ok(d) => d,
        Err(image::ImageError::Limits(_)) => return Err(size_error(bytes)),
        Err(_) => return Err(VerifyError::Undecodable),
    };
    if width > MAX_SCAN_SIDE
        || height > MAX_SCAN_SIDE
        || u64::from(width) * u64::from(height) > MAX_SCAN_PIXELS
    {
        return Err(VerifyError::TooManyPixels { width, height });
    }
    let decoded = reader()?.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => VerifyError::TooManyPixels { width, height },
        _ => VerifyError::Undecodable,
    })?;
    let rgb = decoded.into_rgb8();
    Ok(RgbImage {
        width,
        height,
        pixels: rgb.into_raw(),
    })
}

/// The size error for an image whose header exceeded the decoder limits (width and height as
/// declared, best effort).
fn size_error(bytes: &[u8]) -> VerifyError {
    let declared = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|r| {
            let mut r = r;
            r.no_limits();
            r.into_dimensions().ok()
        });
    let (width, height) = declared.unwrap_or((0, 0));
    VerifyError::TooManyPixels { width, height }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_bilinear_agrees_with_the_exact_one() {
        let (w, h) = (37u32, 23u32);
        let pixels = (0..w * h * 3).map(|i| (i * 97 % 251) as u8).collect();
        let img = RgbImage {
            width: w,
            height: h,
            pixels,
        };
        let mut worst = 0i32;
        for k in 0..5000u32 {
            let x = (k * 7919 % 36000) as f64 / 1000.0;
            let y = (k * 104_729 % 22000) as f64 / 1000.0;
            let (fast, exact) = (img.sample_bilinear(x, y), img.sample_edge(x, y));
            for c in 0..3 {
                worst = worst.max((fast[c] as i32 - exact[c] as i32).abs());
            }
        }
        assert!(worst <= 1, "fixed point differs by {worst}");
        // Integer positions read the pixel itself; outside reads paper.
        assert_eq!(img.sample_bilinear(3.0, 4.0), img.at(3, 4));
        assert_eq!(img.sample_bilinear(-5.0, 2.0), [255; 3]);
        assert_eq!(img.sample_bilinear(2.0, h as f64 + 3.0), [255; 3]);
    }
}
