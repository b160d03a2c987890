//! End-to-end properties of scramble/descramble, across the submodules.

use proptest::prelude::*;

use super::palette::{KeyedPalette, BLACK, WHITE};
use super::*;

fn key(seed: &str) -> ScrambleKey {
    ScrambleKey::derive(b"test master secret", seed)
}

/// Deterministic noise (xorshift), so failures reproduce.
fn noise(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..width as usize * height as usize)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// A page-like raster: white, with lines of "glyphs" (dark bars with anti-aliased gray edges),
/// ruled boxes and a mid-gray seal-like patch.
fn text_like(width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut px = vec![255u8; w * h];
    let mut put = |x: usize, y: usize, v: u8| {
        if x < w && y < h {
            px[y * w + x] = px[y * w + x].min(v);
        }
    };
    let mut y = 4;
    let mut glyph = 0usize;
    while y + 12 < h {
        let mut x = 6;
        while x + 10 < w {
            glyph += 1;
            for gy in 0..10 {
                for gx in 0..8 {
                    let stroke = (gx + gy * 3 + glyph).is_multiple_of(5) || gy == glyph % 10;
                    if stroke {
                        put(x + gx, y + gy, 0);
                        put(x + gx + 1, y + gy, 120); // anti-aliased edge
                    }
                }
            }
            x += 11 + glyph % 4;
        }
        for rx in 0..w {
            put(rx, y + 12, 40);
        }
        y += 17;
    }
    for sy in h / 3..(h / 3 + h / 8).min(h) {
        for sx in w / 2..(w / 2 + w / 6).min(w) {
            put(sx, sy, 190);
        }
    }
    px
}

fn round_trip(width: u32, height: u32, gray: &[u8], k: &ScrambleKey) {
    let back = scramble(width, height, gray, k).unwrap();
    let restored = descramble(&back, k).unwrap();
    assert_eq!(
        restored,
        quantise(width, height, gray).unwrap(),
        "size {width}x{height}"
    );
}

#[test]
fn round_trip_is_exact_for_text_and_noise_of_many_sizes() {
    let sizes = [
        (1, 1),
        (16, 16),
        (15, 17),
        (17, 33),
        (100, 37),
        (64, 200),
        (333, 31),
        (827, 1169),
    ];
    for (i, &(w, h)) in sizes.iter().enumerate() {
        round_trip(w, h, &text_like(w, h), &key(&format!("text-{i}")));
        round_trip(
            w,
            h,
            &noise(w, h, i as u64 + 1),
            &key(&format!("noise-{i}")),
        );
    }
}

#[test]
fn output_is_deterministic_for_a_key_and_changes_with_it() {
    let (w, h) = (200, 150);
    let front = text_like(w, h);
    let a = scramble(w, h, &front, &key("C-1")).unwrap();
    assert_eq!(a, scramble(w, h, &front, &key("C-1")).unwrap());
    let b = scramble(w, h, &front, &key("C-2")).unwrap();
    assert_ne!(a.packed_indices, b.packed_indices);
}

/// A recycled index buffer is not whitened inside the scrambled area (the shuffle writes every byte of
/// it): whatever a buffer held before, of this size or another, the back comes out the same.
#[test]
fn a_recycled_buffer_of_any_content_gives_the_same_back() {
    for (w, h) in [(827, 1169), (200, 150), (33, 17)] {
        let front = text_like(w, h);
        let fresh = scramble(w, h, &front, &key("C-1")).unwrap();
        for (len, fill) in [(fresh.packed_indices.len(), 0x5a), (10, 0xff), (3 << 20, 0x00)] {
            super::recycle_packed(vec![fill; len]);
            let again = scramble(w, h, &front, &key("C-1")).unwrap();
            assert_eq!(again, fresh, "{w}x{h} after a buffer of {len} bytes of {fill:#x}");
        }
    }
}

/// 16×16 blocks of a raster `width` wide that differ between `a` and `b`, out of all blocks.
fn differing_blocks(width: usize, a: &[u8], b: &[u8]) -> (usize, usize) {
    let height = a.len() / width;
    let (bx, by) = (width / BLOCK, height / BLOCK);
    let mut differ = 0;
    for r in 0..by {
        for c in 0..bx {
            let same = (0..BLOCK).all(|y| {
                let o = (r * BLOCK + y) * width + c * BLOCK;
                a[o..o + BLOCK] == b[o..o + BLOCK]
            });
            differ += usize::from(!same);
        }
    }
    (differ, bx * by)
}

