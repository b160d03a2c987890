//! The degradation suite: real 住民票 fronts (rendered with the installed IPA fonts) scrambled onto
//! backs, printed and scanned through `degrade.rs`, verified. Genuine scans must match; wrong
//! certificates, other backs, pasted-over regions and photocopies must not; tampering is localised.
//!
//! The full table (`scan_verification_table`, ignored) is what BENCHMARKS.md reports; the default
//! run covers every case kind on fewer degradations to stay quick in debug builds.

use std::sync::OnceLock;

use bcl_projections::date::JstDateTime;
use bcl_projections::record::{Date, MunicipalityHeader, PersonEntry, ResidentRecordCertificate, Sex};

use super::degrade::{self, Scan};
use super::*;
use crate::render::{Renderer, BACK_IMAGE_DPI};
use crate::scramble::{quantise_gray, BackImage, LEVEL_GRAY};
use crate::secrets::MasterSecret;

struct Cert {
    id: String,
    key: ScrambleKey,
    front: GrayImage,
    back: BackImage,
}

struct Fixture {
    renderer: Renderer,
    secret: MasterSecret,
    a: Cert,
    b: Cert,
}

fn person(family: &str, given: &str, year: i32) -> PersonEntry {
    PersonEntry {
        family_name: family.into(),
        given_name: given.into(),
        family_name_kana: "やまだ".into(),
        given_name_kana: "たろう".into(),
        birth_date: Date { year, month: 3, day: 14 },
        sex: Sex::Male,
        relationship: Some("世帯主".into()),
        resident_since: Date { year: 2001, month: 4, day: 1 },
        address_since: Date { year: 2015, month: 10, day: 20 },
        previous_address: Some("大阪府大阪市北区梅田一丁目2番3号".into()),
        registered_domicile: Some("京都府京都市左京区吉田本町36番地".into()),
        domicile_head: Some(format!("{family}　{given}")),
        personal_number: None,
    }
}

fn record(id: &str, persons: Vec<PersonEntry>, address: &str) -> ResidentRecordCertificate {
    ResidentRecordCertificate {
        municipality: MunicipalityHeader {
            code: "131016".into(),
            name: "東京都千代田区".into(),
            mayor_title: "千代田区長".into(),
            mayor_name: "架空　太郎".into(),
        },
        certificate_id: id.into(),
        issued_on: Date { year: 2026, month: 4, day: 1 },
        address: address.into(),
        household_head_name: Some(format!("{}　{}", persons[0].family_name, persons[0].given_name)),
        whole_household: true,
        persons,
        copies: 1,
    }
}

fn record_a() -> ResidentRecordCertificate {
    record(
        "RR-131016-000777",
        vec![person("髙橋", "一郎", 1961), person("髙橋", "花子", 1965), person("髙橋", "健太", 1994)],
        "東京都千代田区九段南一丁目2番1号",
    )
}

fn record_b() -> ResidentRecordCertificate {
    record(
        "RR-131016-000778",
        vec![person("渡邉", "翔", 1978), person("渡邉", "結衣", 1980)],
        "東京都千代田区永田町二丁目3番4号",
    )
}

fn cert(renderer: &Renderer, secret: &MasterSecret, rec: &ResidentRecordCertificate) -> Cert {
    let list = renderer.layout_resident_record(rec).expect("layout");
    let raster = renderer.rasterize(&list.pages[0], BACK_IMAGE_DPI);
    let key = crate::certificate::scramble_key(secret, &rec.certificate_id);
    let back = scramble::scramble(raster.width, raster.height, &raster.pixels, &key).unwrap();
    let front = scramble::quantise(raster.width, raster.height, &raster.pixels).unwrap();
    Cert { id: rec.certificate_id.clone(), key, front, back }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let renderer = Renderer::load_default()
            .expect("IPA fonts installed (apt-get install fonts-ipamj-mincho fonts-ipaexfont-gothic)");
        let secret = MasterSecret::from_bytes([0x5a; 32]);
        let a = cert(&renderer, &secret, &record_a());
        let b = cert(&renderer, &secret, &record_b());
        Fixture { renderer, secret, a, b }
    })
}

