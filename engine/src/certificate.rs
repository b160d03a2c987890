//! From a ready-to-render record to the certificate PDF: one layout drives the vector front and the raster
//! that is scrambled onto the colour back of the same sheet. Everything here is a pure function of its
//! inputs (record, fonts, master secret, recorded issuance time), which is what lets auditors reproduce a
//! certificate byte for byte.

use crate::error::EngineError;
use crate::render::{
    BackPage, DisplayList, Generation, GrayRaster, PdfMeta, PdfTimestamp, RenderError, Renderer, WrittenPdf,
    BACK_IMAGE_DPI,
};
use crate::scramble::{self, ScrambleKey};
use crate::secrets::MasterSecret;
use bcl_projections::date::JstDateTime;
use bcl_projections::record::{CertificateDocument, ResidentRecordCertificate};
use bcl_projections::RefusalReason;

/// Recorded with every issuance; bump it whenever a change alters the bytes of a rendered certificate, and
/// teach [`generation`] the new version: certificates issued under every earlier version must still
/// reproduce byte for byte.
pub const RENDERER_VERSION: &str = "bcl-resident-record/6";

pub struct Rendered {
    pub pdf: Vec<u8>,
    /// Sheets of paper, all copies included.
    pub sheets: u32,
    /// SHA-256 of `pdf`, the digest recorded with the issuance (from generation 4 on it comes from the
    /// pass that also hashes the /ID, so no caller needs to hash the file again).
    pub sha256: [u8; 32],
}

/// Text rendering failures are refusals the kiosk can show ("cannot issue at a kiosk"), never a certificate
/// with a blank box; anything else is our bug.
fn render_error(e: RenderError) -> EngineError {
    match e {
        RenderError::UndrawableCharacter { .. } => {
            EngineError::refused(RefusalReason::UndrawableCharacter, e.to_string())
        }
        RenderError::LayoutOverflow { .. } => EngineError::refused(RefusalReason::LayoutOverflow, e.to_string()),
        // A registered impression that cannot be reproduced is no usable registration at a kiosk: the
        // municipality has to register it again.
        RenderError::ImageUnreadable { .. } => EngineError::refused(RefusalReason::NoSealRegistration, e.to_string()),
        other => EngineError::Internal(format!("rendering: {other}")),
    }
}

pub fn scramble_key(secret: &MasterSecret, certificate_id: &str) -> ScrambleKey {
    ScrambleKey::derive(secret.as_bytes(), certificate_id)
}

fn back_of(front: &GrayRaster, key: &ScrambleKey) -> Result<BackPage, EngineError> {
    let back = scramble::scramble(front.width, front.height, &front.pixels, key)
        .map_err(|e| EngineError::Internal(format!("scramble: {e}")))?;
    Ok(BackPage {
        width: back.width,
        height: back.height,
        palette: back.palette,
        bits_per_index: back.bits_per_index,
        packed_indices: back.packed_indices,
    })
}

/// The renderer version recorded with an issuance of `doc`. 住民票の写し keeps the version it was first
/// issued under (its bytes did not change when the other types arrived); each other type has its own, so a
/// layout change of one type does not claim to change the others. A new generation changes all.
pub fn renderer_version(doc: &CertificateDocument) -> &'static str {
    match doc {
        CertificateDocument::ResidentRecord(_) => RENDERER_VERSION,
        CertificateDocument::ResidentRecordItems(_) => "bcl-resident-record-items/5",
        CertificateDocument::Seal(_) => "bcl-seal-registration/5",
        CertificateDocument::Tax(_) => "bcl-tax/5",
        CertificateDocument::FamilyRegister(_) => "bcl-family-register/5",
        CertificateDocument::DisasterDamage(_) => "bcl-disaster-damage/5",
    }
}

/// Every renderer version certificates were issued under, with the generation that wrote it. Append only:
/// a version, once issued, must keep reproducing byte for byte.
const ISSUED_VERSIONS: &[(&str, Generation)] = &[
    ("bcl-resident-record/2", Generation::Plain),
    ("bcl-resident-record-items/1", Generation::Plain),
    ("bcl-seal-registration/1", Generation::Plain),
    ("bcl-tax/1", Generation::Plain),
    ("bcl-family-register/1", Generation::Plain),
    ("bcl-disaster-damage/1", Generation::Plain),
    // Latent image on the back, id caption raised off the unprintable edge.
    ("bcl-resident-record/3", Generation::LatentImage),
    ("bcl-resident-record-items/2", Generation::LatentImage),
    ("bcl-seal-registration/2", Generation::LatentImage),
    ("bcl-tax/2", Generation::LatentImage),
    ("bcl-family-register/2", Generation::LatentImage),
    ("bcl-disaster-damage/2", Generation::LatentImage),
    // The same pages, the back image predicted and deflated faster (issue 6: throughput).
    ("bcl-resident-record/4", Generation::LatentImageFastDeflate),
    ("bcl-resident-record-items/3", Generation::LatentImageFastDeflate),
    ("bcl-seal-registration/3", Generation::LatentImageFastDeflate),
    ("bcl-tax/3", Generation::LatentImageFastDeflate),
    ("bcl-family-register/3", Generation::LatentImageFastDeflate),
    ("bcl-disaster-damage/3", Generation::LatentImageFastDeflate),
    // The same pages, pixel for pixel, encoded with less work: the back image from its block structure,
    // subsets without glyph names, one hash pass for /ID and digest (throughput: 1,000 certificates/s).
    ("bcl-resident-record/5", Generation::LeanEncoding),
    ("bcl-resident-record-items/4", Generation::LeanEncoding),
    ("bcl-seal-registration/4", Generation::LeanEncoding),
    ("bcl-tax/4", Generation::LeanEncoding),
    ("bcl-family-register/4", Generation::LeanEncoding),
    ("bcl-disaster-damage/4", Generation::LeanEncoding),
    // The same pages, pixel for pixel, the back image decided 8 bytes at a time (issue 6: the p99 at
    // 500 certificates/s).
    ("bcl-resident-record/6", Generation::SegmentEncoding),
    ("bcl-resident-record-items/5", Generation::SegmentEncoding),
    ("bcl-seal-registration/5", Generation::SegmentEncoding),
    ("bcl-tax/5", Generation::SegmentEncoding),
    ("bcl-family-register/5", Generation::SegmentEncoding),
    ("bcl-disaster-damage/5", Generation::SegmentEncoding),
];

