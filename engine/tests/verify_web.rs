//! The verification web page (`bcl serve --verify-http`) in a real headless Chromium: a certificate is issued
//! by the real server, its back is rendered by poppler as a scanner would see it, and a browser script
//! (engine/tests/web/verify_page.mjs, Playwright on Debian's chromium; installed by scripts/setup.sh)
//! uploads it through the page and reads the verdict the page shows. Also: a tampered back (blocks pasted
//! from another certificate's back), the wrong id, an unknown id, a garbage file.
//!
//! `BCL_BLESS=1` copies the screenshots to docs/verify-page*.png.

mod common;

use bcl_fixtures::Expect;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `bcl serve` with the verification page, on a data directory no other server has open.
struct PageServer {
    child: Child,
    url: String,
}

impl PageServer {
    fn start(data_dir: &Path) -> PageServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bcl"))
            .args(["serve", "--insecure-dev", "--listen", "127.0.0.1:0", "--verify-http", "127.0.0.1:0", "--now", NOW, "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bcl serve");
        // Both addresses are printed once bound: no polling.
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut url = None;
        for _ in 0..2 {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read a startup line");
            if let Some(u) = line.trim().strip_prefix("bcl verify page on ") {
                url = Some(u.to_string());
            }
        }
        PageServer { child, url: url.expect("the server announces the verification page") }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_rgb_png(path: &Path) -> (png::OutputInfo, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info, buf)
}

fn write_png(path: &Path, info: &png::OutputInfo, pixels: &[u8]) {
    let mut enc =
        png::Encoder::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap()), info.width, info.height);
    enc.set_color(info.color_type);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(pixels).unwrap();
}

fn page_png(pdf: &Path, page: u32, dpi: u32, prefix: &Path) -> PathBuf {
    let (page, dpi) = (page.to_string(), dpi.to_string());
    let args = ["-r", &dpi, "-f", &page, "-l", &page, "-singlefile", "-png", pdf.to_str().unwrap()];
    tool("pdftoppm", &[&args[..], &[prefix.to_str().unwrap()]].concat());
    prefix.with_extension("png")
}

