//! Probe: how fast each deflate candidate encodes a real certificate back (4-bit indexed, 992x1376; the
//! generation 4 and 5 encoders twice each, alternating), and
//! what a fresh font subset of its page costs, cut from the font file and from its twin without glyph names.

use bcl_engine::certificate::scramble_key;
use bcl_engine::render::{FontRole, Item, Renderer, SubsetSource, BACK_IMAGE_DPI};
use bcl_engine::secrets::MasterSecret;
use std::time::Instant;

fn up_filter(data: &[u8], stride: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / stride);
    let mut prev: &[u8] = &[];
    for row in data.chunks(stride) {
        out.push(2);
        if prev.is_empty() {
            out.extend_from_slice(row);
        } else {
            out.extend(row.iter().zip(prev).map(|(a, b)| a.wrapping_sub(*b)));
        }
        prev = row;
    }
    out
}

fn time(name: &str, runs: usize, f: impl Fn() -> usize) {
    let mut v = Vec::new();
    let mut size = 0;
    for _ in 0..runs {
        let t = Instant::now();
        size = f();
        v.push(t.elapsed().as_micros());
    }
    v.sort();
    println!("{name:40} size {size:8}  min {:6} p50 {:6} us", v[0], v[v.len() / 2]);
}

pub fn run(args: &[String]) {
    let runs: usize = crate::arg(args, "--runs", 50);
    let renderer = Renderer::load_default().expect("fonts");
    let secret = MasterSecret::from_bytes([7; 32]);
    let record = crate::render::sample_record(4);
    let list = renderer.layout_resident_record(&record).unwrap();
    let raster = renderer.rasterize(&list.pages[0], BACK_IMAGE_DPI);
    let key = scramble_key(&secret, &record.certificate_id);
    let back = bcl_engine::scramble::scramble(raster.width, raster.height, &raster.pixels, &key).unwrap();
    let data = &back.packed_indices;
    let stride = (back.width as usize).div_ceil(2);
    println!("back {}x{} raw {} bytes", back.width, back.height, data.len());
    time("raster", runs, || renderer.rasterize(&list.pages[0], BACK_IMAGE_DPI).pixels.len());
    time("scramble", runs, || {
        bcl_engine::scramble::scramble(raster.width, raster.height, &raster.pixels, &key).unwrap().packed_indices.len()
    });
    for level in [1u8, 2, 6] {
        time(&format!("miniz L{level}"), runs, || miniz_oxide::deflate::compress_to_vec_zlib(data, level).len());
    }
    time("miniz L1 up", runs, || miniz_oxide::deflate::compress_to_vec_zlib(&up_filter(data, stride), 1).len());
    time("fdeflate", runs, || fdeflate::compress_to_vec(data).len());
    time("fdeflate up", runs, || fdeflate::compress_to_vec(&up_filter(data, stride)).len());
    time("up filter only", runs, || up_filter(data, stride).len());
    time("block runs (generation 4)", runs, || bcl_engine::render::back_runs::deflate_rows(data, stride).len());
    time("segments (generation 5)", runs, || bcl_engine::render::back_segments::deflate_segments(data, stride).len());
    time("block runs (generation 4)", runs, || bcl_engine::render::back_runs::deflate_rows(data, stride).len());
    time("segments (generation 5)", runs, || bcl_engine::render::back_segments::deflate_segments(data, stride).len());
    let mut glyphs: Vec<u16> = list.pages[0]
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Text(run) if run.font == FontRole::Mincho => Some(run.glyphs.iter().map(|g| g.id)),
            _ => None,
        })
        .flatten()
        .collect();
    glyphs.sort();
    glyphs.dedup();
    let remapper = subsetter::GlyphRemapper::new_from_glyphs_sorted(&glyphs);
    let mincho = renderer.fonts().font(FontRole::Mincho);
    for (name, source) in [("file", SubsetSource::File), ("nameless twin", SubsetSource::Nameless)] {
        time(&format!("mincho subset, {} glyphs, {name}", glyphs.len()), runs, || {
            subsetter::subset(mincho.subset_source(source), 0, &remapper).unwrap().len()
        });
    }
    for (name, level, strategy) in [
        ("zlib-rs L1", 1, zlib_rs::Strategy::Default),
        ("zlib-rs L2", 2, zlib_rs::Strategy::Default),
        ("zlib-rs rle", 1, zlib_rs::Strategy::Rle),
    ] {
        for up in [false, true] {
            time(&format!("{name}{}", if up { " up" } else { "" }), runs, || {
                let input = if up { up_filter(data, stride) } else { data.clone() };
                let mut out = vec![0u8; input.len() + 1024];
                let cfg = zlib_rs::DeflateConfig { level, strategy, ..Default::default() };
                let (c, rc) = zlib_rs::compress_slice(&mut out, &input, cfg);
                assert_eq!(rc, zlib_rs::ReturnCode::Ok);
                c.len()
            });
        }
    }
}