#[test]
fn a_different_key_does_not_restore_the_front() {
    // Whole blocks (no padding), so the wrong key yields an image we can compare block by block.
    let (w, h) = (320, 480);
    for front in [text_like(w, h), noise(w, h, 99)] {
        let back = scramble(w, h, &front, &key("right")).unwrap();
        let wrong = descramble(&back, &key("wrong")).unwrap();
        let expected = quantise(w, h, &front).unwrap();
        // Blank (all-white) blocks of a text front can land on blank blocks by chance; everything
        // else must be garbled.
        let (differ, total) = differing_blocks(w as usize, &wrong.pixels, &expected.pixels);
        assert!(
            differ * 10 >= total * 8,
            "only {differ} of {total} blocks differ"
        );
    }
}

#[test]
fn a_different_key_is_rejected_when_the_front_has_padding() {
    let (w, h) = (301, 203);
    let back = scramble(w, h, &text_like(w, h), &key("right")).unwrap();
    assert_eq!(
        descramble(&back, &key("wrong")),
        Err(DescrambleError::PaddingMismatch)
    );
}

#[test]
fn the_back_is_not_a_copy_of_the_front() {
    let (w, h) = (320, 320);
    let k = key("C-7");
    let front = quantise(w, h, &text_like(w, h)).unwrap();
    let back = scramble(w, h, &front.pixels, &k).unwrap();
    let layout = back_layout(w, h).unwrap();
    let palette = KeyedPalette::new(&k, layout.blocks_y as usize);
    // Read the scrambled area in place, with the right colours but without undoing the shuffle.
    let a = layout.scramble_area;
    let mut in_place = Vec::new();
    for y in 0..a.height {
        let set = palette.band_set[y as usize / BLOCK] as usize;
        for x in 0..a.width {
            let c = back.palette[back.index_at(a.x + x, a.y + y) as usize];
            in_place.push(LEVEL_GRAY[palette.classify(set, c) as usize]);
        }
    }
    let same = in_place
        .iter()
        .zip(&front.pixels)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        same * 2 < front.pixels.len(),
        "{same} of {} pixels equal in place",
        front.pixels.len()
    );
    let (differ, total) = differing_blocks(w as usize, &in_place, &front.pixels);
    assert!(
        differ * 10 >= total * 8,
        "only {differ} of {total} blocks differ in place"
    );
    // And it is colour: every data pixel is a saturated palette colour, none gray.
    assert!(back.palette[..WHITE as usize]
        .iter()
        .all(|c| c.iter().max().unwrap() - c.iter().min().unwrap() > 100));
}

#[test]
fn frame_and_id_strip_are_white_except_for_the_marks() {
    let (w, h) = (90, 70);
    let back = scramble(w, h, &noise(w, h, 5), &key("frame")).unwrap();
    let layout = back_layout(w, h).unwrap();
    let mut marks = std::collections::HashSet::new();
    layout.for_each_dark_mark_pixel(|x, y| {
        marks.insert((x, y));
    });
    let a = layout.scramble_area;
    for y in 0..back.height {
        for x in 0..back.width {
            let inside = (a.x..a.x + a.width).contains(&x) && (a.y..a.y + a.height).contains(&y);
            if !inside {
                let want = if marks.contains(&(x, y)) {
                    BLACK
                } else {
                    WHITE
                };
                assert_eq!(back.index_at(x, y), want, "({x}, {y})");
            }
        }
    }
    assert_eq!(back.bits_per_index, 4);
    assert!(back.palette.len() <= 16);
}