/// One degradation applied after the simulated scan.
#[derive(Clone, Copy, Debug)]
enum Op {
    Blur(f64),
    Noise(f64),
    Jpeg(u8),
    BrightnessContrast(f64, f64),
    /// Crop to the back plus this margin in scan pixels (cuts the page margins and the caption).
    CropTo(u32),
}

struct Degradation {
    name: &'static str,
    scan: Scan,
    ops: Vec<Op>,
}

fn back_rgb(back: &BackImage) -> impl Fn(u32, u32) -> [u8; 3] + '_ {
    move |x, y| back.palette[back.index_at(x, y) as usize]
}

/// Prints `colour_at` as a back of `(bw, bh)` and applies the degradation; returns the scan and the
/// crop offset.
fn scan_of(d: &Degradation, bw: u32, bh: u32, colour_at: &dyn Fn(u32, u32) -> [u8; 3]) -> (RgbImage, (f64, f64)) {
    let mut img = d.scan.print(bw, bh, colour_at, true);
    let mut offset = (0.0, 0.0);
    for (i, op) in d.ops.iter().enumerate() {
        img = match *op {
            Op::Blur(s) => degrade::blur(&img, s),
            Op::Noise(s) => degrade::noise(&img, s, 0x9e37_79b9 + i as u64),
            Op::Jpeg(q) => degrade::jpeg(&img, q),
            Op::BrightnessContrast(b, c) => degrade::brightness_contrast(&img, b, c),
            Op::CropTo(m) => {
                let corners = [(0.0, 0.0), (bw as f64, 0.0), (0.0, bh as f64), (bw as f64, bh as f64)]
                    .map(|(u, v)| d.scan.back_to_scan(bw, bh, u, v));
                let x0 = corners.iter().map(|c| c.0).fold(f64::MAX, f64::min).floor() - m as f64;
                let y0 = corners.iter().map(|c| c.1).fold(f64::MAX, f64::min).floor() - m as f64;
                let x1 = corners.iter().map(|c| c.0).fold(f64::MIN, f64::max).ceil() + m as f64;
                let y1 = corners.iter().map(|c| c.1).fold(f64::MIN, f64::max).ceil() + m as f64;
                let (x0, y0) = (x0.max(0.0) as u32, y0.max(0.0) as u32);
                offset = (offset.0 + x0 as f64, offset.1 + y0 as f64);
                degrade::crop(&img, x0, y0, x1 as u32 - x0, y1 as u32 - y0)
            }
        };
    }
    (img, offset)
}

/// SSIM(equally degraded front, front): the front printed where the back's scrambled area is,
/// scanned and degraded the same way, read back through the *true* transform with the same
/// colour normalisation, quantised like the back.
fn ceiling(d: &Degradation, c: &Cert, normalise: &locate::Normalise) -> f64 {
    let layout = scramble::back_layout(c.front.width, c.front.height).unwrap();
    let area = layout.scramble_area;
    let (fw, fh) = (c.front.width, c.front.height);
    let front_at = |x: u32, y: u32| -> [u8; 3] {
        if x >= area.x && y >= area.y && x - area.x < fw && y - area.y < fh {
            [c.front.pixels[((y - area.y) * fw + x - area.x) as usize]; 3]
        } else {
            [255; 3]
        }
    };
    let (img, (ox, oy)) = scan_of(d, layout.width, layout.height, &front_at);
    let mut pixels = Vec::with_capacity((fw * fh) as usize);
    for y in 0..fh {
        for x in 0..fw {
            let (sx, sy) =
                d.scan.back_to_scan(layout.width, layout.height, (area.x + x) as f64 + 0.5, (area.y + y) as f64 + 0.5);
            let p = normalise.apply(img.sample_bilinear(sx - ox - 0.5, sy - oy - 0.5));
            let l = (299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32) / 1000;
            pixels.push(quantise_gray(l as u8));
        }
    }
    ssim(&GrayImage { width: fw, height: fh, pixels }, &c.front)
}

