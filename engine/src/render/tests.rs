//! End-to-end tests of the renderer against the real IPA fonts (installed from Debian, see
//! fixtures/fonts/README.md) and the poppler/qpdf command-line tools where available.

use std::process::Command;
use std::sync::OnceLock;

use bcl_projections::record::{Date, MunicipalityHeader, PersonEntry, ResidentRecordCertificate, Sex};

use super::*;

fn renderer() -> &'static Renderer {
    static R: OnceLock<Renderer> = OnceLock::new();
    R.get_or_init(|| Renderer::load_default().expect("IPA fonts installed (apt-get install fonts-ipamj-mincho fonts-ipaexfont-gothic)"))
}

fn date(year: i32, month: u32, day: u32) -> Date {
    Date { year, month, day }
}

const NAMES: [(&str, &str, &str, &str); 6] = [
    ("髙橋", "一郎", "たかはし", "いちろう"),
    ("山﨑", "花子", "やまさき", "はなこ"),
    ("𠮷田", "健太", "よしだ", "けんた"),
    ("葛\u{E0102}城", "美咲", "かつらぎ", "みさき"),
    ("渡邉", "翔", "わたなべ", "しょう"),
    ("齋藤", "結衣", "さいとう", "ゆい"),
];

fn person(i: usize) -> PersonEntry {
    let (family, given, fk, gk) = NAMES[i];
    PersonEntry {
        family_name: family.into(),
        given_name: given.into(),
        family_name_kana: fk.into(),
        given_name_kana: gk.into(),
        birth_date: date(1960 + 7 * i as i32, 1 + i as u32, 10 + i as u32),
        sex: if i.is_multiple_of(2) { Sex::Male } else { Sex::Female },
        relationship: Some(if i == 0 { "世帯主".into() } else { "子".into() }),
        resident_since: date(2001, 4, 1),
        address_since: date(2015, 10, 20),
        previous_address: Some("大阪府大阪市北区梅田一丁目2番3号".into()),
        registered_domicile: Some("京都府京都市左京区吉田本町36番地".into()),
        domicile_head: Some("髙橋　一郎".into()),
        personal_number: None,
    }
}

fn certificate(persons: usize) -> ResidentRecordCertificate {
    ResidentRecordCertificate {
        municipality: MunicipalityHeader {
            code: "131016".into(),
            name: "東京都千代田区".into(),
            mayor_title: "千代田区長".into(),
            mayor_name: "樋口　高顕".into(),
        },
        certificate_id: "RR-131016-000123".into(),
        issued_on: date(2026, 4, 1),
        address: "東京都千代田区九段南一丁目2番1号　千代田ハイツ305号".into(),
        household_head_name: Some("髙橋　一郎".into()),
        whole_household: true,
        persons: (0..persons).map(person).collect(),
        copies: 1,
    }
}

fn meta() -> PdfMeta {
    PdfMeta {
        certificate_id: "RR-131016-000123".into(),
        title: "住民票の写し".into(),
        creation_date: Some(PdfTimestamp { year: 2026, month: 4, day: 1, hour: 10, minute: 0, second: 0 }),
    }
}

/// A small two-colour checkerboard standing in for the scrambled image.
fn back() -> BackPage {
    let (width, height) = (64u32, 90u32);
    let row = (width as usize).div_ceil(8);
    let packed_indices = (0..height as usize * row).map(|i| if (i / row).is_multiple_of(2) { 0xAA } else { 0x55 }).collect();
    BackPage { width, height, palette: vec![[200, 40, 60], [250, 240, 200]], bits_per_index: 1, packed_indices }
}

fn tool_available(name: &str) -> bool {
    Command::new(name).arg("--version").output().is_ok()
}

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

fn qpdf_check(pdf: &[u8]) {
    if !tool_available("qpdf") {
        eprintln!("SKIPPED qpdf --check: qpdf is not installed");
        return;
    }
    let file = write_temp(pdf);
    let out = Command::new("qpdf").arg("--check").arg(file.path()).output().unwrap();
    assert!(out.status.success(), "qpdf --check failed: {}", String::from_utf8_lossy(&out.stdout));
}

fn pdftotext(pdf: &[u8]) -> Option<String> {
    if !tool_available("pdftotext") {
        eprintln!("SKIPPED text extraction: pdftotext is not installed");
        return None;
    }
    let file = write_temp(pdf);
    let out = Command::new("pdftotext").args(["-raw", "-enc", "UTF-8"]).arg(file.path()).arg("-").output().unwrap();
    assert!(out.status.success());
    Some(String::from_utf8(out.stdout).unwrap())
}