#[derive(Debug)]
struct Shown {
    name: String,
    verdict: Option<String>,
    details: Option<String>,
    error: Option<String>,
    descrambled: bool,
    front: bool,
    withheld: bool,
    outlined: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_verifies_uploaded_scans_in_chromium() {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "run scripts/setup.sh (installs chromium and playwright-core)"
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (cert, other) = {
        let server = Server::start(&data, NOW);
        let municipality = fixture(10);
        append_all(&server, &municipality.events).await;
        configure(&server, CODE).await;
        let issuance = server.issuance().await;
        let issue = |name: &'static str, request_id: &'static str| {
            let case = municipality
                .cases
                .iter()
                .find(|c| c.name == name && matches!(c.expect, Expect::Issue { .. }))
                .unwrap_or_else(|| panic!("fixture case {name}"))
                .clone();
            let mut issuance = issuance.clone();
            async move {
                let req = resident_record(request_id, &case.card_serial, &case.subject_resident_ids);
                issuance.issue(req).await.unwrap().into_inner()
            }
        };
        let cert = issue("single_person", "web-1").await;
        let other = issue("large_household_6", "web-2").await;
        (cert, other)
    };
    // The first server has exited: the page server opens the same data directory.

    // A genuine scan: the back page as poppler renders it at 150 dpi.
    let pdf = dir.path().join("cert.pdf");
    std::fs::write(&pdf, &cert.pdf).unwrap();
    let other_pdf = dir.path().join("other.pdf");
    std::fs::write(&other_pdf, &other.pdf).unwrap();
    let genuine = page_png(&pdf, 2, 150, &dir.path().join("genuine"));
    // Tampered: a 60×60-pixel patch (about 3×3 blocks) of another certificate's back pasted over it.
    let tampered = dir.path().join("tampered.png");
    {
        let (info, mut pixels) = read_rgb_png(&genuine);
        let (_, donor) = read_rgb_png(&page_png(&other_pdf, 2, 150, &dir.path().join("donor")));
        let channels = info.color_type.samples();
        let stride = info.width as usize * channels;
        for y in 700..760 {
            let row = y * stride + 500 * channels..y * stride + 560 * channels;
            pixels[row.clone()].copy_from_slice(&donor[row]);
        }
        write_png(&tampered, &info, &pixels);
    }
    let garbage = dir.path().join("garbage.png");
    std::fs::write(&garbage, b"\x89PNG\r\n\x1a\n this is not an image at all").unwrap();

    let server = PageServer::start(&data);
    let shots = dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = |name: &str| shots.join(format!("{name}.png")).to_str().unwrap().to_string();
    let id = cert.certificate_id.as_str();
    let cases = serde_json::json!([
        { "name": "genuine", "file": genuine, "id": id, "screenshot": shot("genuine") },
        { "name": "tampered", "file": tampered, "id": id, "screenshot": shot("tampered") },
        { "name": "wrong id", "file": genuine, "id": other.certificate_id, "screenshot": shot("wrong-id") },
        { "name": "unknown id", "file": genuine, "id": "131016-0000-999999" },
        { "name": "garbage", "file": garbage, "id": id, "screenshot": shot("garbage") },
    ]);
    let cases_file = dir.path().join("cases.json");
    std::fs::write(&cases_file, cases.to_string()).unwrap();
    let out = Command::new("node")
        .current_dir(&web)
        .args(["verify_page.mjs", &server.url, cases_file.to_str().unwrap()])
        .output()
        .expect("node is required (scripts/setup.sh)");
    assert!(out.status.success(), "browser script failed: {}", String::from_utf8_lossy(&out.stderr));
    let shown: Vec<Shown> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            let s = |k: &str| v[k].as_str().map(str::to_string);
            Shown {
                name: s("name").unwrap(),
                verdict: s("verdict"),
                details: s("details"),
                error: s("error"),
                descrambled: v["descrambled"].as_bool().unwrap(),
                front: v["front"].as_bool().unwrap(),
                withheld: v["withheld"].as_bool().unwrap(),
                outlined: v["outlined"].as_u64().unwrap(),
            }
        })
        .collect();
    let case =
        |name: &str| shown.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no result for {name}: {shown:?}"));

    let g = case("genuine");
    assert!(g.verdict.as_deref().is_some_and(|v| v.contains("MATCH:") && v.contains(id)), "{g:?}");
    assert!(g.descrambled && g.front && !g.withheld && g.outlined == 0 && g.error.is_none(), "{g:?}");
    assert!(g.details.as_deref().is_some_and(|d| d.contains("sheet 1 of 1")), "{g:?}");

    let t = case("tampered");
    assert!(t.verdict.as_deref().is_some_and(|v| v.contains("NO MATCH")), "{t:?}");
    assert!(t.outlined > 0 && t.descrambled && t.front && !t.withheld, "the pasted blocks are outlined: {t:?}");

    // Another certificate's id: its key turns this back into noise; its front is not shown.
    let w = case("wrong id");
    assert!(w.verdict.as_deref().is_some_and(|v| v.contains("NO MATCH")), "{w:?}");
    assert!(w.descrambled && !w.front && w.withheld, "{w:?}");

    let u = case("unknown id");
    assert!(
        u.verdict.is_none() && u.error.as_deref().is_some_and(|e| e.contains("No certificate with this id")),
        "{u:?}"
    );
    let b = case("garbage");
    assert!(
        b.verdict.is_none() && b.error.as_deref().is_some_and(|e| e.contains("not a readable PNG or JPEG")),
        "{b:?}"
    );

    for name in ["genuine", "tampered", "wrong-id", "garbage"] {
        let png = std::fs::read(shot(name)).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}: screenshot");
    }
    if std::env::var_os("BCL_BLESS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
        for (name, file) in [("genuine", "verify-page.png"), ("tampered", "verify-page-tampered.png")] {
            std::fs::copy(shot(name), docs.join(file)).unwrap();
        }
    }

    // Over HTTP directly: an oversized upload is refused before it is read whole, and the server is still
    // there afterwards.
    let big = vec![0u8; bcl_engine::verify::MAX_SCAN_BYTES + 1];
    let url = format!("{}api/verify?certificate_id={id}", server.url);
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary", "@-", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let _ = c.stdin.take().unwrap().write_all(&big);
            c.wait_with_output()
        })
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413");
}