/// One row of the table.
struct Row {
    case: String,
    genuine: bool,
    verdict: Verdict,
    score: f64,
    tampered: usize,
    ssim_restored: Option<f64>,
    ssim_ceiling: Option<f64>,
}

fn verify_row(case: String, genuine: bool, scan: &RgbImage, c: &Cert) -> (Row, Option<Verification>) {
    match verify_scan(scan, &c.front, &c.key) {
        Ok(v) => (
            Row {
                case,
                genuine,
                verdict: v.verdict,
                score: v.blocks.score,
                tampered: v.blocks.tampered.len(),
                ssim_restored: Some(ssim(&v.restored, &c.front)),
                ssim_ceiling: None,
            },
            Some(v),
        ),
        // Not a back at all: a non-match with score 0.
        Err(VerifyError::BackNotFound(_)) => (
            Row {
                case,
                genuine,
                verdict: Verdict::NoMatch,
                score: 0.0,
                tampered: 0,
                ssim_restored: None,
                ssim_ceiling: None,
            },
            None,
        ),
        Err(e) => panic!("{case}: {e}"),
    }
}

fn genuine(d: &Degradation, with_ceiling: bool) -> Row {
    let f = fixture();
    let (w, h) = (f.a.back.width, f.a.back.height);
    let (scan, _) = scan_of(d, w, h, &back_rgb(&f.a.back));
    let (mut row, v) = verify_row(d.name.to_string(), true, &scan, &f.a);
    if with_ceiling {
        let v = v.unwrap_or_else(|| panic!("{}: back not found", d.name));
        row.ssim_ceiling = Some(ceiling(d, &f.a, &v.location.normalise));
    }
    row
}

fn d(name: &'static str, scan: Scan, ops: Vec<Op>) -> Degradation {
    Degradation { name, scan, ops }
}

fn with(dpi: f64, scale: f64, rot: f64, tx: f64, ty: f64) -> Scan {
    Scan { dpi, scale, rotation_deg: rot, tx, ty }
}

fn all_degradations() -> Vec<Degradation> {
    use Op::*;
    let s200 = Scan::at(200.0);
    vec![
        d("200 dpi, clean", s200, vec![]),
        d("blur σ 1.5", s200, vec![Blur(1.5)]),
        d("noise σ 8", s200, vec![Noise(8.0)]),
        d("JPEG q50", s200, vec![Jpeg(50)]),
        d("scale 0.97", with(200.0, 0.97, 0.0, 0.0, 0.0), vec![]),
        d("scale 1.03", with(200.0, 1.03, 0.0, 0.0, 0.0), vec![]),
        d("rotation +2°", with(200.0, 1.0, 2.0, 0.0, 0.0), vec![]),
        d("rotation −2°", with(200.0, 1.0, -2.0, 0.0, 0.0), vec![]),
        d("translation + cropped margins", with(200.0, 1.0, 0.0, 37.0, -23.0), vec![CropTo(12)]),
        d("brightness +20, contrast 0.85", s200, vec![BrightnessContrast(20.0, 0.85)]),
        d("brightness −15, contrast 1.15", s200, vec![BrightnessContrast(-15.0, 1.15)]),
        d(
            "all: rot 1°, scale 0.99, blur 1.0, noise 8, JPEG 50, b/c",
            with(200.0, 0.99, 1.0, 11.0, 7.0),
            vec![Blur(1.0), Noise(8.0), Jpeg(50), BrightnessContrast(10.0, 0.9)],
        ),
        d("150 dpi, clean", Scan::at(150.0), vec![]),
        d(
            "150 dpi, blur 1.0, noise 8, JPEG 50",
            with(150.0, 1.01, -1.0, 0.0, 0.0),
            vec![Blur(1.0), Noise(8.0), Jpeg(50)],
        ),
        d("300 dpi, clean", Scan::at(300.0), vec![]),
        d("300 dpi, blur 1.5, noise 8", with(300.0, 0.98, 1.5, -20.0, 15.0), vec![Blur(1.5), Noise(8.0)]),
    ]
}

