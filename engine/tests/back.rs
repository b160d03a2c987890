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
    let mut backs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("img-"))
        .collect();
    backs.sort();
    assert_eq!(backs.len(), 2, "one scrambled image per sheet: {backs:?}");

    // The expected fronts, rebuilt from the log by the engine library on the same data directory.
    let engine = bcl_engine::engine::Engine::open(bcl_engine::engine::EngineConfig {
        data_dir: data.clone(),
        clock: bcl_engine::clock::Clock::fixed(NOW).unwrap(),
        fonts: None,
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
