//! PNG in and out, for the `bcl descramble` command and for tests.
//!
//! The back leaves the engine inside the PDF; a verifier gets it back with poppler's
//! `pdfimages -png`, which writes Indexed images as RGB. So reading accepts indexed PNGs (kept as
//! indices: exact and cheap) and any gray/RGB(A) PNG (classified by nearest keyed colour).

use std::io::Cursor;

use png::{BitDepth, ColorType, Compression, Decoder, Encoder, Transformations};

use super::{
    descramble, descramble_pixels, BackImage, DescrambleError, GrayImage, ScrambleError,
    ScrambleKey,
};

impl BackImage {
    /// Encodes the back as an indexed PNG with the same bit depth and palette.
    pub fn to_png(&self) -> Result<Vec<u8>, ScrambleError> {
        self.check().map_err(ScrambleError::InconsistentBack)?;
        let depth = match self.bits_per_index {
            1 => BitDepth::One,
            2 => BitDepth::Two,
            4 => BitDepth::Four,
            _ => BitDepth::Eight,
        };
        let palette: Vec<u8> = self.palette.iter().flatten().copied().collect();
        let mut out = Vec::new();
        let mut enc = Encoder::new(&mut out, self.width, self.height);
        enc.set_color(ColorType::Indexed);
        enc.set_depth(depth);
        enc.set_palette(palette);
        enc.set_compression(Compression::Fast);
        // PNG and PDF pack indexed rows identically (MSB first, rows padded to a byte).
        let mut writer = enc.write_header().map_err(|_| ScrambleError::PngEncode)?;
        writer
            .write_image_data(&self.packed_indices)
            .map_err(|_| ScrambleError::PngEncode)?;
        writer.finish().map_err(|_| ScrambleError::PngEncode)?;
        Ok(out)
    }

    /// Reads a back from a PNG: an indexed PNG as is; a gray or RGB(A) PNG (what `pdfimages -png`
    /// writes) by collecting its distinct colours into an 8-bit palette, which an undamaged back
    /// (14 colours) always fits. Scans have too many colours: use [`descramble_png`] for those.
    pub fn from_png(png_bytes: &[u8]) -> Result<BackImage, DescrambleError> {
        match decode(png_bytes)? {
            Decoded::Indexed(back) => Ok(back),
            Decoded::Pixels {
                width,
                height,
                channels,
                pixels,
            } => {
                let mut palette: Vec<[u8; 3]> = Vec::new();
                let mut indices = Vec::with_capacity(width as usize * height as usize);
                let mut last: Option<([u8; 3], u8)> = None;
                for px in pixels.chunks_exact(channels) {
                    let c = if channels < 3 {
                        [px[0]; 3]
                    } else {
                        [px[0], px[1], px[2]]
                    };
                    let idx = match last {
                        Some((lc, i)) if lc == c => i,
                        _ => match palette.iter().position(|&p| p == c) {
                            Some(i) => i as u8,
                            None if palette.len() < 256 => {
                                palette.push(c);
                                (palette.len() - 1) as u8
                            }
                            None => return Err(DescrambleError::TooManyColours),
                        },
                    };
                    last = Some((c, idx));
                    indices.push(idx);
                }
                Ok(BackImage {
                    width,
                    height,
                    palette,
                    bits_per_index: 8,
                    packed_indices: indices,
                })
            }
        }
    }
}

/// Descrambles a back given as a PNG (indexed, or gray/RGB/RGBA as from `pdfimages -png`) and
/// returns the restored, quantised front as `(width, height, gray pixels)`.
pub fn descramble_png(
    png_bytes: &[u8],
    key: &ScrambleKey,
) -> Result<(u32, u32, Vec<u8>), DescrambleError> {
    let front = match decode(png_bytes)? {
        Decoded::Indexed(back) => descramble(&back, key)?,
        Decoded::Pixels {
            width,
            height,
            channels,
            pixels,
        } => descramble_pixels(width, height, channels, &pixels, key)?,
    };
    let GrayImage {
        width,
        height,
        pixels,
    } = front;
    Ok((width, height, pixels))
}

/// Encodes an 8-bit grayscale raster (0 = black) as a PNG, e.g. a descrambled front.
pub fn gray_to_png(width: u32, height: u32, gray: &[u8]) -> Result<Vec<u8>, ScrambleError> {
    super::check_front(width, height, gray)?;
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, width, height);
    enc.set_color(ColorType::Grayscale);
    enc.set_depth(BitDepth::Eight);
    enc.set_compression(Compression::Fast);
    let mut writer = enc.write_header().map_err(|_| ScrambleError::PngEncode)?;
    writer
        .write_image_data(gray)
        .map_err(|_| ScrambleError::PngEncode)?;
    writer.finish().map_err(|_| ScrambleError::PngEncode)?;
    Ok(out)
}

enum Decoded {
    Indexed(BackImage),
    Pixels {
        width: u32,
        height: u32,
        channels: usize,
        pixels: Vec<u8>,
    },
}

/// Largest back image read, in pixels (a certificate back is a few million): the output buffer is sized
/// from the header, so without this bound a few bytes declaring 96 × 4,294,967,060 pixels made the reader
/// try to allocate 412 GB (found by the `scan_image` fuzz target).
const MAX_BACK_PIXELS: u64 = 64 << 20;

fn decode(png_bytes: &[u8]) -> Result<Decoded, DescrambleError> {
    let probe = Decoder::new(Cursor::new(png_bytes))
        .read_info()
        .map_err(|_| DescrambleError::PngDecode)?;
    let (width, height) = (probe.info().width, probe.info().height);
    if u64::from(width) * u64::from(height) > MAX_BACK_PIXELS {
        return Err(DescrambleError::NotABackSize { width, height });
    }
    let indexed = probe.info().color_type == ColorType::Indexed;
    drop(probe);

    let mut decoder = Decoder::new(Cursor::new(png_bytes));
    // Indexed images stay indices (exact); everything else becomes 8-bit samples.
    decoder.set_transformations(if indexed {
        Transformations::IDENTITY
    } else {
        Transformations::EXPAND | Transformations::STRIP_16
    });
    let mut reader = decoder
        .read_info()
        .map_err(|_| DescrambleError::PngDecode)?;
    let size = reader
        .output_buffer_size()
        .ok_or(DescrambleError::PngDecode)?;
    let mut buf = vec![0; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|_| DescrambleError::PngDecode)?;
    buf.truncate(frame.buffer_size());

    if indexed {
        let palette = reader
            .info()
            .palette
            .as_ref()
            .ok_or(DescrambleError::UnsupportedPng)?
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        let bits_per_index = match frame.bit_depth {
            BitDepth::One => 1,
            BitDepth::Two => 2,
            BitDepth::Four => 4,
            BitDepth::Eight => 8,
            BitDepth::Sixteen => return Err(DescrambleError::UnsupportedPng),
        };
        let back = BackImage {
            width: frame.width,
            height: frame.height,
            palette,
            bits_per_index,
            packed_indices: buf,
        };
        back.check().map_err(DescrambleError::InconsistentBack)?;
        return Ok(Decoded::Indexed(back));
    }
    if frame.bit_depth != BitDepth::Eight {
        return Err(DescrambleError::UnsupportedPng);
    }
    let channels = match frame.color_type {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        ColorType::Indexed => return Err(DescrambleError::UnsupportedPng),
    };
    Ok(Decoded::Pixels {
        width: frame.width,
        height: frame.height,
        channels,
        pixels: buf,
    })
}