/// The degradation non-genuine cases go through: the same moderate scan as a genuine one.
fn moderate() -> Degradation {
    d("", with(200.0, 1.0, 0.7, 5.0, -5.0), vec![Op::Blur(1.0), Op::Noise(8.0), Op::Jpeg(50)])
}

/// Replaces destination blocks `cols × rows` (starting at `(c0, r0)`) of `a` with those of `b`.
fn paste(a: &BackImage, b: &BackImage, c0: u32, r0: u32, n: u32) -> BackImage {
    let area = scramble::back_layout(827, 1169).unwrap().scramble_area;
    let mut out = a.clone();
    // Rebuild as 8-bit indices over b's palette appended to a's.
    let mut palette = a.palette.clone();
    palette.extend(&b.palette);
    let base = a.palette.len() as u8;
    let mut idx = Vec::with_capacity((a.width * a.height) as usize);
    for y in 0..a.height {
        for x in 0..a.width {
            let (bx, by) = ((x as i64 - area.x as i64).div_euclid(16), (y as i64 - area.y as i64).div_euclid(16));
            let inside = (c0 as i64..(c0 + n) as i64).contains(&bx) && (r0 as i64..(r0 + n) as i64).contains(&by);
            idx.push(if inside { base + b.index_at(x, y) } else { a.index_at(x, y) });
        }
    }
    out.palette = palette;
    out.bits_per_index = 8;
    out.packed_indices = idx;
    out
}

/// A non-genuine case: its row, and for a paste the flagged and the garbled front blocks.
type NonGenuine = (Row, Option<Vec<(u32, u32)>>, Option<Vec<(u32, u32)>>);

/// The non-genuine cases; `paste_n` lists the sizes (blocks a side) of pasted regions.
fn non_genuine(paste_n: &[u32]) -> Vec<NonGenuine> {
    let f = fixture();
    let m = moderate();
    let (w, h) = (f.a.back.width, f.a.back.height);
    let mut rows = Vec::new();
    let (scan_a, _) = scan_of(&m, w, h, &back_rgb(&f.a.back));
    rows.push((verify_row(format!("wrong certificate id ({} asked)", f.b.id), false, &scan_a, &f.b).0, None, None));
    let (scan_b, _) = scan_of(&m, w, h, &back_rgb(&f.b.back));
    rows.push((verify_row("back of another certificate".into(), false, &scan_b, &f.a).0, None, None));
    for &n in paste_n {
        let (c0, r0) = (20, 30);
        let pasted = paste(&f.a.back, &f.b.back, c0, r0, n);
        let (scan, _) = scan_of(&m, w, h, &back_rgb(&pasted));
        let (row, v) = verify_row(format!("{n}×{n} blocks pasted from another back"), false, &scan, &f.a);
        let mut expected: Vec<(u32, u32)> =
            (0..n * n).map(|i| scramble::source_block(&f.a.key, 827, 1169, c0 + i % n, r0 + i / n)).collect();
        expected.sort_unstable();
        let mut flagged = v.map(|v| v.blocks.tampered).unwrap_or_default();
        flagged.sort_unstable();
        if std::env::var_os("BCL_VERIFY_DEBUG").is_some() {
            println!("{n}x{n}: flagged {flagged:?}, pasted {expected:?}");
        }
        rows.push((row, Some(flagged), Some(expected)));
    }
    // A photocopy of the front submitted as the back: the front where the back would be.
    let layout = scramble::back_layout(827, 1169).unwrap();
    let front_on_page = |x: u32, y: u32| {
        let (fx, fy) = (x * 827 / layout.width, y * 1169 / layout.height);
        [f.a.front.pixels[(fy * 827 + fx) as usize]; 3]
    };
    let (scan, _) = scan_of(&m, w, h, &front_on_page);
    rows.push((verify_row("photocopy of the front".into(), false, &scan, &f.a).0, None, None));
    let (scan, _) = scan_of(&m, w, h, &back_rgb(&f.a.back));
    rows.push((
        verify_row("black-and-white photocopy of the back".into(), false, &degrade::grayscale(&scan), &f.a).0,
        None,
        None,
    ));
    rows
}