#[test]
fn png_round_trips_are_exact_for_indexed_rgb_rgba_and_gray_pngs() {
    let (w, h) = (250, 180);
    let k = key("png");
    let front = text_like(w, h);
    let expected = quantise(w, h, &front).unwrap();
    let back = scramble(w, h, &front, &k).unwrap();

    let indexed = back.to_png().unwrap();
    assert_eq!(BackImage::from_png(&indexed).unwrap(), back);
    assert_eq!(
        descramble_png(&indexed, &k).unwrap(),
        (w, h, expected.pixels.clone())
    );

    // What `pdfimages -png` writes for an Indexed image: plain RGB.
    let rgb: Vec<u8> = (0..back.height)
        .flat_map(|y| (0..back.width).map(move |x| (x, y)))
        .flat_map(|(x, y)| back.palette[back.index_at(x, y) as usize])
        .collect();
    let rgb_png = encode_png(back.width, back.height, png::ColorType::Rgb, &rgb);
    assert_eq!(
        descramble_png(&rgb_png, &k).unwrap(),
        (w, h, expected.pixels.clone())
    );
    let via_from_png = BackImage::from_png(&rgb_png).unwrap();
    assert_eq!(descramble(&via_from_png, &k).unwrap(), expected);

    let rgba: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|c| [c[0], c[1], c[2], 255])
        .collect();
    let rgba_png = encode_png(back.width, back.height, png::ColorType::Rgba, &rgba);
    assert_eq!(
        descramble_png(&rgba_png, &k).unwrap(),
        (w, h, expected.pixels.clone())
    );

    // The restored front encodes as a gray PNG that decodes to the same pixels.
    let gray_png = gray_to_png(w, h, &expected.pixels).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(&gray_png))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(
        (info.width, info.height, info.color_type),
        (w, h, png::ColorType::Grayscale)
    );
    assert_eq!(&buf[..info.buffer_size()], &expected.pixels[..]);
}

#[test]
fn slightly_shifted_colours_still_descramble_exactly() {
    // A colour-managed re-encode may nudge every sample a little.
    let (w, h) = (120, 90);
    let k = key("nudge");
    let front = noise(w, h, 3);
    let back = scramble(w, h, &front, &k).unwrap();
    let mut nudged = back.clone();
    for c in &mut nudged.palette {
        *c = [
            c[0].saturating_sub(7),
            c[1].saturating_add(5),
            c[2].saturating_sub(3),
        ];
    }
    assert_eq!(
        descramble(&nudged, &k).unwrap(),
        quantise(w, h, &front).unwrap()
    );
}

fn encode_png(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(data).unwrap();
    writer.finish().unwrap();
    out
}

#[test]
fn images_that_are_not_backs_are_refused() {
    let k = key("refuse");
    // Right size for a back, but no finder marks (e.g. a blank page).
    let layout = back_layout(64, 64).unwrap();
    let blank = vec![255u8; (layout.width * layout.height) as usize];
    let png = encode_png(
        layout.width,
        layout.height,
        png::ColorType::Grayscale,
        &blank,
    );
    assert_eq!(
        descramble_png(&png, &k),
        Err(DescrambleError::FinderMarkMissing { corner: "top-left" })
    );
    // A size no front produces.
    let png = encode_png(100, 100, png::ColorType::Grayscale, &vec![0; 100 * 100]);
    assert!(matches!(
        descramble_png(&png, &k),
        Err(DescrambleError::NotABackSize { .. })
    ));
    assert_eq!(
        descramble_png(b"not a png", &k),
        Err(DescrambleError::PngDecode)
    );
    // A header declaring 96 × 4,294,967,060 pixels (from the `scan_image` fuzz target): refused from the
    // header instead of allocating 412 GB.
    let mut bomb = encode_png(96, 16, png::ColorType::Grayscale, &vec![0; 96 * 16]);
    bomb[20..24].copy_from_slice(&0xffff_ff14u32.to_be_bytes());
    let crc = !bomb[12..29].iter().fold(!0u32, |mut c, &b| {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
        c
    });
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let refused = || DescrambleError::NotABackSize { width: 96, height: 0xffff_ff14 };
    assert_eq!(descramble_png(&bomb, &k), Err(refused()));
    assert_eq!(BackImage::from_png(&bomb), Err(refused()));
    // A back whose buffer was truncated.
    let mut back = scramble(40, 40, &noise(40, 40, 8), &k).unwrap();
    back.packed_indices.pop();
    assert!(matches!(
        descramble(&back, &k),
        Err(DescrambleError::InconsistentBack(_))
    ));
    assert!(back.to_png().is_err());
}

