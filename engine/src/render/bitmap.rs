//! Grayscale bitmaps placed on a page (the registered seal impression), decoded from PNG with their
//! physical size: a seal must be reproduced at 1:1, so the size comes from the image's recorded resolution,
//! never from the room the layout happens to have.

use std::io::Cursor;

use png::{BitDepth, ColorType, Decoder, Transformations, Unit};

use super::RenderError;

/// Resolution assumed for an image without a pHYs chunk: the municipality's seal scans are taken at
/// 100 dpi (the fixture's 96 px impressions are ~24 mm, inside the 25 mm limit of a registrable seal).
pub const DEFAULT_DPI: f32 = 100.0;

/// An 8-bit grayscale bitmap, row-major, 0 = black, 255 = white.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// A decoded image and its printed size in points (1/72 inch).
#[derive(Debug, Clone, PartialEq)]
pub struct PhysicalImage {
    pub bitmap: Bitmap,
    pub width_pt: f32,
    pub height_pt: f32,
}

/// The side limit ingest enforces on seal images (from the PNG header), so whatever the log holds decodes.
const MAX_SIDE: u32 = bcl_projections::validate::MAX_SEAL_SIDE;

/// Decodes a PNG (any bit depth and colour type) to gray, composited over white paper, with its physical
/// size from pHYs (metres) or [`DEFAULT_DPI`]. `field` names the record field for the error.
pub fn decode_png(png: &[u8], field: &str) -> Result<PhysicalImage, RenderError> {
    let bad = |reason: &'static str| RenderError::ImageUnreadable { field: field.to_string(), reason };
    let mut decoder = Decoder::new(Cursor::new(png));
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|_| bad("not a readable PNG"))?;
    let (width, height) = (reader.info().width, reader.info().height);
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(bad("image dimensions out of range"));
    }
    let (dpi_x, dpi_y) = match reader.info().pixel_dims {
        Some(d) if d.unit == Unit::Meter && d.xppu > 0 && d.yppu > 0 => {
            (d.xppu as f32 * 0.0254, d.yppu as f32 * 0.0254)
        }
        _ => (DEFAULT_DPI, DEFAULT_DPI),
    };
    let mut buf = vec![0; reader.output_buffer_size().ok_or_else(|| bad("image too large"))?];
    let frame = reader.next_frame(&mut buf).map_err(|_| bad("not a readable PNG"))?;
    if frame.bit_depth != BitDepth::Eight {
        return Err(bad("unsupported bit depth"));
    }
    let channels = match frame.color_type {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        ColorType::Indexed => return Err(bad("unsupported colour type")),
    };
    let row = frame.line_size;
    let mut pixels = Vec::with_capacity(width as usize * height as usize);
    for y in 0..height as usize {
        for x in 0..width as usize {
            let p = &buf[y * row + x * channels..][..channels];
            let (luma, alpha) = match channels {
                1 => (p[0] as u32, 255),
                2 => (p[0] as u32, p[1] as u32),
                // ITU-R BT.601 luma in integers, so decoding is exact and reproducible.
                3 => ((299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32 + 500) / 1000, 255),
                _ => ((299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32 + 500) / 1000, p[3] as u32),
            };
            // Over white paper.
            pixels.push(((luma * alpha + 255 * (255 - alpha) + 127) / 255) as u8);
        }
    }
    Ok(PhysicalImage {
        bitmap: Bitmap { width, height, pixels },
        width_pt: width as f32 / dpi_x * 72.0,
        height_pt: height as f32 / dpi_y * 72.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(width: u32, height: u32, color: ColorType, data: &[u8], ppm: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(color);
        enc.set_depth(BitDepth::Eight);
        if let Some(ppm) = ppm {
            enc.set_pixel_dims(Some(png::PixelDimensions { xppu: ppm, yppu: ppm, unit: Unit::Meter }));
        }
        enc.write_header().unwrap().write_image_data(data).unwrap();
        out
    }

    #[test]
    fn physical_size_from_phys_or_the_default() {
        // 600 dpi = 23622 px/m: 472 px is 20 mm.
        let png = encode(472, 1, ColorType::Grayscale, &[0; 472], Some(23622));
        let img = decode_png(&png, "seal").unwrap();
        assert!((img.width_pt / 72.0 * 25.4 - 20.0).abs() < 0.05, "{}", img.width_pt);
        let png = encode(100, 1, ColorType::Grayscale, &[0; 100], None);
        assert!((decode_png(&png, "seal").unwrap().width_pt - 72.0).abs() < 1e-3, "100 px at 100 dpi is 1 inch");
        // The fixture's 1-bit impressions decode to black and white.
        let seal = decode_png(&bcl_fixtures::seal::seal_png("佐藤"), "seal").unwrap();
        assert_eq!((seal.bitmap.width, seal.bitmap.height), (96, 96));
        assert!(seal.bitmap.pixels.iter().all(|&p| p == 0 || p == 255));
        assert!(seal.bitmap.pixels.contains(&0));
    }

    #[test]
    fn colour_and_alpha_become_gray_over_white() {
        let png = encode(2, 1, ColorType::Rgba, &[255, 0, 0, 255, 0, 0, 0, 0], None);
        let img = decode_png(&png, "seal").unwrap();
        assert_eq!(img.bitmap.pixels, vec![76, 255], "red is dark gray; transparent is paper");
    }

    #[test]
    fn garbage_is_refused_naming_the_field() {
        match decode_png(b"\x89PNG\r\n\x1a\nnot really", "seal_image") {
            Err(RenderError::ImageUnreadable { field, .. }) => assert_eq!(field, "seal_image"),
            other => panic!("{other:?}"),
        }
    }
}