fn check_genuine(row: &Row) {
    assert_eq!(row.verdict, Verdict::Match, "{}: score {:.3}", row.case, row.score);
    // The restored image keeps at least 0.93 of the quality the scan itself allows.
    if let (Some(r), Some(c)) = (row.ssim_restored, row.ssim_ceiling) {
        assert!(r >= 0.93 * c, "{}: SSIM {r:.3} below 0.93 × ceiling {c:.3}", row.case);
    }
}

fn check_non_genuine(row: &Row, flagged: &Option<Vec<(u32, u32)>>, expected: &Option<Vec<(u32, u32)>>) {
    assert_eq!(row.verdict, Verdict::NoMatch, "{}: score {:.3}", row.case, row.score);
    if let (Some(flagged), Some(expected)) = (flagged, expected) {
        // Localisation: every flagged block is one the paste garbled.
        assert!(flagged.iter().all(|b| expected.contains(b)), "{}: flagged {flagged:?}, pasted {expected:?}", row.case);
        // A pasted block whose content happens to decode to the same picture (mostly blank paper
        // decoding as blank paper, one chance in four) changes nothing visible and is not flagged.
        assert!(flagged.len() * 3 >= expected.len(), "{}: flagged {flagged:?}, pasted {expected:?}", row.case);
    }
}

#[test]
fn genuine_scans_match() {
    let all = all_degradations();
    // A representative subset in the default (debug) run; the full set in the table below.
    for name in ["blur σ 1.5", "translation + cropped margins", "150 dpi, blur 1.0, noise 8, JPEG 50"] {
        let deg = all.iter().find(|x| x.name == name).unwrap();
        check_genuine(&genuine(deg, false));
    }
}

#[test]
fn non_genuine_scans_do_not_match_and_tampering_is_localised() {
    for (row, flagged, expected) in non_genuine(&[3]) {
        check_non_genuine(&row, &flagged, &expected);
    }
}

#[test]
fn garbage_and_bombs_get_clear_errors() {
    assert_eq!(decode_scan(b"not an image"), Err(VerifyError::Undecodable));
    assert_eq!(decode_scan(&vec![0u8; MAX_SCAN_BYTES + 1]), Err(VerifyError::TooLarge));
    // A 40000×40000 gray PNG whose data is one tiny zlib stream of zero rows would decompress
    // to 1.6 GB: the header alone refuses it.
    let mut png = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png, 40_000, 40_000);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&vec![0u8; 5_000 * 40_000]).unwrap();
    }
    assert!(png.len() < 1 << 20, "bomb is small: {}", png.len());
    assert!(matches!(decode_scan(&png), Err(VerifyError::TooManyPixels { width: 40_000, height: 40_000 })));
    // A white page: decodes, but holds no back.
    let white = RgbImage { width: 400, height: 500, pixels: vec![255; 400 * 500 * 3] };
    let f = fixture();
    assert!(matches!(verify_scan(&white, &f.a.front, &f.a.key), Err(VerifyError::BackNotFound(_))));
}

#[test]
fn an_upside_down_scan_is_still_read() {
    let f = fixture();
    let (w, h) = (f.a.back.width, f.a.back.height);
    let (scan, _) = scan_of(&d("180", with(150.0, 1.0, 180.5, 0.0, 0.0), vec![]), w, h, &back_rgb(&f.a.back));
    let v = verify_scan(&scan, &f.a.front, &f.a.key).unwrap();
    assert_eq!(v.verdict, Verdict::Match, "score {}", v.blocks.score);
}