fn render(cert: &ResidentRecordCertificate, with_backs: bool) -> (DisplayList, Vec<u8>) {
    let r = renderer();
    let list = r.layout_resident_record(cert).unwrap();
    let backs: Vec<BackPage> = if with_backs { list.pages.iter().map(|_| back()).collect() } else { vec![] };
    let pdf = r.write_pdf(&list, &backs, &meta()).unwrap();
    // For looking at the result: BCL_RENDER_DUMP=/tmp/dir cargo test ... writes every PDF.
    if let Ok(dir) = std::env::var("BCL_RENDER_DUMP") {
        let name = format!("{dir}/rr-{}p-{}.pdf", cert.persons.len(), if with_backs { "backs" } else { "fronts" });
        std::fs::write(name, &pdf).unwrap();
    }
    (list, pdf)
}

#[test]
fn four_persons_fit_one_sheet_and_extract_as_text() {
    let cert = certificate(4);
    let (list, pdf) = render(&cert, true);
    assert_eq!(list.pages.len(), 1);
    qpdf_check(&pdf);
    let Some(text) = pdftotext(&pdf) else { return };
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for p in &cert.persons {
        // The IVS selector picks the glyph; extracted text is the base characters.
        let family: String = p.family_name.chars().filter(|c| !matches!(*c as u32, 0xE0100..=0xE01EF)).collect();
        assert!(compact.contains(&format!("{family}{}", p.given_name)), "missing {family}");
        assert!(compact.contains(&format!("{}{}", p.family_name_kana, p.given_name_kana)));
    }
    assert!(compact.contains("東京都千代田区九段南一丁目2番1号千代田ハイツ305号"));
    assert!(text.contains("1 枚中 1 枚目"), "page mark missing");
    assert!(compact.contains("令和8年4月1日"));
    assert!(compact.contains("世帯全員の住民票の原本と相違ないことを証明する"));
    assert!(compact.contains("RR-131016-000123"));
    // Two pages: front and back.
    assert_eq!(text.matches('\u{c}').count(), 2);
}

#[test]
fn six_persons_take_two_sheets_each_with_its_mark() {
    let cert = certificate(6);
    let (list, pdf) = render(&cert, true);
    assert_eq!(list.pages.len(), 2);
    qpdf_check(&pdf);
    let Some(text) = pdftotext(&pdf) else { return };
    assert!(text.contains("2 枚中 1 枚目"));
    assert!(text.contains("2 枚中 2 枚目"));
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(compact.contains("渡邉"));
    assert!(compact.contains("齋藤"));
    assert!(compact.contains("以下余白"));
}

#[test]
fn copies_repeat_the_sheets() {
    let mut cert = certificate(6);
    cert.copies = 2;
    let list = renderer().layout_resident_record(&cert).unwrap();
    assert_eq!(list.pages.len(), 4);
    assert_eq!(list.pages[0], list.pages[2]);
    assert_eq!(list.pages[1], list.pages[3]);
}

#[test]
fn selected_members_get_the_other_certification() {
    let mut cert = certificate(1);
    cert.whole_household = false;
    let (_, pdf) = render(&cert, false);
    let Some(text) = pdftotext(&pdf) else { return };
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(compact.contains("この写しは、住民票の原本と相違ないことを証明する。"));
    assert!(!compact.contains("世帯全員"));
}

#[test]
fn same_input_gives_identical_bytes() {
    let cert = certificate(6);
    let (_, a) = render(&cert, true);
    let (_, b) = render(&cert, true);
    assert_eq!(a, b);
    // And any change of content changes the bytes (including the document ID).
    let mut other = cert.clone();
    other.persons[5].given_name = "結菜".into();
    let (_, c) = render(&other, true);
    assert_ne!(a, c);
}

#[test]
fn undrawable_characters_name_the_field_not_the_value() {
    let mut cert = certificate(2);
    cert.persons[1].family_name = "山\u{10FFFD}".into();
    match renderer().layout_resident_record(&cert) {
        Err(RenderError::UndrawableCharacter { field }) => assert_eq!(field, "persons[1].family_name"),
        other => panic!("expected UndrawableCharacter, got {other:?}"),
    }
    // 'A' + an ideographic variation selector is not a registered sequence.
    let mut cert = certificate(2);
    cert.persons[0].given_name = "一\u{E01EF}郎".into();
    let err = renderer().layout_resident_record(&cert).unwrap_err();
    assert!(matches!(&err, RenderError::UndrawableCharacter { field } if field == "persons[0].given_name"), "{err:?}");
    assert!(!err.to_string().contains('一'));
}

