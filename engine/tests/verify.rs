//! Scan verification end to end: a certificate issued by the real server, its back pages rendered by
//! poppler's `pdftoppm` as a scanner would see them, verified over gRPC (`bcl.v1.Verify/VerifyBack`) and
//! with `bcl verify`.

mod common;

use bcl_fixtures::Expect;
use bcl_proto::verify_client::VerifyClient;
use bcl_proto::{Verdict, VerifyBackRequest};
use common::*;

fn pdftoppm(pdf: &std::path::Path, page: u32, dpi: u32, jpeg: bool, out: &std::path::Path) -> Vec<u8> {
    let page = page.to_string();
    let dpi = dpi.to_string();
    let mut args = vec!["-r", &dpi, "-f", &page, "-l", &page, "-singlefile"];
    args.push(if jpeg { "-jpeg" } else { "-png" });
    args.push(pdf.to_str().unwrap());
    args.push(out.to_str().unwrap());
    tool("pdftoppm", &args);
    std::fs::read(out.with_extension(if jpeg { "jpg" } else { "png" })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_of_issued_backs_verify_over_grpc_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, NOW);
    let municipality = fixture(10);
    append_all(&server, &municipality.events).await;
    configure(&server, CODE).await;
    let issue = |name: &'static str, request_id: &'static str| {
        let case = municipality
            .cases
            .iter()
            .find(|c| c.name == name && matches!(c.expect, Expect::Issue { .. }))
            .unwrap_or_else(|| panic!("fixture case {name}"));
        resident_record(request_id, &case.card_serial, &case.subject_resident_ids)
    };
    let mut issuance = server.issuance().await;
    let two_sheets = issuance.issue(issue("large_household_6", "verify-1")).await.unwrap().into_inner();
    let other = issuance.issue(issue("single_person", "verify-2")).await.unwrap().into_inner();
    assert_eq!(two_sheets.sheets, 2);

    let pdf = dir.path().join("cert.pdf");
    std::fs::write(&pdf, &two_sheets.pdf).unwrap();
    let other_pdf = dir.path().join("other.pdf");
    std::fs::write(&other_pdf, &other.pdf).unwrap();
    // Pages alternate front, back: page 4 is the back of sheet 2.
    let back2 = pdftoppm(&pdf, 4, 150, false, &dir.path().join("back2"));
    let other_back = pdftoppm(&other_pdf, 2, 150, false, &dir.path().join("other-back"));

    let mut verify = VerifyClient::new(server.channel().await);
    let ask = |scan: Vec<u8>, id: &str| VerifyBackRequest { scan, certificate_id: id.to_string() };

    let ok = verify.verify_back(ask(back2.clone(), &two_sheets.certificate_id)).await.unwrap().into_inner();
    assert_eq!(ok.verdict(), Verdict::Match, "score {}", ok.score);
    assert_eq!((ok.sheet, ok.sheets), (2, 2));
    assert!(ok.score >= ok.threshold && ok.differing_blocks.is_empty());
    assert!(ok.descrambled_png.starts_with(b"\x89PNG"));

    // Another certificate's back, and this back asked as the other certificate: no match.
    let wrong = verify.verify_back(ask(other_back, &two_sheets.certificate_id)).await.unwrap().into_inner();
    assert_eq!(wrong.verdict(), Verdict::NoMatch);
    let wrong_id = verify.verify_back(ask(back2.clone(), &other.certificate_id)).await.unwrap().into_inner();
    assert_eq!(wrong_id.verdict(), Verdict::NoMatch);
    assert!(wrong.score < ok.threshold && wrong_id.score < ok.threshold);

    // Clear answers, never a crash.
    let unknown = verify.verify_back(ask(back2.clone(), "131016-NOSUCHCERTIFICATE")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let garbage = verify.verify_back(ask(b"GIF89a not a scan".to_vec(), &two_sheets.certificate_id)).await.unwrap_err();
    assert_eq!(garbage.code(), tonic::Code::InvalidArgument);
    let front = pdftoppm(&pdf, 1, 100, false, &dir.path().join("front1"));
    let not_a_back = verify.verify_back(ask(front, &two_sheets.certificate_id)).await.unwrap_err();
    assert_eq!(not_a_back.code(), tonic::Code::InvalidArgument, "{}", not_a_back.message());
    drop(server);

    // The CLI on a 300-dpi JPEG of the first sheet's back (the server is stopped: it opens the log).
    let jpeg = dir.path().join("back1.jpg");
    pdftoppm(&pdf, 2, 300, true, &dir.path().join("back1"));
    let out = dir.path().join("restored.png");
    let report = tool(
        env!("CARGO_BIN_EXE_bcl"),
        &[
            "verify",
            jpeg.to_str().unwrap(),
            "--certificate-id",
            &two_sheets.certificate_id,
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let report = String::from_utf8(report).unwrap();
    assert!(report.contains("sheet 1 of 2: verdict MATCH"), "{report}");
    assert!(std::fs::read(&out).unwrap().starts_with(b"\x89PNG"));
}