/// The real path: the issued PDF's back page rendered by poppler's `pdftoppm` at 150 and 300 dpi
/// (poppler-utils is installed by scripts/setup.sh).
#[test]
fn pdftoppm_round_trip_matches() {
    for row in pdftoppm_rows() {
        check_genuine(&row);
    }
}

fn pdftoppm_rows() -> Vec<Row> {
    let f = fixture();
    let rec = record_a();
    let issued = JstDateTime::parse_rfc3339("2026-04-01T10:00:00+09:00").unwrap();
    let pdf = crate::certificate::render_resident_record(&f.renderer, &f.secret, &rec, issued).unwrap().pdf;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cert.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let mut rows = Vec::new();
    for dpi in [150u32, 300] {
        let render = |page: u32, out: &str| {
            let status = std::process::Command::new("pdftoppm")
                .args(["-r", &dpi.to_string(), "-f", &page.to_string(), "-l", &page.to_string(), "-png", "-singlefile"])
                .arg(&path)
                .arg(dir.path().join(out))
                .status()
                .expect("pdftoppm runs");
            assert!(status.success());
            decode_scan(&std::fs::read(dir.path().join(format!("{out}.png"))).unwrap()).unwrap()
        };
        let back_scan = render(2, "back");
        let (mut row, v) = verify_row(format!("pdftoppm {dpi} dpi (issued PDF)"), true, &back_scan, &f.a);
        // Ceiling: poppler's rendering of the vector front at the same resolution, read at the
        // front raster's pixel centres.
        let front_scan = render(1, "front");
        let k = dpi as f64 / BACK_IMAGE_DPI as f64;
        let (fw, fh) = (f.a.front.width, f.a.front.height);
        let norm = &v.expect("back found").location.normalise;
        let pixels = (0..fh)
            .flat_map(|y| (0..fw).map(move |x| (x, y)))
            .map(|(x, y)| {
                // Average over the front pixel's footprint (n × n points), as the 100-dpi
                // rasteriser integrates its pixel's area: point samples would miss hairlines.
                let n = k.ceil() as u32;
                let mut sum = 0u32;
                for j in 0..n {
                    for i in 0..n {
                        let (u, v) = (
                            (x as f64 + (i as f64 + 0.5) / n as f64) * k - 0.5,
                            (y as f64 + (j as f64 + 0.5) / n as f64) * k - 0.5,
                        );
                        let p = norm.apply(front_scan.sample_bilinear(u, v));
                        sum += (299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32) / 1000;
                    }
                }
                quantise_gray((sum / (n * n)) as u8)
            })
            .collect();
        row.ssim_ceiling = Some(ssim(&GrayImage { width: fw, height: fh, pixels }, &f.a.front));
        rows.push(row);
    }
    rows
}