#[test]
fn overlong_address_is_a_layout_overflow() {
    let mut cert = certificate(1);
    cert.address = "東京都千代田区".repeat(43).chars().take(300).collect();
    match renderer().layout_resident_record(&cert) {
        Err(RenderError::LayoutOverflow { field }) => assert_eq!(field, "address"),
        other => panic!("expected LayoutOverflow, got {other:?}"),
    }
}

#[test]
fn long_but_reasonable_address_shrinks_instead_of_failing() {
    let mut cert = certificate(1);
    cert.address = "北海道札幌市中央区北一条西二丁目1番地1　札幌中央ビルディング東館南棟第二十三号室".into();
    let list = renderer().layout_resident_record(&cert).unwrap();
    let run = list.pages[0]
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Text(r) if r.glyphs.len() == cert.address.chars().count() => Some(r),
            _ => None,
        })
        .next()
        .expect("address run");
    assert!(run.size < 11.0 && run.size >= 6.5);
    let right = run.x + fonts::run_width(&run.glyphs, run.size, 0.0);
    assert!(right <= display_list::A4_WIDTH - 42.5, "address exceeds its cell");
}

#[test]
fn raster_has_page_dimensions_and_ink_where_text_is() {
    let r = renderer();
    let list = r.layout_resident_record(&certificate(4)).unwrap();
    let page = &list.pages[0];
    let raster = r.rasterize(page, BACK_IMAGE_DPI);
    assert_eq!((raster.width, raster.height), (827, 1169));
    assert_eq!(raster.pixels.len(), 827 * 1169);
    if let Ok(dir) = std::env::var("BCL_RENDER_DUMP") {
        let mut pgm = format!("P5 {} {} 255\n", raster.width, raster.height).into_bytes();
        pgm.extend_from_slice(&raster.pixels);
        std::fs::write(format!("{dir}/rr-front-100dpi.pgm"), pgm).unwrap();
    }
    // Every text run leaves dark pixels inside its box; the margin above the header stays white.
    let s = BACK_IMAGE_DPI / 72.0;
    for item in &page.items {
        let Item::Text(run) = item else { continue };
        let w = fonts::run_width(&run.glyphs, run.size, run.tracking);
        let (x0, x1) = ((run.x * s) as u32, ((run.x + w) * s).ceil() as u32);
        let (y0, y1) = (((run.baseline - run.size) * s) as u32, ((run.baseline + run.size * 0.2) * s).ceil() as u32);
        let darkest = (y0..y1).flat_map(|y| (x0..x1).map(move |x| (x, y))).map(|(x, y)| raster.get(x, y)).min().unwrap();
        assert!(darkest < 100, "no ink for a run at ({}, {})", run.x, run.baseline);
    }
    assert!((0..20).all(|y| (0..raster.width).all(|x| raster.get(x, y) == 255)));
    // Deterministic, and a cached second run gives the same pixels.
    assert_eq!(r.rasterize(page, BACK_IMAGE_DPI), raster);
}

#[test]
fn back_page_count_and_shape_are_checked() {
    let r = renderer();
    let list = r.layout_resident_record(&certificate(6)).unwrap();
    assert!(matches!(r.write_pdf(&list, &[back()], &meta()), Err(RenderError::BackPageCount { fronts: 2, backs: 1 })));
    let mut bad = back();
    bad.packed_indices.pop();
    assert!(matches!(r.write_pdf(&list, &[back(), bad], &meta()), Err(RenderError::BadBackPage { index: 1, .. })));
}

#[test]
fn font_digest_is_sha256_hex() {
    let d = renderer().font_digest();
    assert_eq!(d.len(), 64);
    assert!(d.chars().all(|c| c.is_ascii_hexdigit()));
}