/// The generation renderer version `version` belongs to, for reproducing a certificate issued under it.
/// `None`: a version this engine never issued under, or one of another certificate type.
pub fn generation(doc: &CertificateDocument, version: &str) -> Option<Generation> {
    let family = |v: &str| v.split_once('/').map(|(f, _)| f.to_owned());
    if family(version)? != family(renderer_version(doc))? {
        return None;
    }
    ISSUED_VERSIONS.iter().find(|(v, _)| *v == version).map(|(_, d)| *d)
}

pub fn render_resident_record(
    renderer: &Renderer,
    secret: &MasterSecret,
    record: &ResidentRecordCertificate,
    issued_at: JstDateTime,
) -> Result<Rendered, EngineError> {
    let list = renderer.layout_resident_record(record).map_err(render_error)?;
    let (per_copy, id) = (record.sheets_per_copy(), &record.certificate_id);
    render_list(renderer, secret, &list, per_copy, id, "住民票の写し", issued_at, Generation::CURRENT)
}

/// Renders any certificate as issued today: front pages from its layout, each followed by the scrambled back
/// of that sheet.
pub fn render(
    renderer: &Renderer,
    secret: &MasterSecret,
    doc: &CertificateDocument,
    issued_at: JstDateTime,
) -> Result<Rendered, EngineError> {
    render_as(renderer, secret, doc, issued_at, renderer_version(doc))
}

/// Renders a certificate as renderer version `version` drew it: reproduction of a certificate issued under
/// an earlier version gives that version's bytes.
pub fn render_as(
    renderer: &Renderer,
    secret: &MasterSecret,
    doc: &CertificateDocument,
    issued_at: JstDateTime,
    version: &str,
) -> Result<Rendered, EngineError> {
    let generation = generation(doc, version).ok_or_else(|| {
        EngineError::Internal("the issuance names a renderer version this engine does not know".into())
    })?;
    let list = renderer.layout(doc).map_err(render_error)?;
    let (per_copy, id) = (doc.sheets_per_copy(), doc.certificate_id());
    render_list(renderer, secret, &list, per_copy, id, doc.title(), issued_at, generation)
}

#[allow(clippy::too_many_arguments)]
fn render_list(
    renderer: &Renderer,
    secret: &MasterSecret,
    list: &DisplayList,
    per_copy: u32,
    certificate_id: &str,
    title: &str,
    issued_at: JstDateTime,
    generation: Generation,
) -> Result<Rendered, EngineError> {
    let key = scramble_key(secret, certificate_id);
    // Copies repeat the same sheets: scramble each distinct sheet once.
    let per_copy = per_copy as usize;
    let mut backs: Vec<BackPage> = Vec::with_capacity(list.pages.len());
    for (i, page) in list.pages.iter().enumerate() {
        if i >= per_copy && list.pages[i % per_copy] == *page {
            backs.push(backs[i % per_copy].clone());
            continue;
        }
        let back_started = std::time::Instant::now();
        let raster = renderer.rasterize(page, BACK_IMAGE_DPI);
        backs.push(back_of(&raster, &key)?);
        raster.recycle();
        metrics::histogram!(crate::server::telemetry::BACK_IMAGE_DURATION).record(back_started.elapsed());
    }
    let meta = PdfMeta {
        certificate_id: certificate_id.to_owned(),
        title: title.into(),
        creation_date: Some(PdfTimestamp {
            year: issued_at.date.year as u16,
            month: issued_at.date.month as u8,
            day: issued_at.date.day as u8,
            hour: issued_at.hour as u8,
            minute: issued_at.minute as u8,
            second: issued_at.second as u8,
        }),
    };
    let WrittenPdf { pdf, sha256 } = renderer.write_pdf_as(list, &backs, &meta, generation).map_err(render_error)?;
    for back in backs {
        scramble::recycle_packed(back.packed_indices);
    }
    Ok(Rendered { pdf, sheets: list.pages.len() as u32, sha256 })
}

/// The quantised front rasters that the backs of a certificate carry, for verification: descrambling a
/// back must give exactly the corresponding image.
pub fn front_images(renderer: &Renderer, doc: &CertificateDocument) -> Result<Vec<scramble::GrayImage>, EngineError> {
    let list = renderer.layout(doc).map_err(render_error)?;
    list.pages
        .iter()
        .map(|page| {
            let r = renderer.rasterize(page, BACK_IMAGE_DPI);
            scramble::quantise(r.width, r.height, &r.pixels)
                .map_err(|e| EngineError::Internal(format!("quantise: {e}")))
        })
        .collect()
}