/// The table in BENCHMARKS.md ("Scan verification"). Run:
/// `cargo test --release -p bcl-engine --lib verify::tests::scan_verification_table -- --ignored --nocapture`
#[test]
#[ignore = "full suite with timing; run in release mode (needs pdftoppm)"]
fn scan_verification_table() {
    let mut rows: Vec<Row> = all_degradations().iter().map(|d| genuine(d, true)).collect();
    rows.extend(pdftoppm_rows());
    let non = non_genuine(&[2, 3, 5]);
    println!("| case | genuine | verdict | score | flagged blocks | SSIM(descrambled, front) | SSIM(degraded front, front) | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into());
    for row in rows.iter().chain(non.iter().map(|(r, _, _)| r)) {
        let ratio = match (row.ssim_restored, row.ssim_ceiling) {
            (Some(r), Some(c)) => format!("{:.3}", r / c),
            _ => "—".into(),
        };
        println!(
            "| {} | {} | {:?} | {:.3} | {} | {} | {} | {} |",
            row.case,
            if row.genuine { "yes" } else { "no" },
            row.verdict,
            row.score,
            row.tampered,
            fmt(row.ssim_restored),
            fmt(row.ssim_ceiling),
            ratio
        );
    }
    let lowest_match = rows.iter().map(|r| r.score).fold(f64::MAX, f64::min);
    let highest_non = non.iter().map(|(r, _, _)| r.score).fold(f64::MIN, f64::max);
    println!("\nlowest genuine score {lowest_match:.3}, highest non-genuine score {highest_non:.3}, margin {:.3}, threshold {MATCH_THRESHOLD}", lowest_match - highest_non);

    for row in &rows {
        check_genuine(row);
    }
    for (row, flagged, expected) in &non {
        check_non_genuine(row, flagged, expected);
    }

    // Timing of the verifier on a 200-dpi A4 scan (decoded pixels in memory).
    let f = fixture();
    let (scan, _) = scan_of(&all_degradations()[11], f.a.back.width, f.a.back.height, &back_rgb(&f.a.back));
    let mut best = f64::MAX;
    for _ in 0..10 {
        let t = std::time::Instant::now();
        std::hint::black_box(verify_scan(&scan, &f.a.front, &f.a.key).unwrap());
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("verify_scan, 200-dpi A4 scan {}x{}: best {best:.1} ms of 10", scan.width, scan.height);
    let layout = scramble::back_layout(f.a.front.width, f.a.front.height).unwrap();
    let t = std::time::Instant::now();
    let loc = locate_back(&scan, &layout).unwrap();
    let t_locate = t.elapsed().as_secs_f64() * 1e3;
    let t = std::time::Instant::now();
    let restored = read_back(&scan, &loc, f.a.front.width, f.a.front.height, &f.a.key).unwrap();
    let t_read = t.elapsed().as_secs_f64() * 1e3;
    let t = std::time::Instant::now();
    std::hint::black_box(BlockScores::compare(&restored, &f.a.front));
    let t_score = t.elapsed().as_secs_f64() * 1e3;
    println!("  of which locate {t_locate:.1} ms, read + descramble {t_read:.1} ms, score {t_score:.1} ms");
    let _ = LEVEL_GRAY;
}

/// The locator finds the mark centres to a small fraction of a scan pixel, unrotated (where a
/// thresholded centroid is biased by the pixel grid) and rotated.
#[test]
fn marks_are_located_to_a_fraction_of_a_pixel() {
    let f = fixture();
    let (w, h) = (f.a.back.width, f.a.back.height);
    let layout = scramble::back_layout(827, 1169).unwrap();
    for deg in [d("straight", Scan::at(150.0), vec![]), d("rotated", with(150.0, 1.02, 1.5, 9.0, -4.0), vec![])] {
        let (scan, _) = scan_of(&deg, w, h, &back_rgb(&f.a.back));
        let loc = locate_back(&scan, &layout).unwrap();
        let fr = &layout.finders;
        for (i, r) in [fr[0].0, fr[1].0, fr[3].0, fr[2].0].iter().enumerate() {
            let c = r.width as f64 / 2.0;
            let (tx, ty) = deg.scan.back_to_scan(w, h, r.x as f64 + c, r.y as f64 + c);
            let (fx, fy) = loc.marks[i];
            assert!((fx - tx).hypot(fy - ty) < 0.25, "{} mark {i}: found ({fx}, {fy}), true ({tx}, {ty})", deg.name);
        }
    }
}

/// The reader as it was before it was tuned (per-pixel closure through the general bilinear
/// sampler, one thread): the tuned reader must restore exactly the same front.
fn read_back_reference(
    scan: &RgbImage,
    location: &BackLocation,
    front_width: u32,
    front_height: u32,
    key: &ScrambleKey,
) -> GrayImage {
    let area = location.layout.scramble_area;
    let norm = &location.normalise;
    let mut row = (u32::MAX, location.to_scan.row(0.0));
    scramble::descramble_observed(front_width, front_height, key, |x, y| {
        if row.0 != y {
            row = (y, location.to_scan.row((area.y + y) as f64 + 0.5 + edge_nudge(y)));
        }
        let (sx, sy) = row.1.at((area.x + x) as f64 + 0.5 + edge_nudge(x));
        norm.apply(scan.sample_bilinear(sx - 0.5, sy - 0.5))
    })
    .unwrap()
}

#[test]
fn tuned_reader_restores_what_the_reference_reader_does() {
    let f = fixture();
    let (w, h) = (f.a.front.width, f.a.front.height);
    let layout = scramble::back_layout(w, h).unwrap();
    for deg in all_degradations().iter().step_by(4) {
        let (scan, _) = scan_of(deg, f.a.back.width, f.a.back.height, &back_rgb(&f.a.back));
        let location = locate_back(&scan, &layout).unwrap();
        let reference = read_back_reference(&scan, &location, w, h, &f.a.key);
        for threads in [1, 2] {
            let tuned = read_back_threads(&scan, &location, w, h, &f.a.key, threads).unwrap();
            assert!(tuned.pixels == reference.pixels, "{}: {threads} thread(s) read differently", deg.name);
        }
    }
}

/// Timing of `verify_scan` alone on a 200-dpi A4 scan (for profiling). Run:
/// `cargo test --release -p bcl-engine --lib verify::tests::timing_verify -- --ignored --nocapture`
#[test]
#[ignore = "timing; run in release mode"]
fn timing_verify() {
    let f = fixture();
    let deg = &all_degradations()[11];
    let (scan, _) = scan_of(deg, f.a.back.width, f.a.back.height, &back_rgb(&f.a.back));
    let best_of = |f: &mut dyn FnMut()| {
        (0..30)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::MAX, f64::min)
    };
    let layout = scramble::back_layout(f.a.front.width, f.a.front.height).unwrap();
    let location = locate_back(&scan, &layout).unwrap();
    let (w, h) = (f.a.front.width, f.a.front.height);
    let restored = read_back(&scan, &location, w, h, &f.a.key).unwrap();
    // For `perf stat -e cycles:u` (robust on a shared machine, unlike wall time): only one variant
    // runs, 30 times; `none` gives the set-up's share.
    if let Ok(variant) = std::env::var("BCL_READ_VARIANT") {
        for _ in 0..30 {
            match variant.as_str() {
                "before" => drop(std::hint::black_box(read_back_reference(&scan, &location, w, h, &f.a.key))),
                "one" => drop(std::hint::black_box(read_back_threads(&scan, &location, w, h, &f.a.key, 1))),
                "verify" => drop(std::hint::black_box(verify_scan(&scan, &f.a.front, &f.a.key))),
                _ => {}
            }
        }
        return;
    }
    let total = best_of(&mut || {
        std::hint::black_box(verify_scan(&scan, &f.a.front, &f.a.key).unwrap());
    });
    let locate = best_of(&mut || {
        std::hint::black_box(locate_back(&scan, &layout).unwrap());
    });
    let read = best_of(&mut || {
        std::hint::black_box(read_back(&scan, &location, w, h, &f.a.key).unwrap());
    });
    let read_one = best_of(&mut || {
        std::hint::black_box(read_back_threads(&scan, &location, w, h, &f.a.key, 1).unwrap());
    });
    let read_before = best_of(&mut || {
        std::hint::black_box(read_back_reference(&scan, &location, w, h, &f.a.key));
    });
    let score = best_of(&mut || {
        std::hint::black_box(BlockScores::compare(&restored, &f.a.front));
    });
    println!(
        "verify_scan 200-dpi A4 {}x{}: best of 30 {total:.1} ms (locate {locate:.1}, read + descramble {read:.1}, \
         score {score:.1}); read + descramble: before tuning {read_before:.1}, tuned on one thread {read_one:.1}",
        scan.width, scan.height
    );
}