/// Timing of the hot path; run with
/// `cargo test --release -p bcl-engine --lib render::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing() {
    use std::time::Instant;
    let r = renderer();
    let cert = certificate(4);
    let n = 200;
    let mut certs: Vec<_> = (0..n).map(|_| cert.clone()).collect();
    // Vary the names so the subset cache cannot serve every iteration.
    let pool: Vec<char> = "亜唖娃阿哀愛挨姶逢葵茜穐悪握渥旭葦芦鯵梓圧斡扱宛姐虻飴絢綾鮎或粟袷安庵按暗案闇鞍杏以伊位依偉囲夷委威尉惟意慰易椅為畏異移維緯胃萎衣謂違遺医井亥域育郁磯一壱溢逸稲茨芋鰯允印咽員因姻引飲淫胤蔭院陰隠韻吋右宇烏羽迂雨卯鵜窺丑碓臼渦嘘唄欝蔚鰻姥厩浦瓜閏噂云運雲荏餌叡営嬰影映曳栄永泳洩瑛盈穎頴英衛詠鋭液疫益駅悦謁越閲榎厭円".chars().collect();
    for (i, c) in certs.iter_mut().enumerate() {
        for (j, p) in c.persons.iter_mut().enumerate() {
            p.given_name = format!("{}{}", pool[(i * 7 + j * 3) % pool.len()], pool[(i * 13 + j * 5 + 1) % pool.len()]);
        }
    }
    let t = Instant::now();
    let lists: Vec<_> = certs.iter().map(|c| r.layout_resident_record(c).unwrap()).collect();
    let layout = t.elapsed() / n as u32;
    let t = Instant::now();
    let mut bytes = 0;
    for l in &lists {
        bytes += r.write_pdf(l, &[], &meta()).unwrap().len();
    }
    let pdf = t.elapsed() / n as u32;
    let t = Instant::now();
    for _ in 0..20 {
        r.write_pdf(&lists[0], &[], &meta()).unwrap();
    }
    let pdf_cached = t.elapsed() / 20;
    let t = Instant::now();
    for l in lists.iter().take(20) {
        r.rasterize(&l.pages[0], BACK_IMAGE_DPI);
    }
    let raster = t.elapsed() / 20;
    // The back image: the 100 dpi front quantised to 16 levels stands in for the scrambled
    // picture (block scrambling keeps local statistics, so it compresses similarly).
    let front = r.rasterize(&lists[0].pages[0], BACK_IMAGE_DPI);
    let row = (front.width as usize * 4).div_ceil(8);
    let mut packed = vec![0u8; row * front.height as usize];
    for y in 0..front.height as usize {
        for x in 0..front.width as usize {
            let v = front.pixels[y * front.width as usize + x] >> 4;
            packed[y * row + x / 2] |= if x % 2 == 0 { v << 4 } else { v };
        }
    }
    let palette = (0..16u8).map(|i| [i * 17, i * 17, i * 17]).collect();
    let back = BackPage { width: front.width, height: front.height, palette, bits_per_index: 4, packed_indices: packed.clone() };
    let t = Instant::now();
    let mut with_back = 0;
    for _ in 0..20 {
        with_back = r.write_pdf(&lists[0], std::slice::from_ref(&back), &meta()).unwrap().len();
    }
    let pdf_back = t.elapsed() / 20;
    let t = Instant::now();
    let deflated = miniz_oxide::deflate::compress_to_vec_zlib(&packed, 1);
    let deflate = t.elapsed();
    // Split of a fresh mincho subset: subsetter vs zlib.
    let mut glyphs: Vec<u16> = lists[1].pages[0]
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
    let t = Instant::now();
    let sub = subsetter::subset(r.fonts().font(FontRole::Mincho).data(), 0, &remapper).unwrap();
    let subset_time = t.elapsed();
    let t = Instant::now();
    let z = miniz_oxide::deflate::compress_to_vec_zlib(&sub, 1);
    eprintln!(
        "mincho subset of {} glyphs: subsetter {subset_time:?} -> {} bytes, zlib level 1 {:?} -> {} bytes",
        glyphs.len(),
        sub.len(),
        t.elapsed(),
        z.len()
    );
    eprintln!(
        "back image {} bytes raw, {} deflated (level 1) in {deflate:?}; pdf with back (cached subsets) {pdf_back:?}, {with_back} bytes",
        packed.len(),
        deflated.len()
    );
    eprintln!(
        "layout {layout:?}/cert, pdf (fresh subsets) {pdf:?}/cert avg {} bytes, pdf (cached subsets) {pdf_cached:?}, raster@100dpi {raster:?}",
        bytes / n
    );
}

#[test]
fn ivs_selects_a_registered_variant_glyph() {
    let fonts = renderer().fonts();
    let plain = fonts.shape(FontRole::Mincho, "葛", "f").unwrap();
    let variant = fonts.shape(FontRole::Mincho, "葛\u{E0102}", "f").unwrap();
    assert_eq!(variant.len(), 1, "base + selector is one cluster");
    assert_eq!(variant[0].base, '葛');
    assert_ne!(variant[0].id, plain[0].id, "the Moji_Joho sequence has its own glyph");
    // Rare kanji outside the BMP and compatibility ideographs are drawable.
    for text in ["𠮷", "髙", "﨑"] {
        assert_eq!(fonts.shape(FontRole::Mincho, text, "f").unwrap().len(), 1);
    }
}
