//! The colour back of an issued certificate carries the front: extracted from the real PDF with poppler's
//! `pdfimages` and restored with `bcl descramble`, it equals the front raster exactly.

mod common;

use bcl_fixtures::Expect;
use common::*;

fn read_gray_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descrambled_back_equals_the_front_raster() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, NOW);
    let municipality = fixture(10);
    append_all(&server, &municipality.events).await;
    configure(&server, CODE).await;
    let case = municipality
        .cases
        .iter()
        .find(|c| c.name == "large_household_6" && matches!(c.expect, Expect::Issue { .. }))
        .expect("a two-sheet case");
    let resp = server
        .issuance()
        .await
        .issue(resident_record("back-1", &case.card_serial, &case.subject_resident_ids))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.sheets, 2);
    drop(server);

    let pdf = dir.path().join("cert.pdf");
    std::fs::write(&pdf, &resp.pdf).unwrap();
    let prefix = dir.path().join("img");
    tool("pdfimages", &["-png", pdf.to_str().unwrap(), prefix.to_str().unwrap()]);
    let mut images: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("img-"))
        .collect();
    images.sort();
    // Each back page carries its scrambled image and the latent tile (an image mask).
    let latent_size = (bcl_engine::scramble::latent::BACK_TILE_WIDTH, bcl_engine::scramble::latent::BACK_TILE_HEIGHT);
    let (latents, backs): (Vec<_>, Vec<_>) = images.into_iter().partition(|p| {
        let (info, _) = decode_png(&std::fs::read(p).unwrap());
        (info.width, info.height) == latent_size
    });
    assert_eq!(backs.len(), 2, "one scrambled image per sheet: {backs:?}");
    assert_eq!(latents.len(), 2, "one latent tile per back page: {latents:?}");

    // The expected fronts, rebuilt from the log by the engine library on the same data directory.
    let engine = bcl_engine::engine::Engine::open(bcl_engine::engine::EngineConfig {
        data_dir: data.clone(),
        clock: bcl_engine::clock::Clock::fixed(NOW).unwrap(),
        fonts: None,
        render: Default::default(),
    })
    .unwrap();
    let fronts = engine.front_images(&resp.certificate_id).unwrap();
    assert_eq!(fronts.len(), 2);
    assert_ne!(fronts[0].pixels, fronts[1].pixels, "the two sheets differ");

    for (i, back) in backs.iter().enumerate() {
        let restored = dir.path().join(format!("front-{i}.png"));
        tool(
            env!("CARGO_BIN_EXE_bcl"),
            &[
                "descramble",
                back.to_str().unwrap(),
                "--certificate-id",
                &resp.certificate_id,
                "--data-dir",
                data.to_str().unwrap(),
                "--out",
                restored.to_str().unwrap(),
            ],
        );
        let (w, h, pixels) = read_gray_png(&restored);
        assert_eq!((w, h), (fronts[i].width, fronts[i].height), "sheet {}", i + 1);
        assert!(pixels == fronts[i].pixels, "sheet {}: restored front differs from the front raster", i + 1);
        assert!(pixels.iter().filter(|&&p| p < 128).count() > 10_000, "sheet {}: the front has ink", i + 1);

        // With another certificate's key the back does not restore the front.
        let wrong = dir.path().join(format!("wrong-{i}.png"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bcl"))
            .args(["descramble", back.to_str().unwrap(), "--certificate-id", "131016-00000000000000000000"])
            .args(["--data-dir", data.to_str().unwrap(), "--out", wrong.to_str().unwrap()])
            .output()
            .unwrap();
        if out.status.success() {
            assert!(read_gray_png(&wrong).2 != fronts[i].pixels);
        }
    }
}

/// The anti-copy latent image at the foot of the back, as poppler renders the real PDF: hidden to the eye,
/// revealed by the committed decoding overlay (`docs/latent-overlay.png`), lost in a 150-dpi copy.
#[test]
fn latent_image_shows_under_the_overlay_and_not_in_a_150_dpi_copy() {
    use bcl_engine::render::pdf::latent_tile::{LEFT_PX, TOP_PX};
    use bcl_engine::scramble::latent::{
        self, BACK_TILE_BLOSSOM_CELL as CELL, BACK_TILE_HEIGHT as H, BACK_TILE_WIDTH as W,
    };
    use bcl_engine::scramble::GrayImage;

    // The committed overlay is the tile's, pixel for pixel (`BCL_BLESS=1` writes it).
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/latent-overlay.png");
    if std::env::var_os("BCL_BLESS").is_some() {
        std::fs::write(committed_path, latent::back_tile_overlay_png().unwrap()).unwrap();
    }
    let committed = std::fs::read(committed_path).unwrap();
    let (info, overlay) = decode_png(&committed);
    assert_eq!((info.width, info.height, info.color_type), (W, H, png::ColorType::Rgba));
    assert!(overlay == decode_png(&latent::back_tile_overlay_png().unwrap()).1, "docs/latent-overlay.png is stale");

    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("cert.pdf");
    std::fs::write(&pdf, latent_fixture_pdf()).unwrap();
    let render = |dpi: u32, x: u32, y: u32, w: u32, h: u32, name: &str| {
        let prefix = dir.path().join(name);
        let [dpi, x, y, w, h] = [dpi, x, y, w, h].map(|v| v.to_string());
        let args = ["-r", &dpi, "-f", "2", "-l", "2", "-x", &x, "-y", &y, "-W", &w, "-H", &h, "-gray", "-png"];
        tool("pdftoppm", &[&args[..], &["-singlefile", pdf.to_str().unwrap(), prefix.to_str().unwrap()]].concat());
        let (info, data) = decode_png(&std::fs::read(prefix.with_extension("png")).unwrap());
        // poppler may write its gray rendering as RGB triplets.
        let channels = info.color_type.samples();
        let pixels = data
            .chunks_exact(channels)
            .map(|p| {
                if channels >= 3 {
                    ((p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000) as u8
                } else {
                    p[0]
                }
            })
            .collect();
        GrayImage { width: info.width, height: info.height, pixels }
    };
    // The tile as printed at 1200 dpi: its pixels are the rendering's pixels.
    let print = render(1200, LEFT_PX, TOP_PX, W, H, "print");
    // A copy: scanned at 150 dpi (each scan pixel averages 8×8 print pixels; the tile's top edge is not on
    // the scan grid), then printed again at 1200 dpi by a binary printer (ordered 4×4 dither).
    let (sx, sy) = (LEFT_PX / 8, TOP_PX / 8);
    let scan = render(150, sx, sy, W / 8 + 2, H / 8 + 2, "scan");
    const BAYER: [u32; 16] = [0, 8, 2, 10, 12, 4, 14, 6, 3, 11, 1, 9, 15, 7, 13, 5];
    let copy = GrayImage {
        pixels: (0..H)
            .flat_map(|y| (0..W).map(move |x| (x, y)))
            .map(|(x, y)| {
                let (cx, cy) = ((LEFT_PX + x) / 8 - sx, (TOP_PX + y) / 8 - sy);
                let v = scan.pixels[(cy * scan.width + cx) as usize] as u32;
                if v > BAYER[((y % 4) * 4 + x % 4) as usize] * 16 + 8 {
                    255
                } else {
                    0
                }
            })
            .collect(),
        ..print.clone()
    };
    let overlay = latent::decoding_overlay(W, H, &latent::Screen::default());
    let mark = latent::back_tile_mark();
    // Mean gray inside the mark (its strokes and rim) and well outside the circle, over blossom or
    // background pixels.
    let means = |img: &GrayImage, blossom: bool| {
        let (mut si, mut ni, mut so, mut no) = (0f64, 0f64, 0f64, 0f64);
        for y in 0..H {
            for x in 0..W {
                let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
                if latent::in_blossom(fx, fy, CELL) != blossom {
                    continue;
                }
                let v = img.pixels[(y * W + x) as usize] as f64;
                if mark.contains(fx, fy) {
                    (si, ni) = (si + v, ni + 1.0);
                } else if ((fx - mark.cx).powi(2) + (fy - mark.cy).powi(2)).sqrt() > mark.r + 8.0 {
                    (so, no) = (so + v, no + 1.0);
                }
            }
        }
        (si / ni, so / no)
    };
    for blossom in [false, true] {
        let (pi, po) = means(&print, blossom);
        let (i, o) = means(&latent::apply_overlay(&print, &overlay), blossom);
        let (ci, co) = means(&latent::apply_overlay(&copy, &overlay), blossom);
        println!(
            "{}: print {pi:.1}/{po:.1}, print + overlay {i:.1}/{o:.1}, 150-dpi copy + overlay {ci:.1}/{co:.1} \
             (mean gray inside/outside the mark)",
            if blossom { "blossoms" } else { "between blossoms" }
        );
        assert!((pi - po).abs() < 0.03 * 255.0, "the mark shows without the overlay: {pi:.1} vs {po:.1}");
        assert!(i - o > 0.08 * 255.0, "the overlay does not reveal the mark: {i:.1} vs {o:.1}");
        assert!((ci - co).abs() < 0.25 * (i - o), "the copy keeps the mark: {ci:.1} vs {co:.1}");
    }
    // The blossoms are visible without any overlay.
    assert!(means(&print, false).1 - means(&print, true).1 > 0.1 * 255.0);
    // `BCL_BLESS=1` also draws docs/latent.png: the print, the print under the overlay and the copy under the
    // overlay, stacked, averaged down to 150 dpi (one screen period: what the eye integrates).
    if std::env::var_os("BCL_BLESS").is_some() {
        let panels = [print.clone(), latent::apply_overlay(&print, &overlay), latent::apply_overlay(&copy, &overlay)];
        let (w, h) = (W / 8, H / 8);
        let mut pixels = Vec::with_capacity((w * h * 3) as usize);
        for panel in &panels {
            for y in 0..h {
                for x in 0..w {
                    let sum: u32 =
                        (0..64).map(|k| panel.pixels[((8 * y + k / 8) * W + 8 * x + k % 8) as usize] as u32).sum();
                    pixels.push((sum / 64) as u8);
                }
            }
        }
        let png = bcl_engine::scramble::gray_to_png(w, h * 3, &pixels).unwrap();
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/latent.png"), png).unwrap();
    }
}

fn decode_png(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info, buf)
}

/// A one-sheet certificate as issued today.
fn latent_fixture_pdf() -> Vec<u8> {
    use bcl_projections::record::*;
    let renderer = bcl_engine::render::Renderer::load_default().expect("fonts (run scripts/setup.sh)");
    let secret = bcl_engine::secrets::MasterSecret::from_bytes([7; 32]);
    let doc = CertificateDocument::Tax(TaxCertificate {
        kind: TaxCertificateKind::Income,
        municipality: MunicipalityHeader {
            code: "131016".into(),
            name: "東京都千代田区".into(),
            mayor_title: "千代田区長".into(),
            mayor_name: "千代田　太郎".into(),
        },
        certificate_id: "131016-LATENT".into(),
        issued_on: Date { year: 2026, month: 4, day: 1 },
        fiscal_year: 2026,
        family_name: "髙橋".into(),
        given_name: "一郎".into(),
        birth_date: Date { year: 1960, month: 1, day: 10 },
        address: "東京都千代田区神田神保町二丁目12番地3".into(),
        total_income: 6_393_000,
        taxable_income: 5_004_000,
        municipal_tax: 303_200,
        prefectural_tax: 201_100,
        exempt: false,
        copies: 1,
    });
    let issued_at = bcl_projections::JstDateTime::parse_rfc3339("2026-04-01T10:00:00+09:00").unwrap();
    bcl_engine::certificate::render(&renderer, &secret, &doc, issued_at).unwrap().pdf
}