#[test]
fn bad_fronts_are_refused() {
    let k = key("bad");
    assert_eq!(scramble(0, 10, &[], &k), Err(ScrambleError::BadDimensions));
    assert_eq!(
        scramble(MAX_FRONT_SIDE + 1, 1, &[], &k),
        Err(ScrambleError::BadDimensions)
    );
    assert_eq!(
        scramble(4, 4, &[0; 15], &k),
        Err(ScrambleError::PixelCountMismatch)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn descramble_inverts_scramble_up_to_quantisation(
        (w, h, pixels) in (1u32..70, 1u32..70).prop_flat_map(|(w, h)| {
            (Just(w), Just(h), proptest::collection::vec(any::<u8>(), (w * h) as usize))
        }),
        key_bytes in any::<[u8; 32]>(),
    ) {
        let k = ScrambleKey::from_bytes(key_bytes);
        let back = scramble(w, h, &pixels, &k).unwrap();
        prop_assert_eq!(descramble(&back, &k).unwrap(), quantise(w, h, &pixels).unwrap());
    }
}

/// Release-mode timing of the issuance path (scramble + pack) and, for reference, of the
/// verification path. Run: `cargo test --release -p bcl-engine --lib scramble:: -- --ignored --nocapture`
#[test]
#[ignore = "timing; run in release mode"]
fn timing_a4_at_100_dpi() {
    use std::time::Instant;
    let (w, h) = (827, 1169);
    let front = text_like(w, h);
    let k = key("timing");
    let runs = 200;
    let mut best = f64::MAX;
    let mut total = 0.0;
    for i in 0..runs {
        // A fresh key per run, as in production: the per-key tables are part of the cost.
        let k = key(&format!("timing-{i}"));
        let t = Instant::now();
        let back = scramble(w, h, &front, &k).unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        std::hint::black_box(&back);
        best = best.min(ms);
        total += ms;
    }
    println!(
        "scramble+pack A4 {w}x{h}: best {best:.3} ms, mean {:.3} ms over {runs} runs",
        total / runs as f64
    );

    let back = scramble(w, h, &front, &k).unwrap();
    let t = Instant::now();
    let png = back.to_png().unwrap();
    println!(
        "indexed 4-bit PNG encode: {:.3} ms, {} bytes",
        t.elapsed().as_secs_f64() * 1e3,
        png.len()
    );
    let t = Instant::now();
    descramble(&back, &k).unwrap();
    println!(
        "descramble (indexed): {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    descramble_png(&png, &k).unwrap();
    println!(
        "descramble_png (indexed): {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
}

/// The verifier's real path: the back embedded in a PDF as a 4-bit Indexed image (as the renderer
/// does), extracted with poppler's `pdfimages -png`, descrambled. Needs poppler-utils, hence ignored.
#[test]
#[ignore = "needs poppler's pdfimages on PATH"]
fn pdfimages_extraction_descrambles_exactly() {
    use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref};
    let (w, h) = (827, 1169);
    let k = key("pdfimages");
    let front = text_like(w, h);
    let back = scramble(w, h, &front, &k).unwrap();

    let mut pdf = Pdf::new();
    let (catalog, pages, page, image, content) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
    );
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    let mut p = pdf.page(page);
    p.media_box(Rect::new(0.0, 0.0, 595.0, 842.0))
        .parent(pages)
        .contents(content);
    p.resources().x_objects().pair(Name(b"Back"), image);
    p.finish();
    let data = miniz_oxide::deflate::compress_to_vec_zlib(&back.packed_indices, 1);
    let lookup: Vec<u8> = back.palette.iter().flatten().copied().collect();
    let mut x = pdf.image_xobject(image, &data);
    x.filter(Filter::FlateDecode);
    x.width(back.width as i32).height(back.height as i32);
    x.color_space()
        .indexed(Name(b"DeviceRGB"), back.palette.len() as i32 - 1, &lookup);
    x.bits_per_component(back.bits_per_index as i32);
    x.finish();
    let mut c = Content::new();
    c.transform([595.0, 0.0, 0.0, 842.0, 0.0, 0.0])
        .x_object(Name(b"Back"));
    pdf.stream(content, &c.finish());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pdf"), pdf.finish()).unwrap();
    let status = std::process::Command::new("pdfimages")
        .arg("-png")
        .arg(dir.path().join("cert.pdf"))
        .arg(dir.path().join("img"))
        .status()
        .expect("pdfimages runs");
    assert!(status.success());
    let extracted = std::fs::read(dir.path().join("img-000.png")).unwrap();
    let restored = descramble_png(&extracted, &k).unwrap();
    assert_eq!(restored, (w, h, quantise(w, h, &front).unwrap().pixels));
}

/// Frozen test vectors: the scheme's output is part of every issued certificate, so any change to
/// key derivation, keystream, shuffle, transforms, palette or packing must fail here. The values
/// were produced once by this implementation and are reproduced in `docs/scramble.md` for
/// independent implementations. Never update them; version the scheme instead.
mod vectors {
    use super::super::blocks::BlockPlan;
    use super::super::palette::KeyedPalette;
    use super::*;
    use sha2::{Digest, Sha256};

    const MASTER: &[u8] = b"bcl scramble test vector master secret";
    const ID: &str = "131016-2026-000001";

    fn vector_key() -> ScrambleKey {
        ScrambleKey::derive(MASTER, ID)
    }

    /// A 40×24 front whose pixel at (x, y) is `(x * 7 + y * 13) mod 256`: all four levels, padding on
    /// both edges.
    fn vector_front() -> (u32, u32, Vec<u8>) {
        let (w, h) = (40u32, 24u32);
        let px = (0..h)
            .flat_map(|y| (0..w).map(move |x| ((x * 7 + y * 13) % 256) as u8))
            .collect();
        (w, h, px)
    }

    #[test]
    fn key_derivation_vector() {
        assert_eq!(
            hex::encode(vector_key().as_bytes()),
            "09f5a9294ab04912ae03de4f5c7142942443c50ef45d17f95f4051dcd2bcdc03"
        );
    }

    #[test]
    fn permutation_and_transform_prefix_vector() {
        // The A4 grid at 100 dpi: 52 × 74 blocks.
        let plan = BlockPlan::new(&vector_key(), 52, 74);
        assert_eq!(
            plan.source_prefix(16),
            [
                2781, 2439, 2980, 2823, 1885, 971, 1776, 1637, 718, 3171, 45, 2540, 2669, 1307,
                2559, 3761
            ]
        );
        // orientation | shift << 3
        assert_eq!(
            plan.xform_prefix(16),
            [25, 5, 25, 21, 21, 8, 20, 4, 9, 25, 0, 21, 1, 16, 21, 20]
        );
    }

    #[test]
    fn palette_vector() {
        let p = KeyedPalette::new(&vector_key(), 74);
        assert_eq!(
            p.to_vec(),
            [
                [45, 210, 123],
                [45, 49, 210],
                [210, 45, 132],
                [210, 206, 45],
                [63, 45, 210],
                [210, 45, 109],
                [192, 210, 45],
                [45, 210, 146],
                [210, 45, 198],
                [210, 140, 45],
                [45, 210, 57],
                [45, 115, 210],
                [255, 255, 255],
                [0, 0, 0],
            ]
        );
        assert_eq!(p.index_of, [[3, 2, 0, 1], [6, 7, 4, 5], [8, 11, 10, 9]]);
        assert_eq!(
            p.band_set[..16],
            [2, 1, 0, 1, 2, 1, 2, 0, 1, 1, 2, 0, 1, 0, 1, 1]
        );
    }

    #[test]
    fn small_image_scrambled_bytes_vector() {
        let (w, h, px) = vector_front();
        let back = scramble(w, h, &px, &vector_key()).unwrap();
        assert_eq!((back.width, back.height), (208, 224));
        assert_eq!(
            hex::encode(Sha256::digest(&back.packed_indices)),
            "b3a60f1424da085a496083a5782060469487819dcc88b96bcd6e385a32b162f2"
        );
        let a = back_layout(w, h).unwrap().scramble_area;
        let row: Vec<u8> = (0..16).map(|x| back.index_at(a.x + x, a.y)).collect();
        assert_eq!(
            row,
            [12, 12, 12, 12, 12, 12, 12, 12, 10, 10, 11, 11, 11, 11, 11, 11]
        );
        // And it still descrambles to the quantised image.
        assert_eq!(
            descramble(&back, &vector_key()).unwrap(),
            quantise(w, h, &px).unwrap()
        );
    }
}
